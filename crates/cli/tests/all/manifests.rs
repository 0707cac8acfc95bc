//! `hearth validate` and `hearth run` refuse bad manifests and bad component files with an
//! error that names the file, the field path and what was expected.

use crate::support::{TempDir, hearth_cmd, wasm, workload};

fn validate(dir: &TempDir, yaml: &str) -> (i32, String) {
    let m = dir.write("w.yaml", yaml);
    let (code, _out, err) = hearth_cmd(&["validate", m.to_str().unwrap()]);
    (code, err)
}

#[test]
fn valid_manifest_passes() {
    let dir = TempDir::new("valid");
    let m = dir.write(
        "w.yaml",
        workload(
            "ok",
            &format!(
                "    - name: h\n      image: {}\n      http: {{}}\n",
                wasm("hello")
            ),
        ),
    );
    let (code, out, err) = hearth_cmd(&["validate", m.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok: workload `ok` (1 component, 1 HTTP route)"),
        "{out}"
    );
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let dir = TempDir::new("notwasm");
    dir.write("fake.wasm", "this is not wasm");
    let (code, err) = validate(
        &dir,
        &workload(
            "bad",
            "    - name: h\n      image: fake.wasm\n      http: {}\n",
        ),
    );
    assert_eq!(code, 2);
    assert!(err.contains("w.yaml: spec.components[0].image:"), "{err}");
    assert!(
        err.contains(
            "fake.wasm` is not a WebAssembly file: expected a component built for `wasm32-wasip2`"
        ),
        "{err}"
    );
}

#[test]
fn a_core_module_is_refused() {
    let dir = TempDir::new("core");
    dir.write("core.wasm", b"\0asm\x01\0\0\0");
    let (code, err) = validate(
        &dir,
        &workload("bad", "    - name: h\n      image: core.wasm\n"),
    );
    assert_eq!(code, 2);
    assert!(err.contains("spec.components[0].image: "), "{err}");
    assert!(
        err.contains("is a core WebAssembly module, not a component"),
        "{err}"
    );
}

#[test]
fn a_component_without_the_http_handler_cannot_be_routed() {
    let dir = TempDir::new("nohandler");
    let (code, err) = validate(
        &dir,
        &workload(
            "bad",
            &format!(
                "    - name: cmd\n      image: {}\n      http: {{ path: /cmd }}\n",
                wasm("cli_hello")
            ),
        ),
    );
    assert_eq!(code, 2);
    assert!(err.contains("spec.components[0].http: "), "{err}");
    assert!(
        err.contains("does not export `wasi:http/incoming-handler`"),
        "{err}"
    );
    assert!(
        err.contains("wasi:cli/run@0.2"),
        "the message should say what it does export: {err}"
    );
    // The same component without a route is fine: it is not asked to handle HTTP.
    let (code, err) = validate(
        &dir,
        &workload(
            "fine",
            &format!("    - name: cmd\n      image: {}\n", wasm("cli_hello")),
        ),
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn run_refuses_the_same_errors_before_listening() {
    let dir = TempDir::new("runbad");
    let m = dir.write(
        "w.yaml",
        workload(
            "bad",
            &format!(
                "    - name: cmd\n      image: {}\n      http: {{}}\n",
                wasm("cli_hello")
            ),
        ),
    );
    let (code, _, err) = hearth_cmd(&["run", "--http", "127.0.0.1:0", m.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("spec.components[0].http: "), "{err}");
}

#[test]
fn manifest_errors_name_file_and_field() {
    let dir = TempDir::new("fields");
    let cases = [
        (
            workload(
                "bad",
                "    - name: h\n      image: h.wasm\n      limits: { memoryMiB: lots }\n",
            ),
            "spec.components[0].limits.memoryMiB: wrong type: found string \"lots\", expected u32",
        ),
        (
            workload(
                "bad",
                "    - name: h\n      image: h.wasm\n      colour: blue\n",
            ),
            "spec.components[0].colour: unknown field `colour`",
        ),
        (
            workload("bad", "    - name: h\n"),
            "spec.components[0]: missing field `image`",
        ),
        (
            workload(
                "bad",
                "    - name: h\n      image: a.wasm\n    - name: h\n      image: b.wasm\n",
            ),
            "spec.components[1].name: duplicate component name `h`",
        ),
        (
            workload(
                "bad",
                "    - name: a\n      image: a.wasm\n      http: { path: /x }\n    - name: b\n      image: b.wasm\n      http: { path: /x/ }\n",
            ),
            "spec.components[1].http: route `*/x` is already taken by spec.components[0].http",
        ),
        (
            workload(
                "bad",
                "    - name: a\n      image: a.wasm\n      http: { path: x }\n",
            ),
            "spec.components[0].http.path: expected a path starting with `/`",
        ),
    ];
    for (yaml, expected) in cases {
        let (code, err) = validate(&dir, &yaml);
        assert_eq!(code, 2, "{yaml}");
        assert!(err.contains("w.yaml: "), "must name the file: {err}");
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
    }
}

#[test]
fn a_service_must_export_wasi_cli_run() {
    let dir = TempDir::new("svcrole");
    let yaml = format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: bad\nspec:\n  service:\n    image: {}\n",
        wasm("hello")
    );
    let (code, err) = validate(&dir, &yaml);
    assert_eq!(code, 2);
    assert!(err.contains("spec.service.image: "), "{err}");
    assert!(
        err.contains("does not export `wasi:cli/run`, which a service must"),
        "{err}"
    );
}

#[test]
fn a_bad_allowed_hosts_entry_names_its_index() {
    let dir = TempDir::new("allowed");
    let yaml = format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: bad\nspec:\n  service:\n    image: {}\n    allowedHosts: [ok.example.com, \"bad.example.com:99999\"]\n",
        wasm("echo")
    );
    let (code, err) = validate(&dir, &yaml);
    assert_eq!(code, 2);
    assert!(
        err.contains("spec.service.allowedHosts[1]: expected "),
        "{err}"
    );
}

#[test]
fn a_publish_port_already_taken_is_a_start_up_error() {
    let dir = TempDir::new("taken");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let m = dir.write(
        "w.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: echo\nspec:\n  service:\n    image: {}\n    ports: [{{ port: 7070, publish: {port} }}]\n",
            wasm("echo")
        ),
    );
    let (code, _, err) = hearth_cmd(&["run", "--http", "127.0.0.1:0", m.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "spec.service.ports[0].publish: cannot publish on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    drop(taken);
}

#[test]
fn every_example_validates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut manifests: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path().join("workload.yaml"))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 6, "{manifests:?}");
    // One at a time: several examples take the same route, as separate demos do.
    for m in &manifests {
        let (code, out, err) = hearth_cmd(&["validate", m]);
        assert_eq!(code, 0, "{m}: {out}{err}");
    }
}
