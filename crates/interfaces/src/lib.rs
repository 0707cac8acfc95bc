//! hearth's host interfaces: `wasi:keyvalue`, `wasi:config`, `wasi:logging`, `wasi:blobstore`
//! and `wasmcloud:messaging`, each in a module of its own with its backends behind one trait.
//!
//! The phases are kept apart, after wasmtime's and Spin's lead:
//! - **link once per engine**: [`add_to_linker`] adds every interface, reading per-store
//!   state through [`InterfacesHost`];
//! - **configure once per workload**: [`HostInterfaces::configure`] turns the manifest's
//!   `hostInterfaces` into bound backends (connecting to Redis or NATS, so an unreachable
//!   backend fails the deploy) and resolves `config` values;
//! - **build state once per instance**: [`InterfacesCtx::new`] is an `Arc` clone.
//!
//! It does not own the store, the resource table or WASI itself (`hearth-runtime` and
//! wasmtime-wasi do), nor calling a messaging handler (the runtime gates and invokes it).

mod backend_config;
pub mod bindings;
pub mod blobstore;
pub mod config;
pub mod keyvalue;
pub mod logging;
pub mod messaging;
pub mod meter;

pub use backend_config::BackendConfig;

use hearth_manifest::{HostInterfaceSpec, Part, Workload};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, ResourceTable};

/// A problem with a workload's host interfaces: the field (relative to the workload's `spec`,
/// e.g. `hostInterfaces[0].config.url`) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The packages this crate serves, each with the backends it offers (the first is the
/// default a workload gets when it declares nothing).
pub const PACKAGES: &[(&str, &[&str])] = &[
    (keyvalue::PACKAGE, keyvalue::BACKENDS),
    (config::PACKAGE, config::BACKENDS),
    (logging::PACKAGE, logging::BACKENDS),
    (blobstore::PACKAGE, blobstore::BACKENDS),
    (messaging::PACKAGE, messaging::BACKENDS),
];

pub use hearth_manifest::package_of;

/// Whether an import names a package this crate serves.
pub fn serves(import: &str) -> bool {
    let package = package_of(import);
    PACKAGES.iter().any(|(p, _)| *p == package)
}

/// The backend that serves `package` to `part` of `workload`: what [`HostInterfaces::configure`]
/// binds, found by the same [`Scope`] (the part's own entry, else the workload's), else the
/// package's default (its first backend). `None` for a package this crate does not serve.
pub fn backend_of(workload: &Workload, part: Part, package: &str) -> Option<String> {
    let default = PACKAGES.iter().find(|(p, _)| *p == package)?.1.first()?;
    let own = match part {
        Part::Component(i) => workload.spec.components.get(i).map(|c| &c.host_interfaces),
        Part::Service => workload.spec.service.as_ref().map(|s| &s.host_interfaces),
    }
    .map_or(&[][..], Vec::as_slice);
    // Field paths matter only for errors; the lookup needs none.
    let own_at = vec![String::new(); own.len()];
    let top_at = vec![String::new(); workload.spec.host_interfaces.len()];
    let top = declared(&workload.spec.host_interfaces, &top_at);
    let scope = Scope {
        own: declared(own, &own_at),
        workload: &top,
    };
    let backend = scope
        .find(package)
        .map_or(*default, |d| d.spec.backend.as_str());
    Some(backend.to_string())
}

/// One `hostInterfaces[]` entry and where it sits in the manifest.
#[derive(Clone, Copy)]
pub struct Declared<'a> {
    pub spec: &'a HostInterfaceSpec,
    /// Field path of the entry, e.g. `components[1].hostInterfaces[0]`.
    pub at: &'a str,
}

impl<'a> Declared<'a> {
    /// The entry's `config`, to read with typed getters.
    pub fn config(&self) -> BackendConfig<'a> {
        BackendConfig::new(format!("{}.config", self.at), &self.spec.config)
    }

    /// An error about the entry's `backend` field.
    pub fn unknown_backend(&self, known: &[&str]) -> FieldError {
        FieldError::new(
            format!("{}.backend", self.at),
            format!(
                "unknown backend `{}` for `{}`: expected one of {}",
                self.spec.backend,
                package_of(&self.spec.interface),
                known.join(", ")
            ),
        )
    }
}

/// The host's registry of interface backends: the host-wide state (in-memory stores and the
/// in-memory broker, which outlive any one workload: a redeploy keeps its memory buckets) from
/// which each workload's declarations are bound.
#[derive(Default)]
pub struct HostInterfaces {
    keyvalue: keyvalue::Shared,
    blobstore: blobstore::Shared,
    messaging: messaging::Shared,
}

/// The bound interfaces of every part of one workload.
pub struct WorkloadInterfaces {
    /// One per component, in manifest order.
    pub components: Vec<Arc<PartInterfaces>>,
    /// The service's, if the workload has one.
    pub service: Option<Arc<PartInterfaces>>,
}

/// What the stores of one component (or the service) use: its backends and its config.
pub struct PartInterfaces {
    pub workload: Arc<str>,
    pub part: Arc<str>,
    pub(crate) keyvalue: keyvalue::Binding,
    pub(crate) blobstore: blobstore::Binding,
    pub(crate) messaging: messaging::Binding,
    pub(crate) config: config::Values,
}

/// The declarations that apply to one part: its own entries, then the workload's.
struct Scope<'a> {
    own: Vec<Declared<'a>>,
    workload: &'a [Declared<'a>],
}

impl<'a> Scope<'a> {
    fn find(&self, package: &str) -> Option<Declared<'a>> {
        self.own
            .iter()
            .chain(self.workload)
            .find(|d| package_of(&d.spec.interface) == package)
            .copied()
    }
}

fn declared<'a>(list: &'a [HostInterfaceSpec], at: &'a [String]) -> Vec<Declared<'a>> {
    list.iter()
        .zip(at)
        .map(|(spec, at)| Declared { spec, at })
        .collect()
}

fn paths(prefix: &str, list: &[HostInterfaceSpec]) -> Vec<String> {
    (0..list.len())
        .map(|i| format!("{prefix}hostInterfaces[{i}]"))
        .collect()
}

impl HostInterfaces {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks every `hostInterfaces` entry and `config` value of a workload without touching
    /// the network or the file system: known interface, known backend, well-formed settings.
    pub fn check(workload: &Workload) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let spec = &workload.spec;
        let mut lists: Vec<(String, &[HostInterfaceSpec])> =
            vec![(String::new(), &spec.host_interfaces)];
        for (i, c) in spec.components.iter().enumerate() {
            lists.push((format!("components[{i}]."), &c.host_interfaces));
            errors.extend(config::check(&c.config, &format!("components[{i}].config")));
        }
        if let Some(s) = &spec.service {
            lists.push(("service.".into(), &s.host_interfaces));
            errors.extend(config::check(&s.config, "service.config"));
        }
        for (prefix, list) in lists {
            let at = paths(&prefix, list);
            let mut seen: Vec<&str> = Vec::new();
            for d in declared(list, &at) {
                let package = package_of(&d.spec.interface);
                if let Err(e) = check_one(d) {
                    errors.push(e);
                } else if seen.contains(&package) {
                    errors.push(FieldError::new(
                        format!("{}.interface", d.at),
                        format!(
                            "`{package}` is declared twice in this list: expected one backend per interface"
                        ),
                    ));
                }
                seen.push(package);
            }
        }
        errors
    }

    /// Binds the backends and resolves the config of every part of `workload`, whose
    /// declarations [`HostInterfaces::check`] has passed (the runtime's plan checks them once).
    /// Fails on the first problem, naming its field; a backend that cannot be reached is such
    /// a problem.
    pub async fn configure(&self, workload: &Workload) -> Result<WorkloadInterfaces, FieldError> {
        let spec = &workload.spec;
        let name: Arc<str> = workload.name.as_str().into();
        let top_at = paths("", &spec.host_interfaces);
        let top = declared(&spec.host_interfaces, &top_at);

        let mut components = Vec::with_capacity(spec.components.len());
        for (i, c) in spec.components.iter().enumerate() {
            let at = paths(&format!("components[{i}]."), &c.host_interfaces);
            let scope = Scope {
                own: declared(&c.host_interfaces, &at),
                workload: &top,
            };
            let part = self
                .bind(
                    &name,
                    c.name.as_str().into(),
                    &scope,
                    &c.config,
                    &format!("components[{i}].config"),
                )
                .await?;
            components.push(Arc::new(part));
        }
        let service = match &spec.service {
            Some(s) => {
                let at = paths("service.", &s.host_interfaces);
                let scope = Scope {
                    own: declared(&s.host_interfaces, &at),
                    workload: &top,
                };
                let part = self
                    .bind(&name, "service".into(), &scope, &s.config, "service.config")
                    .await?;
                Some(Arc::new(part))
            }
            None => None,
        };
        Ok(WorkloadInterfaces {
            components,
            service,
        })
    }

    async fn bind(
        &self,
        workload: &Arc<str>,
        part: Arc<str>,
        scope: &Scope<'_>,
        values: &std::collections::BTreeMap<String, String>,
        config_at: &str,
    ) -> Result<PartInterfaces, FieldError> {
        Ok(PartInterfaces {
            keyvalue: keyvalue::bind(&self.keyvalue, workload, scope.find(keyvalue::PACKAGE))
                .await?,
            blobstore: blobstore::bind(&self.blobstore, workload, scope.find(blobstore::PACKAGE))
                .await?,
            messaging: messaging::bind(&self.messaging, workload, scope.find(messaging::PACKAGE))
                .await?,
            config: config::resolve(values, config_at)?,
            workload: Arc::clone(workload),
            part,
        })
    }
}

/// Checks one entry: a known package, a known backend, and settings that backend accepts.
fn check_one(d: Declared<'_>) -> Result<(), FieldError> {
    match package_of(&d.spec.interface) {
        keyvalue::PACKAGE => keyvalue::check(d),
        config::PACKAGE => config::check_declared(d),
        logging::PACKAGE => logging::check(d),
        blobstore::PACKAGE => blobstore::check(d),
        messaging::PACKAGE => messaging::check(d),
        _ => Err(FieldError::new(
            format!("{}.interface", d.at),
            format!(
                "unknown host interface `{}`: expected one of {}",
                d.spec.interface,
                PACKAGES
                    .iter()
                    .map(|(p, _)| *p)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The per-store state of the interfaces: which part of which workload the store runs.
pub struct InterfacesCtx {
    pub(crate) part: Arc<PartInterfaces>,
}

impl InterfacesCtx {
    pub fn new(part: &Arc<PartInterfaces>) -> Self {
        Self {
            part: Arc::clone(part),
        }
    }
}

/// A short-lived borrow of a store's interface state and its resource table.
pub struct InterfacesView<'a> {
    pub ctx: &'a mut InterfacesCtx,
    pub table: &'a mut ResourceTable,
}

/// Implemented by a store's data to lend the interfaces their state.
pub trait InterfacesHost: Send {
    fn interfaces(&mut self) -> InterfacesView<'_>;
}

struct HasInterfaces;

impl HasData for HasInterfaces {
    type Data<'a> = InterfacesView<'a>;
}

/// Adds every interface this crate serves to `linker` (once per engine).
pub fn add_to_linker<T: InterfacesHost + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let get: fn(&mut T) -> InterfacesView<'_> = |t| t.interfaces();
    bindings::config::store::add_to_linker::<T, HasInterfaces>(linker, get)?;
    bindings::logging::logging::add_to_linker::<T, HasInterfaces>(linker, get)?;
    bindings::messaging::types::add_to_linker::<T, HasInterfaces>(linker, get)?;
    bindings::messaging::consumer::add_to_linker::<T, HasInterfaces>(linker, get)?;
    bindings::keyvalue::store::add_to_linker::<T, HasInterfaces>(linker, get)?;
    bindings::keyvalue::atomics::add_to_linker::<T, HasInterfaces>(linker, get)?;
    bindings::keyvalue::batch::add_to_linker::<T, HasInterfaces>(linker, get)?;
    bindings::blobstore::types::add_to_linker::<T, HasInterfaces>(linker, get)?;
    bindings::blobstore::container::add_to_linker::<T, HasInterfaces>(linker, get)?;
    bindings::blobstore::blobstore::add_to_linker::<T, HasInterfaces>(linker, get)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_of_prefers_the_parts_own_entry_then_the_workloads_then_the_default() {
        let yaml = "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: w\nspec:\n  hostInterfaces:\n    - { interface: wasi:keyvalue/store, backend: filesystem, config: { path: /tmp/kv } }\n  components:\n    - name: a\n      image: a.wasm\n      hostInterfaces:\n        - { interface: wasi:keyvalue/store, backend: redis, config: { url: redis://127.0.0.1 } }\n    - name: b\n      image: b.wasm\n";
        let w = hearth_manifest::parse_str(std::path::Path::new("w.yaml"), yaml)
            .unwrap()
            .remove(0);
        let kv = keyvalue::PACKAGE;
        assert_eq!(
            backend_of(&w, Part::Component(0), kv).as_deref(),
            Some("redis")
        );
        assert_eq!(
            backend_of(&w, Part::Component(1), kv).as_deref(),
            Some("filesystem")
        );
        assert_eq!(
            backend_of(&w, Part::Component(1), blobstore::PACKAGE).as_deref(),
            Some(blobstore::BACKENDS[0])
        );
        assert_eq!(backend_of(&w, Part::Component(1), "acme:nothing"), None);
    }
}
