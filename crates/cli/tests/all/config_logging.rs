//! `wasi:config` and `wasi:logging` end to end: values from the manifest with `${env:..}` and
//! `${file:..}` references resolved at deploy, a missing one failing the deploy by name, and
//! guest log records in the host's log with workload, component, context and level.

use crate::support::{Hearth, TempDir, hearth_cmd, run_expecting_failure, wasm};
use std::time::Duration;

fn manifest(config: &str, interfaces: &str) -> String {
    format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: conf\nspec:\n{interfaces}  components:\n    - name: api\n      image: {}\n      http: {{path: /}}\n      config:\n{config}",
        wasm("iface_http")
    )
}

#[test]
fn config_values_resolve_env_and_file_references() {
    let dir = TempDir::new("config");
    let secret = dir.write("secret.txt", "s3cret\n");
    let m = dir.write(
        "w.yaml",
        manifest(
            &format!(
                "        greeting: hello\n        region: \"${{env:HEARTH_TEST_REGION}}-1\"\n        password: \"${{file:{}}}\"\n        literal: \"$${{env:NOT_EXPANDED}}\"\n",
                secret.display()
            ),
            "",
        ),
    );
    let host = Hearth::start_env(&[&m], &[], &[("HEARTH_TEST_REGION", "eu-west")]);
    let get = |p: &str| host.get("any", p);
    assert_eq!(get("/config/greeting").body, "hello");
    assert_eq!(get("/config/region").body, "eu-west-1");
    assert_eq!(get("/config/password").body, "s3cret");
    assert_eq!(get("/config/literal").body, "${env:NOT_EXPANDED}");
    let missing = get("/config/nope");
    assert_eq!((missing.status, missing.body.as_str()), (404, "unset"));
    assert_eq!(
        get("/config").body,
        "greeting=hello\nliteral=${env:NOT_EXPANDED}\npassword=s3cret\nregion=eu-west-1\n"
    );
}

#[test]
fn a_missing_reference_fails_the_deploy_naming_the_key() {
    let dir = TempDir::new("config-missing");
    let m = dir.write(
        "w.yaml",
        manifest("        db: \"${env:HEARTH_SURELY_UNSET}\"\n", ""),
    );
    let err = run_expecting_failure(&m);
    assert!(
        err.contains("spec.components[0].config.db: `${env:HEARTH_SURELY_UNSET}`: the environment variable `HEARTH_SURELY_UNSET` is not set"),
        "{err}"
    );

    // A malformed reference is caught by `hearth validate`, without deploying.
    let m = dir.write("v.yaml", manifest("        db: \"${vault:x}\"\n", ""));
    let (code, _, err) = hearth_cmd(&["validate", m.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "spec.components[0].config.db: `${vault:x}`: expected `${env:NAME}` or `${file:path}`"
        ),
        "{err}"
    );
}

#[test]
fn unknown_interfaces_and_backends_are_named() {
    let dir = TempDir::new("iface-bad");
    let m = dir.write(
        "w.yaml",
        manifest(
            "        a: b\n",
            "  hostInterfaces:\n    - interface: wasi:nn/graph\n      backend: gpu\n    - interface: wasi:config/store\n      backend: vault\n    - interface: wasi:logging\n      backend: tracing\n      config: {level: debug}\n",
        ),
    );
    let (code, _, err) = hearth_cmd(&["validate", m.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("spec.hostInterfaces[0].interface: unknown host interface `wasi:nn/graph`: expected one of wasi:keyvalue"),
        "{err}"
    );
    assert!(
        err.contains("spec.hostInterfaces[1].backend: unknown backend `vault` for `wasi:config`: expected one of manifest"),
        "{err}"
    );
    assert!(
        err.contains(
            "spec.hostInterfaces[2].config.level: unknown key: this backend takes no settings"
        ),
        "{err}"
    );
}

#[test]
fn guest_log_records_carry_workload_component_context_and_level() {
    let dir = TempDir::new("logging");
    let m = dir.write("w.yaml", manifest("        a: b\n", ""));
    let host = Hearth::start(&[&m]);
    for (level, expected) in [("warn", "WARN"), ("error", "ERROR"), ("info", "INFO")] {
        let resp = host.get("any", &format!("/log/{level}?msg=record+at+{level}"));
        assert_eq!(resp.status, 200);
        let line = host.wait_for_log(
            &[&format!("record at {level}"), "\"target\":\"guest\""],
            Duration::from_secs(5),
        );
        assert!(
            line.contains(&format!("\"level\":\"{expected}\"")),
            "{line}"
        );
        assert!(line.contains("\"workload\":\"conf\""), "{line}");
        assert!(line.contains("\"component\":\"api\""), "{line}");
        assert!(line.contains("\"context\":\"iface-http\""), "{line}");
    }
    host.get("any", "/log/critical?msg=on+fire");
    let line = host.wait_for_log(&["on fire"], Duration::from_secs(5));
    assert!(
        line.contains("\"level\":\"ERROR\"") && line.contains("\"critical\":true"),
        "{line}"
    );
}
