//! What the admin API reports about a workload: its components (routes, limits, counters)
//! and its service (state, restarts, last exit, ports), and its topology (what each part
//! imports and who serves it), as JSON.

use hearth_manifest::{HttpRoute, Limits};
use hearth_runtime::topology::PartTopology;
use hearth_runtime::{RunningWorkload, ServiceStatus, StatsSnapshot};
use serde::Serialize;
use std::sync::Arc;

/// One workload as the admin API reports it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// `metadata.name`.
    pub name: String,
    /// The manifest file (or the label `hearth apply` gave it).
    pub source: String,
    /// 1 when created, one more per update that changed it.
    pub generation: u64,
    /// When this version started serving, in seconds since the Unix epoch.
    pub started: u64,
    /// Its components.
    pub components: Vec<ComponentStatus>,
    /// Its service, if it has one.
    pub service: Option<ServiceStatus>,
    /// Every part's exports and imports, and who serves each import.
    pub topology: Vec<PartTopology>,
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

impl WorkloadStatus {
    /// The status of one running workload.
    pub fn of(w: &RunningWorkload) -> Self {
        WorkloadStatus {
            name: w.name.to_string(),
            source: w.source.display().to_string(),
            generation: w.generation,
            started: w
                .started
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
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
            service: w.service.as_ref().map(|s| s.status(w.published())),
            topology: w.topology.clone(),
        }
    }
}

/// The status of every workload.
pub fn workload_status(workloads: &[Arc<RunningWorkload>]) -> Vec<WorkloadStatus> {
    workloads.iter().map(|w| WorkloadStatus::of(w)).collect()
}
