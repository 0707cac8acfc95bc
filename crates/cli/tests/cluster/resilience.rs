//! What the cluster survives: a controller that dies or pauses (a standby takes over, the
//! old one is fenced), NATS nodes that die or all go away (hosts keep serving), and a host
//! that pauses and comes back (no duplicate replicas remain).

use crate::harness::{
    Cluster, Load, failures, hello_deployment, logged_number, nats_request, serial, try_get,
};
use std::time::{Duration, Instant};

/// Which controller leads: its index, and its term.
fn leader(cluster: &Cluster) -> (usize, u64) {
    cluster.eventually(Duration::from_secs(30), "a leading controller", || {
        cluster.controllers.iter().enumerate().find_map(|(i, c)| {
            let term = logged_number(c, "took the leader lease", "term")
                .or_else(|| logged_number(c, "took over the leader lease", "term"))?;
            Some((i, term))
        })
    })
}

#[test]
fn a_standby_controller_takes_over_and_the_paused_leader_is_fenced() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[&[], &[]], 2);
    cluster.apply("hello", &hello_deployment("hello", 2, "hi", ""));
    cluster.wait_ready("hello", 2, Duration::from_secs(60));
    let (old, old_term) = leader(&cluster);
    let standby = 1 - old;

    // Pause the leader: it can neither renew its lease nor know that it lost it.
    cluster.controllers[old].signal("STOP");
    let paused = Instant::now();
    cluster.controllers[standby].wait_log("took over the leader lease", Duration::from_secs(15));
    let took_over = paused.elapsed();
    let new_term = logged_number(
        &cluster.controllers[standby],
        "took over the leader lease",
        "term",
    )
    .unwrap();
    assert!(
        new_term > old_term,
        "terms only grow: {old_term} then {new_term}"
    );

    // The new leader acts: a scale is carried out, with its term.
    cluster.cli(&["scale", "hello", "--replicas", "3"]);
    cluster.wait_ready("hello", 3, Duration::from_secs(30));

    // The old leader comes back: it must notice it lost the lease and do nothing.
    let acted_before = cluster.controllers[old].count_logs("placing replica")
        + cluster.controllers[old].count_logs("stopping replica");
    cluster.controllers[old].signal("CONT");
    cluster.controllers[old].wait_log("lost the leader lease", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    let acted_after = cluster.controllers[old].count_logs("placing replica")
        + cluster.controllers[old].count_logs("stopping replica");
    assert_eq!(
        acted_before,
        acted_after,
        "the fenced controller acted:\n{}",
        cluster.controllers[old].logs()
    );

    // Fencing at the hosts: a command carrying the old term is refused.
    let stale = format!(r#"{{"protocol":1,"term":{old_term},"replica":"hello-xxxxx"}}"#);
    let reply = nats_request(&cluster.url(), "hearth.v1.host.h1.stop", &stale);
    assert!(
        reply.contains(r#""result":"refused""#) && reply.contains("stale controller term"),
        "{reply}"
    );
    // Status and unknown ids: `not-found`.
    let status = nats_request(
        &cluster.url(),
        "hearth.v1.host.h1.status",
        &format!(r#"{{"protocol":1,"term":{new_term},"replica":"nope"}}"#),
    );
    assert_eq!(status, r#"{"result":"not-found"}"#);

    // A leader that dies outright: the other takes over again.
    let mut cluster = cluster;
    cluster.controllers[standby].kill();
    let killed = Instant::now();
    cluster.controllers[old].wait_log("took over the leader lease", Duration::from_secs(15));
    let took_over_again = killed.elapsed();
    cluster.cli(&["scale", "hello", "--replicas", "2"]);
    cluster.wait_ready("hello", 2, Duration::from_secs(30));
    eprintln!(
        "controller failover: standby took over {:.2} s after the leader paused, {:.2} s after it was killed",
        took_over.as_secs_f64(),
        took_over_again.as_secs_f64()
    );
    assert!(took_over < Duration::from_secs(8) && took_over_again < Duration::from_secs(8));
}

#[test]
fn hosts_keep_serving_through_nats_outages_and_the_cluster_converges_after() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &[&[], &[], &[]], 1);
    cluster.apply("hello", &hello_deployment("hello", 3, "hi", ""));
    cluster.wait_ready("hello", 3, Duration::from_secs(60));
    let (code, out, _) = cluster.cli(&["get", "deployments", "-o", "json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"hello\""));
    // On three nodes the store keeps three copies.
    let info = nats_request(
        &cluster.url(),
        "$JS.API.STREAM.INFO.KV_hearth-deployments",
        "",
    );
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["config"]["num_replicas"], 3, "{info}");

    // One NATS node dies: nothing is lost and the controller keeps working.
    cluster.nats.kill_node(0);
    std::thread::sleep(Duration::from_secs(1));
    cluster.eventually(
        Duration::from_secs(30),
        "a scale through the surviving nodes",
        || (cluster.cli(&["scale", "hello", "--replicas", "4"]).0 == 0).then_some(()),
    );
    cluster.wait_ready("hello", 4, Duration::from_secs(60));
    cluster.nats.start_node(0);

    // Every NATS node goes away for 10 s: each host keeps serving its replicas.
    let targets: Vec<_> = cluster.hosts.iter().map(|h| h.http).collect();
    let load = Load::start(&targets, 3, 50_000);
    for i in 0..cluster.nats.len() {
        cluster.nats.kill_node(i);
    }
    std::thread::sleep(Duration::from_secs(10));
    let during = load.finish();
    let failed = failures(&during);
    eprintln!(
        "NATS down 10 s: {} requests, {} failed",
        during.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(during.len() > 100);
    for h in &cluster.hosts {
        assert!(try_get(h.http, "/").is_ok_and(|(s, _)| s == 200));
    }

    // NATS comes back: the cluster converges to 4 ready replicas, no duplicates.
    for i in 0..cluster.nats.len() {
        cluster.nats.start_node(i);
    }
    let back = Instant::now();
    cluster.eventually(Duration::from_secs(60), "the store answers again", || {
        (cluster.cli(&["get", "deployments"]).0 == 0).then_some(())
    });
    cluster.cli(&["scale", "hello", "--replicas", "5"]);
    cluster.wait_ready("hello", 5, Duration::from_secs(60));
    eprintln!(
        "after NATS came back: converged in {:.1} s",
        back.elapsed().as_secs_f64()
    );
}

#[test]
fn a_paused_host_that_comes_back_leaves_no_duplicate_replicas() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[&[], &[], &[]], 1);
    cluster.apply("hello", &hello_deployment("hello", 3, "hi", ""));
    cluster.wait_ready("hello", 3, Duration::from_secs(60));
    let h3 = &cluster.host("h3").proc;
    h3.signal("STOP");
    cluster.wait_ready_elsewhere("hello", 3, "h3", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(6));
    h3.signal("CONT");
    // h3 reports its old replica again: one of the four is stopped.
    cluster.eventually(Duration::from_secs(30), "h3 heard again", || {
        let (_, out, _) = cluster.cli(&["get", "hosts", "-o", "json"]);
        out.contains("\"hostId\": \"h3\"").then_some(())
    });
    let watch = crate::harness::ReplicaWatch::start(&cluster.url(), "hello");
    std::thread::sleep(Duration::from_secs(4));
    let (_, replicas) = cluster.reported("hello", None).unwrap();
    assert_eq!(replicas, 3);
    assert_eq!(
        cluster
            .wait_ready("hello", 3, Duration::from_secs(10))
            .len(),
        3
    );
    let _ = watch.finish();
}

#[test]
fn a_controller_that_hears_no_host_acts_on_nothing() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[&[], &[]], 1);
    cluster.apply("hello", &hello_deployment("hello", 2, "hi", ""));
    cluster.wait_ready("hello", 2, Duration::from_secs(60));
    let before: Vec<String> = cluster
        .placements("hello")
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();

    // A frozen NATS server: every connection hangs and still looks connected for a while.
    // The hosts keep serving; the controller hears nobody and must not replace anything.
    let targets: Vec<_> = cluster.hosts.iter().map(|h| h.http).collect();
    let load = Load::start(&targets, 2, 20_000);
    cluster.nats.signal_node(0, "STOP");
    std::thread::sleep(Duration::from_secs(8));
    cluster.nats.signal_node(0, "CONT");
    let results = load.finish();
    assert!(failures(&results).is_empty(), "{:?}", failures(&results));
    cluster.controllers[0].wait_log(
        "assuming this controller is cut off",
        Duration::from_secs(5),
    );

    std::thread::sleep(Duration::from_secs(5));
    cluster.wait_ready("hello", 2, Duration::from_secs(30));
    let after: Vec<String> = cluster
        .placements("hello")
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(
        before,
        after,
        "replicas were replaced because the controller lost its view:\n{}",
        cluster.controllers[0].logs()
    );
    assert_eq!(cluster.controllers[0].count_logs("placing replica"), 2);
}
