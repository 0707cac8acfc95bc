//! Raw `wasi:sockets` TCP probe, for testing a workload's network policy.
//!
//! * `GET /connect/<host>/<port>`: connects (`<host>` is an IP literal or a
//!   name such as `localhost`), sends `ping\n`, reads one reply line and
//!   answers `200 connected: <line>`. Any failure, including no complete
//!   line within 5 s, gives `502 connect failed: <error> (<ErrorKind>)`.
//! * `GET /listen/<port>`: tries to bind `127.0.0.1:<port>`. Components must
//!   not be able to listen, so success (`200 listening`) means a host bug;
//!   the expected answer is `403 bind failed: <error> (<ErrorKind>)`.

use std::net::{SocketAddr, ToSocketAddrs};

use wstd::future::FutureExt;
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};
use wstd::io::{self, AsyncRead, AsyncWrite};
use wstd::net::{TcpListener, TcpStream};
use wstd::time::Duration;

const TIMEOUT_SECS: u64 = 5;
const MAX_REPLY: usize = 4096;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    if request.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["connect", host, port] => {
            let Ok(port) = port.parse::<u16>() else {
                return text(StatusCode::BAD_REQUEST, "bad port\n".into());
            };
            let probe = probe(host, port).timeout(Duration::from_secs(TIMEOUT_SECS));
            match probe.await.and_then(|r| r) {
                Ok(line) => text(StatusCode::OK, format!("connected: {line}\n")),
                Err(e) => text(
                    StatusCode::BAD_GATEWAY,
                    format!("connect failed: {e} ({:?})\n", e.kind()),
                ),
            }
        }
        ["listen", port] => {
            let Ok(port) = port.parse::<u16>() else {
                return text(StatusCode::BAD_REQUEST, "bad port\n".into());
            };
            match TcpListener::bind(&format!("127.0.0.1:{port}")).await {
                Ok(_listener) => text(StatusCode::OK, "listening\n".into()),
                Err(e) => text(
                    StatusCode::FORBIDDEN,
                    format!("bind failed: {e} ({:?})\n", e.kind()),
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "no such route\n".into()),
    }
}

/// Connects, sends `ping\n` and returns the first line of the reply.
async fn probe(host: &str, port: u16) -> io::Result<String> {
    let stream = connect(host, port).await?;
    let mut writer = &stream;
    writer.write_all(b"ping\n").await?;
    writer.flush().await?;

    let mut reader = &stream;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 512];
    while !reply.contains(&b'\n') && reply.len() < MAX_REPLY {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            break; // peer closed: report what we got
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    let line = reply.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(String::from_utf8_lossy(line).into_owned())
}

/// Resolves `host` (an IP literal needs no lookup; a name goes through
/// `wasi:sockets/ip-name-lookup`) and tries each IPv4 address in turn.
/// `wstd`'s `TcpStream` can't connect to IPv6 yet, so those are skipped
/// rather than allowed to panic.
async fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last_err = None;
    for addr in (host, port).to_socket_addrs()? {
        match addr {
            SocketAddr::V4(_) => match TcpStream::connect_addr(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last_err = Some(e),
            },
            SocketAddr::V6(_) => {
                last_err.get_or_insert_with(|| {
                    io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        format!("{addr} is IPv6, which this probe can't connect to"),
                    )
                });
            }
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        )
    }))
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(body))?)
}
