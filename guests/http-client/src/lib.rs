//! Forwards requests with the `wasi:http` outgoing client, so the host's
//! outbound-HTTP path (and the workload's virtual `localhost`) can be tested.
//!
//! | route                          | upstream request                         |
//! |--------------------------------|------------------------------------------|
//! | `GET /via/<port>/<rest...>`    | `GET http://localhost:<port>/<rest...>`  |
//! | `GET /via-ip/<port>/<rest...>` | `GET http://127.0.0.1:<port>/<rest...>`  |
//! | `GET /url?u=<encoded URL>`     | `GET <URL>` (percent-decoded)            |
//!
//! The query string of a `/via` request is passed on. The answer has the
//! upstream status and body; if the upstream request fails, `502` with
//! `upstream error: <error>`.

use wstd::http::{Body, Client, Error, Method, Request, Response, StatusCode, Uri};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    if request.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    let url = match upstream_url(&request) {
        Ok(url) => url,
        Err((status, msg)) => return text(status, format!("{msg}\n")),
    };
    match fetch(&url).await {
        Ok((status, body)) => Ok(Response::builder().status(status).body(Body::from(body))?),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("upstream error: {e:#}\n")),
    }
}

fn upstream_url(request: &Request<Body>) -> Result<String, (StatusCode, &'static str)> {
    let path = request.uri().path();
    let query = request.uri().query();
    let (host, rest) = if let Some(rest) = path.strip_prefix("/via/") {
        ("localhost", rest)
    } else if let Some(rest) = path.strip_prefix("/via-ip/") {
        ("127.0.0.1", rest)
    } else if path == "/url" {
        let encoded = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("u="))
            .ok_or((StatusCode::BAD_REQUEST, "missing u= query parameter"))?;
        let url =
            percent_decode(encoded).ok_or((StatusCode::BAD_REQUEST, "bad percent-encoding"))?;
        return match url.parse::<Uri>() {
            Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => Ok(url),
            _ => Err((StatusCode::BAD_REQUEST, "u must be an absolute URL")),
        };
    } else {
        return Err((StatusCode::NOT_FOUND, "no such route"));
    };

    let (port, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let port: u16 = port
        .parse()
        .map_err(|_| (StatusCode::BAD_REQUEST, "bad port"))?;
    let mut url = format!("http://{host}:{port}/{rest}");
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

async fn fetch(url: &str) -> Result<(StatusCode, Vec<u8>), Error> {
    let request = Request::get(url).body(Body::empty())?;
    let response = Client::new().send(request).await?;
    let status = response.status();
    let body = response.into_body().bytes_contents().await?;
    Ok((status, body.to_vec()))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(body))?)
}
