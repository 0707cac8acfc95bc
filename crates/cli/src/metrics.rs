//! The process's metrics recorder: Prometheus text exposition, rendered at `GET /metrics` on
//! a host's admin listener, or on the `--metrics ADDR` listener of `hearth controller` and
//! `hearth operator`. Installed once per process; every histogram gets the same buckets
//! (seconds, 0.5 ms to 10 s). A host's series carry a global `host` label (its host name),
//! a controller's `controller` (its lease id), an operator's `operator`.

use hearth_runtime::Workloads;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};

/// Histogram buckets in seconds: invocation latency and queue wait (instance memory has
/// its own, in bytes).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into buckets when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder, unless `--no-metrics`: before any workload is built, since
/// components register their metrics when they are built (a handle registered earlier
/// records nothing, at the cost of a no-op call).
pub(crate) fn install(host: &crate::run::HostArgs) {
    if !host.no_metrics {
        handle();
    }
}

/// Installs the recorder of a process that is not a host, labelling every series
/// `role=id` (`controller=…`, `operator=…`).
fn install_as(role: &'static str, id: &str) -> Option<&'static PrometheusHandle> {
    handle_labelled(|| (role, id.to_string()))
}

/// The installed recorder's handle (installing it on first use, as a host's), or `None` if
/// another recorder was installed first.
fn handle() -> Option<&'static PrometheusHandle> {
    handle_labelled(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        ("host", host)
    })
}

fn handle_labelled(
    label: impl FnOnce() -> (&'static str, String),
) -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let (key, value) = label();
            let memory = Matcher::Full(hearth_runtime::metrics::INSTANCE_MEMORY.into());
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(memory, hearth_runtime::metrics::MEMORY_BUCKETS)
                })
                .and_then(|b| b.add_global_label(key, value).install_recorder());
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
    let handle = HANDLE.get()?.as_ref()?;
    let workloads = Arc::clone(workloads);
    Some(Arc::new(move || {
        hearth_runtime::metrics::collect(&workloads.list(), pool_size);
        handle.run_upkeep();
        handle.render()
    }))
}

/// `--metrics ADDR` of `hearth controller` and `hearth operator`: installs the recorder
/// (labelled `role=id`) and serves `GET /metrics` and `/healthz` on `addr` until the
/// process stops; `collect` sets the state gauges just before each scrape is rendered.
pub(crate) async fn serve(
    addr: std::net::SocketAddr,
    role: &'static str,
    id: &str,
    collect: impl Fn() + Send + Sync + 'static,
) -> Result<(), String> {
    let handle = install_as(role, id)
        .ok_or("metrics are off: another metrics recorder was installed first")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for --metrics on {addr}: {e}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %local, "serving metrics at /metrics");
    let render: hearth_http::RenderMetrics = Arc::new(move || {
        collect();
        handle.run_upkeep();
        handle.render()
    });
    tokio::spawn(hearth_http::serve_metrics(
        listener,
        render,
        std::future::pending(),
    ));
    Ok(())
}
