//! The pure half of the operator: what a `WorkloadDeployment` object means to the cluster
//! pieces (a validated document, a revision, the scheduler's view), the `Workload` object of
//! each replica, and the deployment's status with its conditions. No I/O here, so every rule
//! is unit-tested; the reconciler (next) reads and writes the API around these.

use crate::crd::{Condition, Workload, WorkloadDeployment, WorkloadDeploymentStatus, WorkloadSpec};
use hearth_cluster::counts::{Counts, minimum_available};
use hearth_cluster::deployment::{self, Prepared};
use hearth_cluster::protocol::{REVISION_LABEL, ReplicaState};
use hearth_cluster::scheduler::Desired;
use hearth_manifest::DEPLOYMENT_LABEL;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// The one field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "hearth-operator";
/// The finalizer that stops a replica on its host before its `Workload` goes.
pub const FINALIZER: &str = "hearth.dev/stop-replica";

/// A deployment's name in the cluster protocol and the scheduler: `namespace/name`, unique
/// across namespaces.
pub fn deployment_key(wd: &WorkloadDeployment) -> String {
    format!("{}/{}", wd.namespace().unwrap_or_default(), wd.name_any())
}

/// The label selector of a deployment's `Workload`s (the scale subresource's `selector`).
pub fn selector(wd: &WorkloadDeployment) -> String {
    format!("{DEPLOYMENT_LABEL}={}", wd.name_any())
}

/// The manifest document the object stands for, as `hearth apply --cluster` would store it.
pub fn document_of(wd: &WorkloadDeployment) -> Value {
    json!({
        "apiVersion": hearth_manifest::API_VERSION,
        "kind": "WorkloadDeployment",
        "metadata": {
            "name": wd.name_any(),
            "labels": wd.labels(),
        },
        "spec": serde_json::to_value(&wd.spec).unwrap_or(Value::Null),
    })
}

/// Validates the object as `hearth validate` does (what a CRD schema cannot check: names,
/// routes, limits, strategy values); `Err` is the same field-path message, naming the object
/// as `namespace/name`.
pub fn prepare(wd: &WorkloadDeployment) -> Result<Prepared, String> {
    let label = deployment_key(wd);
    deployment::prepare(Path::new(&label), document_of(wd))
}

/// The scheduler's view of a validated deployment.
pub fn desired(wd: &WorkloadDeployment, prepared: &Prepared) -> Desired {
    let mut d = deployment::desired(&prepared.workload, &prepared.revision);
    d.name = deployment_key(wd);
    d
}

/// The `Workload` object of replica `replica` at `revision`: the template's spec, the
/// template's labels plus the deployment's and the revision's, owned by the deployment (a
/// controller reference, so deleting the deployment deletes it), with the finalizer that
/// stops it on its host.
pub fn replica_object(wd: &WorkloadDeployment, revision: &str, replica: &str) -> Workload {
    let template = &wd.spec.template;
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .map(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(DEPLOYMENT_LABEL.into(), wd.name_any());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let spec = WorkloadSpec {
        components: template.spec.components.clone(),
        service: template.spec.service.clone(),
        links: template.spec.links.clone(),
        host_interfaces: template.spec.host_interfaces.clone(),
    };
    let mut object = Workload::new(replica, spec);
    object.metadata = ObjectMeta {
        name: Some(replica.into()),
        namespace: wd.namespace(),
        labels: Some(labels),
        owner_references: owner(wd).map(|o| vec![o]),
        finalizers: Some(vec![FINALIZER.into()]),
        ..ObjectMeta::default()
    };
    object
}

/// A controller owner reference to `wd`, when it has a uid (it does once stored).
fn owner(wd: &WorkloadDeployment) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: WorkloadDeployment::api_version(&()).into_owned(),
        kind: WorkloadDeployment::kind(&()).into_owned(),
        name: wd.name_any(),
        uid: wd.uid()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// One replica as the operator sees it: its object and what its host reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaView {
    pub id: String,
    pub host: Option<String>,
    pub state: ReplicaState,
    pub revision: String,
    pub message: Option<String>,
}

/// The deployment's status: counts, selector and conditions (`Available`, `Progressing`,
/// `ReplicaFailure`), each condition carrying the generation it was computed from and keeping
/// its `lastTransitionTime` while its status stays the same. `invalid` is the validation
/// message when the spec cannot run (then `Progressing` is `False`, reason `InvalidSpec`).
pub fn deployment_status(
    wd: &WorkloadDeployment,
    revision: Option<&str>,
    replicas: &[ReplicaView],
    unschedulable: Option<&str>,
    invalid: Option<&str>,
    now: &str,
) -> WorkloadDeploymentStatus {
    let generation = wd.metadata.generation;
    let wanted = wd.spec.replicas as usize;
    let counts = Counts::of(
        replicas.iter().map(|r| (r.state, r.revision.as_str())),
        revision,
    );
    let Counts {
        ready,
        updated,
        available,
        old,
        ..
    } = counts;
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let minimum = minimum_available(&wd.spec.strategy, wd.spec.replicas);
    let done = counts.done(wanted);
    let cond = |kind: &str, ok: bool, reason: &str, message: String| Condition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Some(now.into()),
    };
    let mut conditions = vec![if ready >= minimum {
        cond(
            "Available",
            true,
            "MinimumReplicasAvailable",
            format!("{ready} of {wanted} replicas ready"),
        )
    } else {
        cond(
            "Available",
            false,
            "MinimumReplicasUnavailable",
            format!("{ready} of {wanted} replicas ready; at least {minimum} wanted"),
        )
    }];
    conditions.push(match (invalid, unschedulable, done) {
        (Some(message), _, _) => cond("Progressing", false, "InvalidSpec", message.into()),
        (None, Some(reason), _) => cond("Progressing", false, "Unschedulable", reason.into()),
        (None, None, true) => cond(
            "Progressing",
            true,
            "NewReplicasAvailable",
            format!(
                "{wanted} replicas ready at revision {}",
                revision.unwrap_or("-")
            ),
        ),
        (None, None, false) => cond(
            "Progressing",
            true,
            "ReplicasUpdating",
            format!("{updated} of {wanted} replicas updated, {available} available, {old} old"),
        ),
    });
    let failed = replicas.iter().find(|r| r.state == ReplicaState::Failed);
    conditions.push(match failed {
        Some(r) => cond(
            "ReplicaFailure",
            true,
            "FailedStart",
            format!(
                "replica {} failed on host {}: {}",
                r.id,
                r.host.as_deref().unwrap_or("-"),
                r.message.as_deref().unwrap_or("no message")
            ),
        ),
        None => cond(
            "ReplicaFailure",
            false,
            "NoFailure",
            "no replica is failing".into(),
        ),
    });
    let previous = wd
        .status
        .as_ref()
        .map_or(&[][..], |s| s.conditions.as_slice());
    WorkloadDeploymentStatus {
        observed_generation: generation,
        replicas: count(replicas.len()),
        ready_replicas: count(ready),
        updated_replicas: count(updated),
        available_replicas: count(available),
        selector: Some(selector(wd)),
        conditions: keep_transition_times(previous, conditions),
    }
}

/// `next`, with each condition's `lastTransitionTime` taken from `previous` when its status
/// did not change (a condition's time says when it last flipped, not when it was computed).
pub fn keep_transition_times(previous: &[Condition], mut next: Vec<Condition>) -> Vec<Condition> {
    for c in &mut next {
        if let Some(old) = previous.iter().find(|o| o.type_ == c.type_)
            && old.status == c.status
            && old.last_transition_time.is_some()
        {
            c.last_transition_time.clone_from(&old.last_transition_time);
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::WorkloadDeploymentSpec;

    fn wd(yaml_spec: &str) -> WorkloadDeployment {
        let spec: WorkloadDeploymentSpec = serde_yaml::from_str(yaml_spec).unwrap();
        let mut wd = WorkloadDeployment::new("web", spec);
        wd.metadata.namespace = Some("shop".into());
        wd.metadata.uid = Some("uid-1".into());
        wd.metadata.generation = Some(4);
        wd
    }

    const SPEC: &str = "
replicas: 3
template:
  metadata: { labels: { app: web } }
  spec:
    components:
      - name: http
        image: /srv/web.wasm
        http: { path: / }
";

    #[test]
    fn a_valid_object_becomes_scheduler_input_keyed_by_namespace() {
        let w = wd(SPEC);
        let p = prepare(&w).unwrap();
        let d = desired(&w, &p);
        assert_eq!(d.name, "shop/web");
        assert_eq!(d.replicas, 3);
        assert_eq!(d.revision, p.revision);
        assert_eq!(selector(&w), "hearth.dev/deployment=web");
    }

    #[test]
    fn what_a_schema_cannot_check_gives_the_validate_message() {
        let bad = SPEC.replace("path: /", "path: no-slash");
        let err = prepare(&wd(&bad)).unwrap_err();
        assert!(
            err.starts_with("shop/web: spec.template.spec.components[0].http.path"),
            "{err}"
        );
        let status = deployment_status(
            &wd(&bad),
            None,
            &[],
            None,
            Some(&err),
            "2026-12-02T00:00:00Z",
        );
        let progressing = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(progressing.message, err);
        assert_eq!(progressing.observed_generation, Some(4));
    }

    #[test]
    fn a_replica_object_is_owned_labelled_and_finalised() {
        let w = wd(SPEC);
        let r = replica_object(&w, "abc123", "web-x7k2p");
        assert_eq!(r.metadata.namespace.as_deref(), Some("shop"));
        let labels = r.metadata.labels.clone().unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[DEPLOYMENT_LABEL], "web");
        assert_eq!(labels[REVISION_LABEL], "abc123");
        let owner = &r.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("WorkloadDeployment", "uid-1", Some(true))
        );
        assert_eq!(r.metadata.finalizers.clone().unwrap(), [FINALIZER]);
        assert_eq!(r.spec.components[0].name, "http");
    }

    fn replica(id: &str, state: ReplicaState, revision: &str) -> ReplicaView {
        ReplicaView {
            id: id.into(),
            host: Some("h1".into()),
            state,
            revision: revision.into(),
            message: (state == ReplicaState::Failed)
                .then(|| "spec.components[0].image: not a component".into()),
        }
    }

    #[test]
    fn status_counts_and_conditions_follow_the_replicas() {
        let mut w = wd(SPEC);
        let rolling = [
            replica("a", ReplicaState::Ready, "r2"),
            replica("b", ReplicaState::Ready, "r1"),
            replica("c", ReplicaState::Starting, "r2"),
            replica("d", ReplicaState::Failed, "r2"),
        ];
        let s = deployment_status(&w, Some("r2"), &rolling, None, None, "t1");
        assert_eq!(
            (
                s.replicas,
                s.ready_replicas,
                s.updated_replicas,
                s.available_replicas
            ),
            (4, 2, 2, 1)
        );
        let get = |s: &WorkloadDeploymentStatus, t: &str| {
            s.conditions.iter().find(|c| c.type_ == t).unwrap().clone()
        };
        // maxUnavailable 25% of 3 rounds down to 0: all 3 must be ready, as in Kubernetes.
        let available = get(&s, "Available");
        assert_eq!(
            (available.status.as_str(), available.reason.as_str()),
            ("False", "MinimumReplicasUnavailable")
        );
        assert_eq!(get(&s, "Progressing").reason, "ReplicasUpdating");
        let failure = get(&s, "ReplicaFailure");
        assert_eq!(failure.status, "True");
        assert!(
            failure
                .message
                .contains("replica d failed on host h1: spec.components[0].image"),
            "{}",
            failure.message
        );

        // Done: every condition settles; a condition whose status holds keeps its time.
        w.status = Some(s);
        let done = [
            replica("a", ReplicaState::Ready, "r2"),
            replica("c", ReplicaState::Ready, "r2"),
            replica("e", ReplicaState::Ready, "r2"),
        ];
        let s2 = deployment_status(&w, Some("r2"), &done, None, None, "t2");
        let progressing = get(&s2, "Progressing");
        assert_eq!(progressing.reason, "NewReplicasAvailable");
        assert_eq!(
            progressing.last_transition_time.as_deref(),
            Some("t1"),
            "Progressing stayed True"
        );
        assert_eq!(
            get(&s2, "Available").last_transition_time.as_deref(),
            Some("t2"),
            "Available flipped"
        );
        assert_eq!(get(&s2, "ReplicaFailure").status, "False");
        assert_eq!(
            get(&s2, "ReplicaFailure").last_transition_time.as_deref(),
            Some("t2"),
            "ReplicaFailure flipped"
        );
        assert_eq!(s2.selector.as_deref(), Some("hearth.dev/deployment=web"));
        assert_eq!(s2.observed_generation, Some(4));
    }

    #[test]
    fn an_unschedulable_deployment_says_why_in_progressing() {
        let s = deployment_status(
            &wd(SPEC),
            Some("r1"),
            &[],
            Some("0/2 hosts can run it: h1: full (4/4 replicas)"),
            None,
            "t",
        );
        let p = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        assert_eq!(
            (p.status.as_str(), p.reason.as_str()),
            ("False", "Unschedulable")
        );
        assert!(p.message.contains("h1: full"));
        let a = s
            .conditions
            .iter()
            .find(|c| c.type_ == "Available")
            .unwrap();
        assert_eq!(a.status, "False");
    }
}
