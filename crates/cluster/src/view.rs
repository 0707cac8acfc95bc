//! What a host sees of its cluster, for its dashboard and `GET /v1/cluster`: every host
//! heard (its own heartbeats included), with its capacity, heartbeat age and replicas, and
//! every deployment's status as the acting controller last wrote it (replicas desired and
//! ready, where each replica runs, a rollout under way).
//!
//! Heartbeats come from the agent's subscription. Statuses come from a watch on the
//! `hearth-status` bucket; where the host may not read it (NATS permissions, or no NATS
//! controller: the Kubernetes operator keeps status in the API server), deployments are
//! summed up from the heartbeats alone.

use crate::agent::PEER_FRESH;
use crate::protocol::{Capacity, Heartbeat, ReplicaReport, ReplicaState};
use crate::store::{DeploymentStatus, STATUS};
use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A host silent this long is no longer shown at all.
const FORGET_AFTER: Duration = Duration::from_secs(300);
/// How long to wait before watching the status bucket again after it failed or ended...
const REWATCH: Duration = Duration::from_secs(1);
/// ... and at most, after failures in a row.
const REWATCH_MAX: Duration = Duration::from_secs(30);

/// The cluster as one host sees it.
pub struct ClusterView {
    me: String,
    hosts: Mutex<BTreeMap<String, (Instant, Heartbeat)>>,
    statuses: Mutex<BTreeMap<String, DeploymentStatus>>,
}

/// [`ClusterView::snapshot`]: what the admin API serves.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSnapshot {
    /// The host answering.
    pub host_id: String,
    pub hosts: Vec<HostSnapshot>,
    pub deployments: Vec<DeploymentSnapshot>,
}

/// One host as last heard.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostSnapshot {
    pub id: String,
    /// Milliseconds since its last heartbeat arrived here.
    pub heartbeat_age_ms: u64,
    /// `ready`, or `lost` once silent for longer than peers are forwarded to
    /// ([`PEER_FRESH`]).
    pub state: &'static str,
    pub version: String,
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    pub offers: BTreeSet<String>,
    pub http: Option<String>,
    pub replicas: Vec<ReplicaReport>,
}

/// One deployment: the controller's status when there is one, and where its replicas run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSnapshot {
    pub name: String,
    /// As the acting controller last wrote it (`None`: not readable from this host).
    pub status: Option<DeploymentStatus>,
    /// Replicas by host, from the heartbeats of live hosts.
    pub placements: BTreeMap<String, Vec<String>>,
    /// Revisions reported by live hosts: more than one while a rollout replaces replicas.
    pub revisions: BTreeSet<String>,
    /// Ready replicas reported by live hosts.
    pub ready: u32,
    /// A rollout is under way: the status says replicas are updating, or (without a
    /// status) live hosts report more than one revision or replicas still starting.
    pub rolling_out: bool,
}

impl ClusterView {
    /// The view of host `me`.
    pub fn new(me: impl Into<String>) -> Self {
        Self {
            me: me.into(),
            hosts: Mutex::new(BTreeMap::new()),
            statuses: Mutex::new(BTreeMap::new()),
        }
    }

    fn hosts(&self) -> MutexGuard<'_, BTreeMap<String, (Instant, Heartbeat)>> {
        self.hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn statuses(&self) -> MutexGuard<'_, BTreeMap<String, DeploymentStatus>> {
        self.statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A heartbeat arrived (this host's own included).
    pub fn saw(&self, heartbeat: Heartbeat) {
        let mut hosts = self.hosts();
        hosts.retain(|_, (seen, _)| seen.elapsed() < FORGET_AFTER);
        hosts.insert(heartbeat.host_id.clone(), (Instant::now(), heartbeat));
    }

    /// A deployment's status was written (`Some`) or removed (`None`).
    pub fn status_changed(&self, name: &str, status: Option<DeploymentStatus>) {
        let mut statuses = self.statuses();
        match status {
            Some(s) => statuses.insert(name.to_string(), s),
            None => statuses.remove(name),
        };
    }

    /// The cluster now.
    pub fn snapshot(&self) -> ClusterSnapshot {
        let mut deployments: BTreeMap<String, DeploymentSnapshot> = BTreeMap::new();
        let hosts: Vec<HostSnapshot> = self
            .hosts()
            .values()
            .filter(|(seen, _)| seen.elapsed() < FORGET_AFTER)
            .map(|(seen, hb)| {
                let age = seen.elapsed();
                let live = age < PEER_FRESH;
                if live {
                    for r in &hb.replicas {
                        let d = entry(&mut deployments, &r.deployment);
                        d.placements
                            .entry(hb.host_id.clone())
                            .or_default()
                            .push(r.id.clone());
                        d.revisions.insert(r.revision.clone());
                        d.ready += u32::from(r.state == ReplicaState::Ready);
                        d.rolling_out |= r.state == ReplicaState::Starting;
                    }
                }
                HostSnapshot {
                    id: hb.host_id.clone(),
                    heartbeat_age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                    state: if live { "ready" } else { "lost" },
                    version: hb.version.clone(),
                    labels: hb.labels.clone(),
                    capacity: hb.capacity.clone(),
                    offers: hb.offers.clone(),
                    http: hb.http.clone(),
                    replicas: hb.replicas.clone(),
                }
            })
            .collect();
        for (name, status) in self.statuses().iter() {
            entry(&mut deployments, name).status = Some(status.clone());
        }
        for d in deployments.values_mut() {
            d.rolling_out = match &d.status {
                Some(status) => status
                    .conditions
                    .iter()
                    .any(|c| c.kind == "Progressing" && c.reason != "NewReplicasAvailable"),
                None => d.rolling_out || d.revisions.len() > 1,
            };
        }
        ClusterSnapshot {
            host_id: self.me.clone(),
            hosts,
            deployments: deployments.into_values().collect(),
        }
    }

    /// Follows the `hearth-status` bucket for as long as the process runs. Whenever it
    /// cannot be read (not created yet, not permitted) or the watch ends, it is watched
    /// again after [`REWATCH`], doubled per failure in a row up to [`REWATCH_MAX`].
    pub async fn watch_statuses(&self, client: async_nats::Client) {
        let js = jetstream::new(client);
        let mut wait = REWATCH;
        loop {
            let watched = match js.get_key_value(STATUS).await {
                Ok(bucket) => bucket.watch_all().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match watched {
                Ok(watch) => {
                    wait = REWATCH;
                    // The watch starts with every current value: what it does not bring
                    // was deleted meanwhile.
                    self.statuses().clear();
                    self.follow(watch).await;
                }
                Err(e) => {
                    if wait == REWATCH {
                        tracing::debug!(error = %e, "deployment statuses not readable (yet); the dashboard sums up heartbeats");
                    }
                    wait = (wait * 2).min(REWATCH_MAX);
                }
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn follow(&self, mut watch: kv::Watch) {
        while let Some(change) = watch.next().await {
            let Ok(entry) = change else { return };
            match entry.operation {
                kv::Operation::Put => match serde_json::from_slice(&entry.value) {
                    Ok(status) => self.status_changed(&entry.key, Some(status)),
                    Err(e) => {
                        tracing::debug!(key = %entry.key, error = %e, "ignored a malformed status");
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => {
                    self.status_changed(&entry.key, None);
                }
            }
        }
    }
}

/// The deployment `name` in `all`, added empty if missing.
fn entry<'a>(
    all: &'a mut BTreeMap<String, DeploymentSnapshot>,
    name: &str,
) -> &'a mut DeploymentSnapshot {
    all.entry(name.to_string())
        .or_insert_with(|| DeploymentSnapshot {
            name: name.to_string(),
            status: None,
            placements: BTreeMap::new(),
            revisions: BTreeSet::new(),
            ready: 0,
            rolling_out: false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PROTOCOL;
    use crate::store::Condition;

    fn beat(host: &str, replicas: &[(&str, &str, ReplicaState)]) -> Heartbeat {
        Heartbeat {
            protocol: PROTOCOL,
            host_id: host.into(),
            seq: 1,
            instance: "i".into(),
            version: "0.1.0".into(),
            labels: BTreeMap::new(),
            capacity: Capacity::default(),
            offers: BTreeSet::new(),
            http: None,
            term: 1,
            replicas: replicas
                .iter()
                .map(|(id, revision, state)| ReplicaReport {
                    id: (*id).into(),
                    deployment: "shop".into(),
                    revision: (*revision).into(),
                    state: *state,
                    message: None,
                    routes: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn placements_and_a_rollout_come_from_heartbeats_without_a_status() {
        let view = ClusterView::new("h1");
        view.saw(beat("h1", &[("shop-a", "r1", ReplicaState::Ready)]));
        view.saw(beat("h2", &[("shop-b", "r1", ReplicaState::Ready)]));
        let snap = view.snapshot();
        assert_eq!(snap.host_id, "h1");
        assert_eq!(snap.hosts.len(), 2);
        let shop = &snap.deployments[0];
        assert_eq!(shop.placements["h1"], ["shop-a"]);
        assert_eq!(shop.placements["h2"], ["shop-b"]);
        assert_eq!((shop.ready, shop.rolling_out), (2, false));

        view.saw(beat(
            "h2",
            &[
                ("shop-b", "r1", ReplicaState::Ready),
                ("shop-c", "r2", ReplicaState::Starting),
            ],
        ));
        let shop = &view.snapshot().deployments[0];
        assert!(shop.rolling_out);
        assert_eq!(shop.revisions, BTreeSet::from(["r1".into(), "r2".into()]));
    }

    #[test]
    fn the_controllers_status_decides_whether_a_rollout_is_under_way() {
        let view = ClusterView::new("h1");
        view.saw(beat("h1", &[("shop-a", "r1", ReplicaState::Ready)]));
        let progressing = |reason: &str| DeploymentStatus {
            conditions: vec![Condition {
                kind: "Progressing".into(),
                status: "True".into(),
                reason: reason.into(),
                message: String::new(),
            }],
            ..DeploymentStatus::default()
        };
        view.status_changed("shop", Some(progressing("ReplicasUpdating")));
        assert!(view.snapshot().deployments[0].rolling_out);
        view.status_changed("shop", Some(progressing("NewReplicasAvailable")));
        assert!(!view.snapshot().deployments[0].rolling_out);
        // A deployment with a status and no replicas yet is listed too.
        view.status_changed("empty", Some(progressing("ReplicasUpdating")));
        let names: Vec<String> = view
            .snapshot()
            .deployments
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["empty", "shop"]);
        view.status_changed("empty", None);
        assert_eq!(view.snapshot().deployments.len(), 1);
    }
}
