//! The cache's HTTP front end. Every request runs on a fresh instance, opens a TCP connection
//! to the service at `127.0.0.1:6380` (inside the workload, that address *is* the service),
//! sends one command and turns the reply into a response:
//!
//! | request | command | response |
//! |---|---|---|
//! | `GET /get/KEY` | `GET KEY` | `200` with the value, or `404` |
//! | `GET /set/KEY/VALUE` | `SET KEY VALUE` | `200 ok` |
//! | `GET /incr/KEY` | `INCR KEY` | `200` with the new count |
//! | `GET /del/KEY` | `DEL KEY` | `200` with `1` or `0` |
//!
//! [`command`] and [`answer`] are plain functions that `cargo test` checks natively; only the
//! glue at the bottom is built for `wasm32-wasip2`.

/// A response: status code and plain-text body.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }
}

/// The command line for a request, or the response that refuses it.
pub fn command(method: &str, path: &str) -> Result<String, Reply> {
    if method != "GET" {
        return Err(Reply::new(405, "method not allowed\n"));
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["get", key] => Ok(format!("GET {key}")),
        ["set", key, value] => Ok(format!("SET {key} {value}")),
        ["incr", key] => Ok(format!("INCR {key}")),
        ["del", key] => Ok(format!("DEL {key}")),
        _ => Err(Reply::new(
            404,
            "try /get/KEY, /set/KEY/VALUE, /incr/KEY or /del/KEY\n",
        )),
    }
}

/// The response for the service's reply line.
pub fn answer(line: &str) -> Reply {
    match line.split_once(' ') {
        Some(("VALUE" | "INT", rest)) => Reply::new(200, format!("{rest}\n")),
        Some(("ERR", why)) => Reply::new(400, format!("{why}\n")),
        _ if line == "OK" => Reply::new(200, "ok\n"),
        _ if line == "NIL" => Reply::new(404, "no such key\n"),
        _ => Reply::new(502, format!("unexpected reply from the cache: {line}\n")),
    }
}

#[cfg(target_arch = "wasm32")]
use wstd::http::{Body, Error, Request, Response};

#[cfg(target_arch = "wasm32")]
#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let reply = match command(request.method().as_str(), request.uri().path()) {
        Ok(line) => match ask(&line).await {
            Ok(reply) => answer(&reply),
            Err(e) => Reply::new(502, format!("cache unavailable: {e}\n")),
        },
        Err(refusal) => refusal,
    };
    Ok(Response::builder()
        .status(reply.status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(reply.body))?)
}

/// Sends one command line to the cache service and reads its reply line, within 5 seconds.
#[cfg(target_arch = "wasm32")]
async fn ask(line: &str) -> wstd::io::Result<String> {
    use wstd::future::FutureExt;
    use wstd::io::{AsyncRead, AsyncWrite};

    async {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 6380));
        let stream = wstd::net::TcpStream::connect_addr(addr).await?;
        let (mut reader, mut writer) = (&stream, &stream);
        writer.write_all(format!("{line}\n").as_bytes()).await?;
        writer.flush().await?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 1024];
        while !reply.ends_with(b"\n") {
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                return Err(wstd::io::Error::other("the cache closed the connection"));
            }
            reply.extend_from_slice(&chunk[..n]);
        }
        Ok(String::from_utf8_lossy(&reply).trim_end().to_string())
    }
    .timeout(wstd::time::Duration::from_secs(5))
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_commands() {
        assert_eq!(command("GET", "/get/a").unwrap(), "GET a");
        assert_eq!(command("GET", "/set/a/1").unwrap(), "SET a 1");
        assert_eq!(command("GET", "/incr/hits").unwrap(), "INCR hits");
        assert_eq!(command("GET", "/del/a").unwrap(), "DEL a");
        assert_eq!(command("GET", "/fly").unwrap_err().status, 404);
        assert_eq!(command("PUT", "/get/a").unwrap_err().status, 405);
    }

    #[test]
    fn replies_become_responses() {
        assert_eq!(answer("VALUE hi there"), Reply::new(200, "hi there\n"));
        assert_eq!(answer("INT 3"), Reply::new(200, "3\n"));
        assert_eq!(answer("OK"), Reply::new(200, "ok\n"));
        assert_eq!(answer("NIL").status, 404);
        assert_eq!(answer("ERR not an integer").status, 400);
        assert_eq!(answer("???").status, 502);
    }
}
