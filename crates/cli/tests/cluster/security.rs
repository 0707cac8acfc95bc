//! NATS with TLS (certificates made here with `openssl`) and users: a host with a wrong
//! password is refused and says so; hosts, the controller and the CLI with the right ones
//! work, and a host restricted to its own subjects (the README's account layout) is enough
//! to run replicas.

use crate::harness::{Nats, NatsExtra, Proc, hello_deployment, serial, start_host, try_get};
use crate::support::{TempDir, signed_cert, test_ca};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A CA and a server certificate for 127.0.0.1, in `dir`: (ca.pem, server.pem, server.key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = test_ca(dir);
    let (cert, key) = signed_cert(dir, "server", "127.0.0.1", "IP:127.0.0.1,DNS:localhost");
    (ca, cert, key)
}

#[test]
fn tls_and_credentials_are_required_and_a_host_may_only_speak_for_itself() {
    let _serial = serial();
    let dir = TempDir::new("tls");
    let (ca, cert, key) = certificates(&dir.0);
    // The README's layout: the controller and operators may do anything; a host may publish
    // only its own heartbeats and answer its own commands.
    let extra = format!(
        r#"
tls {{ cert_file: "{}", key_file: "{}" }}
authorization {{
  users: [
    {{ user: controller, password: ctl-secret }}
    {{ user: h1, password: h1-secret, permissions: {{
        publish: {{ allow: ["hearth.v1.heartbeat.h1"] }}
        subscribe: {{ allow: ["hearth.v1.host.h1.>", "hearth.v1.heartbeat.*"] }}
        allow_responses: true
    }} }}
  ]
}}
"#,
        cert.display(),
        key.display()
    );
    let nats = Nats::start_with(
        1,
        NatsExtra {
            text: extra,
            ..NatsExtra::default()
        },
    );
    let url = nats.url_with("tls");
    let ca_arg = ca.to_str().unwrap();

    // Wrong password: refused at once, with a message that says so.
    let mut wrong = start_host(
        &url,
        "h1",
        &[
            "--nats-ca",
            ca_arg,
            "--nats-user",
            "h1",
            "--nats-password",
            "guess",
        ],
    );
    assert_eq!(wrong.proc.wait_exit(Duration::from_secs(20)), 1);
    let logs = wrong.proc.logs();
    assert!(logs.contains("refused the credentials"), "{logs}");
    // No CA: the server's certificate cannot be verified.
    let mut untrusted = start_host(
        &url,
        "h1",
        &["--nats-user", "h1", "--nats-password", "h1-secret"],
    );
    assert_eq!(untrusted.proc.wait_exit(Duration::from_secs(20)), 1);
    let logs = untrusted.proc.logs();
    assert!(logs.contains("certificate is not trusted"), "{logs}");

    // The right credentials, over TLS.
    let host = start_host(
        &url,
        "h1",
        &[
            "--nats-ca",
            ca_arg,
            "--nats-user",
            "h1",
            "--nats-password",
            "h1-secret",
        ],
    );
    host.proc
        .wait_log("joined the cluster", Duration::from_secs(30));
    let mut controller = Command::new(env!("CARGO_BIN_EXE_hearth"));
    controller
        .args([
            "controller",
            "--nats",
            &url,
            "--nats-ca",
            ca_arg,
            "--nats-user",
            "controller",
        ])
        .env("HEARTH_NATS_PASSWORD", "ctl-secret")
        .env("RUST_LOG", "info");
    let controller = Proc::spawn("controller", controller);
    controller.wait_log("took the leader lease", Duration::from_secs(30));
    let manifest = dir.write("hello.yaml", hello_deployment("hello", 1, "secure", ""));
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .args([
                "--cluster",
                &url,
                "--nats-ca",
                ca_arg,
                "--nats-user",
                "controller",
            ])
            .env("HEARTH_NATS_PASSWORD", "ctl-secret")
            .output()
            .unwrap()
    };
    let out = cli(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while try_get(host.http, "/").map(|(_, b)| b) != Ok("secure\n".into()) {
        assert!(
            std::time::Instant::now() < deadline,
            "never served:\n{}\n{}",
            controller.logs(),
            host.proc.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The CLI without credentials is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["get", "deployments", "--cluster", &url, "--nats-ca", ca_arg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the credentials"));
}
