//! The ingress server loop: accept, serve HTTP/1.1 (keep-alive) and HTTP/2 on each
//! connection, route each request, and on shutdown stop accepting and drain in-flight
//! requests within a bound.

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
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

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
