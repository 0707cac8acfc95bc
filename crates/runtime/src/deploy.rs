//! Deploying a workload: read each component, check it is what its role needs, compile it (or
//! load it from the cache) and pre-instantiate it, so an invocation only has to instantiate.

use crate::Runtime;
use crate::cache::CacheOutcome;
use crate::call::Callee;
use crate::gate::Gate;
use crate::images::{LocalImage, LocalImages};
use crate::inspect::{self, CLI_RUN, HTTP_HANDLER, Interfaces, MESSAGE_HANDLER, WasmKind};
use crate::links;
use crate::service::ServiceRuntime;
use crate::state::{InvocationState, StateTemplate};
use hearth_manifest::{HttpRoute, Limits, ManifestError, Workload};
use hearth_net::{EgressPolicy, Network};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
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
        Self(ManifestError {
            file: workload.source.file.clone(),
            document: None,
            path: field,
            message,
        })
    }
}

/// A deployed workload: its components, ready to invoke, and its service, running.
pub struct RunningWorkload {
    /// `metadata.name`.
    pub name: Arc<str>,
    /// The manifest it came from.
    pub source: PathBuf,
    /// Its components, in manifest order.
    pub components: Vec<Arc<ComponentRuntime>>,
    /// Its service, if it has one.
    pub service: Option<Arc<ServiceRuntime>>,
    /// Its private network.
    pub network: Arc<Network>,
    /// The tasks delivering messages to its subscribed components.
    subscriptions: Vec<tokio::task::AbortHandle>,
    /// Where linked calls to each component (by name) go; carried over by a reload that keeps
    /// the service, so the service's links reach the new versions.
    callees: Vec<(Arc<str>, Arc<Callee>)>,
}

impl RunningWorkload {
    /// Stops delivering messages to its components (they are being replaced).
    pub fn stop_subscriptions(&self) {
        for task in &self.subscriptions {
            task.abort();
        }
    }

    /// Stops the service (if any) and waits for its supervisor to finish.
    pub fn stop(&self) {
        self.stop_subscriptions();
        if let Some(service) = &self.service {
            service.stop();
        }
    }
}

/// One deployed component: pre-instantiated, gated, counted.
pub struct ComponentRuntime {
    pub(crate) workload: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) route: Option<HttpRoute>,
    pub(crate) limits: Limits,
    pub(crate) template: StateTemplate,
    pub(crate) proxy: Option<ProxyPre<InvocationState>>,
    /// For calls into its exports from the service.
    pub(crate) pre: wasmtime::component::InstancePre<InvocationState>,
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

/// Checks every file of `workload` without compiling: it exists, it is a component, and it
/// exports what its role needs; and every `allowedHosts` list parses. `images` has each part's
/// local file ([`crate::images`]). Returns the bytes and interfaces of each file.
pub fn check_files(
    workload: &Workload,
    images: &LocalImages,
) -> Result<CheckedFiles, Vec<DeployError>> {
    let (checked, service, mut errors) = check_parts(workload, images);
    let parts = workload
        .spec
        .components
        .iter()
        .enumerate()
        .map(|(i, _)| format!("components[{i}]"))
        .chain(workload.spec.service.iter().map(|_| "service".to_string()));
    for at in parts {
        if images.get(&at).is_none() {
            errors.push(DeployError::at(
                workload,
                workload.source.field(&format!("{at}.image")),
                "the image was not resolved to a local file".into(),
            ));
        }
    }
    let components: Vec<(Vec<u8>, Interfaces)> = checked.into_iter().flatten().collect();
    if errors.is_empty() {
        Ok(CheckedFiles {
            components,
            service,
        })
    } else {
        Err(errors)
    }
}

/// [`check_files`] for `hearth validate` without network: parts missing from `images` (an
/// `oci://` image not in the cache) are skipped; everything else is checked.
pub fn check_available_files(workload: &Workload, images: &LocalImages) -> Vec<DeployError> {
    check_parts(workload, images).2
}

/// One component's bytes and interfaces.
type Checked = (Vec<u8>, Interfaces);

/// The checks of [`check_files`]; a part without a local file, or whose file failed, is `None`.
fn check_parts(
    workload: &Workload,
    images: &LocalImages,
) -> (Vec<Option<Checked>>, Option<Checked>, Vec<DeployError>) {
    let mut components = Vec::new();
    let mut errors = Vec::new();
    for (i, c) in workload.spec.components.iter().enumerate() {
        let role = if c.http.is_some() {
            Role::HttpComponent
        } else {
            Role::Component
        };
        let at = format!("components[{i}]");
        match images
            .get(&at)
            .map(|image| check_file(workload, &at, image, role))
        {
            Some(Ok(v)) => {
                if !c.subscriptions.is_empty() && v.1.export(MESSAGE_HANDLER).is_none() {
                    errors.push(DeployError::at(
                        workload,
                        workload.source.field(&format!("components[{i}].subscriptions")),
                        format!(
                            "the component does not export `{MESSAGE_HANDLER}`, which a component with `subscriptions` must"
                        ),
                    ));
                }
                components.push(Some(v));
            }
            Some(Err(e)) => {
                errors.push(e);
                components.push(None);
            }
            None => components.push(None),
        }
        if let Err(e) = policy(workload, &at, &c.allowed_hosts) {
            errors.push(e);
        }
    }
    let mut service = None;
    if let Some(s) = &workload.spec.service {
        match images
            .get("service")
            .map(|image| check_file(workload, "service", image, Role::Service))
        {
            Some(Ok(v)) => service = Some(v),
            Some(Err(e)) => errors.push(e),
            None => {}
        }
        if let Err(e) = policy(workload, "service", &s.allowed_hosts) {
            errors.push(e);
        }
    }
    for e in hearth_interfaces::Interfaces::check(workload) {
        errors.push(interface_error(workload, e));
    }
    (components, service, errors)
}

/// The bytes and interfaces of every file of a workload, once checked.
pub struct CheckedFiles {
    /// One per component, in manifest order.
    pub components: Vec<(Vec<u8>, Interfaces)>,
    /// The service's, if any.
    pub service: Option<(Vec<u8>, Interfaces)>,
}

/// What a file is asked to be.
#[derive(Clone, Copy)]
enum Role {
    Component,
    HttpComponent,
    Service,
}

/// Locates a host-interface problem in the manifest.
fn interface_error(workload: &Workload, e: hearth_interfaces::FieldError) -> DeployError {
    DeployError::at(workload, workload.source.field(&e.field), e.message)
}

/// Parses the `allowedHosts` of the part at `at` (e.g. `components[0]`).
fn policy(
    workload: &Workload,
    at: &str,
    entries: &[String],
) -> Result<Arc<EgressPolicy>, DeployError> {
    EgressPolicy::parse(entries).map(Arc::new).map_err(|e| {
        DeployError::at(
            workload,
            workload
                .source
                .field(&format!("{at}.allowedHosts[{}]", e.index)),
            format!("expected {}, found `{}`", e.expected, e.entry),
        )
    })
}

fn check_file(
    workload: &Workload,
    at: &str,
    image: &LocalImage,
    role: Role,
) -> Result<(Vec<u8>, Interfaces), DeployError> {
    let field = |f: &str| workload.source.field(&format!("{at}.{f}"));
    let bytes = std::fs::read(&image.path).map_err(|e| {
        DeployError::at(
            workload,
            field("image"),
            format!("cannot read `{}`: {e}", image.path.display()),
        )
    })?;
    let path = &image.label;
    match inspect::kind(&bytes) {
        WasmKind::Component => {}
        WasmKind::CoreModule => {
            return Err(DeployError::at(
                workload,
                field("image"),
                format!(
                    "`{}` is a core WebAssembly module, not a component: expected a component (build for the `wasm32-wasip2` target)",
                    path
                ),
            ));
        }
        WasmKind::NotWasm => {
            return Err(DeployError::at(
                workload,
                field("image"),
                format!(
                    "`{}` is not a WebAssembly file: expected a component built for `wasm32-wasip2`",
                    path
                ),
            ));
        }
    }
    let interfaces = inspect::interfaces(&bytes).map_err(|e| {
        DeployError::at(
            workload,
            field("image"),
            format!("`{}` is not a valid component: {e}", path),
        )
    })?;
    let exports = || {
        if interfaces.exports.is_empty() {
            "nothing".to_string()
        } else {
            interfaces.exports.join(", ")
        }
    };
    match role {
        Role::HttpComponent if interfaces.export(HTTP_HANDLER).is_none() => {
            return Err(DeployError::at(
                workload,
                field("http"),
                format!(
                    "`{}` does not export `{HTTP_HANDLER}`, which a component with an `http` route must (it exports {})",
                    path,
                    exports()
                ),
            ));
        }
        Role::Service if interfaces.export(CLI_RUN).is_none() => {
            return Err(DeployError::at(
                workload,
                field("image"),
                format!(
                    "`{}` does not export `{CLI_RUN}`, which a service must (it exports {}); build the service as a binary for `wasm32-wasip2`",
                    path,
                    exports()
                ),
            ));
        }
        _ => {}
    }
    Ok((bytes, interfaces))
}

/// Deploys `workload`. With `previous`, its network and running service are kept (the service
/// is not restarted, and its links follow the new components); only the components are new.
pub(crate) async fn deploy(
    rt: &Arc<Runtime>,
    workload: &Workload,
    previous: Option<&RunningWorkload>,
) -> Result<Arc<RunningWorkload>, DeployError> {
    let images = crate::images::resolve(&rt.oci, workload)
        .await
        .map_err(|mut errors| errors.remove(0))?;
    let files = check_files(workload, &images).map_err(|mut errors| errors.remove(0))?;
    let name: Arc<str> = workload.name.as_str().into();
    let service_policy = match &workload.spec.service {
        Some(s) => policy(workload, "service", &s.allowed_hosts)?,
        None => Arc::new(EgressPolicy::deny_all()),
    };
    let network = match previous {
        Some(p) => Arc::clone(&p.network),
        None => Network::new(&workload.name, (*service_policy).clone()),
    };
    let bound = rt
        .interfaces
        .configure(workload)
        .await
        .map_err(|e| interface_error(workload, e))?;

    // Compile every component first: links between them decide the order they are built in.
    let mut compiled = Vec::with_capacity(files.components.len());
    for (i, ((bytes, interfaces), spec)) in files
        .components
        .into_iter()
        .zip(&workload.spec.components)
        .enumerate()
    {
        let component =
            compile(rt, workload, &format!("components[{i}]"), &spec.name, bytes).await?;
        compiled.push((component, interfaces));
    }
    let exports: Vec<&Interfaces> = compiled.iter().map(|(_, i)| i).collect();
    let service_interfaces = files.service.as_ref().map(|(_, i)| i);
    let mut component_links = Vec::with_capacity(compiled.len());
    for (i, (_, interfaces)) in compiled.iter().enumerate() {
        component_links.push(links::resolve(
            workload,
            &format!("components[{i}]"),
            interfaces,
            &exports,
            service_interfaces,
            false,
        )?);
    }
    let order = links::build_order(workload, &component_links)?;

    let mut built: Vec<Option<Arc<ComponentRuntime>>> = vec![None; compiled.len()];
    let mut callees: Vec<Option<Arc<Callee>>> = vec![None; compiled.len()];
    for i in order {
        let spec = &workload.spec.components[i];
        let (component, _) = &compiled[i];
        let at = format!("components[{i}]");
        let field = |f: &str| workload.source.field(&format!("{at}.{f}"));
        let linker = linker_with(
            rt,
            workload,
            &field("image"),
            &component_links[i],
            &compiled,
            &callees,
        )?;
        let pre = linker.instantiate_pre(component).map_err(|e| {
            DeployError::at(
                workload,
                field("image"),
                format!("cannot link the component's imports: {e:#}"),
            )
        })?;
        let proxy = match &spec.http {
            Some(_) => Some(ProxyPre::new(pre.clone()).map_err(|e| {
                DeployError::at(
                    workload,
                    field("http"),
                    format!("not a `wasi:http` handler: {e:#}"),
                )
            })?),
            None => None,
        };
        let component_name: Arc<str> = spec.name.as_str().into();
        let runtime = Arc::new(ComponentRuntime {
            workload: name.clone(),
            name: component_name.clone(),
            route: spec.http.clone(),
            limits: spec.limits,
            template: StateTemplate::new(
                &name,
                component_name,
                &spec.env,
                spec.limits.memory_mib,
                &network,
                hearth_net::Role::Component,
                policy(workload, &at, &spec.allowed_hosts)?,
                &bound.components[i],
            ),
            proxy,
            pre,
            gate: Gate::new(
                spec.limits.max_concurrency,
                MAX_QUEUE_WAIT.min(Duration::from_millis(spec.limits.timeout_ms)),
            ),
            stats: ComponentStats::default(),
        });
        callees[i] = Some(Callee::new(&runtime));
        built[i] = Some(runtime);
    }
    let components: Vec<Arc<ComponentRuntime>> = built.iter().flatten().cloned().collect();
    let kept_service = previous.and_then(|p| {
        p.service
            .as_ref()
            .filter(|_| workload.spec.service.is_some())
    });

    let service = match (&workload.spec.service, files.service) {
        (Some(_), Some(_)) if kept_service.is_some() => kept_service.cloned(),
        (Some(spec), Some((bytes, interfaces))) => {
            let component = compile(rt, workload, "service", "service", bytes).await?;
            let field = |f: &str| workload.source.field(&format!("service.{f}"));
            let service_links =
                links::resolve(workload, "service", &interfaces, &exports, None, true)?;
            let linker = linker_with(
                rt,
                workload,
                &field("image"),
                &service_links,
                &compiled,
                &callees,
            )?;
            let pre = linker.instantiate_pre(&component).map_err(|e| {
                DeployError::at(
                    workload,
                    field("image"),
                    format!("cannot link the service's imports: {e:#}"),
                )
            })?;
            let pre = CommandPre::new(pre).map_err(|e| {
                DeployError::at(
                    workload,
                    field("image"),
                    format!("not a `wasi:cli/run` command: {e:#}"),
                )
            })?;
            let mut publishers = Vec::new();
            for (i, port) in spec.ports.iter().enumerate() {
                let Some(host_port) = port.publish else {
                    continue;
                };
                let addr = std::net::SocketAddr::new(rt.publish_ip, host_port);
                let listener = std::net::TcpListener::bind(addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|e| {
                        DeployError::at(
                            workload,
                            field(&format!("ports[{i}].publish")),
                            format!("cannot publish on {addr}: {e}"),
                        )
                    })?;
                publishers.push((port.port, listener));
            }
            let template = StateTemplate::new(
                &name,
                "service".into(),
                &spec.env,
                spec.limits.memory_mib,
                &network,
                hearth_net::Role::Service,
                Arc::clone(&service_policy),
                bound.service.as_ref().ok_or_else(|| {
                    DeployError::at(
                        workload,
                        field("image"),
                        "no host interfaces were bound for the service".into(),
                    )
                })?,
            );
            let service = Arc::new(ServiceRuntime::new(
                pre,
                template,
                spec.restart,
                Arc::clone(&network),
                publishers,
            ));
            service.start(rt.service_place()).map_err(|e| {
                DeployError::at(
                    workload,
                    field("image"),
                    format!("cannot start the service thread: {e}"),
                )
            })?;
            Some(service)
        }
        _ => None,
    };

    // Last, so a failure here has only the service to undo.
    let subscriptions = match subscribe(rt, workload, &components, &bound).await {
        Ok(tasks) => tasks,
        Err(e) => {
            if let Some(service) = service.as_ref().filter(|_| kept_service.is_none()) {
                service.stop();
            }
            return Err(e);
        }
    };
    // Deployed: a kept service's links now go to the new components.
    let callees = components
        .iter()
        .map(|c| {
            let kept = previous.and_then(|p| p.callees.iter().find(|(n, _)| *n == c.name));
            let slot = match kept {
                Some((_, slot)) => {
                    slot.set(c);
                    Arc::clone(slot)
                }
                None => Callee::new(c),
            };
            (Arc::clone(&c.name), slot)
        })
        .collect();

    Ok(Arc::new(RunningWorkload {
        name,
        source: workload.source.file.clone(),
        components,
        service,
        network,
        subscriptions,
        callees,
    }))
}

/// Subscribes every component with `subscriptions` to its broker and starts delivering.
async fn subscribe(
    rt: &Arc<Runtime>,
    workload: &Workload,
    components: &[Arc<ComponentRuntime>],
    bound: &hearth_interfaces::WorkloadInterfaces,
) -> Result<Vec<tokio::task::AbortHandle>, DeployError> {
    let place = rt
        .service_place()
        .unwrap_or_else(tokio::runtime::Handle::current);
    let mut tasks = Vec::new();
    for (i, (spec, component)) in workload.spec.components.iter().zip(components).enumerate() {
        if spec.subscriptions.is_empty() {
            continue;
        }
        let field = |f: &str| workload.source.field(&format!("components[{i}].{f}"));
        let handler =
            hearth_interfaces::bindings::handler::MessagingHandlerPre::new(component.pre.clone())
                .map_err(|e| {
                DeployError::at(
                    workload,
                    field("subscriptions"),
                    format!("the component is not a `{MESSAGE_HANDLER}`: {e:#}"),
                )
            })?;
        for (j, pattern) in spec.subscriptions.iter().enumerate() {
            let subscription =
                hearth_interfaces::messaging::subscribe(&bound.components[i], pattern)
                    .await
                    .map_err(|why| {
                        DeployError::at(workload, field(&format!("subscriptions[{j}]")), why)
                    })?;
            tasks.push(crate::messaging::deliver(
                component,
                handler.clone(),
                pattern.clone(),
                subscription,
                &place,
            ));
        }
    }
    Ok(tasks)
}

/// The host's linker, or for a part with links, a copy of it with each linked import
/// defined as calls onto fresh instances of its provider.
fn linker_with(
    rt: &Runtime,
    workload: &Workload,
    field: &str,
    links: &[links::Link],
    compiled: &[(wasmtime::component::Component, Interfaces)],
    callees: &[Option<Arc<Callee>>],
) -> Result<wasmtime::component::Linker<InvocationState>, DeployError> {
    let mut linker = rt.linker.clone();
    for link in links {
        let (Some((component, _)), Some(Some(callee))) =
            (compiled.get(link.provider), callees.get(link.provider))
        else {
            return Err(DeployError::at(
                workload,
                field.to_string(),
                format!("`{}` has no provider yet", link.import),
            ));
        };
        crate::call::link_export(
            &mut linker,
            rt.engine.engine(),
            component,
            &link.export,
            &link.import,
            callee,
        )
        .map_err(|e| {
            DeployError::at(
                workload,
                field.to_string(),
                format!("cannot link `{}`: {e:#}", link.import),
            )
        })?;
        tracing::info!(workload = %workload.name, import = %link.import, component = %callee.get().name, "import linked to component");
    }
    Ok(linker)
}

async fn compile(
    rt: &Arc<Runtime>,
    workload: &Workload,
    at: &str,
    label: &str,
    bytes: Vec<u8>,
) -> Result<wasmtime::component::Component, DeployError> {
    let field = workload.source.field(&format!("{at}.image"));
    let started = Instant::now();
    let rt2 = Arc::clone(rt);
    let compiled = tokio::task::spawn_blocking(move || rt2.cache.load(rt2.engine.engine(), &bytes))
        .await
        .map_err(|e| {
            DeployError::at(
                workload,
                field.clone(),
                format!("compilation task failed: {e}"),
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
        component = label,
        cached = outcome == CacheOutcome::Hit,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "component ready"
    );
    Ok(component)
}
