//! Operations of a part's host-interface backend, counted through the `metrics` facade:
//! `hearth_interface_operations_total{workload, interface, backend, outcome}` (`ok` or
//! `error`) and `hearth_interface_duration_seconds{workload, interface, backend}`.
//!
//! Each interface wraps the backend it binds in a decorator (`keyvalue/metered.rs`,
//! `blobstore/metered.rs`, `messaging/metered.rs`) that holds one [`Meter`]: handles
//! registered once at bind, so an operation only bumps atomics. Arguments the host refuses
//! before reaching the backend (an empty key) are not operations. Labels are bounded by what
//! is deployed: never a key, a bucket, a container or a subject.

use metrics::{Counter, Histogram, counter, histogram};
use std::future::Future;
use std::time::Instant;

/// Backend operations, by outcome.
pub const OPERATIONS: &str = "hearth_interface_operations_total";
/// Time a backend operation took, seconds.
pub const DURATION: &str = "hearth_interface_duration_seconds";

/// One (workload, interface, backend)'s handles.
pub(crate) struct Meter {
    ok: Counter,
    error: Counter,
    duration: Histogram,
}

impl Meter {
    /// `interface` is the short name (`keyvalue`, `blobstore`, `messaging`); `backend` the
    /// manifest's backend name.
    pub(crate) fn new(workload: &str, interface: &'static str, backend: &str) -> Self {
        let outcome = |outcome: &'static str| {
            counter!(
                OPERATIONS,
                "workload" => workload.to_string(),
                "interface" => interface,
                "backend" => backend.to_string(),
                "outcome" => outcome
            )
        };
        Self {
            ok: outcome("ok"),
            error: outcome("error"),
            duration: histogram!(
                DURATION,
                "workload" => workload.to_string(),
                "interface" => interface,
                "backend" => backend.to_string()
            ),
        }
    }

    /// Runs one backend operation, counting its outcome and time.
    pub(crate) async fn measure<T, E>(
        &self,
        op: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let start = Instant::now();
        let result = op.await;
        self.duration.record(start.elapsed().as_secs_f64());
        match &result {
            Ok(_) => self.ok.increment(1),
            Err(_) => self.error.increment(1),
        }
        result
    }
}
