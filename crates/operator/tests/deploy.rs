//! `deploy/` builds with the real `kubectl kustomize` (offline), into what the README says it
//! installs, with its CRDs the generated ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[test]
fn kubectl_kustomize_builds_deploy_offline() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&deploy)
        .output()
        .expect("kubectl (on this machine, with kustomize built in)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let objects: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect();
    let kinds = |kind: &str| objects.iter().filter(|o| o["kind"] == kind).count();
    assert_eq!(kinds("CustomResourceDefinition"), 3);
    for kind in [
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "StatefulSet",
        "DaemonSet",
        "Deployment",
    ] {
        assert_eq!(kinds(kind), 1, "{kind}");
    }
    // Everything namespaced lands in hearth-system.
    let cluster_scoped = [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    for o in &objects {
        let kind = o["kind"].as_str().unwrap();
        if !cluster_scoped.contains(&kind) {
            assert_eq!(
                o["metadata"]["namespace"], "hearth-system",
                "{kind} {}",
                o["metadata"]["name"]
            );
        }
    }
    // The CRDs are the generated ones, and the images are set once, in the kustomization.
    let generated: Vec<String> = hearth_operator::crd::crds()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    for name in &generated {
        assert!(
            objects
                .iter()
                .any(|o| o["kind"] == "CustomResourceDefinition" && o["metadata"]["name"] == *name),
            "{name}"
        );
    }
    for kind in ["DaemonSet", "Deployment"] {
        let o = objects.iter().find(|o| o["kind"] == kind).unwrap();
        assert_eq!(
            o["spec"]["template"]["spec"]["containers"][0]["image"],
            "localhost/hearth:0.1.0"
        );
    }
    // Hosts have no Kubernetes API access; the operator's role names only what it uses.
    let host_sa = objects
        .iter()
        .find(|o| o["kind"] == "ServiceAccount" && o["metadata"]["name"] == "hearth-host")
        .unwrap();
    assert_eq!(host_sa["automountServiceAccountToken"], false);
    let role = objects.iter().find(|o| o["kind"] == "ClusterRole").unwrap();
    let verbs: Vec<&str> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
        })
        .collect();
    assert!(!verbs.contains(&"*"), "{verbs:?}");
}
