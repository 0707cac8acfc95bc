//! `hearth new` and `hearth build`: each template, generated into a temporary directory, builds
//! with `hearth build`, passes its own `cargo test` natively, and serves a real request (or
//! logs its job) under `hearth run`. Plus the refusals: bad names, occupied directories,
//! compiler errors and images a build did not write.
//!
//! The generated projects share one cargo target directory through `CARGO_TARGET_DIR`, so
//! their dependencies compile once; `hearth build` copies each output to the `image` path the
//! manifest names, which these tests therefore also check.

use crate::support::{Hearth, TempDir, free_port};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The target directory every generated project builds into.
fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/template-builds")
}

/// Runs `hearth ARGS` in `dir`, with the shared target directory; (exit code, stdout, stderr).
fn hearth_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hearth new TEMPLATE NAME` in a fresh temporary directory, then `hearth build` in the
/// project; returns the temporary directory and the project in it.
fn generate_and_build(template: &str, name: &str) -> (TempDir, PathBuf) {
    let tmp = TempDir::new(&format!("new-{template}"));
    let (code, out, err) = hearth_in(&tmp.0, &["new", template, name]);
    assert_eq!(code, 0, "hearth new failed:\n{out}\n{err}");
    assert!(out.contains("hearth build"), "next steps are shown: {out}");
    let project = tmp.0.join(name);
    for file in ["workload.yaml", "README.md", "Cargo.toml", ".gitignore"] {
        assert!(project.join(file).is_file(), "{template}: no {file}");
    }
    let manifest = std::fs::read_to_string(project.join("workload.yaml")).unwrap();
    assert!(manifest.contains(&format!("name: {name}\n")), "{manifest}");

    let (code, out, err) = hearth_in(&project, &["build"]);
    assert_eq!(code, 0, "hearth build failed:\n{out}\n{err}");
    assert!(err.contains("==> building "), "progress line: {err}");
    assert!(out.contains("built "), "summary: {out}");
    (tmp, project)
}

/// `cargo test` in the project, natively, must pass.
fn native_tests_pass(project: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .arg("test")
        .current_dir(project)
        .env("CARGO_TARGET_DIR", shared_target())
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo test failed in {}:\n{stdout}\n{}",
        project.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test result: ok"), "{stdout}");
}

#[test]
fn http_template_builds_tests_and_serves() {
    let (_tmp, project) = generate_and_build("http", "t-http");
    assert!(
        project
            .join("target/wasm32-wasip2/release/t_http_http.wasm")
            .is_file(),
        "the image is where workload.yaml says, though cargo wrote under CARGO_TARGET_DIR"
    );
    native_tests_pass(&project);
    let hearth = Hearth::start(&[&project.join("workload.yaml")]);
    let resp = hearth.get("localhost", "/");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body, "hello from t-http\n");
    assert_eq!(hearth.get("localhost", "/hello/you").body, "hello, you!\n");
}

#[test]
fn service_template_builds_tests_and_echoes_through_its_published_port() {
    let (_tmp, project) = generate_and_build("service", "t-service");
    native_tests_pass(&project);
    let port = free_port();
    let manifest = project.join("workload.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("publish: 17070"), "{text}");
    std::fs::write(
        &manifest,
        text.replace("publish: 17070", &format!("publish: {port}")),
    )
    .unwrap();
    let _hearth = Hearth::start(&[&manifest]);
    // The service may still be starting: retry until it answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let reply = loop {
        match echo(port, b"ping\nwith spaces\n") {
            Ok(reply) if reply == "ping\nwith spaces\n" => break reply,
            other => {
                assert!(Instant::now() < deadline, "no echo: {other:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(reply, "ping\nwith spaces\n");
}

/// Sends `bytes` and reads until as many bytes came back (or the connection ends).
fn echo(port: u16, bytes: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(bytes)?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 256];
    while got.len() < bytes.len() {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn cron_template_builds_tests_and_runs_its_job() {
    let (_tmp, project) = generate_and_build("cron", "t-cron");
    native_tests_pass(&project);
    let hearth = Hearth::start(&[&project.join("workload.yaml")]);
    let line = hearth.wait_for_log(&["t-cron job ran at", "UTC"], Duration::from_secs(30));
    assert!(line.contains("\"component\":\"job\""), "{line}");
}

#[test]
fn cache_template_builds_tests_and_keeps_state_in_its_service() {
    let (_tmp, project) = generate_and_build("cache", "t-cache");
    native_tests_pass(&project);
    let hearth = Hearth::start(&[&project.join("workload.yaml")]);
    // The first request may come before the service listens: retry until it answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = hearth.get("localhost", "/set/greeting/hello");
        if resp.status == 200 {
            assert_eq!(resp.body, "ok\n");
            break;
        }
        assert!(Instant::now() < deadline, "cache never answered: {resp:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(hearth.get("localhost", "/get/greeting").body, "hello\n");
    assert_eq!(hearth.get("localhost", "/incr/hits").body, "1\n");
    assert_eq!(hearth.get("localhost", "/incr/hits").body, "2\n");
    assert_eq!(hearth.get("localhost", "/get/nothing").status, 404);
}

#[test]
fn new_lists_templates_and_refuses_bad_names_and_occupied_directories() {
    let tmp = TempDir::new("new-refusals");
    let (code, out, _) = hearth_in(&tmp.0, &["new", "--list"]);
    assert_eq!(code, 0);
    for template in ["http", "service", "cron", "cache"] {
        assert!(
            out.lines().any(|l| l.starts_with(template)),
            "{template} is listed: {out}"
        );
    }

    let (code, _, err) = hearth_in(&tmp.0, &["new", "http", "Bad_Name"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`Bad_Name` cannot name a workload"), "{err}");
    assert!(err.contains("DNS label"), "{err}");
    assert!(!tmp.0.join("Bad_Name").exists());

    let (code, _, err) = hearth_in(&tmp.0, &["new", "nope", "app"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown template `nope`"), "{err}");
    assert!(err.contains("http, service, cron, cache"), "{err}");

    std::fs::create_dir_all(tmp.0.join("taken")).unwrap();
    std::fs::write(tmp.0.join("taken/notes.txt"), "mine").unwrap();
    let (code, _, err) = hearth_in(&tmp.0, &["new", "http", "taken"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists and is not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.0.join("taken/notes.txt")).unwrap(),
        "mine"
    );

    // An empty directory is fine, and --dir chooses it.
    std::fs::create_dir_all(tmp.0.join("empty")).unwrap();
    let (code, out, err) = hearth_in(&tmp.0, &["new", "cache", "app", "--dir", "empty"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(tmp.0.join("empty/workload.yaml").is_file());
    assert!(tmp.0.join("empty/http/src/lib.rs").is_file());
    assert!(tmp.0.join("empty/service/src/store.rs").is_file());
}

#[test]
fn a_compiler_error_fails_the_build_and_is_shown() {
    let tmp = TempDir::new("new-broken");
    let (code, _, err) = hearth_in(&tmp.0, &["new", "http", "t-broken"]);
    assert_eq!(code, 0, "{err}");
    let project = tmp.0.join("t-broken");
    let lib = project.join("http/src/lib.rs");
    let mut source = std::fs::read_to_string(&lib).unwrap();
    source.push_str("\nfn broken() -> u32 { \"not a number\" }\n");
    std::fs::write(&lib, source).unwrap();

    let (code, out, err) = hearth_in(&project, &["build"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("mismatched types"), "rustc's message: {err}");
    assert!(err.contains("src/lib.rs"), "where: {err}");
    assert!(
        err.contains("error: cargo build --release --target wasm32-wasip2 failed in ."),
        "{err}"
    );
}

#[test]
fn build_names_the_image_a_command_did_not_write() {
    let tmp = TempDir::new("build-command");
    let manifest = tmp.write(
        "workload.yaml",
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: app\nspec:\n  components:\n    - name: web\n      image: out/app.wasm\n      http: { path: / }\n      build: { command: \"echo compiling\" }\n",
    );
    let (code, out, err) = hearth_in(&tmp.0, &["build"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("==> building web (`echo compiling`, .)"),
        "{err}"
    );
    assert!(
        out.contains("compiling"),
        "the command's output is streamed: {out}"
    );
    assert!(
        err.contains(
            "error: workload.yaml: spec.components[0].image: `echo compiling` ran in ., but ./out/app.wasm does not exist"
        ),
        "{err}"
    );

    // An unknown --part is a usage error.
    let (code, _, err) = hearth_in(
        &tmp.0,
        &["build", manifest.to_str().unwrap(), "--part", "nope"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no part named `nope`; its parts are: web"),
        "{err}"
    );

    // A command that writes something that is not a component is refused as well.
    std::fs::write(
        &manifest,
        std::fs::read_to_string(&manifest)
            .unwrap()
            .replace("echo compiling", "mkdir -p out && echo hi > out/app.wasm"),
    )
    .unwrap();
    let (code, _, err) = hearth_in(&tmp.0, &["build", "--part", "web"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("spec.components[0].image: ./out/app.wasm is not WebAssembly"),
        "{err}"
    );
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    let tmp = TempDir::new("completions");
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = hearth_in(&tmp.0, &["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("hearth"), "{shell}: {out}");
        assert!(out.contains("build"), "{shell} completes the build command");
    }
}
