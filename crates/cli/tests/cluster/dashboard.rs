//! A host's view of its cluster: `GET /v1/cluster` on its admin API (token required) and the
//! dashboard's cluster panel in a real browser. Two hosts and a controller on one NATS
//! server: both hosts with their heartbeat age, where each replica runs, a rollout that
//! cannot finish (its new image is missing) shown as under way with the controller's words,
//! and a killed host shown as lost. The page's screenshot is kept as
//! `<target>/artifacts/dashboard-cluster.png`.

use crate::browser::{Browser, artifacts, wait_until};
use crate::harness::{Cluster, Nats, hello_deployment, serial, start_controller, start_host};
use crate::support::{TempDir, free_port, send_with};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

const TOKEN: &str = "cluster-dash-token-0123456789";

fn cluster_json(admin: SocketAddr) -> Option<Value> {
    let auth = [("Authorization".to_string(), format!("Bearer {TOKEN}"))];
    let answer = send_with(admin, "GET", "admin", "/v1/cluster", &auth, b"");
    (answer.status == 200).then(|| serde_json::from_slice(&answer.body).unwrap())
}

fn deployment<'a>(view: &'a Value, name: &str) -> Option<&'a Value> {
    view["deployments"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == name)
}

#[test]
fn a_hosts_dashboard_shows_the_cluster_its_placements_and_a_rollout() {
    let _serial = serial();
    let dir = TempDir::new("cluster-dashboard");
    let token_file = dir.0.join("admin.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let token_file = token_file.display().to_string();
    let nats = Nats::start(1);
    let url = nats.url();
    let admins: Vec<SocketAddr> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap())
        .collect();
    let hosts = ["h1", "h2"]
        .iter()
        .zip(&admins)
        .map(|(id, admin)| {
            let admin = admin.to_string();
            let zone = format!("zone={id}-zone");
            let extra = ["--admin", &admin, "--admin-token-file", &token_file];
            start_host(&url, id, &[&extra[..], &["--label", &zone]].concat())
        })
        .collect();
    let cluster = Cluster::assemble(nats, hosts, vec![start_controller(&url, "c1")]);
    cluster.apply("hello", &hello_deployment("hello", 2, "hi", ""));
    cluster.wait_ready("hello", 2, Duration::from_secs(60));

    // The admin token guards it like every other admin path.
    let refused = send_with(admins[0], "GET", "admin", "/v1/cluster", &[], b"");
    assert_eq!(refused.status, 401);

    // h1 sees both hosts, fresh, and the two replicas where the controller says they are.
    let placements = cluster.placements("hello");
    let view = cluster.eventually(Duration::from_secs(10), "h1 sees the cluster", || {
        let view = cluster_json(admins[0])?;
        let hosts = view["hosts"].as_array()?;
        let fresh = hosts.len() == 2
            && hosts.iter().all(|h| {
                h["state"] == "ready" && h["heartbeatAgeMs"].as_u64().is_some_and(|ms| ms < 3000)
            });
        let hello = deployment(&view, "hello")?;
        (fresh && hello["status"]["readyReplicas"] == 2 && hello["ready"] == 2).then_some(view)
    });
    assert_eq!(view["hostId"], "h1");
    let hello = deployment(&view, "hello").unwrap();
    assert_eq!(hello["rollingOut"], false, "{hello}");
    for (replica, host, _) in &placements {
        let ids = hello["placements"][host].as_array();
        assert!(
            ids.is_some_and(|ids| ids.iter().any(|id| id == replica.as_str())),
            "{replica} on {host}: {hello}"
        );
    }
    let h2 = view["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "h2")
        .unwrap();
    assert_eq!(h2["labels"]["zone"], "h2-zone");
    assert!(h2["capacity"]["cores"].as_u64().unwrap() >= 1, "{h2}");

    // A new revision whose image is missing: the old replicas keep serving and the rollout
    // stays under way, with the controller's own message about it.
    let broken = hello_deployment("hello", 2, "hi", "")
        .replace(&crate::support::wasm("hello"), "/nonexistent/hello-v2.wasm");
    cluster.apply("hello", &broken);
    let hello = cluster.eventually(Duration::from_secs(30), "the rollout is under way", || {
        let view = cluster_json(admins[0])?;
        let hello = deployment(&view, "hello")?.clone();
        (hello["rollingOut"] == true).then_some(hello)
    });
    let progressing = hello["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_ne!(progressing["reason"], "NewReplicasAvailable", "{hello}");

    // The same in the page, signed in with the token.
    let browser = Browser::start();
    let ui = format!("http://{}/ui", admins[0]);
    browser.goto(&ui);
    browser.type_into("#token", TOKEN);
    browser.click("button[type=submit]");
    wait_until(
        "the cluster panel shows both hosts",
        Duration::from_secs(15),
        || {
            let ids = browser.eval(
                "return [...document.querySelectorAll('#cluster:not([hidden]) .host')].map(h => h.dataset.host + ':' + h.dataset.state);",
            );
            (ids == serde_json::json!(["h1:ready", "h2:ready"])).then_some(())
        },
    );
    // innerText shows what CSS shows, upper-cased labels included.
    let text = browser.text().to_lowercase();
    for needle in [
        "cluster",
        "this host",
        "zone=h2-zone",
        "hello · ready",
        "s ago",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
    wait_until(
        "the page shows the rollout under way",
        Duration::from_secs(10),
        || {
            let row = browser.eval(
                "const r = document.querySelector('#deps tr[data-deployment=hello]'); return r ? [r.dataset.rollingOut, r.innerText] : null;",
            );
            (row[0] == "true"
                && row[1].as_str()?.contains("h1 ×")
                && row[1].as_str()?.contains("h2 ×"))
            .then_some(())
        },
    );
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(artifacts().join("dashboard-cluster.png"), png).unwrap();

    // h2 dies: the page marks it lost, with the age of its last heartbeat.
    let mut cluster = cluster;
    cluster.hosts[1].proc.kill();
    wait_until("the page shows h2 lost", Duration::from_secs(15), || {
        let state = browser.eval(
            "const h = document.querySelector('.host[data-host=h2]'); return h ? [h.dataset.state, h.innerText] : null;",
        );
        (state[0] == "lost" && state[1].as_str()?.contains("lost ·")).then_some(())
    });
}
