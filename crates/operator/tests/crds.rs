//! The CRDs: the committed `deploy/crds.yaml` is exactly what the generator prints (a drift
//! check), every schema is *structural* as the Kubernetes API server requires, and the
//! resources take the same documents `hearth apply` does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use hearth_operator::crd::{Host, Workload, WorkloadDeployment, crds, crds_yaml};
use serde_json::Value;
use std::path::Path;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn deploy_crds_yaml_is_what_the_generator_prints() {
    let committed = std::fs::read_to_string(repo("deploy/crds.yaml")).unwrap();
    let generated = crds_yaml().unwrap();
    assert!(
        committed == generated,
        "deploy/crds.yaml is out of date: run `cargo run -p hearth-cli -- operator crd > deploy/crds.yaml`"
    );
}

/// Checks the rules of a structural schema on `node` (at `path`); returns the violations.
fn structural(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(map) = node.as_object() else { return };
    for banned in [
        "oneOf",
        "anyOf",
        "allOf",
        "not",
        "$ref",
        "definitions",
        "$defs",
    ] {
        if map.contains_key(banned) {
            out.push(format!("{path}: `{banned}`"));
        }
    }
    let free = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !free && !int_or_string && !map.contains_key("type") {
        out.push(format!("{path}: no `type`"));
    }
    if map.get("type") == Some(&Value::String("object".into()))
        && !free
        && !map.contains_key("properties")
        && !map.contains_key("additionalProperties")
    {
        out.push(format!(
            "{path}: an object with neither properties nor additionalProperties"
        ));
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        out.push(format!("{path}: both properties and additionalProperties"));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            structural(child, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = map.get("items") {
        structural(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = map.get("additionalProperties").filter(|v| v.is_object()) {
        structural(extra, &format!("{path}.*"), out);
    }
}

#[test]
fn every_schema_is_structural() {
    for crd in crds() {
        let crd = serde_json::to_value(&crd).unwrap();
        let name = crd["metadata"]["name"].as_str().unwrap().to_string();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let mut problems = Vec::new();
            structural(&version["schema"]["openAPIV3Schema"], &name, &mut problems);
            assert!(
                problems.is_empty(),
                "{name} is not structural:\n{}",
                problems.join("\n")
            );
        }
    }
}

#[test]
fn names_scopes_subresources_and_columns() {
    let all: Vec<Value> = crds()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    let find = |kind: &str| {
        all.iter()
            .find(|c| c["spec"]["names"]["kind"] == kind)
            .unwrap()
            .clone()
    };

    let wd = find("WorkloadDeployment");
    assert_eq!(wd["metadata"]["name"], "workloaddeployments.hearth.dev");
    assert_eq!(wd["spec"]["group"], "hearth.dev");
    assert_eq!(wd["spec"]["names"]["shortNames"][0], "wd");
    assert_eq!(wd["spec"]["scope"], "Namespaced");
    let v = &wd["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert_eq!(
        v["subresources"]["scale"]["specReplicasPath"],
        ".spec.replicas"
    );
    assert_eq!(
        v["subresources"]["scale"]["statusReplicasPath"],
        ".status.replicas"
    );
    assert_eq!(
        v["subresources"]["scale"]["labelSelectorPath"],
        ".status.selector"
    );
    assert!(v["subresources"]["status"].is_object());
    let columns: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["DESIRED", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    let conditions =
        &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(conditions["x-kubernetes-list-map-keys"][0], "type");
    let strategy = &v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["strategy"];
    assert_eq!(
        strategy["properties"]["type"]["enum"],
        serde_json::json!(["RollingUpdate", "Recreate"])
    );
    assert_eq!(
        strategy["properties"]["rollingUpdate"]["properties"]["maxSurge"]["x-kubernetes-int-or-string"],
        true
    );

    let workload = find("Workload");
    let columns: Vec<&str> = workload["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["HOST", "STATE", "AGE"]);
    assert_eq!(find("Host")["spec"]["scope"], "Cluster");
}

#[test]
fn the_resources_take_the_documents_hearth_apply_takes() {
    // The cluster example, as `kubectl apply` would send it.
    let text = std::fs::read_to_string(repo("examples/cluster/deployment.yaml")).unwrap();
    let wd: WorkloadDeployment = serde_yaml::from_str(&text).unwrap();
    assert_eq!(wd.spec.replicas, 3);
    assert_eq!(wd.spec.template.spec.components[0].name, "hello");
    // And a single workload.
    let text = std::fs::read_to_string(repo("examples/hello/workload.yaml")).unwrap();
    let w: Workload = serde_yaml::from_str(&text).unwrap();
    assert_eq!(w.spec.components.len(), 2);
    // A typo is refused, as `hearth validate` refuses it.
    let typo = text.replace(
        "    - name: hello\n",
        "    - name: hello\n      imagee: x\n",
    );
    let err = serde_yaml::from_str::<Workload>(&typo)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `imagee`"), "{err}");
    let _ = Host::new(
        "h1",
        hearth_operator::crd::HostSpec {
            host_id: "h1".into(),
        },
    );
}
