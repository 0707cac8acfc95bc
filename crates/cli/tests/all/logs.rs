//! `hearth logs`: a workload's guest lines from its host's admin API, kept and followed.

use crate::support::{Hearth, TempDir, follow_lines, hearth_cmd, wasm, workload};
use std::time::{Duration, Instant};

fn noisy_host() -> (TempDir, Hearth) {
    let dir = TempDir::new("logs");
    let manifest = dir.write(
        "w.yaml",
        workload(
            "noisy",
            &format!(
                "    - name: f\n      image: {}\n      http: {{}}\n",
                wasm("faults")
            ),
        ),
    );
    let host = Hearth::start(&[&manifest]);
    (dir, host)
}

#[test]
fn logs_shows_kept_lines_and_follow_shows_new_ones_within_a_second() {
    let (_dir, host) = noisy_host();
    let admin = host.admin.to_string();
    assert_eq!(host.get("x", "/log").status, 200);

    let (code, out, err) = hearth_cmd(&["logs", "noisy", "--admin", &admin]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(" f stdout: guest says hello on stdout"),
        "{out}"
    );
    assert!(
        out.contains(" f stderr: guest says hello on stderr"),
        "{out}"
    );
    let (code, out, _) = hearth_cmd(&["logs", "noisy", "--component", "other", "--admin", &admin]);
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "another component's lines only"
    );
    let (code, _, err) = hearth_cmd(&["logs", "ghost", "--admin", &admin]);
    assert_eq!(code, 1);
    assert!(err.contains("no workload `ghost`"), "{err}");

    // Follow: the kept lines first, then each new line as the guest prints it.
    let (mut follower, rx) = follow_lines(&["logs", "noisy", "-f", "--json", "--admin", &admin]);
    for _ in 0..2 {
        let (_, line) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the kept lines");
        assert!(line.contains("guest says hello"), "{line}");
    }
    for _ in 0..3 {
        let sent = Instant::now();
        assert_eq!(host.get("x", "/log").status, 200);
        let (at, line) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a followed line");
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(line["workload"], "noisy");
        assert_eq!(line["stream"], "stdout");
        let took = at.duration_since(sent);
        assert!(took < Duration::from_secs(1), "the line took {took:?}");
        rx.recv_timeout(Duration::from_secs(5))
            .expect("its stderr line");
    }
    let _ = follower.kill();
    let _ = follower.wait();
}
