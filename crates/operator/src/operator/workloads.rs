//! Reconciling one `Workload`: its status follows its host's heartbeats; one applied on its
//! own (no owning deployment) runs as a single replica, updated in place when its spec
//! changes; and its finalizer stops the replica on its host before the object goes.

use super::{Ctx, Error, lock, now};
use crate::crd::{Condition, Workload, WorkloadStatus};
use crate::replicas::{FIELD_MANAGER, FINALIZER, keep_transition_times};
use hearth_cluster::deployment::{self, Prepared};
use hearth_cluster::protocol::{REVISION_LABEL, ReplicaState};
use hearth_cluster::scheduler::{self, Action as Step, Desired, Inputs, Replica};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as Finalized, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the finalizer keeps asking a live host to stop a replica before it lets the
/// object go anyway (with a Warning Event): a deletion never hangs forever.
const STOP_PATIENCE: Duration = Duration::from_secs(60);
/// Undelivered stop commands tolerated before letting the object go.
const STOP_ATTEMPTS: u32 = 5;

/// Whether `wl` stands alone: no `WorkloadDeployment` controls it.
pub(super) fn is_standalone(wl: &Workload) -> bool {
    !wl.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.kind == "WorkloadDeployment")
}

/// The deployment name a replica reports: `namespace/name` of its owning deployment, or
/// `namespace/Workload/name` for a standalone workload (upper case cannot occur in object
/// names, so the two never meet).
fn deployment_of(wl: &Workload) -> String {
    let namespace = wl.namespace().unwrap_or_default();
    match wl
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "WorkloadDeployment")
    {
        Some(owner) => format!("{namespace}/{}", owner.name),
        None => format!("{namespace}/Workload/{}", wl.name_any()),
    }
}

/// The manifest document a standalone `Workload` stands for.
fn document_of(wl: &Workload) -> Value {
    json!({
        "apiVersion": hearth_manifest::API_VERSION,
        "kind": "Workload",
        "metadata": {"name": wl.name_any(), "labels": wl.labels()},
        "spec": serde_json::to_value(&wl.spec).unwrap_or(Value::Null),
    })
}

/// A standalone workload validated as `hearth validate` does, and its scheduler input.
pub(super) fn prepare(wl: &Workload) -> Result<(Prepared, Desired), String> {
    let label = format!("{}/{}", wl.namespace().unwrap_or_default(), wl.name_any());
    let prepared = deployment::prepare(Path::new(&label), document_of(wl))?;
    let mut desired = deployment::desired(&prepared.workload, &prepared.revision);
    desired.name = deployment_of(wl);
    desired.replicas = 1;
    Ok((prepared, desired))
}

pub(super) async fn reconcile(wl: Arc<Workload>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let term = ctx.acting().map_err(Error::NotActing)?;
    let api: Api<Workload> =
        Api::namespaced(ctx.client.clone(), &wl.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, wl, |event| async {
        match event {
            Finalized::Apply(wl) => apply(&ctx, &api, &wl, term).await,
            Finalized::Cleanup(wl) => cleanup(&ctx, &wl, term).await,
        }
    })
    .await;
    result.map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => e.into(),
        other => Error::Finalizer(other.to_string()),
    })
}

async fn apply(
    ctx: &Arc<Ctx>,
    api: &Api<Workload>,
    wl: &Workload,
    term: u64,
) -> Result<Action, Error> {
    let problem = if is_standalone(wl) {
        run_standalone(ctx, wl, term).await
    } else {
        None
    };
    sync_status(ctx, api, wl, problem).await?;
    Ok(Action::requeue(Duration::from_secs(30)))
}

/// Places a standalone workload, updates it in place, or retries it after a failure.
/// Returns why it cannot run, when it cannot.
async fn run_standalone(ctx: &Arc<Ctx>, wl: &Workload, term: u64) -> Option<Condition> {
    let (prepared, desired) = match prepare(wl) {
        Ok(both) => both,
        Err(message) => return Some(not_ready("InvalidSpec", message)),
    };
    let id = wl.name_any();
    let (hosts, current, backoffs, now_ms) = ctx.snapshot();
    let reference = wl.object_ref(&());
    let document =
        || deployment::replica_document(&prepared.document, &desired.name, &prepared.revision, &id);
    let replica = |host: &str| Replica {
        id: id.clone(),
        deployment: desired.name.clone(),
        revision: prepared.revision.clone(),
        host: host.to_string(),
        state: ReplicaState::Pending,
    };
    match current
        .iter()
        .find(|r| r.id == id && r.deployment == desired.name)
    {
        Some(r) if r.state == ReplicaState::Failed => {
            // Stop it; the next pass places it again, away from the host that failed it.
            hearth_cluster::metrics::stopped(hearth_cluster::scheduler::StopReason::Failed);
            if let Err(e) = ctx.stop_replica(term, &id, &r.host).await {
                tracing::warn!(replica = %id, host = %r.host, error = %e, "stop not delivered");
            }
            let message = lock(&ctx.observed)
                .message(&id)
                .cloned()
                .unwrap_or_default();
            ctx.event(
                &reference,
                EventType::Warning,
                "ReplicaFailed",
                format!("failed on host `{}`: {message}; trying again", r.host),
            )
            .await;
            None
        }
        Some(r) if r.revision != prepared.revision && r.state != ReplicaState::Stopping => {
            // A new spec: the host swaps it in without dropping requests.
            ctx.start_replica(term, replica(&r.host), document(), reference.clone());
            ctx.event(
                &reference,
                EventType::Normal,
                "Updating",
                format!(
                    "updating on host `{}` to revision {}",
                    r.host, prepared.revision
                ),
            )
            .await;
            None
        }
        Some(_) => None,
        None => {
            let plan = scheduler::plan(Inputs {
                desired: std::slice::from_ref(&desired),
                hosts: &hosts,
                current: &current,
                backoffs: &backoffs,
                now_ms,
            });
            let host = plan.actions.iter().find_map(|step| match step {
                Step::Start {
                    deployment, host, ..
                } if *deployment == desired.name => Some(host.clone()),
                _ => None,
            });
            let Some(host) = host else {
                let why = plan
                    .unschedulable
                    .get(&desired.name)
                    .cloned()
                    .unwrap_or_else(|| "no live host".into());
                return Some(not_ready("Unschedulable", why));
            };
            tracing::info!(workload = %desired.name, %host, "placing standalone workload");
            ctx.start_replica(term, replica(&host), document(), reference.clone());
            ctx.event(
                &reference,
                EventType::Normal,
                "Scheduled",
                format!("placed on host `{host}` (revision {})", prepared.revision),
            )
            .await;
            None
        }
    }
}

fn not_ready(reason: &str, message: String) -> Condition {
    Condition {
        type_: "Ready".into(),
        status: "False".into(),
        reason: reason.into(),
        message,
        observed_generation: None,
        last_transition_time: Some(now()),
    }
}

/// Writes where the replica runs and how, when that changed.
async fn sync_status(
    ctx: &Ctx,
    api: &Api<Workload>,
    wl: &Workload,
    problem: Option<Condition>,
) -> Result<(), Error> {
    let id = wl.name_any();
    let key = deployment_of(wl);
    let (_, current, _, _) = ctx.snapshot();
    let replica = current.iter().find(|r| r.id == id && r.deployment == key);
    let old = wl.status.clone().unwrap_or_default();
    let (host, state, mut ready) = match replica {
        Some(r) => {
            let message = lock(&ctx.observed).message(&id).cloned();
            (
                Some(r.host.clone()),
                r.state.as_str().to_string(),
                ready_of(r, message),
            )
        }
        None => match &old.host {
            Some(h)
                if !lock(&ctx.observed).is_live(h) && old.state.as_deref() != Some("pending") =>
            {
                (
                    Some(h.clone()),
                    "lost".to_string(),
                    not_ready("HostLost", format!("host `{h}` is not heard from")),
                )
            }
            _ => (
                None,
                "pending".to_string(),
                not_ready("NotPlaced", "waiting for a host".into()),
            ),
        },
    };
    if replica.is_none()
        && let Some(p) = problem
    {
        ready = p;
    }
    ready.observed_generation = wl.metadata.generation;
    let revision = replica
        .map(|r| r.revision.clone())
        .or_else(|| wl.labels().get(REVISION_LABEL).cloned());
    let status = WorkloadStatus {
        host,
        state: Some(state),
        revision,
        observed_generation: wl.metadata.generation,
        conditions: keep_transition_times(&old.conditions, vec![ready]),
    };
    if wl.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let body = json!({
        "apiVersion": Workload::api_version(&()),
        "kind": Workload::kind(&()),
        "status": status,
    });
    api.patch_status(
        &id,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

fn ready_of(r: &Replica, message: Option<String>) -> Condition {
    let (status, reason, message) = match r.state {
        ReplicaState::Ready => ("True", "Serving", format!("serving on host `{}`", r.host)),
        ReplicaState::Failed => (
            "False",
            "Failed",
            message.unwrap_or_else(|| "failed to start".into()),
        ),
        ReplicaState::Stopping => ("False", "Stopping", "stopping".into()),
        ReplicaState::Pending | ReplicaState::Starting => (
            "False",
            "Starting",
            format!("starting on host `{}`", r.host),
        ),
    };
    Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: None,
        last_transition_time: Some(now()),
    }
}

/// The object is being deleted: stop its replica wherever a live host runs it; the
/// finalizer goes once no live host does, or after [`STOP_PATIENCE`].
async fn cleanup(ctx: &Arc<Ctx>, wl: &Workload, term: u64) -> Result<Action, Error> {
    let id = wl.name_any();
    let key = deployment_of(wl);
    lock(&ctx.observed).forget(&id);
    let (_, current, _, _) = ctx.snapshot();
    let running: Vec<&Replica> = current
        .iter()
        .filter(|r| r.id == id && r.deployment == key)
        .collect();
    let uid = wl.uid().unwrap_or_default();
    let Some(first) = running.first() else {
        lock(&ctx.stop_attempts).remove(&uid);
        tracing::info!(replica = %id, "replica stopped; releasing its object");
        return Ok(Action::await_change());
    };
    let host = first.host.clone();
    let mut undelivered = 0;
    for r in &running {
        if let Err(e) = ctx.stop_replica(term, &id, &r.host).await {
            tracing::warn!(replica = %id, host = %r.host, error = %e, "stop not delivered");
            undelivered += 1;
        }
    }
    let (failures, since) = {
        let mut attempts = lock(&ctx.stop_attempts);
        let entry = attempts.entry(uid.clone()).or_insert((0, Instant::now()));
        entry.0 += undelivered;
        *entry
    };
    if failures >= STOP_ATTEMPTS || since.elapsed() > STOP_PATIENCE {
        lock(&ctx.stop_attempts).remove(&uid);
        ctx.event(
            &wl.object_ref(&()),
            EventType::Warning,
            "StopUnconfirmed",
            format!(
                "host `{host}` did not confirm stopping replica {id} ({failures} undelivered stop commands in {} s); releasing the object anyway",
                since.elapsed().as_secs()
            ),
        )
        .await;
        return Ok(Action::await_change());
    }
    Err(Error::Stopping { replica: id, host })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::WorkloadSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn workload(owner: Option<&str>) -> Workload {
        let spec: WorkloadSpec =
            serde_yaml::from_str("components: [{name: http, image: /srv/a.wasm, http: {path: /}}]")
                .unwrap();
        let mut wl = Workload::new("web-x7k2p", spec);
        wl.metadata.namespace = Some("shop".into());
        if let Some(name) = owner {
            wl.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "hearth.dev/v1alpha1".into(),
                kind: "WorkloadDeployment".into(),
                name: name.into(),
                uid: "u".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]);
        }
        wl
    }

    #[test]
    fn replicas_report_their_deployment_and_standalone_ones_cannot_clash_with_it() {
        let owned = workload(Some("web"));
        assert!(!is_standalone(&owned));
        assert_eq!(deployment_of(&owned), "shop/web");
        let alone = workload(None);
        assert!(is_standalone(&alone));
        assert_eq!(deployment_of(&alone), "shop/Workload/web-x7k2p");
        let (prepared, desired) = prepare(&alone).unwrap();
        assert_eq!(desired.replicas, 1);
        assert_eq!(desired.name, "shop/Workload/web-x7k2p");
        assert_eq!(prepared.workload.name, "web-x7k2p");
    }

    #[test]
    fn an_invalid_standalone_workload_names_the_field() {
        let mut wl = workload(None);
        wl.spec.components[0].http.as_mut().unwrap().path = "nope".into();
        let err = prepare(&wl).unwrap_err();
        assert!(
            err.starts_with("shop/web-x7k2p: spec.components[0].http.path"),
            "{err}"
        );
    }
}
