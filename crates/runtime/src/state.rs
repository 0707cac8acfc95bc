//! What one store holds: the WASI, `wasi:http`, virtual-network and host-interface contexts, the resource
//! table, the memory limiter (which also measures the instance's memory) and the deadline. Built fresh for every invocation and for every
//! service incarnation.

use crate::guest_log::{GuestLog, StdStream};
use crate::outgoing_http::HttpHooks;
use crate::trace::StoreTrace;
use hearth_interfaces::{InterfacesCtx, InterfacesHost, InterfacesView, PartInterfaces};
use hearth_net::{EgressPolicy, NetCtx, NetCtxView, NetView, Network, Role};
use metrics::Histogram;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{ResourceTable, ResourceTableError};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The `T` of every `Store<T>` hearth creates.
pub struct InvocationState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: HttpHooks,
    net: NetCtx,
    interfaces: InterfacesCtx,
    pub(crate) limits: Limits,
    /// When the invocation must be done; `None` for a service.
    pub(crate) deadline: Option<Instant>,
    /// Where the instance's linear memory is recorded when its store goes.
    pub(crate) memory_at_exit: Option<Histogram>,
}

impl Drop for InvocationState {
    fn drop(&mut self) {
        if let Some(h) = &self.memory_at_exit {
            h.record(self.limits.memory as f64);
        }
    }
}

/// The store's limiter: wasmtime's [`StoreLimits`], and the linear memory its instances
/// hold (every memory's size, summed; linear memory never shrinks).
pub(crate) struct Limits {
    inner: StoreLimits,
    memory: usize,
    /// A growth past the memory limit was refused.
    refused: bool,
    limit_bytes: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory = self.memory.saturating_add(desired.saturating_sub(current));
        } else {
            self.refused = true;
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// What every store of one component (or service) is built from.
pub(crate) struct StateTemplate {
    pub workload: Arc<str>,
    pub component: Arc<str>,
    pub env: Vec<(String, String)>,
    pub memory_bytes: usize,
    /// Most entries the resource table may hold.
    pub max_resources: usize,
    pub network: Arc<Network>,
    pub role: Role,
    pub policy: Arc<EgressPolicy>,
    pub interfaces: Arc<PartInterfaces>,
    /// A component's instance memory histogram (services have none).
    pub memory_at_exit: Option<Histogram>,
}

impl StateTemplate {
    // One call site per role (component, service); a builder would only rename the arguments.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        workload: &Arc<str>,
        component: Arc<str>,
        env: &std::collections::BTreeMap<String, String>,
        (memory_mib, max_resources): (u32, u32),
        network: &Arc<Network>,
        role: Role,
        policy: Arc<EgressPolicy>,
        interfaces: &Arc<PartInterfaces>,
    ) -> Self {
        Self {
            workload: Arc::clone(workload),
            component,
            env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            memory_bytes: (memory_mib as usize) << 20,
            max_resources: max_resources as usize,
            network: Arc::clone(network),
            role,
            policy,
            interfaces: Arc::clone(interfaces),
            memory_at_exit: None,
        }
    }
}

impl InvocationState {
    pub(crate) fn new(template: &StateTemplate, deadline: Option<Instant>) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.envs(&template.env)
            .stdout(GuestLog::new(
                template.workload.clone(),
                template.component.clone(),
                StdStream::Stdout,
            ))
            .stderr(GuestLog::new(
                template.workload.clone(),
                template.component.clone(),
                StdStream::Stderr,
            ));
        let mut table = ResourceTable::new();
        table.set_max_capacity(template.max_resources);
        Self {
            table,
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: HttpHooks {
                network: Arc::clone(&template.network),
                policy: Arc::clone(&template.policy),
                trace: StoreTrace::new(&template.component),
            },
            net: NetCtx::with_policy(
                Arc::clone(&template.network),
                template.role,
                Arc::clone(&template.policy),
            ),
            interfaces: InterfacesCtx::new(&template.interfaces),
            limits: Limits {
                inner: StoreLimitsBuilder::new()
                    .memory_size(template.memory_bytes)
                    .instances(64)
                    .build(),
                memory: 0,
                refused: false,
                limit_bytes: template.memory_bytes,
            },
            deadline,
            memory_at_exit: template.memory_at_exit.clone(),
        }
    }
}

/// A limit a guest ran into, named as the context of the error it failed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GuestLimit {
    #[error("exceeded memory limit of {0} MiB (limits.memoryMiB)")]
    Memory(usize),
    #[error(
        "exceeded its limit of {0} resources held at once: handles, streams, pollables (limits.maxResources)"
    )]
    Resources(usize),
}

impl GuestLimit {
    /// Why a guest failed, in a line: the limit it ran into, else the root cause.
    pub fn reason(e: &wasmtime::Error) -> String {
        match e.downcast_ref::<GuestLimit>() {
            Some(limit) => limit.to_string(),
            None => e.root_cause().to_string(),
        }
    }
}

impl InvocationState {
    /// `e`, with the guest limit behind it named when this store ran into one: a refused
    /// memory growth (the guest then fails in its own way, typically an abort), or a full
    /// resource table.
    pub(crate) fn explain(&self, e: wasmtime::Error) -> wasmtime::Error {
        let table_full = e.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<ResourceTableError>(),
                Some(ResourceTableError::Full)
            )
        });
        let limit = if table_full {
            GuestLimit::Resources(self.table.max_capacity())
        } else if self.limits.refused {
            GuestLimit::Memory(self.limits.limit_bytes >> 20)
        } else {
            return e;
        };
        e.context(limit)
    }

    /// The store's trace, when tracing is on.
    pub(crate) fn trace(&self) -> Option<&StoreTrace> {
        self.hooks.trace.as_ref()
    }

    /// Makes `context` the span the guest works within: its outgoing requests and calls are
    /// children of it.
    pub(crate) fn set_trace_context(&mut self, context: &opentelemetry::Context) {
        if let Some(trace) = &mut self.hooks.trace {
            trace.context = Some(context.clone());
        }
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl NetView for InvocationState {
    fn net(&mut self) -> NetCtxView<'_> {
        NetCtxView {
            ctx: &mut self.net,
            table: &mut self.table,
        }
    }
}

impl InterfacesHost for InvocationState {
    fn interfaces(&mut self) -> InterfacesView<'_> {
        InterfacesView {
            ctx: &mut self.interfaces,
            table: &mut self.table,
        }
    }
}
