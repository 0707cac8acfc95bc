//! The scheduler's contract: examples for each rule (`examples.rs`), then property tests
//! that drive rollouts through a simulated cluster and check the invariants on every step
//! (`simulated.rs`). This file holds the builders both use.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use hearth_cluster::protocol::ReplicaState;
use hearth_cluster::scheduler::{
    Action, Backoff, Desired, HostView, Inputs, Plan, Replica, StopReason, plan,
};
use hearth_manifest::{IntOrPercent, RollingUpdate, Strategy};
use std::collections::{BTreeMap, BTreeSet};

mod examples;
mod simulated;

// ---------------------------------------------------------------------------------------
// Builders

fn host(id: &str, max_replicas: u32) -> HostView {
    HostView {
        id: id.into(),
        labels: BTreeMap::new(),
        offers: BTreeSet::new(),
        max_replicas,
        memory_short: false,
    }
}

fn labelled(mut host: HostView, key: &str, value: &str) -> HostView {
    host.labels.insert(key.into(), value.into());
    host
}

fn offering(mut host: HostView, offer: &str) -> HostView {
    host.offers.insert(offer.into());
    host
}

fn rolling(max_surge: IntOrPercent, max_unavailable: IntOrPercent) -> Strategy {
    Strategy::RollingUpdate {
        rolling_update: RollingUpdate {
            max_surge,
            max_unavailable,
        },
    }
}

fn deployment(name: &str, revision: &str, replicas: u32) -> Desired {
    Desired {
        name: name.into(),
        revision: revision.into(),
        replicas,
        strategy: Strategy::default(),
        host_selector: BTreeMap::new(),
        needs: BTreeSet::new(),
    }
}

fn replica(id: &str, deployment: &str, revision: &str, host: &str, state: ReplicaState) -> Replica {
    Replica {
        id: id.into(),
        deployment: deployment.into(),
        revision: revision.into(),
        host: host.into(),
        state,
    }
}

/// `count` replicas `web-<first>`… of `web` at `revision`, all in `state` on `host`.
fn replicas_on(
    first: usize,
    count: usize,
    revision: &str,
    host: &str,
    state: ReplicaState,
) -> Vec<Replica> {
    (first..first + count)
        .map(|n| replica(&format!("web-{n:02}"), "web", revision, host, state))
        .collect()
}

fn run(desired: &[Desired], hosts: &[HostView], current: &[Replica]) -> Plan {
    plan(Inputs {
        desired,
        hosts,
        current,
        backoffs: &[],
        now_ms: 0,
    })
}

/// How many starts the plan sends to each host.
fn starts_per_host(plan: &Plan) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for action in &plan.actions {
        if let Action::Start { host, .. } = action {
            *counts.entry(host.clone()).or_insert(0) += 1;
        }
    }
    counts
}

fn start_count(plan: &Plan) -> usize {
    starts_per_host(plan).values().sum()
}

/// The replicas the plan stops, with why, sorted by replica id.
fn stops(plan: &Plan) -> Vec<(String, StopReason)> {
    let mut stopped: Vec<(String, StopReason)> = plan
        .actions
        .iter()
        .filter_map(|action| match action {
            Action::Stop { replica, why, .. } => Some((replica.clone(), *why)),
            Action::Start { .. } => None,
        })
        .collect();
    stopped.sort_by(|a, b| a.0.cmp(&b.0));
    stopped
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}
