//! hearth's runtime: turns manifests into running, invocable workloads.
//!
//! Owns the wasmtime engine (pooling allocator, epoch ticker), the on-disk compile cache,
//! resolving each part's image to a local file (pulling `oci://` images through `hearth-oci`),
//! checking what a component file is and exports, pre-instantiation, the per-component
//! concurrency gate, and invoking a fresh instance per request with its deadline and memory
//! limit, and supervising services. It does not own sockets (`hearth-net`) or HTTP serving
//! (`hearth-http` drives [`ComponentRuntime`]).

mod cache;
mod call;
mod deploy;
mod engine;
mod gate;
mod guest_log;
pub mod images;
pub mod inspect;
mod invoke;
mod links;
mod messaging;
mod outgoing_http;
mod service;
mod state;

pub use cache::CompileCache;
pub use deploy::{
    ComponentRuntime, ComponentStats, DeployError, RunningWorkload, StatsSnapshot,
    check_available_files, check_files,
};
pub use engine::{EngineOptions, HostEngine};
pub use gate::{Gate, Permit};
pub use invoke::{InvokeError, OutgoingBody};
pub use service::{PublishedPort, ServiceRuntime, ServiceState, ServiceStatus};
pub use state::InvocationState;

use hearth_manifest::Workload;
use std::sync::Arc;

/// The engine, the compile cache and the linker shared by every workload of a host.
pub struct Runtime {
    engine: HostEngine,
    cache: CompileCache,
    linker: wasmtime::component::Linker<InvocationState>,
    interfaces: hearth_interfaces::Interfaces,
    publish_ip: std::net::IpAddr,
    /// Pulls `oci://` images (and caches them) before a deploy reads them.
    oci: hearth_oci::Oci,
    /// Where services run; `None` gives each its own thread.
    service_place: std::sync::Mutex<Option<tokio::runtime::Handle>>,
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
            interfaces: hearth_interfaces::Interfaces::new(),
            publish_ip: options.publish_ip,
            oci: hearth_oci::Oci::new(options.oci.clone()),
            service_place: std::sync::Mutex::new(None),
            engine,
            cache,
            linker,
        })
    }

    /// Runs services deployed from now on as tasks on `handle` instead of on threads of their
    /// own: for a host confined to one core, where a service sharing the HTTP worker's
    /// runtime saves two cross-thread wake-ups per request to it.
    pub fn place_services_on(&self, handle: tokio::runtime::Handle) {
        *self
            .service_place
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle);
    }

    pub(crate) fn service_place(&self) -> Option<tokio::runtime::Handle> {
        self.service_place
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The OCI client that pulls `oci://` images.
    pub fn oci(&self) -> &hearth_oci::Oci {
        &self.oci
    }

    /// The engine, for callers that need its configuration.
    pub fn engine(&self) -> &HostEngine {
        &self.engine
    }

    /// Resolves, compiles (or loads from cache) and pre-instantiates every component of a
    /// workload. Compilation runs on the blocking pool.
    pub async fn deploy(
        self: &Arc<Self>,
        workload: &Workload,
    ) -> Result<Arc<RunningWorkload>, DeployError> {
        deploy::deploy(self, workload, None).await
    }

    /// Deploys a new version of `workload` next to `previous`, keeping `previous`'s network
    /// and running service (not restarted; its calls into components reach the new ones).
    /// The caller swaps the result in and drops `previous` once its requests are done.
    pub async fn redeploy_keeping_service(
        self: &Arc<Self>,
        workload: &Workload,
        previous: &RunningWorkload,
    ) -> Result<Arc<RunningWorkload>, DeployError> {
        deploy::deploy(self, workload, Some(previous)).await
    }
}
