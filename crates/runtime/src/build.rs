//! Building: a [`Plan`] becomes pre-instantiated parts. Each part's file is compiled once per
//! content hash (or loaded from the compile cache) on the compile pool, at the lowest CPU
//! priority and never on a serving thread; the workload's host-interface declarations are bound to backends; components are
//! linked in dependency order (a linked import calls a fresh instance of its provider) and
//! pre-instantiated; the service is pre-instantiated as a `wasi:cli/run` command.
//!
//! Nothing here starts anything: a failed build drops what it made and leaves whatever runs
//! untouched. Starting is `start.rs`.

use crate::Runtime;
use crate::cache::Code;
use crate::gate::Gate;
use crate::invoke::call::{Callee, Callees, link_export};
use crate::plan::links::Link;
use crate::plan::world::MESSAGE_HANDLER;
use crate::plan::{Plan, PlannedPart};
use crate::state::{InvocationState, StateTemplate};
use crate::workload::{ComponentRuntime, ComponentStats};
use hearth_interfaces::WorkloadInterfaces;
use hearth_interfaces::bindings::handler::MessagingHandlerPre;
use hearth_manifest::{ManifestError, Part, Workload};
use hearth_net::Network;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{InstancePre, Linker};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// Longest a request waits in a component's queue for a free instance slot.
const MAX_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// A deploy failure, located like a manifest error: file, field path, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeployError(pub ManifestError);

impl DeployError {
    pub(crate) fn at(workload: &Workload, field: String, message: String) -> Self {
        Self(workload.error_at(field, message))
    }
}

/// A workload's parts, built and ready to start.
pub(crate) struct BuiltWorkload {
    pub plan: Plan,
    pub network: Arc<Network>,
    pub components: Vec<Arc<ComponentRuntime>>,
    /// The new service, unless the caller keeps the running one.
    pub service: Option<BuiltService>,
    /// Whether the running service is kept (and `service` is `None`).
    pub keep_service: bool,
    /// Where the new service's linked calls go, by component name.
    pub callees: Callees,
    pub interfaces: WorkloadInterfaces,
}

/// A service, pre-instantiated, not yet started.
pub(crate) struct BuiltService {
    pub pre: CommandPre<InvocationState>,
    pub template: StateTemplate,
    /// Its code, held so the compile cache shares it while it runs.
    pub code: Arc<Code>,
}

/// Builds `plan` on `network` (the running version's, for an update). With `keep_service`,
/// the service is not built: the caller keeps the one that runs.
pub(crate) async fn build(
    rt: &Arc<Runtime>,
    plan: Plan,
    network: Arc<Network>,
    keep_service: bool,
) -> Result<BuiltWorkload, DeployError> {
    let workload = &plan.workload;
    let interfaces = rt
        .interfaces
        .configure(workload)
        .await
        .map_err(|e| DeployError::at(workload, workload.source.field(&e.field), e.message))?;
    let mut compiled = Vec::with_capacity(plan.components.len());
    for part in &plan.components {
        compiled.push(compile(rt, workload, part).await?);
    }
    let components = build_components(rt, &plan, &compiled, &network, &interfaces)?;
    let callees: Vec<Arc<Callee>> = components.iter().map(Callee::new).collect();
    let service = match &plan.service {
        Some(part) if !keep_service => {
            let code = compile(rt, workload, part).await?;
            Some(build_service(
                rt,
                &plan,
                part,
                &code,
                &compiled,
                &callees,
                &network,
                &interfaces,
            )?)
        }
        _ => None,
    };
    let callees = components
        .iter()
        .map(|c| Arc::clone(&c.name))
        .zip(callees)
        .collect();
    Ok(BuiltWorkload {
        network,
        components,
        service,
        keep_service: keep_service && plan.service.is_some(),
        plan,
        callees,
        interfaces,
    })
}

/// Pre-instantiates every component, providers before the components that import from them.
fn build_components(
    rt: &Runtime,
    plan: &Plan,
    compiled: &[Arc<Code>],
    network: &Arc<Network>,
    interfaces: &WorkloadInterfaces,
) -> Result<Vec<Arc<ComponentRuntime>>, DeployError> {
    let workload = &plan.workload;
    let mut callees: Vec<Option<Arc<Callee>>> = vec![None; plan.components.len()];
    let mut built: Vec<Option<Arc<ComponentRuntime>>> = vec![None; plan.components.len()];
    for &i in &plan.order {
        let part = &plan.components[i];
        let spec = &workload.spec.components[i];
        let pre = prepare(rt, workload, part, compiled, &callees, &compiled[i])?;
        let (proxy, handler) = entry_points(workload, part.part, &pre)?;
        let name: Arc<str> = workload.name.as_str().into();
        let component_name: Arc<str> = spec.name.as_str().into();
        let metrics = crate::metrics::ComponentMetrics::new(&name, &component_name);
        let mut template = StateTemplate::new(
            &name,
            spec.name.as_str().into(),
            &spec.env,
            (spec.limits.memory_mib, spec.limits.max_resources),
            network,
            hearth_net::Role::Component,
            Arc::clone(&part.policy),
            &interfaces.components[i],
        );
        template.memory_at_exit = Some(metrics.memory_at_exit.clone());
        let runtime = Arc::new(ComponentRuntime {
            metrics,
            template,
            workload: name,
            name: spec.name.as_str().into(),
            route: spec.http.clone(),
            limits: spec.limits,
            proxy,
            handler,
            pre,
            _code: Arc::clone(&compiled[i]),
            gate: Gate::new(
                spec.limits.max_concurrency,
                MAX_QUEUE_WAIT.min(Duration::from_millis(spec.limits.timeout_ms)),
            ),
            stats: ComponentStats::default(),
            warm: std::sync::Mutex::default(),
            warm_budget: Arc::clone(&rt.warm),
        });
        callees[i] = Some(Callee::new(&runtime));
        built[i] = Some(runtime);
    }
    Ok(built.into_iter().flatten().collect())
}

/// A component's typed entry points: for HTTP requests and for message deliveries.
type EntryPoints = (
    Option<ProxyPre<InvocationState>>,
    Option<MessagingHandlerPre<InvocationState>>,
);

/// The typed entry points a component's spec asks for: the `wasi:http` handler for a route,
/// the messaging handler for subscriptions.
fn entry_points(
    workload: &Workload,
    part: Part,
    pre: &wasmtime::component::InstancePre<InvocationState>,
) -> Result<EntryPoints, DeployError> {
    let Part::Component(i) = part else {
        return Ok((None, None));
    };
    let spec = &workload.spec.components[i];
    let fail = |field: &str, message: String| {
        DeployError::at(workload, workload.field_of(part, field), message)
    };
    let proxy = match &spec.http {
        Some(_) => Some(
            ProxyPre::new(pre.clone())
                .map_err(|e| fail("http", format!("not a `wasi:http` handler: {e:#}")))?,
        ),
        None => None,
    };
    let handler = match spec.subscriptions.is_empty() {
        true => None,
        false => Some(MessagingHandlerPre::new(pre.clone()).map_err(|e| {
            fail(
                "subscriptions",
                format!("the component is not a `{MESSAGE_HANDLER}`: {e:#}"),
            )
        })?),
    };
    Ok((proxy, handler))
}

/// Pre-instantiates the service, its linked imports calling `callees`.
// One call site; the arguments are the build's pieces, not options.
#[allow(clippy::too_many_arguments)]
fn build_service(
    rt: &Runtime,
    plan: &Plan,
    part: &PlannedPart,
    code: &Arc<Code>,
    compiled: &[Arc<Code>],
    callees: &[Arc<Callee>],
    network: &Arc<Network>,
    interfaces: &WorkloadInterfaces,
) -> Result<BuiltService, DeployError> {
    let workload = &plan.workload;
    let field = workload.field_of(Part::Service, "image");
    let fail = |message: String| DeployError::at(workload, field.clone(), message);
    let slots: Vec<Option<Arc<Callee>>> = callees.iter().cloned().map(Some).collect();
    let pre = prepare(rt, workload, part, compiled, &slots, code)?;
    let pre =
        CommandPre::new(pre).map_err(|e| fail(format!("not a `wasi:cli/run` command: {e:#}")))?;
    let (Some(spec), Some(bound)) = (&workload.spec.service, &interfaces.service) else {
        return Err(fail("no host interfaces were bound for the service".into()));
    };
    let template = StateTemplate::new(
        &workload.name.as_str().into(),
        "service".into(),
        &spec.env,
        (spec.limits.memory_mib, spec.limits.max_resources),
        network,
        hearth_net::Role::Service,
        Arc::clone(&part.policy),
        bound,
    );
    Ok(BuiltService {
        pre,
        template,
        code: Arc::clone(code),
    })
}

/// `code` pre-instantiated for `part`. A part with no links uses the host's linker as it is,
/// so its pre-instantiation is made once per component and shared by every workload running
/// that component; a part with links gets its own (see [`linker_with`]).
fn prepare(
    rt: &Runtime,
    workload: &Workload,
    part: &PlannedPart,
    compiled: &[Arc<Code>],
    callees: &[Option<Arc<Callee>>],
    code: &Code,
) -> Result<InstancePre<InvocationState>, DeployError> {
    let pre = if part.links.is_empty() {
        code.unlinked(|component| rt.linker.instantiate_pre(component))
    } else {
        linker_with(rt, workload, part, compiled, callees)?.instantiate_pre(code)
    };
    pre.map_err(|e| {
        let whose = match part.part {
            Part::Service => "service",
            Part::Component(_) => "component",
        };
        DeployError::at(
            workload,
            workload.field_of(part.part, "image"),
            format!("cannot link the {whose}'s imports: {e:#}"),
        )
    })
}

/// A copy of the host's linker with each of `part`'s linked imports defined as calls onto
/// fresh instances of its provider.
fn linker_with(
    rt: &Runtime,
    workload: &Workload,
    part: &PlannedPart,
    compiled: &[Arc<Code>],
    callees: &[Option<Arc<Callee>>],
) -> Result<Linker<InvocationState>, DeployError> {
    let field = workload.field_of(part.part, "image");
    let mut linker = rt.linker.clone();
    for Link {
        import,
        export,
        provider,
    } in &part.links
    {
        let (Some(component), Some(Some(callee))) =
            (compiled.get(*provider), callees.get(*provider))
        else {
            return Err(DeployError::at(
                workload,
                field.clone(),
                format!("`{import}` has no provider yet"),
            ));
        };
        link_export(
            &mut linker,
            rt.engine.engine(),
            component,
            export,
            import,
            callee,
        )
        .map_err(|e| {
            DeployError::at(
                workload,
                field.clone(),
                format!("cannot link `{import}`: {e:#}"),
            )
        })?;
        tracing::info!(workload = %workload.name, %import, component = %callee.get().name, "import linked to component");
    }
    Ok(linker)
}

/// Compiles (or loads) one part's code on the low-priority compile pool.
async fn compile(
    rt: &Arc<Runtime>,
    workload: &Workload,
    part: &PlannedPart,
) -> Result<Arc<Code>, DeployError> {
    let digest = part.file.digest;
    if let Some(code) = rt.cache.shared(rt.engine.engine(), &digest) {
        return Ok(code);
    }
    let field = workload.field_of(part.part, "image");
    let started = Instant::now();
    let file = part.file.clone();
    let rt2 = Arc::clone(rt);
    let compiled = rt
        .compiler
        .run(move || {
            let bytes = file.bytes()?;
            rt2.cache.load(rt2.engine.engine(), &digest, &bytes)
        })
        .await
        .ok_or_else(|| {
            DeployError::at(
                workload,
                field.clone(),
                "the compilation task failed".into(),
            )
        })?;
    let (component, outcome) = compiled.map_err(|e| {
        DeployError::at(
            workload,
            field.clone(),
            format!("cannot compile the component: {e:#}"),
        )
    })?;
    tracing::info!(
        workload = %workload.name,
        part = %workload.part_name(part.part),
        cache = ?outcome,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "component ready"
    );
    Ok(component)
}
