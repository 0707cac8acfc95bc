//! Who serves each import: the one rule ([`provider`]) that says whether the host (WASI, a host
//! interface) or a component of the workload serves an import, and linking the latter.
//!
//! Host interfaces are all `wasi:*` plus `wasmcloud:messaging`; any other import of a component
//! or of the service must be exported by exactly one component of the same workload (same
//! package and interface, a compatible version). Components may call components (cycles are refused) and the service
//! may call components; components may never call the service over WIT: they reach it over
//! TCP on localhost.

use super::world::World;
use crate::DeployError;
use hearth_manifest::{Part, Workload};

/// What would satisfy one import of a component on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// A WASI 0.2 interface wasmtime-wasi serves (sockets: hearth's virtual network).
    Wasi(&'static str),
    /// One of hearth's host interfaces, with its backends (the first is the default).
    Host {
        package: &'static str,
        backends: &'static [&'static str],
    },
    /// A host-style interface (`wasi:*`) this host does not provide: deploy would fail.
    NotProvided,
    /// Not a host interface: a component of the same workload must export it.
    Workload,
}

/// Who serves `import` on this host.
pub fn provider(import: &str) -> Provider {
    let package = hearth_interfaces::package_of(import);
    if let Some((package, backends)) = hearth_interfaces::PACKAGES
        .iter()
        .find(|(p, _)| *p == package)
    {
        return Provider::Host { package, backends };
    }
    match package {
        "wasi:sockets" => Provider::Wasi("hearth's virtual network (hearth-net)"),
        "wasi:http" => Provider::Wasi("wasmtime-wasi-http; localhost goes to the service"),
        p if WASI_PACKAGES.contains(&p) => Provider::Wasi("wasmtime-wasi"),
        p if p.starts_with("wasi:") => Provider::NotProvided,
        _ => Provider::Workload,
    }
}

/// The WASI packages wasmtime-wasi and wasmtime-wasi-http serve (with `wasi:sockets` replaced
/// by `hearth-net`); hearth-interfaces serves the rest.
pub(crate) const WASI_PACKAGES: &[&str] = &[
    "wasi:cli",
    "wasi:clocks",
    "wasi:filesystem",
    "wasi:http",
    "wasi:io",
    "wasi:random",
    "wasi:sockets",
];

/// Every host interface package this host serves, for error messages.
pub fn served_packages() -> Vec<&'static str> {
    let mut all: Vec<&str> = WASI_PACKAGES.to_vec();
    all.extend(hearth_interfaces::PACKAGES.iter().map(|(p, _)| *p));
    all.sort_unstable();
    all
}

/// Fails if `importer` imports a host interface this host does not serve, listing what it does.
pub(crate) fn check_host_imports(
    workload: &Workload,
    part: Part,
    importer: &World,
) -> Result<(), DeployError> {
    let unserved: Vec<&str> = importer
        .imports
        .iter()
        .filter(|i| provider(i) == Provider::NotProvided)
        .map(String::as_str)
        .collect();
    if unserved.is_empty() {
        return Ok(());
    }
    Err(DeployError::at(
        workload,
        workload.field_of(part, "image"),
        format!(
            "imports {}, which this host does not provide; it provides {}",
            unserved
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", "),
            served_packages().join(", ")
        ),
    ))
}

/// `ns:pkg/iface@1.2.3` → (`ns:pkg/iface`, `Some("1.2.3")`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((base, version)) => (base, Some(version)),
        None => (name, None),
    }
}

/// The semver-compatible prefix of a version: `1.2.3` → `1`, `0.2.3` → `0.2`, `0.0.1` → `0.0.1`.
fn compatible_prefix(version: &str) -> String {
    let parts: Vec<&str> = version.split(['.', '-', '+']).take(3).collect();
    match parts.as_slice() {
        ["0", "0", patch, ..] => format!("0.0.{patch}"),
        ["0", minor, ..] => format!("0.{minor}"),
        [major, ..] => (*major).to_string(),
        [] => String::new(),
    }
}

/// Whether `export` satisfies `import`: same interface, compatible versions.
pub fn satisfies(import: &str, export: &str) -> bool {
    let (ib, iv) = split_version(import);
    let (eb, ev) = split_version(export);
    ib == eb
        && match (iv, ev) {
            (None, None) => true,
            (Some(i), Some(e)) => compatible_prefix(i) == compatible_prefix(e),
            _ => false,
        }
}

/// One resolved link: `import` (as the importer names it) is served by component `provider`'s
/// export `export`.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub import: String,
    pub export: String,
    pub provider: usize,
}

/// Links the imports of `part` that the workload serves to the components exporting them.
/// Every problem is reported in one error.
pub(crate) fn link_imports(
    workload: &Workload,
    part: Part,
    importer: &World,
    components: &[&World],
    service: Option<&World>,
) -> Result<Vec<Link>, DeployError> {
    check_host_imports(workload, part, importer)?;
    let fail =
        |message: String| DeployError::at(workload, workload.field_of(part, "image"), message);
    let mut links = Vec::new();
    let mut missing = Vec::new();
    let imports = importer.imports.iter();
    for import in imports.filter(|i| provider(i) == Provider::Workload) {
        let providers: Vec<(usize, &String)> = components
            .iter()
            .enumerate()
            .filter_map(|(n, c)| {
                c.exports
                    .iter()
                    .find(|e| satisfies(import, e))
                    .map(|e| (n, e))
            })
            .collect();
        let chosen = match providers.as_slice() {
            [one] => *one,
            [] if part != Part::Service
                && service.is_some_and(|s| s.exports.iter().any(|e| satisfies(import, e))) =>
            {
                return Err(fail(format!(
                    "imports `{import}`, which only the service exports: components cannot call the service over WIT; connect to it over TCP on localhost instead"
                )));
            }
            [] => {
                missing.push(import.clone());
                continue;
            }
            several => pinned(workload, import, several).map_err(fail)?,
        };
        links.push(Link {
            import: import.clone(),
            export: chosen.1.clone(),
            provider: chosen.0,
        });
    }
    if missing.is_empty() {
        Ok(links)
    } else {
        Err(fail(missing_message(workload, part, &missing, components)))
    }
}

/// Which of `several` components exporting `import` the manifest's `spec.links` names.
fn pinned<'a>(
    workload: &Workload,
    import: &str,
    several: &[(usize, &'a String)],
) -> Result<(usize, &'a String), String> {
    let base = import.split('@').next().unwrap_or(import);
    let named = |n: usize| workload.spec.components.get(n).map(|c| c.name.as_str());
    let chosen = workload
        .spec
        .links
        .iter()
        .filter(|l| l.import == import || l.import == base || satisfies(import, &l.import))
        .find_map(|l| {
            several
                .iter()
                .find(|(n, _)| named(*n) == Some(l.component.as_str()))
        });
    if let Some(chosen) = chosen {
        return Ok(*chosen);
    }
    let who: Vec<&str> = several
        .iter()
        .map(|(n, _)| named(*n).unwrap_or("?"))
        .collect();
    Err(format!(
        "imports `{import}`, which several components export ({}); say which in `spec.links: [{{import: {import}, component: NAME}}]`",
        who.join(", ")
    ))
}

/// The message for imports nobody serves, with what each component does export.
fn missing_message(
    workload: &Workload,
    part: Part,
    missing: &[String],
    components: &[&World],
) -> String {
    let offered: Vec<String> = components
        .iter()
        .enumerate()
        .map(|(n, c)| {
            let name = workload
                .spec
                .components
                .get(n)
                .map_or("?", |c| c.name.as_str());
            let exports = if c.exports.is_empty() {
                "nothing".to_string()
            } else {
                c.exports.join(", ")
            };
            format!("`{name}` exports {exports}")
        })
        .collect();
    let who = match part {
        Part::Service => "the service",
        Part::Component(_) => "the component",
    };
    format!(
        "{who} imports {}, which no host interface provides (hearth provides wasi:* interfaces) and no component of this workload exports ({})",
        missing.join(", "),
        if offered.is_empty() {
            "it has no components".into()
        } else {
            offered.join("; ")
        }
    )
}

/// An order in which components can be built so that every provider comes before the
/// components that import from it; a cycle is an error naming it.
pub(crate) fn build_order(
    workload: &Workload,
    links: &[Vec<Link>],
) -> Result<Vec<usize>, DeployError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        n: usize,
        links: &[Vec<Link>],
        marks: &mut [Mark],
        order: &mut Vec<usize>,
        path: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[n] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = path.iter().position(|&p| p == n).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(n);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks[n] = Mark::Active;
        path.push(n);
        for link in &links[n] {
            visit(link.provider, links, marks, order, path)?;
        }
        path.pop();
        marks[n] = Mark::Done;
        order.push(n);
        Ok(())
    }
    let mut marks = vec![Mark::New; links.len()];
    let mut order = Vec::with_capacity(links.len());
    for n in 0..links.len() {
        if let Err(cycle) = visit(n, links, &mut marks, &mut order, &mut Vec::new()) {
            let names: Vec<&str> = cycle
                .iter()
                .filter_map(|&i| workload.spec.components.get(i).map(|c| c.name.as_str()))
                .collect();
            return Err(DeployError::at(
                workload,
                workload.source.field("components"),
                format!(
                    "components import each other in a cycle ({}); expected calls to form no loop",
                    names.join(" → ")
                ),
            ));
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_matched_by_semver_compatibility() {
        assert!(satisfies("a:b/c@0.2.0", "a:b/c@0.2.7"));
        assert!(!satisfies("a:b/c@0.2.0", "a:b/c@0.3.0"));
        assert!(satisfies("a:b/c@1.0.0", "a:b/c@1.4.0"));
        assert!(!satisfies("a:b/c@1.0.0", "a:b/c@2.0.0"));
        assert!(!satisfies("a:b/c@0.0.1", "a:b/c@0.0.2"));
        assert!(satisfies("a:b/c", "a:b/c"));
        assert!(!satisfies("a:b/c", "a:b/d"));
    }
}

#[cfg(test)]
mod rules {
    use super::*;

    fn workload() -> Workload {
        let text = "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata: { name: w }\nspec:\n  components:\n    - { name: a, image: a.wasm }\n    - { name: b, image: b.wasm }\n  service: { image: s.wasm }\n";
        hearth_manifest::parse_str(std::path::Path::new("w.yaml"), text)
            .unwrap()
            .remove(0)
    }

    fn ifaces(imports: &[&str], exports: &[&str]) -> World {
        World {
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn an_import_no_host_interface_serves_is_refused_with_the_list() {
        let w = workload();
        let ok = ifaces(
            &[
                "wasi:http/outgoing-handler@0.2.6",
                "wasi:keyvalue/store@0.2.0-draft",
                "wasmcloud:messaging/consumer@0.2.0",
            ],
            &[],
        );
        assert!(check_host_imports(&w, Part::Component(0), &ok).is_ok());
        let bad = ifaces(&["wasi:nn/graph@0.2.0", "wasi:io/poll@0.2.0"], &[]);
        let err = link_imports(&w, Part::Component(0), &bad, &[&bad], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spec.components[0].image: imports `wasi:nn/graph@0.2.0`, which this host does not provide; it provides wasi:blobstore, wasi:cli"),
            "{err}"
        );
    }

    #[test]
    fn a_cycle_is_refused_with_its_path() {
        let w = workload();
        let link = |provider| {
            vec![Link {
                import: "x:y/z@1.0.0".into(),
                export: "x:y/z@1.0.0".into(),
                provider,
            }]
        };
        let err = build_order(&w, &[link(1), link(0)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spec.components: components import each other in a cycle (a → b → a)"),
            "{err}"
        );
        assert_eq!(build_order(&w, &[link(1), vec![]]).unwrap(), vec![1, 0]);
    }

    #[test]
    fn a_component_cannot_import_what_only_the_service_exports() {
        let w = workload();
        let a = ifaces(&["wasi:cli/environment@0.2.0", "acme:cache/api@0.1.0"], &[]);
        let b = ifaces(&[], &[]);
        let service = ifaces(&[], &["acme:cache/api@0.1.0"]);
        let err = link_imports(&w, Part::Component(0), &a, &[&a, &b], Some(&service))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("components cannot call the service over WIT; connect to it over TCP on localhost instead"),
            "{err}"
        );
    }

    #[test]
    fn missing_imports_are_listed_with_what_exists() {
        let w = workload();
        let a = ifaces(&["acme:x/one@1.0.0", "acme:x/two@1.0.0"], &[]);
        let b = ifaces(&[], &["acme:x/three@1.0.0"]);
        let err = link_imports(&w, Part::Component(0), &a, &[&a, &b], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the component imports acme:x/one@1.0.0, acme:x/two@1.0.0, which no host interface provides"), "{err}");
        assert!(err.contains("`b` exports acme:x/three@1.0.0"), "{err}");
    }

    #[test]
    fn two_providers_are_ambiguous() {
        let w = workload();
        let s = ifaces(&["acme:x/one@1.0.0"], &[]);
        let a = ifaces(&[], &["acme:x/one@1.0.0"]);
        let b = ifaces(&[], &["acme:x/one@1.2.0"]);
        let err = link_imports(&w, Part::Service, &s, &[&a, &b], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("several components export (a, b); say which in `spec.links"),
            "{err}"
        );
        let text = "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata: { name: w }\nspec:\n  components:\n    - { name: a, image: a.wasm }\n    - { name: b, image: b.wasm }\n  links: [{ import: acme:x/one, component: b }]\n";
        let pinned = hearth_manifest::parse_str(std::path::Path::new("w.yaml"), text)
            .unwrap()
            .remove(0);
        let links = link_imports(&pinned, Part::Service, &s, &[&a, &b], None).unwrap();
        assert_eq!(
            (links[0].provider, links[0].export.as_str()),
            (1, "acme:x/one@1.2.0")
        );
    }
}
