//! Stateless HTTP front end for the `cache-service` workload service.
//!
//! Each request opens a new TCP connection to `127.0.0.1:$CACHE_PORT`
//! (default 6380), sends one command, reads one reply line and answers
//! `200` with that line. Path segments are percent-decoded.
//!
//! | route                         | command sent        |
//! |-------------------------------|---------------------|
//! | `GET /ping`                   | `PING`              |
//! | `GET /get/<key>`              | `GET <key>`         |
//! | `GET or POST /set/<key>/<value>` | `SET <key> <value>` |
//! | `POST /set/<key>` (body = value) | `SET <key> <value>` |
//! | `GET /incr/<key>`             | `INCR <key>`        |
//! | `GET /del/<key>`              | `DEL <key>`         |
//!
//! If the service can't be reached or the exchange fails: `502` with
//! `cache unavailable: <error>`.

use std::net::{Ipv4Addr, SocketAddr};

use wstd::future::FutureExt;
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};
use wstd::io::{self, AsyncRead, AsyncWrite};
use wstd::net::TcpStream;
use wstd::time::Duration;

const DEFAULT_PORT: u16 = 6380;
/// Upper bound for one connect + command + reply exchange.
const EXCHANGE_TIMEOUT_SECS: u64 = 5;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let command = match route(request).await {
        Ok(command) => command,
        Err((status, msg)) => return text(status, format!("{msg}\n")),
    };
    match exchange(&command).await {
        Ok(reply) => text(StatusCode::OK, format!("{reply}\n")),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("cache unavailable: {e}\n")),
    }
}

/// Maps a request to the one protocol command it stands for.
async fn route(request: Request<Body>) -> Result<String, (StatusCode, &'static str)> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
    let is_set = segments.first() == Some(&"set");
    if method != Method::GET && !(is_set && method == Method::POST) {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
    }

    let key = |i: usize| -> Result<String, (StatusCode, &'static str)> {
        let key = decode(segments.get(i).copied().unwrap_or(""))?;
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err((StatusCode::BAD_REQUEST, "bad key"));
        }
        Ok(key)
    };
    match segments.as_slice() {
        ["ping"] => Ok("PING".to_owned()),
        ["get", _] => Ok(format!("GET {}", key(1)?)),
        ["incr", _] => Ok(format!("INCR {}", key(1)?)),
        ["del", _] => Ok(format!("DEL {}", key(1)?)),
        ["set", _, value] => Ok(format!("SET {} {}", key(1)?, decode(value)?)),
        ["set", _] if method == Method::POST => {
            let key = key(1)?;
            let mut body = request.into_body();
            let value = body
                .str_contents()
                .await
                .map_err(|_| (StatusCode::BAD_REQUEST, "body is not UTF-8"))?;
            let value = value.strip_suffix('\n').unwrap_or(value);
            if value.contains(['\r', '\n']) {
                return Err((StatusCode::BAD_REQUEST, "value must be one line"));
            }
            Ok(format!("SET {key} {value}"))
        }
        _ => Err((StatusCode::NOT_FOUND, "no such route")),
    }
}

/// Connects, sends `command`, and returns the first reply line.
async fn exchange(command: &str) -> io::Result<String> {
    let port = match std::env::var("CACHE_PORT") {
        Ok(v) => v.trim().parse().map_err(|_| {
            io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("CACHE_PORT={v:?} is not a port"),
            )
        })?,
        Err(_) => DEFAULT_PORT,
    };
    async {
        let stream = TcpStream::connect_addr(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let mut writer = &stream;
        writer.write_all(format!("{command}\n").as_bytes()).await?;
        writer.flush().await?;

        let mut reader = &stream;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = reply.iter().position(|&b| b == b'\n') {
                reply.truncate(end);
                break;
            }
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a reply",
                ));
            }
            reply.extend_from_slice(&chunk[..n]);
        }
        if reply.last() == Some(&b'\r') {
            reply.pop();
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }
    .timeout(Duration::from_secs(EXCHANGE_TIMEOUT_SECS))
    .await?
}

/// Percent-decodes one path segment; it must not decode to a newline.
fn decode(segment: &str) -> Result<String, (StatusCode, &'static str)> {
    const BAD: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "bad percent-encoding");
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(BAD)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(BAD);
            }
            let hex = std::str::from_utf8(hex).map_err(|_| BAD)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| BAD)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).map_err(|_| BAD)?;
    if s.contains(['\r', '\n']) {
        return Err((StatusCode::BAD_REQUEST, "value must be one line"));
    }
    Ok(s)
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(body))?)
}
