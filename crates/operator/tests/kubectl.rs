//! The real `kubectl` against the stand-in API server (`support/apiserver.rs`; no real API
//! server runs here): a `WorkloadDeployment` applied from the same file `hearth apply
//! --cluster` takes is stored as the CRD type, and `kubectl get wd` shows the printer columns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

#[path = "support/apiserver.rs"]
mod apiserver;

use apiserver::ApiServer;
use std::path::Path;
use std::process::Command;

fn kubectl(server: &ApiServer, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let config = server.kubeconfig(dir);
    let out = Command::new("kubectl")
        .args(args)
        .arg("--kubeconfig")
        .arg(&config)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .output()
        .expect("kubectl (on this machine)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kubectl_applies_a_workload_deployment_and_lists_it_with_its_columns() {
    let crds: Vec<serde_json::Value> = hearth_operator::crd::crds()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    let server = ApiServer::start(&crds);
    let dir = std::env::temp_dir().join(format!("hearth-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cluster/deployment.yaml");

    let (code, out, err) = kubectl(&server, &dir, &["apply", "-f", manifest.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}\nrequests: {:?}", server.requests());
    assert_eq!(out.trim(), "workloaddeployment.hearth.dev/hello created");
    let stored = server
        .get("workloaddeployments", "default", "hello")
        .unwrap();
    let wd: hearth_operator::crd::WorkloadDeployment =
        serde_json::from_value(stored.clone()).unwrap();
    assert_eq!(wd.spec.replicas, 3);
    assert_eq!(stored["metadata"]["generation"], 1);
    // kubectl records what it applied, for its next three-way merge.
    assert!(
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    let (code, out, err) = kubectl(&server, &dir, &["get", "wd"]);
    assert_eq!(code, 0, "{err}");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "DESIRED", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    // No status yet: READY, UP-TO-DATE and AVAILABLE are blank, as for a real server.
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["hello", "3"], "{out}");
    assert!(
        row.last().unwrap().ends_with('s'),
        "an age in seconds: {out}"
    );

    // A changed file: `configured`, a merge patch, a new generation.
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("replicas: 3", "replicas: 4");
    let changed = dir.join("changed.yaml");
    std::fs::write(&changed, text).unwrap();
    let (code, out, err) = kubectl(&server, &dir, &["apply", "-f", changed.to_str().unwrap()]);
    assert_eq!(
        (code, out.trim()),
        (0, "workloaddeployment.hearth.dev/hello configured"),
        "{err}"
    );
    let stored = server
        .get("workloaddeployments", "default", "hello")
        .unwrap();
    assert_eq!(
        (
            stored["spec"]["replicas"].as_u64(),
            stored["metadata"]["generation"].as_i64()
        ),
        (Some(4), Some(2))
    );

    // `kubectl scale` goes through the scale subresource.
    let (code, out, err) = kubectl(&server, &dir, &["scale", "wd/hello", "--replicas=5"]);
    assert_eq!(
        (code, out.trim()),
        (0, "workloaddeployment.hearth.dev/hello scaled"),
        "{err}\n{:?}",
        server.requests()
    );
    let stored = server
        .get("workloaddeployments", "default", "hello")
        .unwrap();
    assert_eq!(
        (
            stored["spec"]["replicas"].as_u64(),
            stored["metadata"]["generation"].as_i64()
        ),
        (Some(5), Some(3))
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.ends_with("/workloaddeployments/hello/scale"))
    );

    // By its short name and its full name too.
    let (code, out, _) = kubectl(
        &server,
        &dir,
        &[
            "get",
            "workloaddeployments.hearth.dev",
            "hello",
            "-o",
            "jsonpath={.spec.template.spec.components[0].name}",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "hello"));
    let _ = std::fs::remove_dir_all(&dir);
}
