//! Reconciling one `WorkloadDeployment`: plan the whole cluster with the pure scheduler,
//! carry out this deployment's steps, write its status, tell what happened in Events.

use super::{Ctx, Error, lock, now};
use crate::crd::{Condition, Workload, WorkloadDeployment, WorkloadDeploymentStatus};
use crate::replicas::{self, FIELD_MANAGER, ReplicaView, deployment_status};
use hearth_cluster::deployment::{self, Prepared};
use hearth_cluster::protocol::ReplicaState;
use hearth_cluster::scheduler::{self, Action as Step, Inputs, Replica, StopReason};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn reconcile(wd: Arc<WorkloadDeployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if wd.metadata.deletion_timestamp.is_some() {
        // Its Workloads go with it (owner references); their finalizers stop the replicas.
        return Ok(Action::await_change());
    }
    let term = ctx.acting().map_err(Error::NotActing)?;
    let namespace = wd.namespace().unwrap_or_default();
    let api: Api<WorkloadDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let prepared = ctx.prepare(&wd);
    let (prepared, mine) = match prepared.as_ref() {
        Ok(both) => both,
        Err(message) => {
            let status = deployment_status(&wd, None, &[], None, Some(message), &now());
            if wd.status.as_ref() != Some(&status) {
                write_status(&api, &wd, &status).await?;
                if progressing_reason(wd.status.as_ref()) != Some("InvalidSpec") {
                    ctx.event(
                        &wd.object_ref(&()),
                        EventType::Warning,
                        "InvalidSpec",
                        message.clone(),
                    )
                    .await;
                }
            }
            return Ok(Action::await_change());
        }
    };
    let key = &mine.name;
    let desired = ctx.desired();
    let (hosts, current, backoffs, now_ms) = ctx.snapshot();
    let plan = scheduler::plan(Inputs {
        desired: &desired,
        hosts: &hosts,
        current: &current,
        backoffs: &backoffs,
        now_ms,
    });
    for step in plan.actions {
        match step {
            Step::Start {
                deployment,
                revision,
                host,
            } if deployment == *key => {
                place(&ctx, &wd, prepared, &revision, &host, term).await?;
            }
            Step::Stop {
                replica,
                deployment,
                host,
                why,
            } if deployment == *key => retire(&ctx, &wd, &replica, &host, why, term).await?,
            _ => {}
        }
    }
    // Fresh: the replicas placed just now count (as pending), and their objects may
    // already be in the cache.
    let (_, current, _, _) = ctx.snapshot();
    forget_lost(&ctx, &wd, &current).await?;

    let views = views_of(&ctx, key, &current);
    let status = deployment_status(
        &wd,
        Some(&prepared.revision),
        &views,
        plan.unschedulable.get(key).map(String::as_str),
        None,
        &now(),
    );
    if wd.status.as_ref() != Some(&status) {
        write_status(&api, &wd, &status).await?;
        tell_transitions(&ctx, &wd, &status).await;
    }
    Ok(Action::requeue(Duration::from_secs(10)))
}

/// A new replica: its `Workload` object first (so a replica never runs without one), then
/// the `start` command.
async fn place(
    ctx: &Arc<Ctx>,
    wd: &WorkloadDeployment,
    prepared: &Prepared,
    revision: &str,
    host: &str,
    term: u64,
) -> Result<(), Error> {
    let namespace = wd.namespace().unwrap_or_default();
    let api: Api<Workload> = Api::namespaced(ctx.client.clone(), &namespace);
    let id = fresh_id(ctx, wd, &namespace);
    let object = replicas::replica_object(wd, revision, &id);
    api.patch(
        &id,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await?;
    let key = replicas::deployment_key(wd);
    tracing::info!(replica = %id, deployment = %key, %host, %revision, "placing replica");
    let document = deployment::replica_document(&prepared.document, &key, revision, &id);
    let reference = wd.object_ref(&());
    ctx.start_replica(
        term,
        Replica {
            id: id.clone(),
            deployment: key,
            revision: revision.to_string(),
            host: host.to_string(),
            state: ReplicaState::Pending,
        },
        document,
        reference.clone(),
    );
    ctx.event(
        &reference,
        EventType::Normal,
        "Scheduled",
        format!("placed replica {id} on host `{host}` (revision {revision})"),
    )
    .await;
    Ok(())
}

/// A replica id no object and no host uses yet.
fn fresh_id(ctx: &Ctx, wd: &WorkloadDeployment, namespace: &str) -> String {
    loop {
        let id = deployment::replica_id(&wd.name_any());
        let taken = ctx
            .workloads
            .get(&ObjectRef::new(&id).within(namespace))
            .is_some()
            || lock(&ctx.observed)
                .hosts()
                .any(|h| h.heartbeat.replicas.iter().any(|r| r.id == id));
        if !taken {
            return id;
        }
    }
}

/// A replica to go: deleting its object stops it (the `Workload` finalizer sends the stop).
/// A replica with no object is stopped directly.
async fn retire(
    ctx: &Arc<Ctx>,
    wd: &WorkloadDeployment,
    replica: &str,
    host: &str,
    why: StopReason,
    term: u64,
) -> Result<(), Error> {
    let namespace = wd.namespace().unwrap_or_default();
    let api: Api<Workload> = Api::namespaced(ctx.client.clone(), &namespace);
    lock(&ctx.observed).stopping(replica);
    tracing::info!(%replica, %host, why = ?why, "stopping replica");
    hearth_cluster::metrics::stopped(why);
    match api.delete(replica, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            if let Err(e) = ctx.stop_replica(term, replica, host).await {
                tracing::warn!(%replica, %host, error = %e, "stop not delivered");
            }
        }
        Err(e) => {
            lock(&ctx.observed).stop_failed(replica);
            return Err(e.into());
        }
    }
    let (type_, reason, note) = match why {
        StopReason::ScaledDown => (
            EventType::Normal,
            "ScaledDown",
            format!("stopping replica {replica} on host `{host}`: more replicas than wanted"),
        ),
        StopReason::Replaced => (
            EventType::Normal,
            "Replaced",
            format!("stopping replica {replica} on host `{host}`: the new revision replaces it"),
        ),
        StopReason::Failed => {
            let message = lock(&ctx.observed)
                .message(replica)
                .cloned()
                .unwrap_or_default();
            (
                EventType::Warning,
                "ReplicaFailed",
                format!("replica {replica} failed on host `{host}`: {message}; replacing it"),
            )
        }
        StopReason::Deleted => (
            EventType::Normal,
            "Deleted",
            format!("stopping replica {replica} on host `{host}`: its deployment is gone"),
        ),
    };
    ctx.event(&wd.object_ref(&()), type_, reason, note).await;
    Ok(())
}

/// Deletes this deployment's `Workload` objects whose replica runs on no live host and is
/// not being started (its host was lost, or refused it): the scheduler has already counted
/// it missing and placed a new one.
async fn forget_lost(
    ctx: &Arc<Ctx>,
    wd: &WorkloadDeployment,
    current: &[Replica],
) -> Result<(), Error> {
    let Some(uid) = wd.uid() else { return Ok(()) };
    let namespace = wd.namespace().unwrap_or_default();
    let lost: Vec<Arc<Workload>> = ctx
        .workloads
        .state()
        .into_iter()
        .filter(|wl| {
            wl.namespace().as_deref() == Some(namespace.as_str())
                && wl.metadata.deletion_timestamp.is_none()
                && wl.owner_references().iter().any(|o| o.uid == uid)
                && !current.iter().any(|r| r.id == wl.name_any())
        })
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    let api: Api<Workload> = Api::namespaced(ctx.client.clone(), &namespace);
    for wl in lost {
        let name = wl.name_any();
        let host = wl
            .status
            .as_ref()
            .and_then(|s| s.host.clone())
            .unwrap_or_else(|| "-".into());
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
        ctx.event(
            &wd.object_ref(&()),
            EventType::Warning,
            "ReplicaLost",
            format!("replica {name} runs on no live host (it was on `{host}`); it is replaced"),
        )
        .await;
    }
    Ok(())
}

/// The replicas of deployment `key` as the status counts them.
fn views_of(ctx: &Ctx, key: &str, current: &[Replica]) -> Vec<ReplicaView> {
    let observed = lock(&ctx.observed);
    current
        .iter()
        .filter(|r| r.deployment == key)
        .map(|r| ReplicaView {
            id: r.id.clone(),
            host: Some(r.host.clone()),
            state: r.state,
            revision: r.revision.clone(),
            message: observed.message(&r.id).cloned(),
        })
        .collect()
}

async fn write_status(
    api: &Api<WorkloadDeployment>,
    wd: &WorkloadDeployment,
    status: &WorkloadDeploymentStatus,
) -> Result<(), kube::Error> {
    let body = json!({
        "apiVersion": WorkloadDeployment::api_version(&()),
        "kind": WorkloadDeployment::kind(&()),
        "status": status,
    });
    api.patch_status(
        &wd.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
}

fn condition<'a>(
    status: Option<&'a WorkloadDeploymentStatus>,
    kind: &str,
) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == kind)
}

fn progressing_reason(status: Option<&WorkloadDeploymentStatus>) -> Option<&str> {
    condition(status, "Progressing").map(|c| c.reason.as_str())
}

/// Events for the rollout's steps and failures, on transitions only.
async fn tell_transitions(ctx: &Ctx, wd: &WorkloadDeployment, next: &WorkloadDeploymentStatus) {
    let reference = wd.object_ref(&());
    let before = progressing_reason(wd.status.as_ref());
    if let Some(now) = condition(Some(next), "Progressing")
        && before != Some(now.reason.as_str())
    {
        let (type_, reason) = match now.reason.as_str() {
            "NewReplicasAvailable" => (EventType::Normal, "RolloutComplete"),
            "Unschedulable" => (EventType::Warning, "Unschedulable"),
            _ => (EventType::Normal, "RollingOut"),
        };
        ctx.event(&reference, type_, reason, now.message.clone())
            .await;
    }
    let failing = |s: Option<&WorkloadDeploymentStatus>| {
        condition(s, "ReplicaFailure").is_some_and(|c| c.status == "True")
    };
    if failing(Some(next))
        && !failing(wd.status.as_ref())
        && let Some(c) = condition(Some(next), "ReplicaFailure")
    {
        ctx.event(
            &reference,
            EventType::Warning,
            "ReplicaFailure",
            c.message.clone(),
        )
        .await;
    }
}
