//! Manifest parsing and validation: good documents normalise, bad ones name the field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use hearth_manifest::{ManifestErrors, Workload, WorkloadKind, parse_str};
use std::path::Path;

fn parse(text: &str) -> Result<Vec<Workload>, ManifestErrors> {
    parse_str(Path::new("/manifests/app.yaml"), text)
}

/// Parses `text`, expects exactly one error, and returns its rendered message.
fn one_error(text: &str) -> String {
    let errors = parse(text).expect_err("manifest should be rejected");
    assert_eq!(errors.0.len(), 1, "expected one error, got: {errors}");
    let msg = errors.to_string();
    assert!(
        msg.starts_with("/manifests/app.yaml: "),
        "error must name the file: {msg}"
    );
    msg
}

const GOOD: &str = r#"
apiVersion: hearth.dev/v1alpha1
kind: Workload
metadata:
  name: hello
spec:
  components:
    - name: hello
      image: ./hello.wasm
      http:
        host: hello.localhost
        path: /
      limits: { memoryMiB: 32, timeoutMs: 1000, maxConcurrency: 8 }
      env: { GREETING: hi }
      config: { key: value }
    - name: worker
      image: /abs/worker.wasm
"#;

#[test]
fn good_workload_normalises() {
    let w = parse(GOOD).unwrap();
    assert_eq!(w.len(), 1);
    let w = &w[0];
    assert_eq!(w.name, "hello");
    assert_eq!(w.kind, WorkloadKind::Workload);
    assert_eq!(w.replicas, 1);
    let c = &w.spec.components[0];
    assert_eq!(c.limits.memory_mib, 32);
    assert_eq!(c.limits.max_concurrency, 8);
    assert_eq!(c.env["GREETING"], "hi");
    assert_eq!(
        c.image_ref(&w.source),
        hearth_manifest::ImageRef::File("/manifests/./hello.wasm".into())
    );
    let worker = &w.spec.components[1];
    assert!(worker.http.is_none());
    assert_eq!(worker.limits, hearth_manifest::Limits::default());
}

#[test]
fn deployment_kind_and_several_documents() {
    let text = r#"
apiVersion: hearth.dev/v1alpha1
kind: WorkloadDeployment
metadata: { name: one }
spec:
  replicas: 3
  template:
    metadata: { labels: { app: one } }
    spec:
      components:
        - { name: a, image: a.wasm, http: { path: /a } }
---
apiVersion: hearth.dev/v1alpha1
kind: Workload
metadata: { name: two }
spec:
  components:
    - { name: b, image: b.wasm, http: { path: /b/ } }
---
"#;
    let w = parse(text).unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(w[0].kind, WorkloadKind::WorkloadDeployment);
    assert_eq!(w[0].replicas, 3);
    assert_eq!(w[0].labels["app"], "one");
    assert_eq!(w[0].spec.components[0].http.as_ref().unwrap().path, "/a");
    assert_eq!(w[1].source.document, 1);
}

#[test]
fn unknown_field_names_its_path() {
    let msg = one_error(&GOOD.replace("path: /\n", "path: /\n        weight: 3\n"));
    assert!(
        msg.contains(
            "spec.components[0].http.weight: unknown field `weight`, expected `host` or `path`"
        ),
        "{msg}"
    );
}

#[test]
fn wrong_type_names_its_path() {
    let msg = one_error(&GOOD.replace("maxConcurrency: 8", "maxConcurrency: lots"));
    assert!(
        msg.contains("spec.components[0].limits.maxConcurrency: "),
        "{msg}"
    );
    assert!(msg.contains("found string \"lots\""), "{msg}");
    assert!(msg.contains("expected u32"), "{msg}");
}

#[test]
fn missing_field_names_its_parent() {
    let msg = one_error(&GOOD.replace("      image: /abs/worker.wasm\n", ""));
    assert!(
        msg.contains("spec.components[1]: missing field `image`"),
        "{msg}"
    );
}

#[test]
fn duplicate_component_name() {
    let msg = one_error(&GOOD.replace("name: worker", "name: hello"));
    assert!(
        msg.contains("spec.components[1].name: duplicate component name `hello`"),
        "{msg}"
    );
    assert!(msg.contains("spec.components[0].name"), "{msg}");
}

#[test]
fn path_must_start_with_slash() {
    let msg = one_error(&GOOD.replace("path: /\n", "path: api\n"));
    assert!(
        msg.contains(
            "spec.components[0].http.path: expected a path starting with `/`, found `api`"
        ),
        "{msg}"
    );
}

#[test]
fn same_route_twice_in_a_workload() {
    let text = GOOD.replace(
        "image: /abs/worker.wasm",
        "image: /abs/worker.wasm\n      http: { host: Hello.Localhost, path: / }",
    );
    let msg = one_error(&text);
    assert!(msg.contains("spec.components[1].http: route `hello.localhost/` is already taken by spec.components[0].http"), "{msg}");
}

#[test]
fn same_route_across_files() {
    let dir = std::env::temp_dir().join(format!("hearth-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.yaml");
    let b = dir.join("b.yaml");
    std::fs::write(&a, GOOD).unwrap();
    std::fs::write(&b, GOOD.replace("name: hello\nspec", "name: other\nspec")).unwrap();
    let errors = hearth_manifest::load_files(&[&a, &b])
        .unwrap_err()
        .to_string();
    assert!(errors.contains("b.yaml: spec.components[0].http: route `hello.localhost/` is already taken by workload `hello`"), "{errors}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_kind_and_api_version() {
    let msg = one_error(&GOOD.replace("kind: Workload", "kind: Deployment"));
    assert!(
        msg.contains("kind: expected `Workload` or `WorkloadDeployment`, found `Deployment`"),
        "{msg}"
    );
    let msg = one_error(&GOOD.replace("hearth.dev/v1alpha1", "apps/v1"));
    assert!(
        msg.contains("apiVersion: expected `hearth.dev/v1alpha1`, found `apps/v1`"),
        "{msg}"
    );
}

#[test]
fn limits_out_of_range() {
    let msg = one_error(&GOOD.replace("memoryMiB: 32", "memoryMiB: 0"));
    assert!(
        msg.contains("spec.components[0].limits.memoryMiB: expected 1 to 4096, found 0"),
        "{msg}"
    );
}

#[test]
fn bad_names_and_hosts() {
    let msg = one_error(&GOOD.replace("name: worker", "name: Worker_1"));
    assert!(
        msg.contains("spec.components[1].name: expected a DNS label"),
        "{msg}"
    );
    let msg = one_error(&GOOD.replace("host: hello.localhost", "host: hello.localhost:8080"));
    assert!(
        msg.contains("spec.components[0].http.host: expected a host name without scheme or port"),
        "{msg}"
    );
}

#[test]
fn deployment_errors_use_template_path() {
    let text = r#"
apiVersion: hearth.dev/v1alpha1
kind: WorkloadDeployment
metadata: { name: dep }
spec:
  replicas: 2
  template:
    spec:
      components:
        - { name: a, image: a.wasm, http: { path: nope } }
"#;
    let msg = one_error(text);
    assert!(
        msg.contains(
            "spec.template.spec.components[0].http.path: expected a path starting with `/`"
        ),
        "{msg}"
    );
}

#[test]
fn several_documents_report_all_errors_with_document_numbers() {
    let text = format!(
        "{GOOD}\n---\n{}",
        GOOD.replace("name: hello\nspec", "name: Bad\nspec")
    );
    let errors = parse(&text).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert!(
        errors
            .to_string()
            .contains("document 2: metadata.name: expected a DNS label"),
        "{errors}"
    );
}

#[test]
fn yaml_syntax_error_and_non_mapping() {
    let errors = parse("apiVersion: [unclosed").unwrap_err().to_string();
    assert!(errors.contains("not valid YAML"), "{errors}");
    let errors = parse("- just\n- a list\n").unwrap_err().to_string();
    assert!(
        errors.contains("expected a mapping with apiVersion, kind, metadata and spec"),
        "{errors}"
    );
}

#[test]
fn oci_references_parse_with_their_pull_policy() {
    let w = parse(&GOOD.replace(
        "./hello.wasm",
        "oci://127.0.0.1:5000/acme/hello:v1\n      imagePullPolicy: Always",
    ))
    .unwrap();
    assert_eq!(
        w[0].spec.components[0].image_ref(&w[0].source),
        hearth_manifest::ImageRef::Oci {
            reference: hearth_manifest::OciReference::parse("127.0.0.1:5000/acme/hello:v1")
                .unwrap(),
            policy: hearth_manifest::PullPolicy::Always,
        }
    );
    let w = parse(&GOOD.replace("./hello.wasm", "oci://ghcr.io/x/y")).unwrap();
    let hearth_manifest::ImageRef::Oci { reference, policy } =
        w[0].spec.components[0].image_ref(&w[0].source)
    else {
        panic!("not an OCI image")
    };
    assert_eq!(reference.tag.as_deref(), Some("latest"));
    assert_eq!(policy, hearth_manifest::PullPolicy::IfNotPresent);

    let digest = format!("sha256:{}", "ab".repeat(32));
    let w = parse(&WITH_SERVICE.replace(
        "    image: ./cache.wasm\n",
        &format!("    image: oci://ghcr.io/acme/cache@{digest}\n    imagePullPolicy: Never\n"),
    ))
    .unwrap();
    let service = w[0].spec.service.as_ref().unwrap();
    let hearth_manifest::ImageRef::Oci { reference, policy } = service.image_ref(&w[0].source)
    else {
        panic!("not an OCI image")
    };
    assert_eq!(reference.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(reference.tag, None);
    assert_eq!(policy, hearth_manifest::PullPolicy::Never);
}

#[test]
fn bad_oci_references_and_policies_name_the_field() {
    let msg = one_error(&GOOD.replace("./hello.wasm", "oci://hello:v1"));
    assert!(
        msg.contains("spec.components[0].image: expected `oci://REGISTRY/REPOSITORY:TAG` or `oci://REGISTRY/REPOSITORY@sha256:DIGEST`, found `oci://hello:v1`: a registry is required"),
        "{msg}"
    );
    let msg = one_error(&GOOD.replace("./hello.wasm", "https://ghcr.io/x/y:1"));
    assert!(
        msg.contains("spec.components[0].image: `https://ghcr.io/x/y:1`: expected a file path relative to the manifest or `oci://"),
        "{msg}"
    );
    let msg =
        one_error(&GOOD.replace("./hello.wasm", "./hello.wasm\n      imagePullPolicy: Never"));
    assert!(
        msg.contains("spec.components[0].imagePullPolicy: `Never` applies to `oci://` images only"),
        "{msg}"
    );
    let msg = one_error(&GOOD.replace(
        "./hello.wasm",
        "oci://ghcr.io/x/y:1\n      imagePullPolicy: Sometimes",
    ));
    assert!(
        msg.contains("spec.components[0].imagePullPolicy") && msg.contains("IfNotPresent"),
        "{msg}"
    );
}

const WITH_SERVICE: &str = r#"
apiVersion: hearth.dev/v1alpha1
kind: Workload
metadata:
  name: cache
spec:
  components:
    - name: web
      image: web.wasm
      http: { path: / }
      allowedHosts: [api.example.com]
  service:
    image: ./cache.wasm
    env: { CACHE_PORT: "6380" }
    ports:
      - port: 6380
      - { port: 7070, publish: 17070 }
    restart: { policy: always, maxRestarts: 5 }
    allowedHosts: ["db.internal:5432", "*.example.com"]
"#;

#[test]
fn service_normalises_with_defaults() {
    let w = parse(WITH_SERVICE).unwrap();
    let s = w[0].spec.service.as_ref().unwrap();
    assert_eq!(s.ports[1].publish, Some(17070));
    assert_eq!(s.restart.policy, hearth_manifest::RestartPolicy::Always);
    assert_eq!(s.restart.max_restarts, Some(5));
    assert_eq!(s.allowed_hosts.len(), 2);
    assert_eq!(
        s.limits.memory_mib,
        hearth_manifest::DEFAULT_SERVICE_MEMORY_MIB
    );
    assert_eq!(w[0].spec.components[0].allowed_hosts, ["api.example.com"]);
    let minimal =
        parse(&WITH_SERVICE.replace("    restart: { policy: always, maxRestarts: 5 }\n", ""))
            .unwrap();
    let restart = minimal[0].spec.service.as_ref().unwrap().restart;
    assert_eq!(restart.policy, hearth_manifest::RestartPolicy::OnFailure);
    assert_eq!(restart.max_restarts, None);
}

#[test]
fn a_service_alone_is_a_workload() {
    let text = "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata: { name: echo }\nspec:\n  service: { image: echo.wasm }\n";
    assert!(parse(text).is_ok());
    let empty =
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata: { name: echo }\nspec: {}\n";
    assert!(
        one_error(empty).contains("spec.components: expected at least one component or a service")
    );
}

#[test]
fn more_than_one_service_is_refused() {
    let text = WITH_SERVICE.replace("  service:\n    image: ./cache.wasm\n", "  service:\n    - image: ./cache.wasm\n    - image: ./other.wasm\n  unused:\n    image: ./cache.wasm\n");
    let msg = one_error(&text);
    assert!(
        msg.contains(
            "spec.service: expected one service (a mapping with `image`), found a list of 2"
        ),
        "{msg}"
    );
}

#[test]
fn bad_restart_policy_names_the_field() {
    let msg = one_error(&WITH_SERVICE.replace("policy: always", "policy: sometimes"));
    assert!(msg.contains("spec.service.restart.policy: unknown variant `sometimes`, expected one of `always`, `on-failure`, `never`"), "{msg}");
}

#[test]
fn service_ports_are_checked() {
    let msg = one_error(&WITH_SERVICE.replace("- port: 6380", "- port: 7070"));
    assert!(
        msg.contains(
            "spec.service.ports[1].port: port 7070 is already listed at spec.service.ports[0]"
        ),
        "{msg}"
    );
    let msg = one_error(&WITH_SERVICE.replace("- port: 6380", "- port: 70000"));
    assert!(msg.contains("spec.service.ports[0].port: "), "{msg}");
    assert!(msg.contains("expected u16"), "{msg}");
}

#[test]
fn a_published_port_is_published_once_across_workloads() {
    let text = format!(
        "{WITH_SERVICE}---\n{}",
        WITH_SERVICE
            .replace("name: cache", "name: cache2")
            .replace("path: /", "path: /two")
    );
    let msg = one_error(&text);
    assert!(msg.contains("document 2: spec.service.ports[1].publish: host port 17070 is already published by workload `cache`"), "{msg}");
}

#[test]
fn links_name_a_component_and_an_interface() {
    let text = GOOD.to_string()
        + "  links:\n    - { import: acme:cache/api@0.1.0, component: worker }\n    - { import: nonsense, component: nobody }\n";
    let errors = parse(&text).unwrap_err().to_string();
    assert!(errors.contains("spec.links[1].import: expected an interface like `ns:pkg/iface@1.0.0`, found `nonsense`"), "{errors}");
    assert!(errors.contains("spec.links[1].component: expected the name of a component of this workload, found `nobody`"), "{errors}");
    assert!(!errors.contains("links[0]"), "{errors}");
}

#[test]
fn build_defaults_and_resolves_against_the_manifest() {
    let text = WITH_SERVICE
        .replace(
            "      allowedHosts: [api.example.com]\n",
            "      allowedHosts: [api.example.com]\n      build: { path: web, watch: [web/src, Cargo.toml] }\n",
        )
        .replace(
            "    image: ./cache.wasm\n",
            "    image: ./cache.wasm\n    build: { command: make cache.wasm }\n",
        );
    let w = parse(&text).unwrap();
    let web = w[0].spec.components[0].build.as_ref().unwrap();
    assert_eq!(web.path, "web");
    assert_eq!(web.command, None);
    assert_eq!(
        web.watch.as_deref(),
        Some(&["web/src".to_string(), "Cargo.toml".to_string()][..])
    );
    assert_eq!(web.dir(&w[0].source), Path::new("/manifests/web"));
    let service = w[0].spec.service.as_ref().unwrap().build.as_ref().unwrap();
    assert_eq!(service.path, ".");
    assert_eq!(service.command.as_deref(), Some("make cache.wasm"));
    assert_eq!(service.watch, None);
    assert!(parse(GOOD).unwrap()[0].spec.components[0].build.is_none());
}

#[test]
fn build_is_checked_for_shape() {
    let msg = one_error(&WITH_SERVICE.replace(
        "    image: ./cache.wasm\n",
        "    image: ./cache.wasm\n    build: { command: \" \" }\n",
    ));
    assert!(
        msg.contains("spec.service.build.command: expected a shell command"),
        "{msg}"
    );
    let msg = one_error(&WITH_SERVICE.replace(
        "      allowedHosts: [api.example.com]\n",
        "      allowedHosts: [api.example.com]\n      build: { path: \"\" }\n",
    ));
    assert!(
        msg.contains("spec.components[0].build.path: expected a directory"),
        "{msg}"
    );
    let msg = one_error(&WITH_SERVICE.replace(
        "      allowedHosts: [api.example.com]\n",
        "      allowedHosts: [api.example.com]\n      build: { dir: web }\n",
    ));
    assert!(
        msg.contains("spec.components[0].build.dir: unknown field `dir`, expected one of `path`, `command`, `watch`"),
        "{msg}"
    );
}
