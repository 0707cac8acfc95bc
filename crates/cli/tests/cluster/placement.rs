//! Placement: spreading, forwarding, scaling, selectors, host loss, rolling updates.

use crate::harness::{
    Cluster, Load, failures, hello_deployment, hello_deployment_at, serial, try_get,
};
use std::time::{Duration, Instant};

#[test]
fn replicas_spread_over_hosts_any_host_answers_and_scaling_follows() {
    let _serial = serial();
    let cluster = Cluster::start(
        1,
        &[
            &["--label", "zone=a"],
            &["--label", "zone=a"],
            &["--label", "zone=b"],
        ],
        1,
    );
    let out = cluster.apply(
        "hello",
        &hello_deployment("hello", 3, "hi from the cluster", ""),
    );
    assert_eq!(out.trim(), "workloaddeployment/hello created");
    let hosts = cluster.wait_ready("hello", 3, Duration::from_secs(60));
    assert_eq!(hosts, ["h1", "h2", "h3"], "one replica per host");
    for h in &cluster.hosts {
        assert_eq!(
            try_get(h.http, "/").unwrap(),
            (200, "hi from the cluster\n".into()),
            "via {}",
            h.id
        );
    }

    // 3 → 6: two per host. 6 → 1: one left, and every host still answers (forwarding).
    let (code, out, err) = cluster.cli(&["scale", "hello", "--replicas", "6"]);
    assert_eq!(
        (code, out.trim()),
        (0, "workloaddeployment/hello scaled"),
        "{err}"
    );
    let hosts = cluster.wait_ready("hello", 6, Duration::from_secs(60));
    assert_eq!(hosts, ["h1", "h1", "h2", "h2", "h3", "h3"]);
    cluster.cli(&["scale", "hello", "--replicas", "1"]);
    let hosts = cluster.wait_ready("hello", 1, Duration::from_secs(60));
    for h in &cluster.hosts {
        let answer = try_get(h.http, "/").unwrap();
        assert_eq!(
            answer,
            (200, "hi from the cluster\n".into()),
            "via {} (replica on {hosts:?})",
            h.id
        );
    }
    // A request already forwarded once is never forwarded again.
    let without = cluster.hosts.iter().find(|h| h.id != hosts[0]).unwrap();
    let looped = crate::support::send_with(
        without.http,
        "GET",
        "localhost",
        "/",
        &[("hearth-forwarded-by".into(), "elsewhere".into())],
        b"",
    );
    assert_eq!(looped.status, 503);
    assert_eq!(looped.header("hearth-no-replica"), Some("1"));

    // hostSelector: zone=b is h3 alone.
    cluster.apply(
        "zoned",
        &hello_deployment_at(
            "/zoned",
            "zoned",
            2,
            "zoned",
            "  hostSelector: { zone: b }\n",
        ),
    );
    assert_eq!(
        cluster.wait_ready("zoned", 2, Duration::from_secs(60)),
        ["h3", "h3"]
    );

    // An unsatisfiable selector: Unschedulable, naming each host and why.
    cluster.apply(
        "nowhere",
        &hello_deployment_at(
            "/nowhere",
            "nowhere",
            1,
            "x",
            "  hostSelector: { zone: mars }\n",
        ),
    );
    // Two deployments may not claim one route: any host may run (or forward to) both.
    let clash = cluster
        .dir
        .write("clash.yaml", hello_deployment("clash", 1, "x", ""));
    let (code, _, err) = cluster.cli(&["apply", "-f", clash.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("spec.template.spec.components[0].http: route `*/` is already served by deployment `hello`"),
        "{err}"
    );
    let condition = cluster.eventually(
        Duration::from_secs(30),
        "an Unschedulable condition",
        || {
            let d = cluster.deployment("nowhere");
            d["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Unschedulable" && c["status"] == "True")
                .cloned()
        },
    );
    let message = condition["message"].as_str().unwrap();
    assert!(message.starts_with("0/3 hosts can run it"), "{message}");
    for id in [
        "h1: missing label zone=mars (has zone=a)",
        "h3: missing label zone=mars (has zone=b)",
    ] {
        assert!(message.contains(id), "{message}");
    }
    let (_, table, _) = cluster.cli(&["get", "deployments", "-o", "wide"]);
    assert!(table.contains("Unschedulable(NoEligibleHost)"), "{table}");
    let (_, hosts_table, _) = cluster.cli(&["get", "hosts"]);
    for id in ["h1", "h2", "h3"] {
        assert!(hosts_table.contains(id), "{hosts_table}");
    }

    // Delete: its replicas stop everywhere.
    let (code, out, _) = cluster.cli(&["delete", "zoned"]);
    assert_eq!((code, out.trim()), (0, "workloaddeployment/zoned deleted"));
    cluster.eventually(Duration::from_secs(30), "zoned's replicas gone", || {
        let (_, out, _) = cluster.cli(&["get", "hosts", "-o", "json"]);
        (!out.contains("\"deployment\": \"zoned\"")).then_some(())
    });
}

#[test]
fn a_killed_host_is_replaced_and_survivors_keep_answering() {
    let _serial = serial();
    let mut cluster = Cluster::start(1, &[&[], &[], &[]], 1);
    cluster.apply("hello", &hello_deployment("hello", 3, "still here", ""));
    cluster.wait_ready("hello", 3, Duration::from_secs(60));
    let survivors = [cluster.hosts[0].http, cluster.hosts[1].http];
    let load = Load::start(&survivors, 4, 20_000);
    std::thread::sleep(Duration::from_millis(500));

    let killed = Instant::now();
    cluster.hosts[2].proc.kill();
    cluster.wait_ready_elsewhere("hello", 3, "h3", Duration::from_secs(30));
    let replaced_after = killed.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let results = load.finish();
    let failed = failures(&results);
    eprintln!(
        "host loss: replica replaced {:.2} s after kill -9; {} of {} requests through the survivors failed: {:?}",
        replaced_after.as_secs_f64(),
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)]
    );
    // Detection takes 3 s of silence; a replacement must not take much longer.
    assert!(
        replaced_after < Duration::from_secs(10),
        "{replaced_after:?}"
    );
    // Requests to the survivors that the dead host would have served were retried on a
    // live one: a few may fail while the host dies mid-response, no more.
    assert!(failed.len() <= 8, "{failed:?}");
}

#[test]
fn a_rolling_update_under_load_has_no_errors_and_bounded_surge() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[&[], &[], &[]], 1);
    cluster.apply("roll", &hello_deployment("roll", 4, "v1", ""));
    cluster.wait_ready("roll", 4, Duration::from_secs(60));
    let targets: Vec<_> = cluster.hosts.iter().map(|h| h.http).collect();
    let load = Load::start(&targets, 4, 50_000);

    // Watch every host's heartbeat: never more than 4 + 25 % (1) replicas may exist.
    let watcher = crate::harness::ReplicaWatch::start(&cluster.url(), "roll");
    std::thread::sleep(Duration::from_millis(300));
    let out = cluster.apply("roll", &hello_deployment("roll", 4, "v2", ""));
    assert_eq!(out.trim(), "workloaddeployment/roll configured");
    cluster.eventually(Duration::from_secs(60), "every replica at v2", || {
        let d = cluster.deployment("roll");
        let s = &d["status"];
        let done = s["updatedReplicas"] == 4
            && s["availableReplicas"] == 4
            && cluster.placements("roll").len() == 4
            && try_get(targets[0], "/").is_ok_and(|(_, b)| b == "v2\n");
        done.then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    let most = watcher.finish();
    let failed = failures(&results);
    let v1 = results
        .iter()
        .filter(|r| matches!(r, Ok((_, b)) if b == "v1\n"))
        .count();
    let v2 = results
        .iter()
        .filter(|r| matches!(r, Ok((_, b)) if b == "v2\n"))
        .count();
    eprintln!(
        "rolling update: {} requests, {v1} v1, {v2} v2, {} failed; at most {most} replicas existed",
        results.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(v1 > 0 && v2 > 0);
    assert!(
        most <= 5,
        "{most} replicas existed at once (4 + maxSurge 1)"
    );
}

#[test]
fn a_replica_that_fails_says_why_and_is_tried_on_other_hosts_with_backoff() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[&[], &[]], 1);
    let not_wasm = cluster.dir.write("not-a-component.wasm", "this is text");
    let yaml = hello_deployment_at("/broken", "broken", 1, "x", "")
        .replace(&crate::support::wasm("hello"), not_wasm.to_str().unwrap());
    cluster.apply("broken", &yaml);
    let failure = cluster.eventually(
        Duration::from_secs(30),
        "a ReplicaFailure condition",
        || {
            let d = cluster.try_deployment("broken")?;
            d["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")
                .cloned()
        },
    );
    let message = failure["message"].as_str().unwrap();
    assert!(message.contains("spec.components[0].image"), "{message}");
    // The failing host backs off; the replica is tried on the other host.
    cluster.eventually(Duration::from_secs(30), "a try on each host", || {
        let logs = cluster.controllers[0].logs();
        let tried = |h: &str| {
            logs.lines().any(|l| {
                l.contains("placing replica")
                    && l.contains("deployment=broken")
                    && l.contains(&format!("host={h}"))
            })
        };
        (tried("h1") && tried("h2") && logs.contains("backing off that host")).then_some(())
    });

    // Fixed: the failure is history once the replica serves.
    cluster.apply(
        "broken",
        &hello_deployment_at("/broken", "broken", 1, "fixed", ""),
    );
    cluster.eventually(Duration::from_secs(60), "the fixed replica serves", || {
        let d = cluster.try_deployment("broken")?;
        let conditions = d["status"]["conditions"].as_array()?;
        let failing = conditions
            .iter()
            .any(|c| c["type"] == "ReplicaFailure" && c["status"] == "True");
        (d["status"]["availableReplicas"] == 1 && !failing).then_some(())
    });
}
