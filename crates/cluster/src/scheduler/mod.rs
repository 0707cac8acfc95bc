//! The scheduler: `plan(desired, hosts, current) -> actions`, a pure function.
//!
//! It does no I/O and reads no clock (the caller passes `now`), so every rule below is
//! tested exhaustively by property tests; the controller (NATS store) and the operator
//! (Kubernetes store) feed it and carry out what it returns.
//!
//! Rules, per deployment:
//! - **Filter**: a host is eligible when it carries every `hostSelector` label, offers every
//!   `package=backend` the deployment needs, has a free replica slot, is not short of memory,
//!   and is not in a failure backoff for this deployment. When no host is, the deployment is
//!   `Unschedulable` and the reason names each host and why it was ruled out.
//! - **Score**: spread first (fewest replicas of this deployment), then least loaded (share
//!   of slots in use), then the host id (so the result is deterministic).
//! - **Stability**: a ready replica of the current revision is never stopped except to
//!   lower the count; replicas on hosts absent from `hosts` are gone (their host is lost).
//! - **Rollout** (`RollingUpdate`): never more than `replicas + maxSurge` replicas exist
//!   (starting, ready, failed or stopping), and ready ones never drop below
//!   `replicas - maxUnavailable` because of a stop this plan issues. `Recreate` stops every
//!   old replica before it starts a new one.
//! - **Scale down / extras**: stop non-ready replicas first, then those on the most crowded
//!   host (restoring spread).
//! - **Failed** replicas are stopped (the controller records the failure, which puts that
//!   host in backoff for the deployment) and replaced elsewhere.
//! - Replicas of deployments that are no longer desired are stopped.
//!
//! Counting, as the controller and the property tests rely on it:
//! - a replica is *live* when it is pending, starting or ready; failed and stopping
//!   replicas still *exist* (they hold a slot and count against `maxSurge`) but are
//!   neither live nor ready;
//! - a host's slots in use are every replica on it, of any deployment and in any state,
//!   plus the starts this plan has already sent there (a stop frees its slot only once the
//!   replica is gone, in a later plan);
//! - spread (placement) counts the live replicas of the desired revision on each host,
//!   this plan's starts included; "crowded" (choosing what to stop) counts live replicas
//!   of either revision, so a rollout keeps the total spread as it goes;
//! - a failed replica gets a `Stop` in every plan until it is stopping or gone, so the
//!   controller should treat a repeated stop as already done;
//! - `maxSurge` rounds up and `maxUnavailable` down; when both come to 0 `maxUnavailable`
//!   is taken as 1, and a malformed value falls back to the default `25%`. `Recreate` has
//!   no surge and no floor on ready replicas.
//!
//! Deployments are planned in name order, hosts are compared by id and replicas by id,
//! so the plan does not depend on the order of the inputs either.

mod hosts;
mod rollout;

use crate::protocol::ReplicaState;
use hearth_manifest::Strategy;
use hosts::{Demand, Hosts};
use std::collections::{BTreeMap, BTreeSet};

/// One deployment as the store wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub name: String,
    /// Hash of the template: replicas of another revision are old.
    pub revision: String,
    pub replicas: u32,
    pub strategy: Strategy,
    pub host_selector: BTreeMap<String, String>,
    /// `package=backend` entries the workload declares (`wasi:keyvalue=redis`).
    pub needs: BTreeSet<String>,
}

/// One live host as its latest heartbeat describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub offers: BTreeSet<String>,
    /// How many replicas it accepts in all.
    pub max_replicas: u32,
    /// Free memory is below the host's floor: no new replicas there.
    pub memory_short: bool,
}

/// One replica the controller knows of, on a live host.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub id: String,
    pub deployment: String,
    pub revision: String,
    pub host: String,
    pub state: ReplicaState,
}

/// A host that recently failed to run a deployment, excluded for it until `until_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub deployment: String,
    pub host: String,
    pub until_ms: u64,
}

/// Everything `plan` looks at.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub desired: &'a [Desired],
    pub hosts: &'a [HostView],
    pub current: &'a [Replica],
    pub backoffs: &'a [Backoff],
    pub now_ms: u64,
}

/// One step for the controller to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a new replica of `deployment` at `revision` on `host` (the controller picks
    /// its id).
    Start {
        deployment: String,
        revision: String,
        host: String,
    },
    /// Stop replica `replica` on `host`.
    Stop {
        replica: String,
        deployment: String,
        host: String,
        why: StopReason,
    },
}

/// Why a replica is stopped (for events and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// More replicas than desired.
    ScaledDown,
    /// An old revision, replaced by the rollout.
    Replaced,
    /// It failed on its host.
    Failed,
    /// Its deployment is gone.
    Deleted,
}

/// What `plan` decided, and what it could not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Deployments that want more replicas than any host can take, with the reason
    /// (each host and why it was ruled out).
    pub unschedulable: BTreeMap<String, String>,
}

/// Computes the actions that move `current` towards `desired`.
pub fn plan(inputs: Inputs<'_>) -> Plan {
    let mut hosts = Hosts::new(inputs.hosts, inputs.current);
    // A replica on a host that is not live is gone with its host: it is neither counted
    // nor stopped, and its deployment replaces it elsewhere.
    let mut live: Vec<&Replica> = inputs
        .current
        .iter()
        .filter(|replica| hosts.is_live(&replica.host))
        .collect();
    live.sort_by(|a, b| (&a.deployment, &a.id).cmp(&(&b.deployment, &b.id)));

    // The first entry wins if a name is desired twice; name order makes the competition
    // for slots between deployments deterministic.
    let mut desired: BTreeMap<&str, &Desired> = BTreeMap::new();
    for deployment in inputs.desired {
        desired
            .entry(deployment.name.as_str())
            .or_insert(deployment);
    }

    let mut plan = Plan::default();
    for deployment in desired.values() {
        let own: Vec<&Replica> = live
            .iter()
            .copied()
            .filter(|replica| replica.deployment == deployment.name)
            .collect();
        let demand = Demand {
            desired: deployment,
            backoffs: inputs.backoffs,
            now_ms: inputs.now_ms,
        };
        rollout::plan_deployment(&demand, &own, &mut hosts, &mut plan);
    }
    stop_deleted(&live, &desired, &mut plan);
    plan
}

/// Stops every replica whose deployment is no longer desired (unless it already stops).
fn stop_deleted(live: &[&Replica], desired: &BTreeMap<&str, &Desired>, plan: &mut Plan) {
    for replica in live {
        if !desired.contains_key(replica.deployment.as_str())
            && replica.state != ReplicaState::Stopping
        {
            plan.actions.push(stop(replica, StopReason::Deleted));
        }
    }
}

/// The action that stops `replica`.
fn stop(replica: &Replica, why: StopReason) -> Action {
    Action::Stop {
        replica: replica.id.clone(),
        deployment: replica.deployment.clone(),
        host: replica.host.clone(),
        why,
    }
}
