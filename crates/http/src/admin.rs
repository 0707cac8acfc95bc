//! The admin API: `GET /healthz` and `GET /v1/workloads` (JSON: workloads, their components,
//! routes, limits and counters, and each service's state, restarts and last exit).

use crate::responses;
use hearth_manifest::{HttpRoute, Limits};
use hearth_runtime::{OutgoingBody, RunningWorkload, ServiceStatus, StatsSnapshot};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Serialize;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// One workload as the admin API reports it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// `metadata.name`.
    pub name: String,
    /// The manifest file.
    pub source: String,
    /// Its components.
    pub components: Vec<ComponentStatus>,
    /// Its service, if it has one.
    pub service: Option<ServiceStatus>,
}

/// One component as the admin API reports it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// The component's name.
    pub name: String,
    /// Its HTTP route, if any.
    pub route: Option<HttpRoute>,
    /// Its limits.
    pub limits: Limits,
    /// Its counters.
    pub stats: StatsSnapshot,
}

/// The status of every workload, in deploy order.
pub fn workload_status(workloads: &[Arc<RunningWorkload>]) -> Vec<WorkloadStatus> {
    workloads
        .iter()
        .map(|w| WorkloadStatus {
            name: w.name.to_string(),
            source: w.source.display().to_string(),
            components: w
                .components
                .iter()
                .map(|c| ComponentStatus {
                    name: c.name().to_string(),
                    route: c.route().cloned(),
                    limits: *c.limits(),
                    stats: c.stats(),
                })
                .collect(),
            service: w.service.as_ref().map(|s| s.status()),
        })
        .collect()
}

/// Serves the admin API until `shutdown` resolves.
pub async fn serve_admin(
    listener: TcpListener,
    deployed: Arc<crate::Deployed>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let deployed = Arc::clone(&deployed);
        let service = service_fn(move |req| {
            let snapshot = deployed.load();
            async move { Ok::<_, Infallible>(route(&snapshot.workloads, &req)) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

fn route(workloads: &[Arc<RunningWorkload>], req: &Request<Incoming>) -> Response<OutgoingBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => responses::text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/v1/workloads") => {
            match serde_json::to_vec_pretty(&workload_status(workloads)) {
                Ok(body) => responses::json(body),
                Err(_) => {
                    responses::text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render status\n")
                }
            }
        }
        (_, "/healthz" | "/v1/workloads") => {
            responses::text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n")
        }
        _ => responses::text(StatusCode::NOT_FOUND, "404 Not Found\n"),
    }
}
