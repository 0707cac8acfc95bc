//! The dashboard at `/ui`: one HTML page, one script, one stylesheet, compiled into the binary
//! (no framework, no CDN: it works offline). The page reads what the API already serves
//! (`/v1/workloads` with its topology, `/metrics`, the log stream) every second; nothing
//! here computes numbers.
//!
//! Signing in: a browser cannot send a bearer header when it navigates, so `/ui` without a
//! credential answers a login form (no data) that posts the token to `/ui/login`; the right
//! token sets the session cookie ([`super::auth`]) and redirects to `/ui`, a wrong one is
//! `401` and logged. The assets (`/ui/app.js`, `/ui/app.css`) hold no data and need no
//! credential. Every page forbids framing and scripts from anywhere else.

use super::auth::{self, Auth};
use crate::responses;
use bytes::Bytes;
use hearth_runtime::OutgoingBody;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;

const INDEX: &str = include_str!("ui/index.html");
const LOGIN: &str = include_str!("ui/login.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// Largest login form read.
const MAX_FORM: usize = 4096;

/// Whether `path` is the dashboard's.
pub(super) fn owns(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// Answers a request for a dashboard path.
pub(super) async fn handle(
    auth: &Auth<'_>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<OutgoingBody> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/ui" | "/ui/") => {
            if auth.check(req.method(), req.headers()).allowed() {
                page(StatusCode::OK, "text/html; charset=utf-8", INDEX.into())
            } else {
                login_page(StatusCode::OK, "")
            }
        }
        (Method::GET, "/ui/app.js") => page(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            SCRIPT.into(),
        ),
        (Method::GET, "/ui/app.css") => {
            page(StatusCode::OK, "text/css; charset=utf-8", STYLE.into())
        }
        (Method::POST, "/ui/login") => login(auth, peer, req).await,
        (Method::POST, "/ui/logout") => redirect(&format!(
            "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
            auth::COOKIE
        )),
        (_, "/ui" | "/ui/" | "/ui/app.js" | "/ui/app.css" | "/ui/login" | "/ui/logout") => {
            responses::text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n")
        }
        _ => responses::text(StatusCode::NOT_FOUND, "404 Not Found\n"),
    }
}

/// `POST /ui/login` with a form `token=...`.
async fn login(
    auth: &Auth<'_>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<OutgoingBody> {
    let Some(session) = auth.session() else {
        // No token configured: nothing to sign in to.
        return redirect_without_cookie();
    };
    let body = match Limited::new(req.into_body(), MAX_FORM).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return login_page(StatusCode::BAD_REQUEST, "The form could not be read."),
    };
    let token = form_value(&body, "token").unwrap_or_default();
    if auth.token_matches(token.trim()) {
        tracing::info!(%peer, "dashboard session started");
        redirect(&format!(
            "{}={session}; HttpOnly; SameSite=Strict; Path=/",
            auth::COOKIE
        ))
    } else {
        tracing::warn!(%peer, method = "POST", path = "/ui/login", "admin request refused: wrong token in the dashboard's login form");
        login_page(
            StatusCode::UNAUTHORIZED,
            "That token is not this host's admin token.",
        )
    }
}

/// A `303` to `/ui` setting `cookie`.
fn redirect(cookie: &str) -> Response<OutgoingBody> {
    let mut resp = redirect_without_cookie();
    if let Ok(value) = HeaderValue::from_str(cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, value);
    }
    resp
}

fn redirect_without_cookie() -> Response<OutgoingBody> {
    let mut resp = page(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        "".into(),
    );
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/ui"));
    resp
}

fn login_page(status: StatusCode, error: &str) -> Response<OutgoingBody> {
    let error = if error.is_empty() {
        String::new()
    } else {
        format!("<p class=\"login-error\" role=\"alert\">{error}</p>")
    };
    page(
        status,
        "text/html; charset=utf-8",
        LOGIN.replace("<!--error-->", &error).into(),
    )
}

/// A dashboard response: never framed, never cached stale, scripts and styles only from here.
fn page(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<OutgoingBody> {
    let mut resp = Response::new(Full::new(body).map_err(Into::into).boxed_unsync());
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The value of `key` in an `application/x-www-form-urlencoded` body, decoded.
fn form_value(body: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let raw = text
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)?
        .1;
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|c| char::from(c).to_digit(16));
                let lo = bytes.next().and_then(|c| char::from(c).to_digit(16));
                out.push(u8::try_from(hi? * 16 + lo?).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::form_value;

    #[test]
    fn form_values_are_percent_decoded() {
        assert_eq!(
            form_value(b"a=1&token=s%3Dc+r%2Bet", "token").as_deref(),
            Some("s=c r+et")
        );
        assert_eq!(form_value(b"token=", "token").as_deref(), Some(""));
        assert_eq!(form_value(b"other=x", "token"), None);
        assert_eq!(form_value(b"token=%zz", "token"), None);
    }

    #[test]
    fn assets_stay_small_enough_to_read() {
        for (name, text) in [
            ("index.html", super::INDEX),
            ("login.html", super::LOGIN),
            ("app.js", super::SCRIPT),
            ("app.css", super::STYLE),
        ] {
            assert!(text.lines().count() <= 800, "{name} is over 800 lines");
        }
    }
}
