//! The process's metrics recorder: Prometheus text exposition, rendered at `GET /metrics` on
//! the admin listener. Installed once per process; every histogram gets the same buckets
//! (seconds, 0.5 ms to 10 s).

use hearth_runtime::Workloads;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};

/// Histogram buckets in seconds: invocation latency and queue wait.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into buckets when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder: before any workload is built, since components register their
/// metrics when they are built (a handle registered earlier records nothing).
pub(crate) fn install() {
    handle();
}

/// The installed recorder's handle (installing it on first use), or `None` if another
/// recorder was installed first.
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(|b| b.add_global_label("host", host).install_recorder());
            match recorder {
                Ok(handle) => {
                    // Histogram samples pile up until upkeep folds them into their buckets: do it
                    // now and then, not only when scraped, so an unscraped host stays bounded.
                    let upkeep = handle.clone();
                    std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_EVERY);
                                upkeep.run_upkeep();
                            }
                        })
                        .ok();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics are off: the recorder could not be installed");
                    None
                }
            }
        })
        .as_ref()
}

/// What `GET /metrics` answers: the state gauges read from `workloads` now, then every
/// metric in the text exposition format.
pub(crate) fn renderer(
    workloads: &Arc<Workloads>,
    pool_size: u32,
) -> Option<hearth_http::RenderMetrics> {
    let handle = handle()?;
    let workloads = Arc::clone(workloads);
    Some(Arc::new(move || {
        hearth_runtime::metrics::collect(&workloads.list(), pool_size);
        handle.run_upkeep();
        handle.render()
    }))
}
