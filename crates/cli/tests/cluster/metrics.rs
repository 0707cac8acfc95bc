//! `hearth controller --metrics ADDR`: its `GET /metrics` (read here with a plain HTTP GET)
//! reports each deployment's desired and ready replicas, each host's heartbeat age, whether
//! it leads, and, after a host is lost, the replicas started to replace the ones it held.

use crate::harness::{Cluster, Nats, Proc, hello_deployment, serial, start_host, try_get};
use crate::support::free_port;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// The value of the series `name` whose labels include every one of `labels`, in a scrape.
pub fn sample(scrape: &str, name: &str, labels: &[&str]) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn controller_metrics_show_replicas_heartbeats_and_reschedules() {
    let _serial = serial();
    let nats = Nats::start(1);
    let url = nats.url();
    let hosts = vec![start_host(&url, "h1", &[]), start_host(&url, "h2", &[])];
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .args(["controller", "--nats", &url, "--id", "c1"])
        .args(["--metrics", &metrics.to_string()])
        .env("RUST_LOG", "info");
    let controller = Proc::spawn("c1", command);
    let mut cluster = Cluster::assemble(nats, hosts, vec![controller]);
    assert_eq!(try_get(metrics, "/healthz").unwrap(), (200, "ok\n".into()));

    cluster.apply("hello", &hello_deployment("hello", 3, "hi", ""));
    cluster.wait_ready("hello", 3, Duration::from_secs(60));
    let scrape = || {
        try_get(metrics, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let deployment = r#"deployment="hello""#;
    let body = cluster.eventually(Duration::from_secs(10), "3 of 3 ready in /metrics", || {
        let body = scrape();
        (sample(&body, "hearth_cluster_replicas_desired", &[deployment]) == Some(3.0)
            && sample(&body, "hearth_cluster_replicas_ready", &[deployment]) == Some(3.0))
        .then_some(body)
    });
    // Every series names this controller; it leads, it hears both hosts, and recently.
    assert_eq!(
        sample(&body, "hearth_cluster_leader", &[r#"controller="c1""#]),
        Some(1.0),
        "{body}"
    );
    for id in ["h1", "h2"] {
        let label = format!(r#"host_id="{id}""#);
        let age = sample(
            &body,
            "hearth_cluster_host_heartbeat_age_seconds",
            &[&label],
        );
        assert!(
            age.is_some_and(|a| (0.0..3.0).contains(&a)),
            "{id}: {age:?}\n{body}"
        );
    }
    assert_eq!(
        sample(&body, "hearth_cluster_hosts", &[r#"state="ready""#]),
        Some(2.0)
    );
    assert_eq!(
        sample(&body, "hearth_cluster_hosts", &[r#"state="lost""#]),
        Some(0.0)
    );
    let starts = sample(&body, "hearth_cluster_replica_starts_total", &[]);
    assert!(starts.is_some_and(|n| n >= 3.0), "{starts:?}\n{body}");
    // Nothing was lost yet: no start so far replaced anything.
    assert_eq!(
        sample(&body, "hearth_cluster_reschedules_total", &[]).unwrap_or(0.0),
        0.0,
        "{body}"
    );

    // h2 dies: its replicas are replaced on h1, and counted as reschedules for a lost host.
    let on_h2 = cluster
        .placements("hello")
        .iter()
        .filter(|(_, host, _)| host == "h2")
        .count();
    assert!(on_h2 > 0, "{:?}", cluster.placements("hello"));
    cluster.hosts[1].proc.kill();
    cluster.wait_ready_elsewhere("hello", 3, "h2", Duration::from_secs(60));
    let body = cluster.eventually(Duration::from_secs(10), "h2 lost in /metrics", || {
        let body = scrape();
        (sample(&body, "hearth_cluster_hosts", &[r#"state="lost""#]) == Some(1.0)
            && sample(&body, "hearth_cluster_replicas_ready", &[deployment]) == Some(3.0))
        .then_some(body)
    });
    assert_eq!(
        sample(
            &body,
            "hearth_cluster_reschedules_total",
            &[r#"reason="host_lost""#]
        ),
        Some(on_h2 as f64),
        "{body}"
    );
    let h2_age = sample(
        &body,
        "hearth_cluster_host_heartbeat_age_seconds",
        &[r#"host_id="h2""#],
    );
    assert!(h2_age.is_some_and(|a| a > 3.0), "{h2_age:?}\n{body}");
}
