//! One deployment's plan: stop what failed, start what is missing within the surge bound,
//! and stop old or surplus replicas within the ready floor.

use super::hosts::{Demand, Hosts};
use super::{Action, Desired, Plan, Replica, StopReason, stop};
use crate::protocol::ReplicaState;
use hearth_manifest::{RollingUpdate, Strategy};
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// How far a rollout may stray from `replicas`.
struct Limits {
    /// Replicas that may exist beyond `replicas`.
    surge: u32,
    /// How many ready replicas may be stopped below `replicas`; `None` for no floor at
    /// all (`Recreate` stops every old replica at once).
    unavailable: Option<u32>,
}

impl Limits {
    fn of(desired: &Desired) -> Self {
        match &desired.strategy {
            Strategy::Recreate => Limits {
                surge: 0,
                unavailable: None,
            },
            Strategy::RollingUpdate { rolling_update } => {
                let (surge, unavailable) = resolve(rolling_update, desired.replicas);
                Limits {
                    surge,
                    unavailable: Some(unavailable),
                }
            }
        }
    }
}

/// `maxSurge` rounds up and `maxUnavailable` down, as Kubernetes does. A malformed value
/// (validation rejects those) falls back to the default rather than blocking the
/// deployment, and 0/0 allows one unavailable replica, or the rollout could never move.
fn resolve(rolling_update: &RollingUpdate, replicas: u32) -> (u32, u32) {
    let default = RollingUpdate::default();
    let surge = rolling_update
        .max_surge
        .resolve(replicas, true)
        .or_else(|| default.max_surge.resolve(replicas, true))
        .unwrap_or(0);
    let unavailable = rolling_update
        .max_unavailable
        .resolve(replicas, false)
        .or_else(|| default.max_unavailable.resolve(replicas, false))
        .unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Pending, starting or ready: it runs, or will.
fn is_live(replica: &Replica) -> bool {
    matches!(
        replica.state,
        ReplicaState::Pending | ReplicaState::Starting | ReplicaState::Ready
    )
}

fn is_ready(replica: &Replica) -> bool {
    replica.state == ReplicaState::Ready
}

/// A deployment's replicas on live hosts, counted the ways the rules need.
struct Census<'a> {
    /// Every replica, failed and stopping ones included (the surge bound).
    existing: usize,
    /// Ready replicas of any revision (the ready floor).
    ready: usize,
    /// Live replicas of the desired revision.
    new_live: Vec<&'a Replica>,
    /// Live replicas of another revision.
    old_live: Vec<&'a Replica>,
    /// Whether any replica of another revision exists, in any state (`Recreate` waits).
    any_old: bool,
}

impl<'a> Census<'a> {
    fn of(desired: &Desired, replicas: &[&'a Replica]) -> Self {
        let is_new = |replica: &Replica| replica.revision == desired.revision;
        let live = || replicas.iter().copied().filter(|r| is_live(r));
        Census {
            existing: replicas.len(),
            ready: replicas.iter().filter(|r| is_ready(r)).count(),
            new_live: live().filter(|r| is_new(r)).collect(),
            old_live: live().filter(|r| !is_new(r)).collect(),
            any_old: replicas.iter().any(|r| !is_new(r)),
        }
    }

    /// Live replicas (either revision) per host: how crowded each host is.
    fn live_per_host(&self) -> BTreeMap<&'a str, u32> {
        let mut counts = BTreeMap::new();
        for replica in self.new_live.iter().chain(&self.old_live) {
            *counts.entry(replica.host.as_str()).or_insert(0) += 1;
        }
        counts
    }

    /// Live replicas of the desired revision per host: what a new one spreads against.
    fn new_per_host(&self) -> BTreeMap<&'a str, u32> {
        let mut counts = BTreeMap::new();
        for replica in &self.new_live {
            *counts.entry(replica.host.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

/// Appends the actions for one deployment (its `replicas` are those on live hosts, sorted
/// by id) and records it as unschedulable when starts found no host.
pub(super) fn plan_deployment<'a>(
    demand: &Demand<'a>,
    replicas: &[&'a Replica],
    hosts: &mut Hosts<'a>,
    plan: &mut Plan,
) {
    let desired = demand.desired;
    let limits = Limits::of(desired);
    let census = Census::of(desired, replicas);

    // A failed replica is cleaned up whatever else happens; its replacement waits until
    // it is gone when the surge bound is tight, since it still exists until then.
    for replica in replicas.iter().filter(|r| r.state == ReplicaState::Failed) {
        plan.actions.push(stop(replica, StopReason::Failed));
    }

    let placed = place_starts(demand, &census, &limits, hosts, plan);
    let mut crowding = census.live_per_host();
    for host in &placed {
        *crowding.entry(host).or_insert(0) += 1;
    }
    plan_stops(desired, &census, &limits, &mut crowding, plan);
    plan.actions
        .extend(placed.into_iter().map(|host| Action::Start {
            deployment: desired.name.clone(),
            revision: desired.revision.clone(),
            host: host.to_owned(),
        }));
}

/// How many new replicas to start now: the missing ones, within `replicas + maxSurge`
/// existing replicas (none at all while `Recreate` still has old ones).
fn starts_wanted(desired: &Desired, census: &Census<'_>, limits: &Limits) -> usize {
    if matches!(desired.strategy, Strategy::Recreate) && census.any_old {
        return 0;
    }
    let replicas = desired.replicas as usize;
    let missing = replicas.saturating_sub(census.new_live.len());
    let room = (replicas + limits.surge as usize).saturating_sub(census.existing);
    missing.min(room)
}

/// Picks a host for each start, one at a time so that consecutive starts spread, and
/// records why when some found no host. Returns the chosen hosts.
fn place_starts<'a>(
    demand: &Demand<'a>,
    census: &Census<'a>,
    limits: &Limits,
    hosts: &mut Hosts<'a>,
    plan: &mut Plan,
) -> Vec<&'a str> {
    let wanted = starts_wanted(demand.desired, census, limits);
    let mut spread = census.new_per_host();
    let mut placed = Vec::with_capacity(wanted);
    while placed.len() < wanted {
        let Some(host) = hosts.pick(demand, &spread) else {
            let why = hosts.explain(demand, placed.len(), wanted);
            plan.unschedulable.insert(demand.desired.name.clone(), why);
            break;
        };
        hosts.reserve(host);
        *spread.entry(host).or_insert(0) += 1;
        placed.push(host);
    }
    placed
}

/// Stops old replicas (`Replaced`) and replicas beyond `replicas` (`ScaledDown`), never
/// taking ready ones below `replicas - maxUnavailable`.
fn plan_stops<'a>(
    desired: &Desired,
    census: &Census<'a>,
    limits: &Limits,
    crowding: &mut BTreeMap<&'a str, u32>,
    plan: &mut Plan,
) {
    // How many ready replicas this plan may stop. Ready replicas of the desired revision
    // are stopped only beyond `replicas`, so with no old ones this never binds.
    let mut ready_budget = limits.unavailable.map(|unavailable| {
        let floor = (desired.replicas as usize).saturating_sub(unavailable as usize);
        census.ready.saturating_sub(floor)
    });

    let old = match limits.unavailable {
        // `Recreate`: every old replica goes at once.
        None => census.old_live.clone(),
        Some(_) => choose_stops(
            &census.old_live,
            census.old_live.len(),
            &mut ready_budget,
            crowding,
        ),
    };
    for replica in old {
        plan.actions.push(stop(replica, StopReason::Replaced));
    }

    let surplus = census
        .new_live
        .len()
        .saturating_sub(desired.replicas as usize);
    for replica in choose_stops(&census.new_live, surplus, &mut ready_budget, crowding) {
        plan.actions.push(stop(replica, StopReason::ScaledDown));
    }
}

/// Chooses up to `count` of `candidates` to stop: non-ready ones first (stopping them
/// costs no availability), then those on the host most crowded with this deployment
/// (restoring spread), then the highest id (determinism). A ready one takes one unit of
/// `ready_budget` (`None`: unlimited); when that runs out only ready ones are left, so
/// the choice ends there.
fn choose_stops<'a>(
    candidates: &[&'a Replica],
    count: usize,
    ready_budget: &mut Option<usize>,
    crowding: &mut BTreeMap<&'a str, u32>,
) -> Vec<&'a Replica> {
    let mut left = candidates.to_vec();
    let mut chosen = Vec::with_capacity(count.min(left.len()));
    while chosen.len() < count {
        let crowd = |replica: &Replica| crowding.get(replica.host.as_str()).copied();
        let next = left
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| (is_ready(r), Reverse(crowd(r)), Reverse(r.id.as_str())))
            .map(|(index, _)| index);
        let Some(index) = next else { break };
        let replica = left[index];
        if is_ready(replica) {
            match ready_budget {
                Some(0) => break,
                Some(budget) => *budget -= 1,
                None => {}
            }
        }
        left.swap_remove(index);
        if let Some(count) = crowding.get_mut(replica.host.as_str()) {
            *count = count.saturating_sub(1);
        }
        chosen.push(replica);
    }
    chosen
}
