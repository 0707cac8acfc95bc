//! Deploying a workload: read each component, check it is what its role needs, compile it (or
//! load it from the cache) and pre-instantiate it, so an invocation only has to instantiate.

use crate::Runtime;
use crate::cache::CacheOutcome;
use crate::gate::Gate;
use crate::inspect::{self, HTTP_HANDLER, Interfaces, WasmKind};
use crate::state::{InvocationState, StateTemplate};
use hearth_manifest::{ComponentSpec, HttpRoute, ImageRef, Limits, ManifestError, Workload};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// Longest a request waits in a component's queue for a free instance slot.
const MAX_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// A deploy failure, located like a manifest error: file, field path, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeployError(pub ManifestError);

impl DeployError {
    fn at(workload: &Workload, field: String, message: String) -> Self {
        Self(ManifestError {
            file: workload.source.file.clone(),
            document: None,
            path: field,
            message,
        })
    }
}

/// A deployed workload: its components, ready to invoke.
pub struct RunningWorkload {
    /// `metadata.name`.
    pub name: Arc<str>,
    /// The manifest it came from.
    pub source: PathBuf,
    /// Its components, in manifest order.
    pub components: Vec<Arc<ComponentRuntime>>,
}

/// One deployed component: pre-instantiated, gated, counted.
pub struct ComponentRuntime {
    pub(crate) workload: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) route: Option<HttpRoute>,
    pub(crate) limits: Limits,
    pub(crate) template: StateTemplate,
    pub(crate) proxy: Option<ProxyPre<InvocationState>>,
    pub(crate) gate: Gate,
    pub(crate) stats: ComponentStats,
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
            rejected: s.rejected.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            timed_out: s.timed_out.load(Ordering::Relaxed),
        }
    }
}

/// Per-component counters.
#[derive(Debug, Default)]
pub struct ComponentStats {
    pub(crate) requests: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) timed_out: AtomicU64,
}

/// Counters as reported by the admin API.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Invocations admitted or refused.
    pub requests: u64,
    /// Instances running now.
    pub in_flight: u32,
    /// Refused with `503` because the component was saturated.
    pub rejected: u64,
    /// Ended in a trap or another guest fault (`500`).
    pub failed: u64,
    /// Interrupted at the deadline (`504`).
    pub timed_out: u64,
}

/// Checks every component file of `workload` without compiling: it exists, it is a component,
/// and it exports what its role needs. Returns the bytes and interfaces of each.
pub fn check_files(workload: &Workload) -> Result<Vec<(Vec<u8>, Interfaces)>, Vec<DeployError>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (i, c) in workload.spec.components.iter().enumerate() {
        match check_file(workload, i, c) {
            Ok(v) => ok.push(v),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

fn check_file(
    workload: &Workload,
    i: usize,
    c: &ComponentSpec,
) -> Result<(Vec<u8>, Interfaces), DeployError> {
    let field = |f: &str| workload.source.field(&format!("components[{i}].{f}"));
    let ImageRef::File(path) = c.image_ref(&workload.source);
    let bytes = std::fs::read(&path).map_err(|e| {
        DeployError::at(
            workload,
            field("image"),
            format!("cannot read `{}`: {e}", path.display()),
        )
    })?;
    match inspect::kind(&bytes) {
        WasmKind::Component => {}
        WasmKind::CoreModule => {
            return Err(DeployError::at(
                workload,
                field("image"),
                format!(
                    "`{}` is a core WebAssembly module, not a component: expected a component (build for the `wasm32-wasip2` target)",
                    path.display()
                ),
            ));
        }
        WasmKind::NotWasm => {
            return Err(DeployError::at(
                workload,
                field("image"),
                format!(
                    "`{}` is not a WebAssembly file: expected a component built for `wasm32-wasip2`",
                    path.display()
                ),
            ));
        }
    }
    let interfaces = inspect::interfaces(&bytes).map_err(|e| {
        DeployError::at(
            workload,
            field("image"),
            format!("`{}` is not a valid component: {e}", path.display()),
        )
    })?;
    if c.http.is_some() && interfaces.export(HTTP_HANDLER).is_none() {
        let exports = if interfaces.exports.is_empty() {
            "nothing".to_string()
        } else {
            interfaces.exports.join(", ")
        };
        return Err(DeployError::at(
            workload,
            field("http"),
            format!(
                "`{}` does not export `{HTTP_HANDLER}`, which a component with an `http` route must (it exports {exports})",
                path.display()
            ),
        ));
    }
    Ok((bytes, interfaces))
}

pub(crate) async fn deploy(
    rt: &Arc<Runtime>,
    workload: &Workload,
) -> Result<Arc<RunningWorkload>, DeployError> {
    let files = check_files(workload).map_err(|mut errors| errors.remove(0))?;
    let name: Arc<str> = workload.name.as_str().into();
    let mut components = Vec::with_capacity(files.len());
    for (i, ((bytes, _interfaces), spec)) in
        files.into_iter().zip(&workload.spec.components).enumerate()
    {
        let field = |f: &str| workload.source.field(&format!("components[{i}].{f}"));
        let started = Instant::now();
        let rt2 = Arc::clone(rt);
        let compiled =
            tokio::task::spawn_blocking(move || rt2.cache.load(rt2.engine.engine(), &bytes))
                .await
                .map_err(|e| {
                    DeployError::at(
                        workload,
                        field("image"),
                        format!("compilation task failed: {e}"),
                    )
                })?;
        let (component, outcome) = compiled.map_err(|e| {
            DeployError::at(
                workload,
                field("image"),
                format!("cannot compile the component: {e:#}"),
            )
        })?;
        tracing::info!(
            workload = %name,
            component = %spec.name,
            cached = outcome == CacheOutcome::Hit,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "component ready"
        );
        let pre = rt.linker.instantiate_pre(&component).map_err(|e| {
            DeployError::at(
                workload,
                field("image"),
                format!("cannot link the component's imports: {e:#}"),
            )
        })?;
        let proxy = match &spec.http {
            Some(_) => Some(ProxyPre::new(pre).map_err(|e| {
                DeployError::at(
                    workload,
                    field("http"),
                    format!("not a `wasi:http` handler: {e:#}"),
                )
            })?),
            None => None,
        };
        let component_name: Arc<str> = spec.name.as_str().into();
        components.push(Arc::new(ComponentRuntime {
            workload: name.clone(),
            name: component_name.clone(),
            route: spec.http.clone(),
            limits: spec.limits,
            template: StateTemplate {
                workload: name.clone(),
                component: component_name,
                env: spec
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                memory_bytes: (spec.limits.memory_mib as usize) << 20,
            },
            proxy,
            gate: Gate::new(
                spec.limits.max_concurrency,
                MAX_QUEUE_WAIT.min(Duration::from_millis(spec.limits.timeout_ms)),
            ),
            stats: ComponentStats::default(),
        }));
    }
    Ok(Arc::new(RunningWorkload {
        name,
        source: workload.source.file.clone(),
        components,
    }))
}
