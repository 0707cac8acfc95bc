//! `hearth inspect`: kind, exports, and who satisfies each import, as a user reads them.

use crate::support::{TempDir, hearth_cmd, wasm};

#[test]
fn inspect_names_the_kind_and_who_serves_each_import() {
    let (code, out, err) = hearth_cmd(&["inspect", &wasm("msg_handler")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kind:     component (message handler: exports wasmcloud:messaging/handler)"),
        "{out}"
    );
    assert!(out.contains("wasmcloud:messaging/handler@0.2.0"), "{out}");
    let line = |needle: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {out}"))
            .to_string()
    };
    assert!(
        line("wasmcloud:messaging/consumer@0.2.0")
            .ends_with("host interface wasmcloud:messaging: memory (default), nats")
    );
    assert!(line("wasi:config/store").ends_with("host interface wasi:config: manifest (default)"));
    assert!(line("wasi:io/streams").ends_with("wasmtime-wasi"));

    let (code, out, _) = hearth_cmd(&["inspect", &wasm("cron_service")]);
    assert_eq!(code, 0);
    assert!(
        out.contains("kind:     service (exports wasi:cli/run"),
        "{out}"
    );
    assert!(
        out.contains("wasmcloud:example/cron@0.0.1")
            && out.contains("a component of the workload that exports it"),
        "{out}"
    );
}

#[test]
fn inspect_resolves_workload_imports_against_a_manifest_and_reports_json() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/cron/workload.yaml")
        .display()
        .to_string();
    let (code, out, err) = hearth_cmd(&[
        "inspect",
        "--json",
        "--manifest",
        &manifest,
        &wasm("cron_service"),
    ]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cron = doc["imports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "wasmcloud:example/cron@0.0.1")
        .unwrap();
    assert_eq!(cron["satisfiedBy"], "component `job` of workload `cron`");
    assert_eq!(cron["satisfied"], true);
    assert!(doc["size"].as_u64().unwrap() > 1000);

    // The same service against a workload that lacks the export: exit 1, and why.
    let dir = TempDir::new("inspect");
    let m = dir.write(
        "w.yaml",
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: lonely\nspec:\n  components:\n    - name: web\n      image: {}\n      http: {{path: /}}\n",
            wasm("hello")
        ),
    );
    let (code, out, _) = hearth_cmd(&[
        "inspect",
        "--manifest",
        m.to_str().unwrap(),
        &wasm("cron_service"),
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("wasmcloud:example/cron@0.0.1")
            && out.contains("NOT EXPORTED by any component of the workload"),
        "{out}"
    );
}

#[test]
fn inspect_says_neither_for_a_file_that_is_not_a_component() {
    let dir = TempDir::new("inspect-bad");
    let f = dir.write("x.wasm", "definitely not wasm");
    let (code, out, _) = hearth_cmd(&["inspect", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("kind:     neither: not a WebAssembly file"),
        "{out}"
    );
    let core = dir.write("core.wasm", [0, b'a', b's', b'm', 1, 0, 0, 0]);
    let (code, out, _) = hearth_cmd(&["inspect", core.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("neither: a core WebAssembly module"), "{out}");
}
