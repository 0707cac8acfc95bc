//! `hearth logs NAME --cluster URL`: a deployment's guest lines from every host running a
//! replica of it, asked over NATS; `-f` shows a new line within a second.

use crate::harness::{Cluster, cli, serial};
use crate::support::{follow_lines, request, wasm};
use std::time::{Duration, Instant};

fn noisy(replicas: u32) -> String {
    format!(
        "apiVersion: hearth.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: noisy
spec:
  replicas: {replicas}
  template:
    spec:
      components:
        - name: f
          image: {}
          http: {{ path: / }}
",
        wasm("faults")
    )
}

#[test]
fn cluster_logs_gather_every_replicas_lines_and_follow_new_ones() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[&[], &[]], 1);
    let url = cluster.url();
    cluster.apply("noisy", &noisy(2));
    cluster.wait_ready("noisy", 2, Duration::from_secs(60));
    let placements = cluster.placements("noisy");
    let on = |host: &str| -> String {
        placements
            .iter()
            .find(|(_, h, _)| h == host)
            .map(|(id, _, _)| id.clone())
            .unwrap_or_else(|| panic!("no replica on {host}: {placements:?}"))
    };
    let (r1, r2) = (on("h1"), on("h2"));
    // Each host answers from its own replica, which prints one line to each stream.
    for host in &cluster.hosts {
        assert_eq!(request(host.http, "x", "/log").status, 200);
    }

    let (code, out, err) = cli(&url, &["logs", "noisy"]);
    assert_eq!(code, 0, "{err}");
    for (host, replica) in [("h1", &r1), ("h2", &r2)] {
        for stream in ["stdout", "stderr"] {
            let line = format!(" {host}/{replica} f {stream}: guest says hello on {stream}");
            assert!(out.contains(&line), "`{line}` missing from:\n{out}");
        }
    }
    // One replica by its id; another component's lines (none); a name nothing runs.
    let (code, out, _) = cli(&url, &["logs", &r2]);
    assert_eq!(code, 0);
    assert!(
        out.lines().count() == 2 && out.lines().all(|l| l.contains(&format!("h2/{r2}"))),
        "{out}"
    );
    let (code, out, _) = cli(&url, &["logs", "noisy", "--component", "other"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, _, err) = cli(&url, &["logs", "ghost"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no host of the cluster runs a replica of `ghost`"),
        "{err}"
    );

    // Follow: the kept lines, then a new line on h2 within a second of its request.
    let (mut follower, rx) = follow_lines(&["logs", "noisy", "-f", "--json", "--cluster", &url]);
    for _ in 0..4 {
        let (_, line) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the kept lines");
        assert!(line.contains("guest says hello"), "{line}");
    }
    for _ in 0..3 {
        let sent = Instant::now();
        assert_eq!(request(cluster.hosts[1].http, "x", "/log").status, 200);
        let (at, line) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a followed line");
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (line["host"].as_str(), line["replica"].as_str()),
            (Some("h2"), Some(r2.as_str()))
        );
        let took = at.duration_since(sent);
        assert!(took < Duration::from_secs(1), "the line took {took:?}");
        rx.recv_timeout(Duration::from_secs(5))
            .expect("its stderr line");
    }
    let _ = follower.kill();
    let _ = follower.wait();
}
