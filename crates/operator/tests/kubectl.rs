//! The real `kubectl` against the stand-in API server (`hearth-kube-standin`; no real API
//! server runs here): a `WorkloadDeployment` applied from the same file `hearth apply
//! --cluster` takes is stored as the CRD type, and `kubectl get wd` shows the printer columns.
//! From an empty server: the CRDs installed from `deploy/crds.yaml`, server-side apply,
//! finalizers holding a deleted `Workload` until a patch removes them, and owned `Workload`s
//! collected with their `WorkloadDeployment` (`kubectl delete` waiting for a foreground one).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use hearth_kube_standin::ApiServer;
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

/// A file in `dir` with `text`; its path.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A `Workload` manifest; `extra` is more `metadata` (YAML flow style).
fn workload(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata: {{name: {name}{extra}}}\nspec: {{components: []}}\n"
    )
}

/// More `metadata` for a `Workload` owned by WorkloadDeployment `name` of `uid`.
fn owned_by(name: &str, uid: &str) -> String {
    format!(
        ", ownerReferences: [{{apiVersion: hearth.dev/v1alpha1, kind: WorkloadDeployment, name: {name}, uid: {uid}, controller: true, blockOwnerDeletion: true}}]"
    )
}

/// The repository root.
fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A server started empty, the CRDs applied from `deploy/crds.yaml` with kubectl, and a
/// scratch directory named for `test`.
fn server_with_crds(test: &str) -> (ApiServer, std::path::PathBuf) {
    let server = ApiServer::start(&[]);
    let dir = std::env::temp_dir().join(format!("hearth-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let crds = repo().join("deploy/crds.yaml");
    let (code, out, err) = kubectl(&server, &dir, &["apply", "-f", crds.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "customresourcedefinition.apiextensions.k8s.io/workloaddeployments.hearth.dev created",
            "customresourcedefinition.apiextensions.k8s.io/workloads.hearth.dev created",
            "customresourcedefinition.apiextensions.k8s.io/hosts.hearth.dev created",
        ]
    );
    (server, dir)
}

/// Runs kubectl and expects success; its output.
fn ok(server: &ApiServer, dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = kubectl(server, dir, args);
    assert_eq!(
        code,
        0,
        "kubectl {args:?}: {out}{err}\nrequests: {:?}",
        server.requests()
    );
    out
}

#[test]
fn kubectl_installs_the_crds_then_applies_server_side_and_finalizers_hold_deletes() {
    let (server, dir) = server_with_crds("kubectl-apply");
    let run = |args: &[&str]| ok(&server, &dir, args);
    assert_eq!(run(&["get", "crd", "-o", "name"]).lines().count(), 3);

    // Server-side apply, twice (create, then a change), and a client-side apply beside it.
    let manifest = repo().join("examples/cluster/deployment.yaml");
    let out = run(&["apply", "--server-side", "-f", manifest.to_str().unwrap()]);
    assert_eq!(
        out.trim(),
        "workloaddeployment.hearth.dev/hello serverside-applied"
    );
    let text = std::fs::read_to_string(&manifest).unwrap();
    let changed = file(
        &dir,
        "changed.yaml",
        &text.replace("replicas: 3", "replicas: 4"),
    );
    run(&["apply", "--server-side", "-f", &changed]);
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
    assert_eq!(stored["metadata"]["managedFields"][0]["manager"], "kubectl");
    let other = file(
        &dir,
        "other.yaml",
        &text.replace("name: hello", "name: other"),
    );
    let out = run(&["apply", "-f", &other]);
    assert_eq!(out.trim(), "workloaddeployment.hearth.dev/other created");
    let out = run(&["get", "wd"]);
    let rows: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(rows, ["hello", "other"], "{out}");

    // A finalizer holds a deleted Workload until a JSON patch removes it.
    let held = workload("held", ", finalizers: [hearth.dev/test]");
    run(&["apply", "-f", &file(&dir, "held.yaml", &held)]);
    let out = run(&["delete", "wl", "held", "--wait=false"]);
    assert_eq!(out.trim(), "workload.hearth.dev \"held\" deleted");
    assert!(
        !run(&[
            "get",
            "wl",
            "held",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}"
        ])
        .is_empty()
    );
    let remove = r#"[{"op": "remove", "path": "/metadata/finalizers/0"}]"#;
    run(&["patch", "wl", "held", "--type=json", "-p", remove]);
    let (code, _, err) = kubectl(&server, &dir, &["get", "wl", "held"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("NotFound"), "{err}");

    // The same with a merge patch.
    let held = workload("held2", ", finalizers: [hearth.dev/test]");
    run(&["apply", "-f", &file(&dir, "held2.yaml", &held)]);
    run(&["delete", "wl", "held2", "--wait=false"]);
    run(&[
        "patch",
        "wl",
        "held2",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    assert!(server.get("workloads", "default", "held2").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kubectl_delete_collects_owned_workloads_and_waits_for_a_foreground_delete() {
    let (server, dir) = server_with_crds("kubectl-gc");
    let run = |args: &[&str]| ok(&server, &dir, args);
    let manifest = repo().join("examples/cluster/deployment.yaml");
    run(&["apply", "-f", manifest.to_str().unwrap()]);
    let text = std::fs::read_to_string(&manifest).unwrap();
    run(&[
        "apply",
        "-f",
        &file(
            &dir,
            "other.yaml",
            &text.replace("name: hello", "name: other"),
        ),
    ]);

    // Background (kubectl's default): the owned Workload goes with its WorkloadDeployment.
    let uid = run(&["get", "wd", "hello", "-o", "jsonpath={.metadata.uid}"]);
    let owned = workload("hello-0", &owned_by("hello", &uid));
    run(&["apply", "-f", &file(&dir, "owned.yaml", &owned)]);
    assert!(server.get("workloads", "default", "hello-0").is_some());
    let out = run(&["delete", "wd", "hello", "--timeout=20s"]);
    assert_eq!(
        out.trim(),
        "workloaddeployment.hearth.dev \"hello\" deleted"
    );
    assert!(server.get("workloads", "default", "hello-0").is_none());

    // Foreground: kubectl watches the owner until its held dependent lets go.
    let uid = run(&["get", "wd", "other", "-o", "jsonpath={.metadata.uid}"]);
    let held = workload(
        "other-0",
        &format!("{}, finalizers: [hearth.dev/test]", owned_by("other", &uid)),
    );
    run(&["apply", "-f", &file(&dir, "held.yaml", &held)]);
    let before = server.requests().len();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let release = r#"{"metadata":{"finalizers":null}}"#;
            run(&["patch", "wl", "other-0", "--type=merge", "-p", release]);
        });
        let out = run(&[
            "delete",
            "wd",
            "other",
            "--cascade=foreground",
            "--timeout=30s",
        ]);
        assert_eq!(
            out.trim(),
            "workloaddeployment.hearth.dev \"other\" deleted"
        );
    });
    assert!(
        server
            .get("workloaddeployments", "default", "other")
            .is_none()
    );
    let list = "GET /apis/hearth.dev/v1alpha1/namespaces/default/workloaddeployments";
    assert!(
        server.requests()[before..].iter().any(|r| r == list),
        "kubectl waited with a list and a watch: {:?}",
        &server.requests()[before..]
    );

    let (code, out, err) = kubectl(&server, &dir, &["get", "wl"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("No resources found"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
