//! Loopback TCP micro-benchmarks, run from inside a component against an echo server.
//!
//! * `GET /rtt/<port>/<n>`: connects to `127.0.0.1:<port>`, does 16 untimed round trips,
//!   then `n` timed ones (write 64 bytes, read exactly 64 back) and answers
//!   `200 <nanoseconds per round trip>\n`.
//! * `GET /bulk/<port>/<mib>`: connects, then sends `<mib>` MiB in 64 KiB chunks, reading
//!   each chunk's echo back before writing the next one (so neither side can fill both
//!   directions and deadlock), and answers `200 <MiB/s>\n`.
//!
//! The clock is `std::time::Instant` (`wasi:clocks/monotonic-clock`); the connect is not
//! timed. Any failure gives `502 <error>`; a bad path `404`, a bad number `400`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use wstd::future::FutureExt;
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};
use wstd::io::{self, AsyncRead, AsyncWrite};
use wstd::net::TcpStream;
use wstd::time::Duration;

/// Bytes per round trip in `/rtt`.
const MESSAGE: usize = 64;
/// Untimed round trips before the timed ones.
const WARMUP_ROUND_TRIPS: u32 = 16;
/// Bytes per write in `/bulk`.
const CHUNK: usize = 64 * 1024;
/// Bound on one whole measurement.
const TIMEOUT_SECS: u64 = 100;
/// Upper bounds on the parameters, to keep one request bounded.
const MAX_ROUND_TRIPS: u32 = 10_000_000;
const MAX_MIB: u32 = 64 * 1024;

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
    let (kind, port, count) = match segments.as_slice() {
        [kind @ ("rtt" | "bulk"), port, count] => (*kind, *port, *count),
        _ => return text(StatusCode::NOT_FOUND, "no such route\n".into()),
    };
    let (Ok(port), Ok(count)) = (port.parse::<u16>(), count.parse::<u32>()) else {
        return text(StatusCode::BAD_REQUEST, "bad port or count\n".into());
    };
    let limit = if kind == "rtt" {
        MAX_ROUND_TRIPS
    } else {
        MAX_MIB
    };
    if count == 0 || count > limit {
        return text(
            StatusCode::BAD_REQUEST,
            format!("count must be 1..={limit}\n"),
        );
    }
    let result = async {
        let stream = TcpStream::connect_addr(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        if kind == "rtt" {
            rtt(&stream, count).await
        } else {
            bulk(&stream, count).await
        }
    }
    .timeout(Duration::from_secs(TIMEOUT_SECS))
    .await
    .and_then(|r| r);
    match result {
        Ok(value) => text(StatusCode::OK, format!("{value}\n")),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("{e} ({:?})\n", e.kind())),
    }
}

/// Nanoseconds per round trip of a `MESSAGE`-byte message, over `n` round trips.
async fn rtt(stream: &TcpStream, n: u32) -> io::Result<String> {
    let out = [0x5au8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    for _ in 0..WARMUP_ROUND_TRIPS {
        round_trip(stream, &out, &mut back).await?;
    }
    let start = Instant::now();
    for _ in 0..n {
        round_trip(stream, &out, &mut back).await?;
    }
    let ns = start.elapsed().as_nanos() / u128::from(n);
    if back != out {
        return Err(io::Error::other("echo returned different bytes"));
    }
    Ok(ns.to_string())
}

async fn round_trip(stream: &TcpStream, out: &[u8], back: &mut [u8]) -> io::Result<()> {
    let mut writer = stream;
    writer.write_all(out).await?;
    writer.flush().await?;
    read_exact(stream, back).await
}

/// MiB/s for `mib` MiB echoed back in `CHUNK`-byte chunks.
async fn bulk(stream: &TcpStream, mib: u32) -> io::Result<String> {
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; CHUNK];
    let chunks = u64::from(mib) * (1024 * 1024 / CHUNK as u64);
    let start = Instant::now();
    for _ in 0..chunks {
        let mut writer = stream;
        writer.write_all(&chunk).await?;
        writer.flush().await?;
        read_exact(stream, &mut back).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    // Only the last chunk is compared, so that the check costs nothing measurable.
    if back != chunk {
        return Err(io::Error::other("echo returned different bytes"));
    }
    Ok(format!("{:.1}", f64::from(mib) / secs))
}

async fn read_exact(stream: &TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut reader = stream;
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "echo server closed the connection",
            ));
        }
        filled += n;
    }
    Ok(())
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(body))?)
}
