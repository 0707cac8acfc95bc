//! Operations of a part's host-interface backend, counted through the `metrics` facade:
//! `hearth_interface_operations_total{workload, interface, backend, outcome}` (`ok` or
//! `error`) and `hearth_interface_duration_seconds{workload, interface, backend}`.
//!
//! Each interface wraps the backend it binds in a decorator (`keyvalue/metered.rs`,
//! `blobstore/metered.rs`, `messaging/metered.rs`) that holds one [`Meter`]: handles
//! registered once, at the first operation, so an operation only bumps atomics. Arguments
//! the host refuses before reaching the backend (an empty key) are not operations. Labels
//! are bounded by what is deployed: never a key, a bucket, a container or a subject.

use metrics::{Counter, Histogram, counter, histogram};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

/// Backend operations, by outcome.
pub const OPERATIONS: &str = "hearth_interface_operations_total";
/// Time a backend operation took, seconds.
pub const DURATION: &str = "hearth_interface_duration_seconds";

/// One (workload, interface, backend)'s handles, registered at its first operation: a host
/// of 10,000 workloads that never touch their default backends registers none of them.
pub(crate) struct Meter {
    labels: Labels,
    handles: OnceLock<Handles>,
}

struct Labels {
    workload: String,
    interface: &'static str,
    backend: String,
}

struct Handles {
    ok: Counter,
    error: Counter,
    duration: Histogram,
}

impl Meter {
    /// `interface` is the short name (`keyvalue`, `blobstore`, `messaging`); `backend` the
    /// manifest's backend name.
    pub(crate) fn new(workload: &str, interface: &'static str, backend: &str) -> Self {
        Self {
            labels: Labels {
                workload: workload.to_string(),
                interface,
                backend: backend.to_string(),
            },
            handles: OnceLock::new(),
        }
    }

    fn handles(&self) -> &Handles {
        self.handles.get_or_init(|| {
            let Labels {
                workload,
                interface,
                backend,
            } = &self.labels;
            let outcome = |outcome: &'static str| {
                counter!(
                    OPERATIONS,
                    "workload" => workload.clone(),
                    "interface" => *interface,
                    "backend" => backend.clone(),
                    "outcome" => outcome
                )
            };
            Handles {
                ok: outcome("ok"),
                error: outcome("error"),
                duration: histogram!(
                    DURATION,
                    "workload" => workload.clone(),
                    "interface" => *interface,
                    "backend" => backend.clone()
                ),
            }
        })
    }

    /// Runs one backend operation, counting its outcome and time.
    pub(crate) async fn measure<T, E>(
        &self,
        op: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let start = Instant::now();
        let result = op.await;
        let handles = self.handles();
        handles.duration.record(start.elapsed().as_secs_f64());
        match &result {
            Ok(_) => handles.ok.increment(1),
            Err(_) => handles.error.increment(1),
        }
        result
    }
}
