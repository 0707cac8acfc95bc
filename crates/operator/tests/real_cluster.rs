//! The operator's flow against a **real** Kubernetes cluster: ignored by default, because
//! no cluster can run on the machine the other tests run on (they use the stand-in API
//! server instead). Where a cluster exists, this is how to check the real thing:
//!
//! ```text
//! kind create cluster --name hearth                    # or: k3d cluster create hearth
//! podman build -t localhost/hearth:0.1.0 -f Containerfile .
//! podman save localhost/hearth:0.1.0 -o hearth.tar && kind load image-archive hearth.tar --name hearth
//! hearth push guests/target/wasm32-wasip2/release/hello.wasm oci://REGISTRY/hello:v1
//! HEARTH_TEST_COMPONENT=oci://REGISTRY/hello:v1 \
//!   cargo test -p hearth-operator --test real_cluster -- --ignored --nocapture
//! ```
//!
//! It uses the current kubectl context, installs `deploy/` (`kubectl apply -k`), waits for
//! the operator and hosts to roll out, then applies a `WorkloadDeployment` in namespace
//! `hearth-e2e`, waits for it to be ready, scales it, checks the `Host` objects, deletes
//! it and waits for its `Workload`s to go. The component must be pullable by the hosts'
//! pods.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn kubectl(args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl on PATH");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(args: &[&str]) -> String {
    let (ok, text) = kubectl(args);
    assert!(ok, "kubectl {args:?}: {text}");
    text
}

fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn ready(name: &str, n: u64) -> bool {
    let (ok, text) = kubectl(&["-n", "hearth-e2e", "get", "wd", name, "-o", "json"]);
    let Some(wd) = ok
        .then(|| serde_json::from_str::<Value>(&text).ok())
        .flatten()
    else {
        return false;
    };
    let s = &wd["status"];
    s["observedGeneration"] == wd["metadata"]["generation"]
        && s["readyReplicas"] == n
        && s["updatedReplicas"] == n
}

#[test]
#[ignore = "needs a real Kubernetes cluster with the hearth image; see the module doc"]
fn a_workload_deployment_runs_scales_and_goes_on_a_real_cluster() {
    let component = std::env::var("HEARTH_TEST_COMPONENT").expect(
        "HEARTH_TEST_COMPONENT: an oci:// reference of a wasi:http component the cluster can pull",
    );
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    ok(&["apply", "-k", deploy.to_str().unwrap()]);
    for what in [
        "deployment/hearth-operator",
        "daemonset/hearth-host",
        "statefulset/nats",
    ] {
        ok(&[
            "-n",
            "hearth-system",
            "rollout",
            "status",
            what,
            "--timeout=300s",
        ]);
    }
    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{ name: hearth-e2e }}\n---\napiVersion: hearth.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata: {{ name: e2e, namespace: hearth-e2e }}\nspec:\n  replicas: 2\n  template:\n    spec:\n      components:\n        - name: hello\n          image: {component}\n          http: {{ path: /e2e }}\n"
    );
    let file = std::env::temp_dir().join("hearth-real-cluster.yaml");
    std::fs::write(&file, manifest).unwrap();
    ok(&["apply", "-f", file.to_str().unwrap()]);
    wait_for("2 ready replicas", Duration::from_secs(300), || {
        ready("e2e", 2)
    });

    ok(&["-n", "hearth-e2e", "scale", "wd/e2e", "--replicas=3"]);
    wait_for("3 ready replicas", Duration::from_secs(180), || {
        ready("e2e", 3)
    });
    let hosts = ok(&["get", "hosts"]);
    assert!(hosts.contains("True"), "no ready Host: {hosts}");
    let workloads = ok(&["-n", "hearth-e2e", "get", "workloads"]);
    assert_eq!(workloads.matches("ready").count(), 3, "{workloads}");

    ok(&["-n", "hearth-e2e", "delete", "wd", "e2e", "--timeout=120s"]);
    wait_for("the Workloads gone", Duration::from_secs(120), || {
        kubectl(&["-n", "hearth-e2e", "get", "workloads", "-o", "name"])
            .1
            .trim()
            .is_empty()
    });
    ok(&["delete", "namespace", "hearth-e2e", "--timeout=120s"]);
}
