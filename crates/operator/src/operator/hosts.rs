//! Hosts: heartbeats from NATS into the shared view, and `Host` objects that follow the hosts'
//! transitions (heard / lost, labels, capacity, offers) without a write per heartbeat.

use super::{Ctx, lock, now};
use crate::crd::{Condition, Host, HostCapacity, HostSpec, HostStatus};
use crate::replicas::{FIELD_MANAGER, keep_transition_times};
use futures::StreamExt;
use hearth_cluster::protocol::{self, Heartbeat, subject};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource};
use serde_json::json;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// Feeds heartbeats into the view, and bumps `changed` whenever what the reconcilers plan
/// from moves: a host appears or goes, or a replica changes state or revision.
pub(super) async fn watch_heartbeats(ctx: Arc<Ctx>, changed: tokio::sync::watch::Sender<u64>) {
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let mut sub = match ctx.nats.subscribe(subject::heartbeats()).await {
            Ok(sub) => sub,
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to heartbeats");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                message = sub.next() => {
                    let Some(message) = message else { break };
                    match protocol::decode::<Heartbeat>(&message.payload) {
                        Ok(hb) => lock(&ctx.observed).heard(hb),
                        Err(e) => tracing::warn!(subject = %message.subject, error = %e, "ignored a heartbeat"),
                    }
                }
                // Hosts also change by going silent, which no message announces.
                _ = tick.tick() => {}
            }
            let now = fingerprint(&ctx);
            if now != last {
                last = now;
                changed.send_modify(|n| *n += 1);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A hash of the live hosts and their replicas' ids, states and revisions.
fn fingerprint(ctx: &Ctx) -> u64 {
    let observed = lock(&ctx.observed);
    type Replicas = Vec<(String, &'static str, String)>;
    let mut entries: Vec<(String, Replicas)> = observed
        .hosts()
        .filter(|h| observed.is_live(&h.heartbeat.host_id))
        .map(|h| {
            let mut replicas: Vec<_> = h
                .heartbeat
                .replicas
                .iter()
                .map(|r| (r.id.clone(), r.state.as_str(), r.revision.clone()))
                .collect();
            replicas.sort();
            (h.heartbeat.host_id.clone(), replicas)
        })
        .collect();
    entries.sort();
    let mut hasher = DefaultHasher::new();
    entries.hash(&mut hasher);
    hasher.finish()
}

/// The `Host` object's name for a host id (ids may hold `_`, names may not).
pub(super) fn object_name(host_id: &str) -> String {
    host_id.replace('_', "-")
}

/// Keeps one `Host` object per host heard, written when its status changes. Only the acting
/// operator writes.
pub(super) async fn keep_host_objects(ctx: Arc<Ctx>) {
    let api: Api<Host> = Api::all(ctx.client.clone());
    let mut written: HashMap<String, HostStatus> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if ctx.acting().is_err() {
            // A new leader writes every host once: another may have written since.
            written.clear();
            continue;
        }
        let wanted: Vec<(String, HostStatus, bool)> = {
            let observed = lock(&ctx.observed);
            observed
                .hosts()
                .map(|h| {
                    let live = observed.is_live(&h.heartbeat.host_id);
                    (
                        h.heartbeat.host_id.clone(),
                        status_of(&h.heartbeat, live),
                        live,
                    )
                })
                .collect()
        };
        for (id, status, live) in wanted {
            let name = object_name(&id);
            if written
                .get(&name)
                .is_some_and(|old| same_but_times(old, &status))
            {
                continue;
            }
            let previous = match written.get(&name) {
                Some(s) => Some(s.clone()),
                None => api
                    .get_opt(&name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|h| h.status),
            };
            let mut status = status;
            if let Some(old) = &previous {
                status.conditions = keep_transition_times(&old.conditions, status.conditions);
            }
            match write(&api, &name, &id, &status).await {
                Ok(host) => {
                    let was_ready = previous.as_ref().map(is_ready);
                    if was_ready != Some(live) {
                        announce(&ctx, &host, &id, live).await;
                    }
                    written.insert(name, status);
                }
                Err(e) => tracing::warn!(host = %id, error = %e, "Host object not written"),
            }
        }
    }
}

fn is_ready(status: &HostStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Equal apart from condition times (which `keep_transition_times` carries over).
fn same_but_times(a: &HostStatus, b: &HostStatus) -> bool {
    let strip = |s: &HostStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = None;
        }
        s
    };
    strip(a) == strip(b)
}

/// What a `Host` object says of a host: the slow-moving parts of its heartbeat (not free
/// memory or pool use, which move every second) and whether it is heard.
fn status_of(hb: &Heartbeat, live: bool) -> HostStatus {
    let ready = if live {
        Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "HeartbeatsArriving".into(),
            message: format!("host `{}` sends heartbeats", hb.host_id),
            observed_generation: None,
            last_transition_time: Some(now()),
        }
    } else {
        Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "HeartbeatsStopped".into(),
            message: format!(
                "no heartbeat from host `{}` within the timeout; its replicas are replaced elsewhere",
                hb.host_id
            ),
            observed_generation: None,
            last_transition_time: Some(now()),
        }
    };
    HostStatus {
        labels: hb.labels.clone(),
        http: hb.http.clone(),
        version: Some(hb.version.clone()),
        capacity: HostCapacity {
            cores: hb.capacity.cores,
            memory_total_bytes: hb.capacity.memory_total_bytes,
            max_replicas: hb.capacity.max_replicas,
            pool_size: hb.capacity.pool_size,
        },
        offers: hb.offers.iter().cloned().collect(),
        conditions: vec![ready],
    }
}

/// Applies the object (spec) and its status, one field manager for both.
async fn write(
    api: &Api<Host>,
    name: &str,
    id: &str,
    status: &HostStatus,
) -> Result<Host, kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let object = Host::new(name, HostSpec { host_id: id.into() });
    api.patch(name, &params, &Patch::Apply(&object)).await?;
    let body = json!({
        "apiVersion": Host::api_version(&()),
        "kind": Host::kind(&()),
        "status": status,
    });
    api.patch_status(name, &params, &Patch::Apply(&body)).await
}

async fn announce(ctx: &Ctx, host: &Host, id: &str, live: bool) {
    let reference = host.object_ref(&());
    if live {
        ctx.event(
            &reference,
            EventType::Normal,
            "HostReady",
            format!("host `{id}` is sending heartbeats"),
        )
        .await;
    } else {
        ctx.event(
            &reference,
            EventType::Warning,
            "HostLost",
            format!("host `{id}` stopped sending heartbeats; its replicas are replaced elsewhere"),
        )
        .await;
    }
}
