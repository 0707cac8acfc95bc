//! What runs: a [`RunningWorkload`] (its components, its service, its network, its published
//! ports and subscriptions) and each [`ComponentRuntime`], pre-instantiated, gated and counted.
//! Made by `start.rs`; invoked through `invoke/`; replaced and stopped by `lifecycle.rs`.

use crate::gate::Gate;
use crate::invoke::call::Callees;
use crate::plan::Fingerprint;
use crate::publish::Publishers;
use crate::service::ServiceRuntime;
use crate::state::{InvocationState, StateTemplate};
use hearth_interfaces::bindings::handler::MessagingHandlerPre;
use hearth_manifest::{HttpRoute, Limits};
use hearth_net::Network;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// A deployed workload: its components, ready to invoke, and its service, running.
pub struct RunningWorkload {
    /// `metadata.name`.
    pub name: Arc<str>,
    /// The manifest it came from.
    pub source: PathBuf,
    /// The deployment it is a replica of: replicas of one deployment share their routes.
    pub deployment: Option<Arc<str>>,
    /// 1 when created, one more per update that changed it.
    pub generation: u64,
    /// When this version started serving.
    pub started: SystemTime,
    /// Its components, in manifest order.
    pub components: Vec<Arc<ComponentRuntime>>,
    /// Its service, if it has one.
    pub service: Option<Arc<ServiceRuntime>>,
    /// Its private network; kept across updates, so a kept service keeps its connections.
    pub network: Arc<Network>,
    /// The ports its service's spec says it listens on.
    pub(crate) service_ports: Vec<u16>,
    /// Host ports spliced into service ports.
    pub(crate) published: Arc<Publishers>,
    /// The tasks delivering messages to its subscribed components.
    pub(crate) subscriptions: Vec<tokio::task::AbortHandle>,
    /// Where linked calls to each component (by name) go; carried over by an update that
    /// keeps the service, so the service's links reach the new versions.
    pub(crate) callees: Callees,
    /// What this version was planned from.
    pub(crate) fingerprint: Fingerprint,
    /// Each part's imports and who serves them, for people.
    pub topology: Vec<crate::topology::PartTopology>,
}

impl RunningWorkload {
    /// Instances of its components running now.
    pub fn in_flight(&self) -> u32 {
        self.components.iter().map(|c| c.stats().in_flight).sum()
    }

    /// The HTTP worker its service runs on, where its connections are best served (see
    /// `placement.rs`); `None` without a service or when services have threads of their own.
    pub fn home(&self) -> Option<usize> {
        self.service.as_ref().and_then(|s| s.worker())
    }

    /// The host ports published for its service.
    pub fn published(&self) -> Vec<crate::PublishedPort> {
        self.published.ports()
    }

    /// Waits (up to `timeout`) until its service listens on every port its spec lists, so that
    /// the first request routed to this version finds it. Returns at once for a workload
    /// without a service or ports, and when the service has stopped trying (failed, completed).
    pub(crate) async fn wait_until_listening(&self, timeout: std::time::Duration) {
        let (Some(service), false) = (&self.service, self.service_ports.is_empty()) else {
            return;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let listening = self.network.listening_ports();
            if self.service_ports.iter().all(|p| listening.contains(p)) {
                return;
            }
            let state = service.status(Vec::new()).state;
            if matches!(
                state,
                crate::ServiceState::Failed | crate::ServiceState::Completed
            ) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(workload = %self.name, ports = ?self.service_ports, "the service does not listen on its ports yet; serving anyway");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Stops delivering messages to its components (they are being replaced or removed).
    pub(crate) fn stop_subscriptions(&self) {
        for task in &self.subscriptions {
            task.abort();
        }
    }

    /// Stops everything it runs: subscriptions, the service (waiting for its supervisor),
    /// the published ports (closed when this returns). Blocking: call off the async threads.
    pub fn stop(&self) {
        self.stop_subscriptions();
        if let Some(service) = &self.service {
            service.stop();
        }
        self.published.close_all();
    }
}

/// One deployed component: pre-instantiated, gated, counted.
pub struct ComponentRuntime {
    pub(crate) workload: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) route: Option<HttpRoute>,
    pub(crate) limits: Limits,
    pub(crate) template: StateTemplate,
    /// For HTTP requests, when it has a route.
    pub(crate) proxy: Option<ProxyPre<InvocationState>>,
    /// For message deliveries, when it has subscriptions.
    pub(crate) handler: Option<MessagingHandlerPre<InvocationState>>,
    /// For WIT calls into its exports.
    pub(crate) pre: wasmtime::component::InstancePre<InvocationState>,
    /// Its code, held so the compile cache shares it with identical components.
    pub(crate) _code: Arc<crate::cache::Code>,
    pub(crate) gate: Gate,
    pub(crate) stats: ComponentStats,
    pub(crate) metrics: crate::metrics::ComponentMetrics,
    /// Its next HTTP instance, made ahead of the request (`invoke/warm.rs`).
    pub(crate) warm: std::sync::Mutex<crate::invoke::warm::WarmSlot>,
    pub(crate) warm_budget: Arc<crate::invoke::warm::WarmBudget>,
}

impl ComponentRuntime {
    /// The workload this component belongs to.
    pub fn workload(&self) -> &str {
        &self.workload
    }
    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The HTTP worker its workload's service runs on now, if it has one.
    pub fn home(&self) -> Option<usize> {
        self.template.network.home()
    }
    /// Its HTTP route, if it has one.
    pub fn route(&self) -> Option<&HttpRoute> {
        self.route.as_ref()
    }
    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// A snapshot of its counters.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.stats;
        StatsSnapshot {
            requests: s.requests.load(Ordering::Relaxed),
            in_flight: self.gate.in_use(self.limits.max_concurrency),
            succeeded: s.succeeded.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            timed_out: s.timed_out.load(Ordering::Relaxed),
        }
    }
}

/// Per-component counters, kept by the one invoke path (`invoke/mod.rs`) so they mean the same
/// for HTTP requests, WIT calls and message deliveries.
#[derive(Debug, Default)]
pub struct ComponentStats {
    pub(crate) requests: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) timed_out: AtomicU64,
}

/// Counters as reported by the admin API.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Invocations (HTTP requests, WIT calls, messages) admitted or refused.
    pub requests: u64,
    /// Instances running now.
    pub in_flight: u32,
    /// Completed without a fault.
    pub succeeded: u64,
    /// Refused because the component was saturated (`503`) or the instance pool was full.
    pub rejected: u64,
    /// Ended in a trap or another guest fault (`500`).
    pub failed: u64,
    /// Interrupted at the deadline (`504`).
    pub timed_out: u64,
}
