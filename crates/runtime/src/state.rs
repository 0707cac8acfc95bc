//! What one store holds: the WASI and `wasi:http` contexts, the resource table, the memory
//! limiter and the invocation's deadline. Built fresh for every invocation.

use crate::guest_log::{GuestLog, StdStream};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The `T` of every `Store<T>` hearth creates for a component invocation.
pub struct InvocationState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) limits: StoreLimits,
    pub(crate) deadline: Instant,
}

/// The parts of a component's identity and limits that every invocation's state needs.
#[derive(Debug)]
pub(crate) struct StateTemplate {
    pub workload: Arc<str>,
    pub component: Arc<str>,
    pub env: Vec<(String, String)>,
    pub memory_bytes: usize,
}

impl InvocationState {
    pub(crate) fn new(template: &StateTemplate, deadline: Instant) -> Self {
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
        Self {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(template.memory_bytes)
                .instances(64)
                .build(),
            deadline,
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
            hooks: Default::default(),
        }
    }
}
