//! What a workload is made of, for people (the admin API's status and the dashboard): each
//! part's exports, and for each import who serves it: WASI, a host interface and its backend,
//! or another part's export over a WIT link. Made once per deploy from the [`Plan`], with the
//! plan's one rule for who serves an import ([`provider`]) and the interfaces' one rule for
//! which backend ([`hearth_interfaces::backend_of`]); it decides nothing itself.

use crate::plan::links::{Provider, provider};
use crate::plan::{Plan, PlannedPart};
use hearth_manifest::Workload;
use serde::Serialize;

/// One part (a component or the service) and what it is wired to.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartTopology {
    /// The component's name, or `service`.
    pub part: String,
    /// Whether it is the service.
    pub service: bool,
    /// Its exported interfaces.
    pub exports: Vec<String>,
    /// Its imports, in the order the component lists them.
    pub imports: Vec<ImportTopology>,
}

/// One import and who serves it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportTopology {
    /// The imported name, `ns:pkg/iface@version`.
    pub interface: String,
    /// `wasi` (served by wasmtime or hearth's network), `host` (a hearth host interface),
    /// `link` (another component of the workload), or `none` (nothing: deploy refuses it, so
    /// a running workload never shows it).
    pub kind: &'static str,
    /// Who serves it: a description (`wasi`), the backend (`host`), or the component (`link`).
    pub by: String,
    /// For a `link`: the callee's export that serves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
}

/// The topology of every part of `plan`: components in manifest order, then the service.
pub(crate) fn of(plan: &Plan) -> Vec<PartTopology> {
    plan.components
        .iter()
        .chain(&plan.service)
        .map(|p| part(&plan.workload, p))
        .collect()
}

fn part(workload: &Workload, planned: &PlannedPart) -> PartTopology {
    let imports = planned
        .file
        .world
        .imports
        .iter()
        .map(|import| {
            let linked = planned.links.iter().find(|l| l.import == *import);
            let (kind, by, export) = match (linked, provider(import)) {
                (Some(link), _) => (
                    "link",
                    workload
                        .part_name(hearth_manifest::Part::Component(link.provider))
                        .to_string(),
                    Some(link.export.clone()),
                ),
                (None, Provider::Wasi(by)) => ("wasi", by.to_string(), None),
                (None, Provider::Host { package, .. }) => (
                    "host",
                    hearth_interfaces::backend_of(workload, planned.part, package)
                        .unwrap_or_else(|| "?".to_string()),
                    None,
                ),
                (None, Provider::NotProvided | Provider::Workload) => ("none", String::new(), None),
            };
            ImportTopology {
                interface: import.clone(),
                kind,
                by,
                export,
            }
        })
        .collect();
    PartTopology {
        part: workload.part_name(planned.part).to_string(),
        service: planned.part == hearth_manifest::Part::Service,
        exports: planned.file.world.exports.clone(),
        imports,
    }
}
