//! Examples, one or a few per rule of the scheduler.

use super::*;

// ---------------------------------------------------------------------------------------
// Examples: placement

#[test]
fn three_replicas_on_three_empty_hosts_go_one_per_host() {
    let hosts = [host("a", 4), host("b", 4), host("c", 4)];
    let plan = run(&[deployment("web", "r1", 3)], &hosts, &[]);
    assert_eq!(
        starts_per_host(&plan),
        counts(&[("a", 1), ("b", 1), ("c", 1)])
    );
    assert!(plan.unschedulable.is_empty());
}

#[test]
fn six_replicas_on_three_hosts_go_two_per_host() {
    let hosts = [host("a", 4), host("b", 4), host("c", 4)];
    let mut web = deployment("web", "r1", 6);
    web.strategy = rolling(IntOrPercent::Int(0), IntOrPercent::Int(1));
    let plan = run(&[web], &hosts, &[]);
    assert_eq!(
        starts_per_host(&plan),
        counts(&[("a", 2), ("b", 2), ("c", 2)])
    );
}

#[test]
fn spread_counts_existing_replicas_then_load_then_id() {
    // `a` already runs one `web`: the next goes elsewhere. `b` is busier with other work
    // (2 of 4 slots) than `c` (1 of 4), so `c` wins.
    let hosts = [host("a", 4), host("b", 4), host("c", 4)];
    let mut current = replicas_on(0, 1, "r1", "a", ReplicaState::Ready);
    current.push(replica("db-0", "db", "x", "b", ReplicaState::Ready));
    current.push(replica("db-1", "db", "x", "b", ReplicaState::Ready));
    current.push(replica("cache-0", "cache", "x", "c", ReplicaState::Ready));
    let desired = [
        deployment("web", "r1", 2),
        deployment("db", "x", 2),
        deployment("cache", "x", 1),
    ];
    let plan = run(&desired, &hosts, &current);
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(starts_per_host(&plan), counts(&[("c", 1)]));
}

#[test]
fn host_selector_keeps_replicas_on_matching_hosts() {
    let hosts = [
        labelled(host("a", 4), "zone", "eu"),
        labelled(host("b", 4), "zone", "us"),
        labelled(host("c", 4), "zone", "eu"),
    ];
    let mut web = deployment("web", "r1", 4);
    web.host_selector.insert("zone".into(), "eu".into());
    let plan = run(&[web], &hosts, &[]);
    assert_eq!(starts_per_host(&plan), counts(&[("a", 2), ("c", 2)]));
}

#[test]
fn unsatisfiable_deployment_names_each_host_and_its_reasons() {
    let hosts = [
        labelled(host("host-a", 4), "zone", "us"),
        labelled(host("host-b", 4), "zone", "eu"),
        offering(
            labelled(host("host-c", 4), "zone", "eu"),
            "wasi:keyvalue=redis",
        ),
        HostView {
            memory_short: true,
            ..offering(
                labelled(host("host-d", 4), "zone", "eu"),
                "wasi:keyvalue=redis",
            )
        },
    ];
    let current: Vec<Replica> = (0..4)
        .map(|n| replica(&format!("db-{n}"), "db", "x", "host-c", ReplicaState::Ready))
        .collect();
    let mut web = deployment("web", "r1", 2);
    web.host_selector.insert("zone".into(), "eu".into());
    web.needs.insert("wasi:keyvalue=redis".into());
    let plan = run(&[web, deployment("db", "x", 4)], &hosts, &current);
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.unschedulable.get("web").map(String::as_str),
        Some(
            "0/4 hosts can run it: \
             host-a: missing label zone=eu (has zone=us), does not offer wasi:keyvalue=redis; \
             host-b: does not offer wasi:keyvalue=redis; \
             host-c: full (4/4 replicas); \
             host-d: short of memory"
        )
    );
    assert!(!plan.unschedulable.contains_key("db"));
}

#[test]
fn no_live_hosts_is_unschedulable() {
    let plan = run(&[deployment("web", "r1", 1)], &[], &[]);
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.unschedulable.get("web").map(String::as_str),
        Some("no live hosts")
    );
}

#[test]
fn needs_keep_replicas_on_hosts_that_offer_them() {
    let hosts = [
        host("a", 4),
        offering(host("b", 4), "wasi:keyvalue=redis"),
        offering(
            offering(host("c", 4), "wasi:keyvalue=redis"),
            "wasi:blobstore=s3",
        ),
    ];
    let mut web = deployment("web", "r1", 2);
    web.needs.insert("wasi:keyvalue=redis".into());
    web.needs.insert("wasi:blobstore=s3".into());
    let plan = run(&[web], &hosts, &[]);
    assert_eq!(starts_per_host(&plan), counts(&[("c", 2)]));
}

#[test]
fn full_hosts_take_nothing_and_partial_placement_is_reported() {
    // `a` is full with another deployment's replicas; `b` has one free slot; `c` none.
    let hosts = [host("a", 2), host("b", 2), host("c", 0)];
    let current = vec![
        replica("db-0", "db", "x", "a", ReplicaState::Ready),
        replica("db-1", "db", "x", "a", ReplicaState::Stopping),
        replica("db-2", "db", "x", "b", ReplicaState::Ready),
    ];
    let desired = [deployment("web", "r1", 3), deployment("db", "x", 2)];
    let plan = run(&desired, &hosts, &current);
    assert_eq!(starts_per_host(&plan), counts(&[("b", 1)]));
    assert_eq!(
        plan.unschedulable.get("web").map(String::as_str),
        Some(
            "placed 1 of 3 replicas; 0/3 hosts can run more: \
             a: full (2/2 replicas); b: full (2/2 replicas); c: full (0/0 replicas)"
        )
    );
}

#[test]
fn backoff_excludes_a_host_until_it_expires() {
    let hosts = [host("a", 4), host("b", 4)];
    let desired = [deployment("web", "r1", 2)];
    let backoffs = [
        Backoff {
            deployment: "web".into(),
            host: "a".into(),
            until_ms: 5_000,
        },
        // Another deployment's backoff does not matter to `web`.
        Backoff {
            deployment: "db".into(),
            host: "b".into(),
            until_ms: 5_000,
        },
    ];
    let at = |now_ms| {
        plan(Inputs {
            desired: &desired,
            hosts: &hosts,
            current: &[],
            backoffs: &backoffs,
            now_ms,
        })
    };
    assert_eq!(starts_per_host(&at(4_999)), counts(&[("b", 2)]));
    assert_eq!(starts_per_host(&at(5_000)), counts(&[("a", 1), ("b", 1)]));

    let only_a = [host("a", 4)];
    let blocked = plan(Inputs {
        desired: &desired,
        hosts: &only_a,
        current: &[],
        backoffs: &backoffs,
        now_ms: 0,
    });
    assert_eq!(
        blocked.unschedulable.get("web").map(String::as_str),
        Some("0/1 hosts can run it: a: backing off after a failure")
    );
}

#[test]
fn replicas_on_lost_hosts_are_ignored_and_replaced() {
    // Host `gone` is not in `hosts`: its replicas are neither stopped nor counted.
    let hosts = [host("a", 4), host("b", 4)];
    let mut current = replicas_on(0, 1, "r1", "a", ReplicaState::Ready);
    current.extend(replicas_on(1, 2, "r1", "gone", ReplicaState::Ready));
    current.push(replica(
        "old-0",
        "deleted",
        "x",
        "gone",
        ReplicaState::Ready,
    ));
    let plan = run(&[deployment("web", "r1", 3)], &hosts, &current);
    assert!(stops(&plan).is_empty());
    assert_eq!(start_count(&plan), 2);
    assert!(plan.actions.iter().all(|action| match action {
        Action::Start { host, .. } | Action::Stop { host, .. } => host != "gone",
    }));
}

// ---------------------------------------------------------------------------------------
// Examples: scaling, failures, deletion

#[test]
fn scale_down_prefers_non_ready_then_crowded_hosts() {
    // 6 replicas: a holds 3 ready, b 2 ready, c 1 starting. Scaling to 1 stops the
    // starting one first, then takes from the most crowded host, the highest id first
    // on a tie: web-02 (a: 3), web-04 (2 and 2), web-01 (a: 2), web-03 (1 and 1).
    let hosts = [host("a", 4), host("b", 4), host("c", 4)];
    let mut current = replicas_on(0, 3, "r1", "a", ReplicaState::Ready);
    current.extend(replicas_on(3, 2, "r1", "b", ReplicaState::Ready));
    current.extend(replicas_on(5, 1, "r1", "c", ReplicaState::Starting));
    let plan = run(&[deployment("web", "r1", 1)], &hosts, &current);
    let stopped: Vec<String> = stops(&plan).into_iter().map(|(id, _)| id).collect();
    assert_eq!(stopped, ["web-01", "web-02", "web-03", "web-04", "web-05"]);
    assert!(
        stops(&plan)
            .iter()
            .all(|(_, why)| *why == StopReason::ScaledDown)
    );
    assert_eq!(start_count(&plan), 0);
}

#[test]
fn scale_down_restores_spread() {
    let hosts = [host("a", 8), host("b", 8)];
    let mut current = replicas_on(0, 4, "r1", "a", ReplicaState::Ready);
    current.extend(replicas_on(4, 2, "r1", "b", ReplicaState::Ready));
    let plan = run(&[deployment("web", "r1", 4)], &hosts, &current);
    let stopped: Vec<String> = stops(&plan).into_iter().map(|(id, _)| id).collect();
    assert_eq!(stopped, ["web-02", "web-03"]);
}

#[test]
fn failed_replicas_are_stopped_and_replaced_within_the_surge_bound() {
    let hosts = [host("a", 4), host("b", 4)];
    let mut current = replicas_on(0, 1, "r1", "a", ReplicaState::Ready);
    current.extend(replicas_on(1, 1, "r1", "b", ReplicaState::Failed));
    // maxSurge 1: the replacement starts while the failed one is cleaned up.
    let mut web = deployment("web", "r1", 2);
    web.strategy = rolling(IntOrPercent::Int(1), IntOrPercent::Int(0));
    let plan = run(std::slice::from_ref(&web), &hosts, &current);
    assert_eq!(stops(&plan), [("web-01".to_owned(), StopReason::Failed)]);
    assert_eq!(start_count(&plan), 1);

    // maxSurge 0: the failed replica still exists, so the replacement waits for it.
    web.strategy = rolling(IntOrPercent::Int(0), IntOrPercent::Int(1));
    let plan = run(&[web], &hosts, &current);
    assert_eq!(stops(&plan), [("web-01".to_owned(), StopReason::Failed)]);
    assert_eq!(start_count(&plan), 0);
}

#[test]
fn stopping_replicas_are_left_alone_but_count() {
    let hosts = [host("a", 4)];
    let current = replicas_on(0, 2, "r1", "a", ReplicaState::Stopping);
    let mut web = deployment("web", "r1", 2);
    web.strategy = rolling(IntOrPercent::Int(1), IntOrPercent::Int(0));
    let plan = run(&[web], &hosts, &current);
    assert!(stops(&plan).is_empty());
    assert_eq!(start_count(&plan), 1);
}

#[test]
fn deleted_deployments_have_their_replicas_stopped() {
    let hosts = [host("a", 4)];
    let current = vec![
        replica("api-0", "api", "x", "a", ReplicaState::Ready),
        replica("api-1", "api", "x", "a", ReplicaState::Failed),
        replica("api-2", "api", "x", "a", ReplicaState::Stopping),
        replica("web-0", "web", "r1", "a", ReplicaState::Ready),
    ];
    let plan = run(&[deployment("web", "r1", 1)], &hosts, &current);
    assert_eq!(
        stops(&plan),
        [
            ("api-0".to_owned(), StopReason::Deleted),
            ("api-1".to_owned(), StopReason::Deleted),
        ]
    );
    assert_eq!(start_count(&plan), 0);
}

#[test]
fn a_converged_deployment_needs_nothing() {
    let hosts = [host("a", 4), host("b", 4)];
    let current = replicas_on(0, 2, "r1", "a", ReplicaState::Ready);
    let plan = run(&[deployment("web", "r1", 2)], &hosts, &current);
    assert_eq!(plan, Plan::default());
}

// ---------------------------------------------------------------------------------------
// Examples: rollouts

#[test]
fn recreate_stops_every_old_replica_before_starting_new_ones() {
    let hosts = [host("a", 4), host("b", 4)];
    let mut web = deployment("web", "r2", 2);
    web.strategy = Strategy::Recreate;
    let desired = [web];

    // Old replicas, one ready and one starting: both stop, nothing starts.
    let mut current = replicas_on(0, 1, "r1", "a", ReplicaState::Ready);
    current.extend(replicas_on(1, 1, "r1", "b", ReplicaState::Starting));
    let first = run(&desired, &hosts, &current);
    assert_eq!(
        stops(&first),
        [
            ("web-00".to_owned(), StopReason::Replaced),
            ("web-01".to_owned(), StopReason::Replaced)
        ]
    );
    assert_eq!(start_count(&first), 0);

    // Still stopping: wait.
    let draining = replicas_on(0, 2, "r1", "a", ReplicaState::Stopping);
    assert_eq!(run(&desired, &hosts, &draining), Plan::default());

    // One old replica still stopping: still wait, though there is room for a new one.
    let one_left = replicas_on(0, 1, "r1", "a", ReplicaState::Stopping);
    assert_eq!(run(&desired, &hosts, &one_left), Plan::default());

    // All gone: start the new ones.
    let second = run(&desired, &hosts, &[]);
    assert_eq!(start_count(&second), 2);
}

#[test]
fn rolling_update_first_step_respects_surge_and_unavailable() {
    // 4 replicas at 25%/25%: one extra may exist and one ready may go.
    let hosts = [host("a", 8), host("b", 8)];
    let mut current = replicas_on(0, 2, "r1", "a", ReplicaState::Ready);
    current.extend(replicas_on(2, 2, "r1", "b", ReplicaState::Ready));
    let plan = run(&[deployment("web", "r2", 4)], &hosts, &current);
    assert_eq!(start_count(&plan), 1);
    assert_eq!(stops(&plan).len(), 1);
    assert!(
        plan.actions.iter().all(
            |action| !matches!(action, Action::Stop { why, .. } if *why != StopReason::Replaced)
        )
    );
}

#[test]
fn rolling_update_with_zero_surge_and_zero_unavailable_still_moves() {
    let hosts = [host("a", 8)];
    let current = replicas_on(0, 2, "r1", "a", ReplicaState::Ready);
    let mut web = deployment("web", "r2", 2);
    web.strategy = rolling(IntOrPercent::Int(0), IntOrPercent::Percent("0%".into()));
    let plan = run(&[web], &hosts, &current);
    assert_eq!(start_count(&plan), 0);
    assert_eq!(stops(&plan).len(), 1);
}

#[test]
fn rolling_update_keeps_new_ready_replicas_and_finishes_old_ones() {
    let hosts = [host("a", 8), host("b", 8)];
    let mut web = deployment("web", "r2", 2);
    web.strategy = rolling(IntOrPercent::Int(1), IntOrPercent::Int(0));
    // Two new ready ones, two old (one ready, one starting): every old one goes, with no
    // ready floor in the way since the new ones cover `replicas`.
    let mut current = replicas_on(0, 1, "r1", "a", ReplicaState::Ready);
    current.extend(replicas_on(1, 1, "r1", "b", ReplicaState::Starting));
    current.extend(replicas_on(2, 2, "r2", "a", ReplicaState::Ready));
    let plan = run(&[web.clone()], &hosts, &current);
    assert_eq!(
        stops(&plan),
        [
            ("web-00".to_owned(), StopReason::Replaced),
            ("web-01".to_owned(), StopReason::Replaced)
        ]
    );
    assert_eq!(start_count(&plan), 0);

    // One new ready, one new starting, one old ready: the old one must wait (ready would
    // drop to 1 < 2 - 0), and the ready new one is never touched.
    let current = vec![
        replica("web-00", "web", "r1", "a", ReplicaState::Ready),
        replica("web-02", "web", "r2", "a", ReplicaState::Ready),
        replica("web-03", "web", "r2", "b", ReplicaState::Starting),
    ];
    assert_eq!(run(&[web], &hosts, &current), Plan::default());
}

#[test]
fn plan_ignores_the_order_of_its_inputs() {
    let hosts = [host("a", 3), host("b", 3), host("c", 3)];
    let mut current = replicas_on(0, 2, "r1", "a", ReplicaState::Ready);
    current.extend(replicas_on(2, 2, "r1", "b", ReplicaState::Starting));
    current.push(replica("api-0", "api", "x", "c", ReplicaState::Failed));
    let desired = [deployment("web", "r2", 5), deployment("api", "x", 3)];
    let forward = run(&desired, &hosts, &current);
    let mut desired_rev = desired.to_vec();
    desired_rev.reverse();
    let mut hosts_rev = hosts.to_vec();
    hosts_rev.reverse();
    current.reverse();
    assert_eq!(forward, run(&desired_rev, &hosts_rev, &current));
}
