//! The cache: an in-memory key-value store that lives as long as this service, shared by
//! every connection. It listens on `127.0.0.1:6380` inside the workload and answers one line
//! per command line (see [`store`]).
//!
//! The commands are plain functions in [`store`] that `cargo test` checks natively; only the
//! networking is built for `wasm32-wasip2`.

// The store is only called from the wasm32 `main`; natively it exists for the tests.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod store;

/// Where the cache listens inside its workload (`ports[].port` in `workload.yaml`).
const ADDR: &str = "127.0.0.1:6380";

#[cfg(target_arch = "wasm32")]
type Shared = std::rc::Rc<std::cell::RefCell<store::Store>>;

#[cfg(target_arch = "wasm32")]
#[wstd::main]
async fn main() -> wstd::io::Result<()> {
    use wstd::iter::AsyncIterator;

    let listener = wstd::net::TcpListener::bind(ADDR).await?;
    println!("cache listening on {}", listener.local_addr()?);
    let shared = Shared::default();
    let mut incoming = listener.incoming();
    while let Some(stream) = incoming.next().await {
        let stream = stream?;
        let shared = shared.clone();
        wstd::runtime::spawn(async move {
            match serve(&stream, &shared).await {
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

/// Answers the commands of one connection until the client hangs up.
#[cfg(target_arch = "wasm32")]
async fn serve(stream: &wstd::net::TcpStream, shared: &Shared) -> wstd::io::Result<()> {
    use wstd::io::{AsyncRead, AsyncWrite};

    let (mut reader, mut writer) = (stream, stream);
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&chunk[..n]);
        let lines = store::take_lines(&mut pending).map_err(wstd::io::Error::other)?;
        for line in lines {
            let reply = shared.borrow_mut().execute(&line);
            writer.write_all(format!("{reply}\n").as_bytes()).await?;
        }
        writer.flush().await?;
    }
}

/// Native builds exist for `cargo test`; the service itself runs on hearth.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("build with `hearth build` and run with `hearth run workload.yaml` ({ADDR})");
}
