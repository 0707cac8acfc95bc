//! A TCP service, after the echo server of the services documentation: it listens on
//! `127.0.0.1:7070` and answers every line a client sends. hearth runs it for the workload's
//! lifetime and restarts it after a crash.
//!
//! The protocol lives in [`lines`] as plain functions that `cargo test` checks natively; only
//! `main` is built for `wasm32-wasip2`.

// The protocol is only called from the wasm32 `main`; natively it exists for the tests.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod lines;

/// Where the service listens inside its workload (`ports[].port` in `workload.yaml`).
const ADDR: &str = "127.0.0.1:7070";

#[cfg(target_arch = "wasm32")]
#[wstd::main]
async fn main() -> wstd::io::Result<()> {
    use wstd::iter::AsyncIterator;

    let listener = wstd::net::TcpListener::bind(ADDR).await?;
    println!("listening on {}", listener.local_addr()?);
    let mut incoming = listener.incoming();
    while let Some(stream) = incoming.next().await {
        let stream = stream?;
        wstd::runtime::spawn(async move {
            match serve(&stream).await {
                Ok(()) => {}
                // A client that goes away without closing the connection resets it.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                Err(e) => eprintln!("connection ended: {e}"),
            }
        })
        .detach();
    }
    Ok(())
}

/// Reads lines from one client and writes one reply per line, until the client hangs up.
#[cfg(target_arch = "wasm32")]
async fn serve(stream: &wstd::net::TcpStream) -> wstd::io::Result<()> {
    use wstd::io::{AsyncRead, AsyncWrite};

    let (mut reader, mut writer) = (stream, stream);
    let mut buffer = lines::LineBuffer::default();
    let mut chunk = [0u8; 4096];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        let complete = buffer.push(&chunk[..n]).map_err(wstd::io::Error::other)?;
        for line in complete {
            writer.write_all(lines::reply(&line).as_bytes()).await?;
        }
        writer.flush().await?;
    }
}

/// Native builds exist for `cargo test`; the service itself runs on hearth.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("build with `hearth build` and run with `hearth run workload.yaml` ({ADDR})");
}
