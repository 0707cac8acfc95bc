//! `hearth dev` end to end on a generated `cache` project: edit the HTTP component and see
//! the new code serve while the service's in-memory state survives (the service is not
//! restarted); break the build and see the last good version keep serving.

use crate::support::{Response, TempDir, request};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn shared_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/template-builds")
}

/// A running `hearth dev` and its log lines.
struct Dev {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Dev {
    fn start(project: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args([
                "dev",
                "--http",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--poll-ms",
                "100",
            ])
            .current_dir(project)
            .env("CARGO_TARGET_DIR", shared_target())
            .env_remove("RUSTFLAGS")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "HTTP ingress listening"
                {
                    let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|_| {
                panic!(
                    "hearth dev did not serve; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                )
            })
            .parse()
            .unwrap();
        Self { child, addr, logs }
    }

    fn get(&self, path: &str) -> Response {
        request(self.addr, "localhost", path)
    }

    fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.logs.lock().unwrap().iter().any(|l| l.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in the log:\n{}",
                self.logs.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn dev_swaps_a_component_keeping_service_state_and_survives_a_broken_build() {
    let tmp = TempDir::new("dev");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["new", "cache", "devloop"])
        .current_dir(&tmp.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = tmp.0.join("devloop");
    let dev = Dev::start(&project);

    // State goes into the service.
    let set = dev.get("/set/color/blue");
    assert_eq!((set.status, set.body.as_str()), (200, "ok\n"));

    // Edit the HTTP component: the new code serves, the service's state is still there.
    let source = project.join("http/src/lib.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    assert!(
        text.contains("Reply::new(200, \"ok\\n\")"),
        "template changed?"
    );
    std::fs::write(
        &source,
        text.replace(
            "Reply::new(200, \"ok\\n\")",
            "Reply::new(200, \"stored\\n\")",
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let resp = dev.get("/set/shape/round");
        if resp.body == "stored\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new component never served: {resp:?}; logs:\n{}",
            dev.logs.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    dev.wait_for_log("the service keeps running", Duration::from_secs(5));
    let color = dev.get("/get/color");
    assert_eq!(
        (color.status, color.body.as_str()),
        (200, "blue\n"),
        "service state lost"
    );
    assert!(
        !dev.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("replacing the service")),
        "the service was restarted for a component change"
    );

    // Break the build: the compiler's error is shown, the last good version keeps serving.
    std::fs::write(&source, format!("{text}\nfn broken( {{\n")).unwrap();
    dev.wait_for_log(
        "build failed; still serving the last good version",
        Duration::from_secs(240),
    );
    assert!(
        dev.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("unclosed delimiter")),
        "the compiler's message is shown:\n{}",
        dev.logs.lock().unwrap().join("\n")
    );
    let color = dev.get("/get/color");
    assert_eq!((color.status, color.body.as_str()), (200, "blue\n"));
    assert_eq!(dev.get("/set/size/xl").body, "stored\n");
}
