//! OCI distribution end to end: `hearth push`/`pull`/`login`/`logout` and `image: oci://...`
//! against a real registry (Debian's `docker-registry`, the CNCF distribution registry) on a
//! free loopback port with filesystem storage in a temp dir, optionally behind htpasswd
//! (bcrypt, made with `htpasswd -B`). `scripts/setup` installs both. Every `hearth` process
//! gets its own HOME, XDG and DOCKER_CONFIG directories, so nothing touches the real home.

use crate::support::{Hearth, TempDir, free_port, run_expecting_failure_with, wasm, workload};
use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `docker-registry serve` process on `127.0.0.1:port`, killed on drop.
struct Registry {
    dir: TempDir,
    port: u16,
    child: Child,
}

impl Registry {
    fn start() -> Self {
        Self::start_with(None)
    }

    /// With `Some((user, password))`, the registry wants HTTP Basic credentials.
    fn start_with(auth: Option<(&str, &str)>) -> Self {
        let dir = TempDir::new("registry");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: hearth-test\n",
            dir.0.join("data").display()
        );
        if let Some((user, password)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .unwrap_or_else(|e| panic!("cannot run htpasswd ({e}); run scripts/setup"));
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.write("htpasswd", out.stdout);
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: hearth-test\n    path: {}\n",
                file.display()
            ));
        }
        let config = dir.write("config.yml", config);
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start docker-registry ({e}); run scripts/setup to install it")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { dir, port, child }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every stored blob's `data` file.
    fn blobs(&self) -> Vec<PathBuf> {
        files_under(&self.dir.0.join("data/docker/registry/v2/blobs"))
            .into_iter()
            .filter(|p| p.ends_with("data"))
            .collect()
    }

    /// The stored blob whose content is exactly `bytes`.
    fn blob_with(&self, bytes: &[u8]) -> PathBuf {
        self.blobs()
            .into_iter()
            .find(|p| std::fs::read(p).unwrap() == bytes)
            .expect("the registry stores the pushed bytes")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A private HOME, config, cache and Docker config directory for `hearth` processes.
struct Home(TempDir);

impl Home {
    fn new() -> Self {
        Self(TempDir::new("oci-home"))
    }

    fn env(&self) -> Vec<(String, String)> {
        let at = |p: &str| self.0.0.join(p).display().to_string();
        vec![
            ("HOME".into(), at("home")),
            ("XDG_CONFIG_HOME".into(), at("config")),
            ("XDG_CACHE_HOME".into(), at("cache")),
            ("DOCKER_CONFIG".into(), at("docker")),
            ("RUST_LOG".into(), "warn".into()),
        ]
    }

    fn oci_cache(&self) -> PathBuf {
        self.0.0.join("cache/hearth/oci")
    }

    /// Runs `hearth ARGS` (feeding `stdin`), returning (exit code, stdout, stderr).
    fn hearth(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `hearth push FILE REF`, expected to succeed; returns the digest it printed.
    fn push(&self, file: &str, reference: &str) -> String {
        let (code, out, err) = self.hearth(&["push", file, reference], "");
        assert_eq!(code, 0, "push failed: {err}");
        let digest = out.trim().to_string();
        assert!(is_digest(&digest), "push printed {out:?}");
        digest
    }

    /// `hearth pull REF`, expected to succeed; returns (digest, path).
    fn pull(&self, reference: &str) -> (String, PathBuf) {
        let (code, out, err) = self.hearth(&["pull", reference], "");
        assert_eq!(code, 0, "pull failed: {err}");
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no `{name}` in {out:?}"))
                .trim()
                .to_string()
        };
        (field("digest:"), PathBuf::from(field("path:")))
    }

    /// Starts `hearth run` on `manifests` with this environment.
    fn run(&self, manifests: &[&Path]) -> Hearth {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Hearth::start_env(manifests, &[], &env)
    }

    /// Runs `hearth run` expecting it to fail before serving; returns its stderr and the HTTP
    /// address it was asked to listen on.
    fn run_failing(&self, manifest: &Path) -> (String, std::net::SocketAddr) {
        let http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let err = run_expecting_failure_with(manifest, &["--http", &http.to_string()], &self.env());
        (err, http)
    }
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One HTTP component at `/` whose image is `image`, with extra manifest lines.
fn one_component(name: &str, image: &str, extra: &str) -> String {
    workload(
        name,
        &format!("    - name: web\n      image: {image}\n      http: {{ path: / }}\n{extra}"),
    )
}

#[test]
fn push_then_pull_is_byte_exact_with_the_same_digest() {
    let registry = Registry::start();
    let home = Home::new();
    let reference = format!("{}/acme/hello:v1", registry.host());
    let pushed = home.push(&wasm("hello"), &reference);

    let (digest, path) = home.pull(&reference);
    assert_eq!(digest, pushed);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(wasm("hello")).unwrap(),
        "the pulled component is the pushed file, byte for byte"
    );
    assert!(
        path.starts_with(home.oci_cache()),
        "{} is in the cache",
        path.display()
    );
    // The `oci://` prefix is accepted, and pushing the same file again gives the same layer.
    let (again, _) = home.pull(&format!("oci://{reference}"));
    assert_eq!(again, pushed);
    // `hearth inspect` takes the reference too.
    let (code, out, err) = home.hearth(&["inspect", &format!("oci://{reference}")], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kind:     component (HTTP handler: exports wasi:http/incoming-handler)"),
        "{out}"
    );

    // Bad usage is exit 2, with what was expected.
    let (code, _, err) = home.hearth(&["push", &wasm("hello"), "hello:v1"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("a registry is required"), "{err}");
    let dir = TempDir::new("oci-notwasm");
    let text = dir.write("notes.txt", "not wasm");
    let (code, _, err) = home.hearth(&["push", &text.display().to_string(), &reference], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a WebAssembly file"), "{err}");
    let (code, _, err) = home.hearth(&["pull", "ghcr.io/Acme/x:1"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the repository `Acme/x` must be"), "{err}");
}

#[test]
fn run_serves_a_component_from_the_registry() {
    let registry = Registry::start();
    let home = Home::new();
    home.push(&wasm("hello"), &format!("{}/hello:v1", registry.host()));
    let dir = TempDir::new("oci-run");
    let manifest = dir.write(
        "w.yaml",
        one_component(
            "from-registry",
            &format!("oci://{}/hello:v1", registry.host()),
            "",
        ),
    );
    let host = home.run(&[&manifest]);
    let resp = host.get("localhost", "/");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "hello from hearth\n");
    host.wait_for_log(&["image ready", "oci://127.0.0.1"], Duration::from_secs(5));
}

#[test]
fn a_pinned_digest_is_verified_and_served_from_the_cache() {
    let mut registry = Registry::start();
    let home = Home::new();
    let name = format!("{}/hello", registry.host());
    let digest = home.push(&wasm("hello"), &format!("{name}:v1"));

    // Pulling by digest gives that digest; a digest the registry does not have is unknown.
    let (pulled, _) = home.pull(&format!("{name}@{digest}"));
    assert_eq!(pulled, digest);
    let other = format!("sha256:{}", "0".repeat(64));
    let (code, _, err) = home.hearth(&["pull", &format!("{name}@{other}")], "");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("manifest unknown: {name}@{other} does not exist")),
        "{err}"
    );

    // A manifest that does not hash to the pinned digest is refused and not cached.
    let fresh = Home::new();
    let manifest_blob = registry
        .blobs()
        .into_iter()
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"layers\"")))
        .expect("the manifest blob");
    let original = std::fs::read_to_string(&manifest_blob).unwrap();
    let tampered = original.replacen(".created\":\"", ".created\":\"X", 1);
    assert_ne!(tampered, original);
    std::fs::write(&manifest_blob, &tampered).unwrap();
    let (code, _, err) = fresh.hearth(&["pull", &format!("{name}@{digest}")], "");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("digest mismatch: expected {digest}, got sha256:")),
        "{err}"
    );
    assert!(files_under(&fresh.oci_cache()).is_empty());
    std::fs::write(&manifest_blob, &original).unwrap();

    // With the registry gone, a pinned image already in the cache still runs.
    registry.stop();
    let dir = TempDir::new("oci-pinned");
    let manifest = dir.write(
        "w.yaml",
        one_component("pinned", &format!("oci://{name}@{digest}"), ""),
    );
    let host = home.run(&[&manifest]);
    assert_eq!(host.get("localhost", "/").body, "hello from hearth\n");
}

#[test]
fn a_missing_tag_is_a_clear_error() {
    let registry = Registry::start();
    let home = Home::new();
    home.push(&wasm("hello"), &format!("{}/x:v1", registry.host()));
    let (code, out, err) = home.hearth(&["pull", &format!("{}/x:y", registry.host())], "");
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!(
            "manifest unknown: {}/x:y does not exist",
            registry.host()
        )),
        "{err}"
    );
    let (code, _, err) = home.hearth(&["pull", &format!("{}/nobody:v1", registry.host())], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("manifest unknown"), "{err}");
}

#[test]
fn credentials_from_login_and_from_docker_config() {
    let registry = Registry::start_with(Some(("alice", "s3cret")));
    let home = Home::new();
    let host = registry.host();
    let reference = format!("{host}/private/hello:v1");
    let unauthorized =
        format!("unauthorized: check the credentials for {host} (hearth login {host})");

    let (code, _, err) = home.hearth(&["push", &wasm("hello"), &reference], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&unauthorized), "{err}");

    let (code, _, err) = home.hearth(
        &["login", &host, "-u", "alice", "--password-stdin"],
        "wrong\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&unauthorized), "{err}");
    let (code, out, err) = home.hearth(
        &["login", &host, "-u", "alice", "--password-stdin"],
        "s3cret\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Login succeeded"), "{out}");
    let stored = home.0.0.join("config/hearth/auth.json");
    assert!(stored.is_file(), "{out}");

    let digest = home.push(&wasm("hello"), &reference);
    let (pulled, path) = home.pull(&reference);
    assert_eq!(pulled, digest);
    assert_eq!(
        std::fs::read(path).unwrap(),
        std::fs::read(wasm("hello")).unwrap()
    );

    let (code, out, _) = home.hearth(&["logout", &host], "");
    assert_eq!(code, 0);
    assert!(out.contains("Removed the credentials"), "{out}");
    let (code, _, err) = home.hearth(&["pull", &reference], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&unauthorized), "{err}");

    // `docker login` writes DOCKER_CONFIG/config.json; hearth reads it too.
    let docker = home.0.0.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"http://{host}": {{"auth": "YWxpY2U6czNjcmV0"}}}}}}"#),
    )
    .unwrap();
    let (again, _) = home.pull(&reference);
    assert_eq!(again, digest);

    // A workload pulls with the stored credentials.
    let dir = TempDir::new("oci-private");
    let manifest = dir.write(
        "w.yaml",
        one_component(
            "private",
            &format!("oci://{reference}"),
            "      imagePullPolicy: Always\n",
        ),
    );
    let running = home.run(&[&manifest]);
    assert_eq!(running.get("localhost", "/").status, 200);
}

#[test]
fn a_tampered_layer_is_refused_and_nothing_is_cached() {
    let registry = Registry::start();
    let home = Home::new();
    let reference = format!("{}/hello:v1", registry.host());
    home.push(&wasm("hello"), &reference);

    let layer = registry.blob_with(&std::fs::read(wasm("hello")).unwrap());
    let mut bytes = std::fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // same length, different content
    std::fs::write(&layer, &bytes).unwrap();

    let (code, out, err) = home.hearth(&["pull", &reference], "");
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("digest mismatch: expected sha256:"), "{err}");
    assert!(err.contains(", got sha256:"), "{err}");
    let cached = files_under(&home.oci_cache());
    assert!(cached.is_empty(), "nothing may be cached: {cached:?}");

    // A workload using it does not start.
    let dir = TempDir::new("oci-tampered");
    let manifest = dir.write(
        "w.yaml",
        one_component("tampered", &format!("oci://{reference}"), ""),
    );
    let (err, _) = home.run_failing(&manifest);
    assert!(
        err.contains("spec.components[0].image") && err.contains("digest mismatch"),
        "{err}"
    );
}

#[test]
fn pull_policy_never_needs_the_cache_and_if_not_present_reuses_it() {
    let registry = Registry::start();
    let home = Home::new();
    let image = format!("oci://{}/app:v1", registry.host());
    home.push(&wasm("hello"), &image);
    let dir = TempDir::new("oci-policy");

    // Never, with an empty cache: refused naming the field and the image, at run and validate.
    let never = dir.write(
        "never.yaml",
        one_component("never", &image, "      imagePullPolicy: Never\n"),
    );
    let (err, _) = home.run_failing(&never);
    assert!(
        err.contains("spec.components[0].image")
            && err.contains(&format!("`{image}` is not in the local cache"))
            && err.contains("imagePullPolicy is Never"),
        "{err}"
    );
    let (code, _, err) = home.hearth(&["validate", &never.display().to_string()], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("spec.components[0].image"), "{err}");

    // validate stays offline: an uncached image is skipped with a note.
    let default = dir.write("default.yaml", one_component("default", &image, ""));
    let (code, out, err) = home.hearth(&["validate", &default.display().to_string()], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok: workload `default`"), "{out}");
    assert!(
        err.contains("is not in the local cache, so its file checks were skipped"),
        "{err}"
    );

    // IfNotPresent caches the tag; a new push to it is only seen with Always.
    {
        let host = home.run(&[&default]);
        assert_eq!(host.get("localhost", "/ok").body, "hello from hearth\n");
    }
    home.push(&wasm("faults"), &image);
    {
        let host = home.run(&[&default]);
        assert_eq!(host.get("localhost", "/ok").body, "hello from hearth\n");
    }
    let always = dir.write(
        "always.yaml",
        one_component("always", &image, "      imagePullPolicy: Always\n"),
    );
    {
        let host = home.run(&[&always]);
        assert_eq!(host.get("localhost", "/ok").body, "ok\n");
    }
    // Now cached, Never works.
    let host = home.run(&[&never]);
    assert_eq!(host.get("localhost", "/ok").body, "ok\n");
}

#[test]
fn one_missing_image_keeps_the_whole_workload_down() {
    let registry = Registry::start();
    let home = Home::new();
    let good = format!("oci://{}/hello:v1", registry.host());
    home.push(&wasm("hello"), &good);
    let missing = format!("oci://{}/hello:missing", registry.host());
    let dir = TempDir::new("oci-half");
    let manifest = dir.write(
        "w.yaml",
        workload(
            "half",
            &format!(
                "    - name: good\n      image: {good}\n      http: {{ path: / }}\n    - name: gone\n      image: {missing}\n      http: {{ path: /gone }}\n"
            ),
        ),
    );
    let (err, http) = home.run_failing(&manifest);
    assert!(
        err.contains("spec.components[1].image")
            && err.contains(&format!(
                "manifest unknown: {}/hello:missing does not exist",
                registry.host()
            )),
        "{err}"
    );
    assert!(
        TcpStream::connect(http).is_err(),
        "nothing may listen on {http}"
    );
    // The good image was pulled (alongside the missing one), yet nothing was deployed.
    let cached = files_under(&home.oci_cache().join("sha256"));
    assert_eq!(cached.len(), 1, "{cached:?}");
}

#[test]
fn applying_to_a_cluster_pins_each_tag_to_its_digest() {
    let registry = Registry::start();
    let home = Home::new();
    let name = format!("{}/hello", registry.host());
    let digest = home.push(&wasm("hello"), &format!("{name}:v1"));
    // The cluster's store: a JetStream server (no hosts needed to check what is stored).
    let store = TempDir::new("oci-cluster-js");
    let port = free_port();
    let mut nats = Command::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/nats-server"),
    )
    .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
    .arg(store.0.join("js"))
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("nats-server (scripts/setup installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("nats://127.0.0.1:{port}");
    let deployment = |image: &str| {
        format!(
            "apiVersion: hearth.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata:\n  name: pinned\nspec:\n  replicas: 2\n  template:\n    spec:\n      components:\n        - name: hello\n          image: {image}\n          http: {{ path: / }}\n"
        )
    };
    let manifest = store.write("d.yaml", deployment(&format!("oci://{name}:v1")));
    let (code, out, err) = home.hearth(
        &["apply", "-f", manifest.to_str().unwrap(), "--cluster", &url],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "workloaddeployment/pinned created");
    let (_, out, _) = home.hearth(
        &[
            "get",
            "deployments",
            "pinned",
            "-o",
            "json",
            "--cluster",
            &url,
        ],
        "",
    );
    let stored: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        stored[0]["spec"]["template"]["spec"]["components"][0]["image"],
        format!("oci://{name}:v1@{digest}")
    );

    // A tag the registry does not have: nothing is stored, and the field is named.
    let missing = store.write("m.yaml", deployment(&format!("oci://{name}:nope")));
    let (code, _, err) = home.hearth(
        &["apply", "-f", missing.to_str().unwrap(), "--cluster", &url],
        "",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("spec.template.spec.components[0].image: cannot pin"),
        "{err}"
    );
    let (_, out, _) = home.hearth(
        &[
            "get",
            "deployments",
            "pinned",
            "-o",
            "json",
            "--cluster",
            &url,
        ],
        "",
    );
    assert!(
        out.contains(&digest),
        "the stored version is untouched: {out}"
    );
    let _ = nats.kill();
    let _ = nats.wait();
}
