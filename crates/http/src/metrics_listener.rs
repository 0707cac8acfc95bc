//! A small listener for processes that have no admin API but have metrics: `hearth
//! controller --metrics ADDR` and `hearth operator --metrics ADDR`. It answers `GET /metrics`
//! (Prometheus text exposition, from the process's recorder) and `GET /healthz`, nothing
//! else; no token (bind it to loopback or a private network). A host serves its metrics on
//! its admin listener instead ([`crate::serve_admin`]).

use crate::admin::RenderMetrics;
use crate::responses;
use hearth_runtime::OutgoingBody;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use tokio::net::TcpListener;

/// Serves `render` at `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    render: RenderMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            conn = crate::server::accept(&listener, "metrics") => conn,
            () = &mut shutdown => return,
        };
        let render = render.clone();
        let service = service_fn(move |req| {
            let render = render.clone();
            async move { Ok::<_, Infallible>(route(&render, &req)) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

fn route(render: &RenderMetrics, req: &Request<Incoming>) -> Response<OutgoingBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => responses::prometheus(render()),
        (&Method::GET, "/healthz") => responses::text(StatusCode::OK, "ok\n"),
        (_, "/metrics" | "/healthz") => responses::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed: use GET\n",
        ),
        _ => responses::text(
            StatusCode::NOT_FOUND,
            "404 Not Found: this listener serves /metrics and /healthz\n",
        ),
    }
}
