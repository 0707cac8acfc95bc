//! A deployment's document as the cluster handles it: validated like `hearth validate`,
//! hashed into a revision, turned into scheduler input and into one `kind: Workload`
//! document per replica.

use crate::protocol::REVISION_LABEL;
use crate::scheduler::Desired;
use hearth_manifest::{DEPLOYMENT_LABEL, Workload, WorkloadKind};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;

/// A validated document ready for the store.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub name: String,
    pub revision: String,
    pub document: Value,
    pub workload: Workload,
}

/// Validates one document (`label` names it in messages) and computes its revision.
pub fn prepare(label: &Path, document: Value) -> Result<Prepared, String> {
    let workload = parse(label, &document)?;
    Ok(Prepared {
        name: workload.name.clone(),
        revision: revision(&document),
        document,
        workload,
    })
}

/// Parses a stored document back into a workload.
pub fn parse(label: &Path, document: &Value) -> Result<Workload, String> {
    let text = serde_json::to_string(document).map_err(|e| e.to_string())?;
    let mut workloads = hearth_manifest::parse_str(label, &text).map_err(|e| e.to_string())?;
    match workloads.len() {
        1 => Ok(workloads.remove(0)),
        n => Err(format!(
            "{}: expected one document, found {n}",
            label.display()
        )),
    }
}

/// The template's hash: what every replica runs. Scaling or changing the strategy keeps it.
pub fn revision(document: &Value) -> String {
    let template = template(document).cloned().unwrap_or(Value::Null);
    let canonical = serde_json::to_vec(&sorted(&template)).unwrap_or_default();
    hex::encode(&Sha256::digest(&canonical)[..5])
}

/// `spec.template` of a deployment, or a workload's `spec` (with its labels).
fn template(document: &Value) -> Option<&Value> {
    let spec = document.get("spec")?;
    match document.get("kind").and_then(Value::as_str) {
        Some("WorkloadDeployment") => spec.get("template"),
        _ => Some(spec),
    }
}

/// A copy with object keys in sorted order, so the hash does not depend on key order.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The first route of `workload` that `other` serves too, as (field path, route): any host
/// may run replicas of both, and forwards by route, so a route belongs to one deployment in
/// a cluster.
pub fn route_clash(workload: &Workload, other: &Workload) -> Option<(String, String)> {
    use hearth_manifest::RouteKey;
    let routes = |w: &Workload| -> Vec<(usize, RouteKey)> {
        w.spec
            .components
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.http
                    .as_ref()
                    .map(|r| (i, RouteKey::new(r.host.as_deref(), &r.path)))
            })
            .collect()
    };
    let theirs = routes(other);
    routes(workload)
        .into_iter()
        .find(|(_, key)| theirs.iter().any(|(_, k)| k == key))
        .map(|(i, key)| {
            (
                workload.source.field(&format!("components[{i}].http")),
                key.to_string(),
            )
        })
}

/// What the scheduler needs to know of a deployment.
pub fn desired(workload: &Workload, revision: &str) -> Desired {
    Desired {
        name: workload.name.clone(),
        revision: revision.to_string(),
        replicas: workload.replicas,
        strategy: workload.strategy.clone(),
        host_selector: workload.host_selector.clone(),
        needs: needs(workload),
    }
}

/// The `package=backend` pairs the workload declares, on any part.
pub fn needs(workload: &Workload) -> BTreeSet<String> {
    let spec = &workload.spec;
    spec.host_interfaces
        .iter()
        .chain(spec.components.iter().flat_map(|c| &c.host_interfaces))
        .chain(spec.service.iter().flat_map(|s| &s.host_interfaces))
        .map(|h| {
            format!(
                "{}={}",
                hearth_manifest::package_of(&h.interface),
                h.backend
            )
        })
        .collect()
}

/// The `kind: Workload` document replica `replica` of `deployment` runs.
pub fn replica_document(
    document: &Value,
    deployment: &str,
    revision: &str,
    replica: &str,
) -> Value {
    let is_deployment = document.get("kind").and_then(Value::as_str)
        == Some(kind_name(WorkloadKind::WorkloadDeployment));
    let (mut labels, spec) = if is_deployment {
        let template = document.pointer("/spec/template");
        (
            template
                .and_then(|t| t.pointer("/metadata/labels"))
                .cloned()
                .unwrap_or_else(|| json!({})),
            template.and_then(|t| t.get("spec")).cloned(),
        )
    } else {
        (
            document
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or_else(|| json!({})),
            document.get("spec").cloned(),
        )
    };
    if let Some(map) = labels.as_object_mut() {
        map.insert(DEPLOYMENT_LABEL.into(), deployment.into());
        map.insert(REVISION_LABEL.into(), revision.into());
    }
    json!({
        "apiVersion": hearth_manifest::API_VERSION,
        "kind": "Workload",
        "metadata": { "name": replica, "labels": labels },
        "spec": spec.unwrap_or_else(|| json!({})),
    })
}

fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Workload => "Workload",
        WorkloadKind::WorkloadDeployment => "WorkloadDeployment",
    }
}

/// A fresh replica id: the deployment's name and five random characters (a DNS label).
pub fn replica_id(deployment: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..5)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    let prefix: String = deployment.chars().take(57).collect();
    format!("{}-{suffix}", prefix.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        json!({
            "apiVersion": "hearth.dev/v1alpha1",
            "kind": "WorkloadDeployment",
            "metadata": {"name": "hello"},
            "spec": {
                "replicas": 3,
                "hostSelector": {"zone": "eu"},
                "template": {
                    "metadata": {"labels": {"app": "hello"}},
                    "spec": {
                        "components": [{"name": "http", "image": "/tmp/x.wasm", "http": {"path": "/"}}],
                        "hostInterfaces": [{"interface": "wasi:keyvalue/store@0.2.0-draft", "backend": "redis", "config": {"url": "redis://x"}}]
                    }
                }
            }
        })
    }

    #[test]
    fn scaling_keeps_the_revision_and_template_changes_move_it() {
        let a = doc();
        let mut scaled = a.clone();
        scaled["spec"]["replicas"] = 6.into();
        assert_eq!(revision(&a), revision(&scaled));
        let mut changed = a.clone();
        changed["spec"]["template"]["spec"]["components"][0]["image"] = "/tmp/y.wasm".into();
        assert_ne!(revision(&a), revision(&changed));
    }

    #[test]
    fn a_replica_is_a_workload_labelled_with_its_deployment() {
        let prepared = prepare(Path::new("hello.yaml"), doc()).unwrap();
        assert_eq!(prepared.workload.replicas, 3);
        let d = desired(&prepared.workload, &prepared.revision);
        assert_eq!(d.needs, BTreeSet::from(["wasi:keyvalue=redis".to_string()]));
        assert_eq!(d.host_selector["zone"], "eu");
        let id = replica_id("hello");
        assert!(id.starts_with("hello-") && id.len() == 11, "{id}");
        let replica = replica_document(&prepared.document, "hello", &prepared.revision, &id);
        let w = parse(Path::new("replica"), &replica).unwrap();
        assert_eq!(w.name, id);
        assert_eq!(w.kind, WorkloadKind::Workload);
        assert_eq!(w.deployment(), Some("hello"));
        assert_eq!(w.labels["app"], "hello");
        assert_eq!(w.labels[REVISION_LABEL], prepared.revision);
    }

    #[test]
    fn invalid_documents_name_the_field() {
        let mut bad = doc();
        bad["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "lots"}});
        let err = prepare(Path::new("hello.yaml"), bad).unwrap_err();
        assert!(
            err.contains("spec.strategy.rollingUpdate.maxSurge"),
            "{err}"
        );
    }
}
