//! hearth's HTTP edge: the ingress that routes requests by host and longest path prefix into
//! fresh component instances, and the admin API (status, and the lifecycle API that applies
//! and deletes workloads on a live host, behind a bearer token).
//!
//! Owns the HTTP/1.1 and HTTP/2 server loop, graceful draining, routing, and turning
//! invocation failures into status codes. It does not own instances, limits or the workload
//! lifecycle: those are `hearth-runtime`'s.

mod admin;
mod conn;
mod forward;
mod limits;
mod metrics_listener;
mod responses;
mod router;
mod server;
mod steer;
mod tls;

pub use admin::{
    AdminApi, ClusterStatus, MAX_BODY, RenderMetrics, WorkloadStatus, serve_admin, workload_status,
};
pub use forward::{FORWARDED_BY, Forward, NO_REPLICA};
pub use limits::ClientLimits;
pub use metrics_listener::serve_metrics;
pub use router::{Deployed, Router};
pub use server::{Ingress, ServeOptions, serve, serve_io};
pub use tls::{Tls, TlsError, TlsFiles};
