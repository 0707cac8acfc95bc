//! A cluster's numbers, as a controller (or the operator) sees them, through the `metrics`
//! facade: whichever recorder the process installs receives them.
//!
//! States are set at scrape time from the controller's view ([`hosts`], [`replicas`]);
//! events are counted when they happen ([`stopped`], [`started`]). [`Reschedules`] decides
//! which starts replace a replica that was lost with its host or failed.
//!
//! Labels are bounded by the cluster: `host_id` (hosts ever heard by this process),
//! `deployment`, and small fixed sets (`state`, `reason`).

use crate::observed::Observed;
use crate::protocol::ReplicaState;
use crate::scheduler::{Action, HostView, Replica, StopReason};
use metrics::{counter, gauge};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Seconds since each host's last heartbeat.
pub const HEARTBEAT_AGE: &str = "hearth_cluster_host_heartbeat_age_seconds";
/// Hosts by `state`: `ready` (heard within the timeout) or `lost`.
pub const HOSTS: &str = "hearth_cluster_hosts";
/// Replicas a deployment wants.
pub const REPLICAS_DESIRED: &str = "hearth_cluster_replicas_desired";
/// Replicas of a deployment ready on live hosts (any revision).
pub const REPLICAS_READY: &str = "hearth_cluster_replicas_ready";
/// Replicas started to replace one lost with its host or failed, by `reason`.
pub const RESCHEDULES: &str = "hearth_cluster_reschedules_total";
/// Replicas started, for any reason.
pub const STARTS: &str = "hearth_cluster_replica_starts_total";
/// Replicas stopped, by `reason`.
pub const STOPS: &str = "hearth_cluster_replica_stops_total";
/// 1 on the controller that holds the leader lease, else 0.
pub const LEADER: &str = "hearth_cluster_leader";

/// Sets the host gauges from `observed`: every host this process has heard of.
pub fn hosts(observed: &Observed) {
    let (mut ready, mut lost) = (0u32, 0u32);
    for seen in observed.hosts() {
        let id = &seen.heartbeat.host_id;
        gauge!(HEARTBEAT_AGE, "host_id" => id.clone()).set(seen.at.elapsed().as_secs_f64());
        if observed.is_live(id) {
            ready += 1;
        } else {
            lost += 1;
        }
    }
    gauge!(HOSTS, "state" => "ready").set(f64::from(ready));
    gauge!(HOSTS, "state" => "lost").set(f64::from(lost));
}

/// Ready replicas per deployment, from the heartbeats of live hosts.
pub fn ready_by_deployment(observed: &Observed) -> HashMap<String, u32> {
    let mut ready = HashMap::new();
    for seen in observed.hosts() {
        if !observed.is_live(&seen.heartbeat.host_id) {
            continue;
        }
        for r in &seen.heartbeat.replicas {
            if r.state == ReplicaState::Ready {
                *ready.entry(r.deployment.clone()).or_insert(0) += 1;
            }
        }
    }
    ready
}

/// Sets the replica gauges: `desired` maps each deployment to the replicas it wants (`None`:
/// its document is invalid). A deployment gone since the last call is set to 0 in `shown`,
/// the names this process has reported (the recorder cannot forget a series).
pub fn replicas(
    desired: &BTreeMap<String, Option<u32>>,
    ready: &HashMap<String, u32>,
    shown: &mut HashSet<String>,
) {
    for (name, wanted) in desired {
        let labels = [("deployment", name.clone())];
        gauge!(REPLICAS_DESIRED, &labels).set(f64::from(wanted.unwrap_or(0)));
        gauge!(REPLICAS_READY, &labels).set(f64::from(ready.get(name).copied().unwrap_or(0)));
        shown.insert(name.clone());
    }
    shown.retain(|name| {
        if desired.contains_key(name) {
            return true;
        }
        let labels = [("deployment", name.clone())];
        gauge!(REPLICAS_DESIRED, &labels).set(0.0);
        gauge!(REPLICAS_READY, &labels).set(0.0);
        false
    });
}

/// Sets every gauge of a controller's (or the operator's) view, at scrape: whether it
/// leads, the hosts it hears, and each deployment's desired (`desired`, as in [`replicas`])
/// and ready replicas.
pub fn view(
    leads: bool,
    observed: &Observed,
    desired: &BTreeMap<String, Option<u32>>,
    shown: &mut HashSet<String>,
) {
    leader(leads);
    hosts(observed);
    replicas(desired, &ready_by_deployment(observed), shown);
}

/// Sets whether this process leads.
pub fn leader(leads: bool) {
    gauge!(LEADER).set(f64::from(u8::from(leads)));
}

/// The `reason` label of a stop.
pub fn stop_reason(why: StopReason) -> &'static str {
    match why {
        StopReason::ScaledDown => "scaled_down",
        StopReason::Replaced => "replaced",
        StopReason::Failed => "failed",
        StopReason::Deleted => "deleted",
    }
}

/// A replica was stopped.
pub fn stopped(why: StopReason) {
    counter!(STOPS, "reason" => stop_reason(why)).increment(1);
}

/// A replica was started; `replacing` says why if it replaces a lost or failed one.
pub fn started(replacing: Option<Lost>) {
    counter!(STARTS).increment(1);
    if let Some(lost) = replacing {
        counter!(RESCHEDULES, "reason" => lost.as_str()).increment(1);
    }
}

/// Why a replica had to be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// Its host stopped sending heartbeats.
    HostLost,
    /// It failed on its host (and was stopped).
    Failed,
}

impl Lost {
    pub fn as_str(self) -> &'static str {
        match self {
            Lost::HostLost => "host_lost",
            Lost::Failed => "failed",
        }
    }
}

/// Which starts are reschedules: between passes of the planner it notes the replicas that
/// vanished with their host and those stopped because they failed, and owes each
/// deployment a replacement for each; the deployment's next starts pay that debt.
#[derive(Debug, Default)]
pub struct Reschedules {
    /// Replicas on live hosts at the last pass: id → (deployment, host).
    last: HashMap<String, (String, String)>,
    /// Failed replicas already owed for.
    failed: HashSet<String>,
    /// Replacements owed per deployment.
    owed: HashMap<String, Vec<Lost>>,
}

impl Reschedules {
    /// One pass of the planner: `hosts` and `current` are what it planned from, `actions`
    /// what it decided, `desired` whether a deployment still exists. Returns, for each action,
    /// the reason a start replaces a lost replica (`None` for stops and other starts).
    pub fn pass(
        &mut self,
        hosts: &[HostView],
        current: &[Replica],
        actions: &[Action],
        desired: impl Fn(&str) -> bool,
    ) -> Vec<Option<Lost>> {
        let live: HashSet<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
        let now: HashSet<&str> = current.iter().map(|r| r.id.as_str()).collect();
        for (id, (deployment, host)) in &self.last {
            if !live.contains(host.as_str()) && !now.contains(id.as_str()) {
                self.owed
                    .entry(deployment.clone())
                    .or_default()
                    .push(Lost::HostLost);
            }
        }
        for action in actions {
            if let Action::Stop {
                replica,
                deployment,
                why: StopReason::Failed,
                ..
            } = action
                && self.failed.insert(replica.clone())
            {
                self.owed
                    .entry(deployment.clone())
                    .or_default()
                    .push(Lost::Failed);
            }
        }
        let reasons = actions
            .iter()
            .map(|action| match action {
                Action::Start { deployment, .. } => {
                    self.owed.get_mut(deployment).and_then(|owed| owed.pop())
                }
                Action::Stop { .. } => None,
            })
            .collect();
        self.owed
            .retain(|deployment, owed| !owed.is_empty() && desired(deployment));
        self.failed.retain(|id| now.contains(id.as_str()));
        self.last = current
            .iter()
            .filter(|r| r.state != ReplicaState::Failed)
            .map(|r| (r.id.clone(), (r.deployment.clone(), r.host.clone())))
            .collect();
        reasons
    }

    /// This process stopped planning (it lost the lease or cannot see the hosts): what it
    /// saw is stale, so nothing is owed for changes it did not watch.
    pub fn forget(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str) -> HostView {
        HostView {
            id: id.into(),
            labels: BTreeMap::new(),
            offers: Default::default(),
            max_replicas: 10,
            memory_short: false,
        }
    }

    fn replica(id: &str, host: &str, state: ReplicaState) -> Replica {
        Replica {
            id: id.into(),
            deployment: "web".into(),
            revision: "r1".into(),
            host: host.into(),
            state,
        }
    }

    fn start(host: &str) -> Action {
        Action::Start {
            deployment: "web".into(),
            revision: "r1".into(),
            host: host.into(),
        }
    }

    #[test]
    fn a_start_after_a_host_is_lost_is_a_reschedule_and_a_scale_up_is_not() {
        let mut r = Reschedules::default();
        let both = [host("a"), host("b")];
        let running = [
            replica("1", "a", ReplicaState::Ready),
            replica("2", "b", ReplicaState::Ready),
        ];
        assert_eq!(r.pass(&both, &running, &[], |_| true), vec![]);
        // Host b is lost: its replica is gone from the view; the planner starts one on a.
        let only_a = [host("a")];
        let left = [replica("1", "a", ReplicaState::Ready)];
        assert_eq!(
            r.pass(&only_a, &left, &[start("a")], |_| true),
            vec![Some(Lost::HostLost)]
        );
        // A later start (scale up) owes nothing.
        assert_eq!(r.pass(&only_a, &left, &[start("a")], |_| true), vec![None]);
    }

    #[test]
    fn a_failed_replica_is_owed_once() {
        let mut r = Reschedules::default();
        let hosts = [host("a")];
        let failed = [replica("1", "a", ReplicaState::Failed)];
        let stop = Action::Stop {
            replica: "1".into(),
            deployment: "web".into(),
            host: "a".into(),
            why: StopReason::Failed,
        };
        // The stop is sent twice (say the first was not delivered): one replacement owed.
        assert_eq!(
            r.pass(&hosts, &failed, std::slice::from_ref(&stop), |_| true),
            vec![None]
        );
        assert_eq!(
            r.pass(&hosts, &failed, &[stop, start("a"), start("a")], |_| true),
            vec![None, Some(Lost::Failed), None]
        );
    }

    #[test]
    fn a_deleted_deployment_owes_nothing() {
        let mut r = Reschedules::default();
        let running = [replica("1", "b", ReplicaState::Ready)];
        r.pass(&[host("b")], &running, &[], |_| true);
        r.pass(&[], &[], &[], |_| false);
        assert_eq!(r.pass(&[], &[], &[start("a")], |_| true), vec![None]);
    }
}
