//! The ingress: thread-per-core HTTP serving. Each worker thread runs its own current-thread
//! async runtime and its own `SO_REUSEPORT` listener on the same address, so a connection and
//! every instance serving it stay on one core with no cross-thread wake-ups. Each worker
//! serves HTTP/1.1 (keep-alive) and HTTP/2, routes each request, and on shutdown stops
//! accepting and drains its in-flight requests within a bound.

use crate::responses;
use crate::router::Router;
use hearth_runtime::OutgoingBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How the ingress behaves at shutdown.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Longest time in-flight requests get to finish after shutdown begins.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Running ingress workers.
pub struct Ingress {
    addr: SocketAddr,
    workers: Vec<std::thread::JoinHandle<bool>>,
}

impl Ingress {
    /// Binds `addr` once per worker (`SO_REUSEPORT`; port 0 picks one port for all) and
    /// starts `threads` workers serving `router` until `stop` turns true.
    pub fn start(
        addr: SocketAddr,
        threads: usize,
        router: Arc<Router>,
        stop: watch::Receiver<bool>,
        options: ServeOptions,
    ) -> std::io::Result<Self> {
        let first = reuseport_listener(addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..threads.max(1) {
            listeners.push(reuseport_listener(addr)?);
        }
        let mut workers = Vec::with_capacity(listeners.len());
        for (i, listener) in listeners.into_iter().enumerate() {
            let router = Arc::clone(&router);
            let mut stop = stop.clone();
            let worker = std::thread::Builder::new()
                .name(format!("hearth-http-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start an ingress worker runtime");
                            return false;
                        }
                    };
                    rt.block_on(async move {
                        let listener = match TcpListener::from_std(listener) {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!(error = %e, "cannot register the ingress listener");
                                return false;
                            }
                        };
                        let shutdown = async move {
                            let _ = stop.wait_for(|s| *s).await;
                        };
                        serve(listener, router, shutdown, options).await
                    })
                })?;
            workers.push(worker);
        }
        Ok(Self { addr, workers })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for every worker to drain; true when all drained within the timeout.
    pub fn join(self) -> bool {
        self.workers.into_iter().all(|w| w.join().unwrap_or(false))
    }
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
/// Returns whether every connection finished within the drain timeout.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
) -> bool {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = Arc::clone(&router);
        let service = service_fn(move |req| {
            let router = Arc::clone(&router);
            async move { Ok::<_, Infallible>(handle(&router, req).await) }
        });
        let conn = graceful.watch(
            builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("ingress stopped accepting; draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {
            tracing::info!("ingress drained");
            true
        }
        () = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!(timeout_s = options.drain_timeout.as_secs(), "drain timed out; closing remaining connections");
            false
        }
    }
}

async fn handle(router: &Router, req: Request<Incoming>) -> Response<OutgoingBody> {
    let host = req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    let Some(target) = router.lookup(host, req.uri().path()) else {
        return responses::not_found();
    };
    match target.handle_http(req).await {
        Ok(resp) => resp,
        Err(e) => responses::for_error(&e),
    }
}
