//! The admin API, on its own listener:
//!
//! | request | answer |
//! |---|---|
//! | `GET /healthz` | `ok` (never needs the token) |
//! | `GET /v1/workloads` | every workload's status (JSON) |
//! | `GET /v1/workloads/{name}` | one workload's status, or `404` |
//! | `PUT /v1/workloads/{name}` | apply a manifest document (YAML or JSON): `201` created, `200` configured or unchanged |
//! | `DELETE /v1/workloads/{name}` | delete it, once drained: `200`, or `404` |
//! | `GET /v1/workloads/{name}/logs` | its guests' recent lines as JSON lines; `follow=1` streams new ones |
//! | `GET /v1/cluster` | the cluster as this host sees it (JSON; `404` on a host in no cluster) |
//! | `GET /metrics` | Prometheus text exposition (when the process records metrics) |
//! | `GET /ui` | the dashboard (HTML; its login form without a credential) |
//! | `GET /ui/app.js`, `/ui/app.css` | the dashboard's script and style (no data; never need the token) |
//! | `POST /ui/login` | form `token=...`: `303` to `/ui` with the session cookie, or `401` |
//! | `POST /ui/logout` | `303` to `/ui`, clearing the session cookie |
//!
//! With a token, every request but `/healthz` and the dashboard's own paths needs
//! `Authorization: Bearer <token>`, or, for `GET` only, the dashboard's session cookie
//! ([`auth`]); both are compared in constant time. A refusal is `401` and is logged with the
//! peer's address, never the token. Request bodies are bounded ([`MAX_BODY`]).

mod auth;
mod lifecycle;
mod logs;
mod status;
mod ui;

pub use status::{WorkloadStatus, workload_status};

use crate::responses;
use hearth_runtime::{OutgoingBody, Workloads};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Largest request body the admin API reads (a manifest document); larger is `413`.
pub const MAX_BODY: usize = 16 << 20;

/// What the admin API serves and who may use it.
pub struct AdminApi {
    /// The host's workloads.
    pub workloads: Arc<Workloads>,
    /// The bearer token every request but `/healthz` must carry; `None` allows all (only
    /// ever on a loopback address: the CLI refuses anything else).
    pub token: Option<String>,
    /// Renders `GET /metrics`; `None` answers `404`.
    pub metrics: Option<RenderMetrics>,
    /// Answers `GET /v1/cluster` on a cluster member; `None` answers `404`.
    pub cluster: Option<ClusterStatus>,
}

/// The cluster as this host sees it (hosts, heartbeat ages, deployments, placements), as JSON.
pub type ClusterStatus = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Renders every metric in the Prometheus text exposition format.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

impl AdminApi {
    fn auth(&self) -> auth::Auth<'_> {
        auth::Auth {
            token: self.token.as_deref(),
        }
    }
}

/// Serves the admin API until `shutdown` resolves.
pub async fn serve_admin(
    listener: TcpListener,
    api: Arc<AdminApi>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            conn = crate::server::accept(&listener, "admin") => conn,
            () = &mut shutdown => return,
        };
        let api = Arc::clone(&api);
        let service = service_fn(move |req| {
            let api = Arc::clone(&api);
            async move { Ok::<_, Infallible>(route(&api, peer, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn route(api: &AdminApi, peer: SocketAddr, req: Request<Incoming>) -> Response<OutgoingBody> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return match *req.method() {
            Method::GET => responses::text(StatusCode::OK, "ok\n"),
            _ => method_not_allowed(),
        };
    }
    if ui::owns(&path) {
        return ui::handle(&api.auth(), peer, req).await;
    }
    let verdict = api.auth().check(req.method(), req.headers());
    if !verdict.allowed() {
        tracing::warn!(%peer, method = %req.method(), %path, "admin request refused: {}", verdict.why());
        return responses::owned_text(
            StatusCode::UNAUTHORIZED,
            "401 Unauthorized: send `Authorization: Bearer <token>` (hearth reads it from --admin-token-file or HEARTH_ADMIN_TOKEN)\n".into(),
        );
    }
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/metrics") => match &api.metrics {
            Some(render) => responses::prometheus(render()),
            None => responses::text(StatusCode::NOT_FOUND, "404 Not Found: metrics are off\n"),
        },
        (_, "/metrics") => method_not_allowed(),
        (Method::GET, "/v1/cluster") => match &api.cluster {
            Some(status) => responses::json_value(&status()),
            None => responses::text(
                StatusCode::NOT_FOUND,
                "404 Not Found: this host is in no cluster (`hearth host --nats URL` joins one)\n",
            ),
        },
        (_, "/v1/cluster") => method_not_allowed(),
        (Method::GET, "/v1/workloads") => {
            responses::json_value(&workload_status(&api.workloads.list()))
        }
        (_, "/v1/workloads") => method_not_allowed(),
        (method, p) => match p.strip_prefix("/v1/workloads/") {
            Some(rest) if rest.ends_with("/logs") && method == Method::GET => {
                let name = rest.trim_end_matches("/logs");
                logs::handle(&api.workloads, name, req.uri().query())
            }
            Some(name) if !name.contains('/') => {
                let name = name.to_string();
                lifecycle::handle(&api.workloads, method, &name, req).await
            }
            _ => responses::text(StatusCode::NOT_FOUND, "404 Not Found\n"),
        },
    }
}

fn method_not_allowed() -> Response<OutgoingBody> {
    responses::text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n")
}
