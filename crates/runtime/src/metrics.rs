//! Metrics through the `metrics` facade: whichever recorder the process installs (the CLI
//! installs a Prometheus one) receives them; with none installed they cost nothing.
//!
//! Hot-path numbers are pre-registered handles per component ([`ComponentMetrics`]), so an
//! invocation only bumps atomics: no label formatting, no registry lookup. Numbers that are
//! states rather than events (in-flight instances, service state and restarts, the
//! workload count) are read at scrape time by [`collect`].
//!
//! Labels are `workload` and `component` only (services: `workload`): never a path or a client, so
//! cardinality is bounded by what is deployed.

use crate::invoke::InvokeError;
use crate::service::{ExitKind, ServiceState};
use crate::workload::RunningWorkload;
use metrics::{Counter, Histogram, counter, gauge, histogram};
use std::sync::Arc;
use std::time::Duration;

/// Invocations of a component, by outcome.
pub const INVOCATIONS: &str = "hearth_component_invocations_total";
/// Time from admission to the answer (an HTTP response's head), seconds.
pub const DURATION: &str = "hearth_component_duration_seconds";
/// Time waiting at the component's gate for a slot, seconds.
pub const QUEUE_WAIT: &str = "hearth_component_queue_wait_seconds";
/// Linear memory an instance held when it ended (all its memories), bytes.
pub const INSTANCE_MEMORY: &str = "hearth_component_instance_memory_bytes";
/// Buckets of [`INSTANCE_MEMORY`]: 64 KiB (one Wasm page) to 4 GiB, by fours.
pub const MEMORY_BUCKETS: &[f64] = &[
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
    4_294_967_296.0,
];

/// How an invocation ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (for HTTP: a status below 400).
    Ok,
    /// The guest answered 4xx.
    ClientError,
    /// The guest answered 5xx, returned an error code, or failed without trapping.
    ServerError,
    /// Refused: the component was saturated or the instance pool full (`503`).
    Rejected,
    /// Interrupted at the deadline (`504`).
    TimedOut,
    /// The guest trapped (`500`).
    Trapped,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::Rejected,
        Outcome::TimedOut,
        Outcome::Trapped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::Rejected => "rejected",
            Outcome::TimedOut => "timed_out",
            Outcome::Trapped => "trapped",
        }
    }

    /// The outcome of a failed invocation.
    pub fn of_error(e: &InvokeError) -> Self {
        match e {
            InvokeError::Overloaded => Outcome::Rejected,
            InvokeError::Timeout(_) => Outcome::TimedOut,
            InvokeError::Guest(err) if err.downcast_ref::<wasmtime::Trap>().is_some() => {
                Outcome::Trapped
            }
            InvokeError::Guest(_) | InvokeError::ErrorCode(_) | InvokeError::NotExported(_) => {
                Outcome::ServerError
            }
            InvokeError::TooLarge(_) => Outcome::ClientError,
        }
    }

    /// The outcome of an HTTP answer with `status`.
    pub fn of_status(status: u16) -> Self {
        match status {
            500.. => Outcome::ServerError,
            400..500 => Outcome::ClientError,
            _ => Outcome::Ok,
        }
    }
}

/// One component's handles, registered once when it is built.
pub(crate) struct ComponentMetrics {
    outcomes: [Counter; 6],
    duration: Histogram,
    queue_wait: Histogram,
    /// Recorded by each instance's store as it goes.
    pub(crate) memory_at_exit: Histogram,
}

impl ComponentMetrics {
    pub(crate) fn new(workload: &Arc<str>, component: &Arc<str>) -> Self {
        let labels = || {
            [
                ("workload", workload.to_string()),
                ("component", component.to_string()),
            ]
        };
        Self {
            outcomes: Outcome::ALL.map(|o| {
                counter!(
                    INVOCATIONS,
                    "workload" => workload.to_string(),
                    "component" => component.to_string(),
                    "outcome" => o.as_str()
                )
            }),
            duration: histogram!(DURATION, &labels()),
            queue_wait: histogram!(QUEUE_WAIT, &labels()),
            memory_at_exit: histogram!(INSTANCE_MEMORY, &labels()),
        }
    }

    pub(crate) fn outcome(&self, outcome: Outcome, took: Duration) {
        self.outcomes[outcome as usize].increment(1);
        self.duration.record(took.as_secs_f64());
    }

    pub(crate) fn queued(&self, waited: Duration) {
        self.queue_wait.record(waited.as_secs_f64());
    }
}

/// One load of a component's code: `shared` (already in memory), `hit` (precompiled code
/// from disk) or `miss` (compiled).
pub(crate) fn compile_cache(outcome: crate::cache::CacheOutcome) {
    use crate::cache::CacheOutcome;
    let result = match outcome {
        CacheOutcome::Shared => "shared",
        CacheOutcome::Hit => "hit",
        CacheOutcome::Compiled => "miss",
    };
    counter!("hearth_compile_cache_loads_total", "result" => result).increment(1);
}

/// The reason label of a service's last exit.
fn exit_name(kind: ExitKind) -> &'static str {
    match kind {
        ExitKind::Clean => "clean",
        ExitKind::Crashed => "crashed",
        ExitKind::Stopped => "stopped",
    }
}

/// The state label of a service.
fn state_name(state: ServiceState) -> &'static str {
    match state {
        ServiceState::Starting => "starting",
        ServiceState::Running => "running",
        ServiceState::Backoff => "backoff",
        ServiceState::Completed => "completed",
        ServiceState::Failed => "failed",
        ServiceState::Stopped => "stopped",
    }
}

const SERVICE_STATES: [ServiceState; 6] = [
    ServiceState::Starting,
    ServiceState::Running,
    ServiceState::Backoff,
    ServiceState::Completed,
    ServiceState::Failed,
    ServiceState::Stopped,
];

/// Sets the gauges that describe states, from `workloads` as they are now: call it just
/// before rendering a scrape.
pub fn collect(workloads: &[Arc<RunningWorkload>], pool_size: u32) {
    gauge!("hearth_workloads").set(workloads.len() as f64);
    // Every running instance holds a pool slot: components' in-flight ones and each service.
    let in_use: u32 = workloads
        .iter()
        .map(|w| w.in_flight() + u32::from(w.service.is_some()))
        .sum();
    gauge!("hearth_instance_pool_in_use").set(f64::from(in_use));
    gauge!("hearth_instance_pool_size").set(f64::from(pool_size));
    for w in workloads {
        gauge!("hearth_virtual_connections", "workload" => w.name.to_string())
            .set(w.network.open_connections() as f64);
        counter!("hearth_virtual_connections_across_threads_total", "workload" => w.name.to_string())
            .absolute(w.network.connections_across_threads());
        for c in &w.components {
            let stats = c.stats();
            gauge!(
                "hearth_component_in_flight",
                "workload" => w.name.to_string(),
                "component" => c.name.to_string()
            )
            .set(f64::from(stats.in_flight));
        }
        if let Some(service) = &w.service {
            let status = service.status(Vec::new());
            let labels = [("workload", w.name.to_string())];
            gauge!("hearth_service_restarts", &labels).set(f64::from(status.restarts));
            gauge!("hearth_service_up", &labels)
                .set(f64::from(u8::from(status.state == ServiceState::Running)));
            gauge!("hearth_service_uptime_seconds", &labels)
                .set(status.uptime_seconds.unwrap_or(0.0));
            // How the last incarnation ended: a state-set, all 0 until one has.
            for kind in [ExitKind::Clean, ExitKind::Crashed, ExitKind::Stopped] {
                gauge!(
                    "hearth_service_last_exit",
                    "workload" => w.name.to_string(),
                    "reason" => exit_name(kind)
                )
                .set(f64::from(u8::from(status.last_exit_kind == Some(kind))));
            }
            // One series per state, 1 for the current one (a state-set, as Prometheus has it).
            for state in SERVICE_STATES {
                gauge!(
                    "hearth_service_state",
                    "workload" => w.name.to_string(),
                    "state" => state_name(state)
                )
                .set(f64::from(u8::from(status.state == state)));
            }
        }
    }
}
