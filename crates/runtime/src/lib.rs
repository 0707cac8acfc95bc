//! hearth's runtime: turns workloads into running, invocable parts, and changes them while
//! the host serves.
//!
//! The flow, one module per phase (each type names its phase):
//!
//! | phase | module | from → to |
//! |---|---|---|
//! | plan | `plan/` | `Workload` + fetched files → [`Plan`]: what each file is (`world`), who serves each import (`links`), policies and host-interface checks (`check`) |
//! | build | `build.rs` | [`Plan`] → compiled (cache), bound backends, pre-instantiated parts |
//! | start | `start.rs` | built parts → [`RunningWorkload`]: published ports, subscriptions, the service |
//! | swap | `lifecycle.rs` | [`Workloads`]: apply / delete on a live host, per-name serialised |
//! | invoke | `invoke/` | gate → fresh store → deadline → call → classify, for HTTP, WIT calls and messages |
//!
//! Beside them: `engine.rs` (pooling allocator, epochs), `cache.rs` (compiled code on disk),
//! `service.rs` (the supervisor), `publish.rs` (host ports), `state.rs` (what a store holds),
//! `outgoing_http.rs`, `guest_log.rs`, `gate.rs`, `inspect.rs` (for `hearth inspect`),
//! `topology.rs` (who serves each part's imports, for the admin API and the dashboard).
//!
//! It does not fetch images (`hearth-oci`, before planning), own sockets (`hearth-net`) or
//! serve HTTP (`hearth-http` drives [`ComponentRuntime`] and [`Workloads`]).

mod build;
mod cache;
mod engine;
mod gate;
mod guest_log;
pub mod inspect;
mod invoke;
mod lifecycle;
pub mod logs;
pub mod metrics;
mod outgoing_http;
mod placement;
pub mod plan;
mod publish;
mod service;
mod start;
mod state;
pub mod topology;
pub mod trace;
mod workload;

pub use build::DeployError;
pub use cache::{Code, CompileCache};
pub use engine::{EngineOptions, HostEngine, default_max_instances};
pub use gate::{Gate, Permit};
pub use invoke::InvokeError;
pub use invoke::http::{Https, OutgoingBody};
pub use invoke::warm::DEFAULT_WARM_INSTANCES;
pub use lifecycle::{Applied, ApplyError, Fetch, FetchFuture, Publish, Workloads};
pub use placement::ServicePlacement;
pub use plan::Plan;
pub use publish::PublishedPort;
pub use service::{ExitKind, ServiceRuntime, ServiceState, ServiceStatus};
pub use state::GuestLimit;
pub use state::InvocationState;
pub use workload::{ComponentRuntime, ComponentStats, RunningWorkload, StatsSnapshot};

/// The engine, the compile cache, the linker and the host interfaces shared by every
/// workload of a host.
pub struct Runtime {
    engine: HostEngine,
    cache: CompileCache,
    compiler: cache::CompilePool,
    linker: wasmtime::component::Linker<InvocationState>,
    interfaces: hearth_interfaces::HostInterfaces,
    publish_ip: std::net::IpAddr,
    /// How many HTTP instances may be made ahead of their requests, host-wide.
    warm: std::sync::Arc<invoke::warm::WarmBudget>,
    /// The HTTP workers' runtimes: where services run and shared subscriptions are spread.
    workers: std::sync::Mutex<std::sync::Arc<placement::Workers>>,
}

impl Runtime {
    /// Builds the engine and links WASI 0.2, `wasi:http`, the virtual network and hearth's
    /// host interfaces once.
    pub fn new(options: EngineOptions) -> anyhow::Result<Self> {
        let engine = HostEngine::new(&options)?;
        let cache = CompileCache::new(options.cache_dir.clone());
        let mut linker = wasmtime::component::Linker::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        // Our virtual network replaces wasmtime-wasi's host sockets.
        linker.allow_shadowing(true);
        hearth_net::add_to_linker(&mut linker)?;
        linker.allow_shadowing(false);
        hearth_interfaces::add_to_linker(&mut linker)?;
        Ok(Self {
            interfaces: hearth_interfaces::HostInterfaces::new(),
            publish_ip: options.publish_ip,
            // An eighth of the pool at most, so they never crowd out requests.
            warm: invoke::warm::WarmBudget::new(
                options
                    .warm_instances
                    .min(options.max_instances as usize / 8),
            ),
            workers: std::sync::Mutex::default(),
            compiler: cache::CompilePool::new()?,
            engine,
            cache,
            linker,
        })
    }

    /// Puts the work of workloads deployed from now on onto `workers` (the HTTP workers'
    /// runtimes): their services, as `services` says (`placement.rs`), and their message
    /// deliveries, where the broker can share a subscription (NATS): one subscription per
    /// worker, so a message is read, delivered and handled on one thread.
    pub fn use_workers(&self, workers: Vec<tokio::runtime::Handle>, services: ServicePlacement) {
        *self
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            std::sync::Arc::new(placement::Workers::new(workers, services));
    }

    pub(crate) fn workers(&self) -> std::sync::Arc<placement::Workers> {
        std::sync::Arc::clone(
            &self
                .workers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The engine, for callers that need its configuration.
    pub fn engine(&self) -> &HostEngine {
        &self.engine
    }
}
