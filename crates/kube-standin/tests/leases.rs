//! Built-in kinds through kube-rs: discovery lists them, and a `Lease` is replaced with
//! optimistic concurrency (a stale `resourceVersion` is a `409 Conflict`, as leader election
//! relies on), for PUT and merge patch alike.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use hearth_kube_standin::ApiServer;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

fn lease(name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }),
    }
}

#[tokio::test]
async fn discovery_lists_the_built_in_kinds() {
    let server = ApiServer::start(&[]);
    let discovery = kube::Discovery::new(common::client(&server))
        .run()
        .await
        .unwrap();
    let mut found: Vec<String> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .map(|(r, caps)| format!("{} {} {:?}", r.api_version, r.plural, caps.scope))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "apiextensions.k8s.io/v1 customresourcedefinitions Cluster",
            "coordination.k8s.io/v1 leases Namespaced",
            "events.k8s.io/v1 events Namespaced",
            "v1 events Namespaced",
            "v1 namespaces Cluster",
        ]
    );
}

#[tokio::test]
async fn a_lease_is_replaced_only_from_its_latest_version() {
    let server = ApiServer::start(&[]);
    let leases: Api<Lease> = Api::namespaced(common::client(&server), "hearth-system");
    let created = leases
        .create(&PostParams::default(), &lease("op", "a"))
        .await
        .unwrap();
    let first_version = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.metadata.namespace.as_deref(), Some("hearth-system"));

    // Renewed by its holder: a PUT carrying the version it read.
    let mut renewed = created.clone();
    renewed.spec.as_mut().unwrap().lease_duration_seconds = Some(20);
    let renewed = leases
        .replace("op", &PostParams::default(), &renewed)
        .await
        .unwrap();
    assert_ne!(
        renewed.metadata.resource_version.as_deref(),
        Some(first_version.as_str())
    );
    assert_eq!(renewed.metadata.uid, created.metadata.uid);
    assert_eq!(
        renewed.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );

    // A rival that read the first version loses.
    let stale = leases
        .replace("op", &PostParams::default(), &lease_at(&created, "b"))
        .await
        .unwrap_err();
    let status = common::status_of(stale);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"op\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // The same for a merge patch that names the version it expects.
    let patch =
        json!({"metadata": {"resourceVersion": first_version}, "spec": {"holderIdentity": "b"}});
    let err = leases
        .patch("op", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_err();
    assert_eq!(common::status_of(err).code, 409);
    let stored = server.get("leases", "hearth-system", "op").unwrap();
    assert_eq!(stored["spec"]["holderIdentity"], "a");

    // A PUT to a lease that does not exist is a 404; so is a GET.
    let err = leases
        .replace("other", &PostParams::default(), &lease("other", "a"))
        .await
        .unwrap_err();
    assert_eq!(common::status_of(err).code, 404);
    assert!(leases.get_opt("other").await.unwrap().is_none());
}

fn lease_at(read: &Lease, holder: &str) -> Lease {
    let mut taken = read.clone();
    taken.spec.as_mut().unwrap().holder_identity = Some(holder.into());
    taken
}

#[tokio::test]
async fn removing_a_namespace_removes_what_is_in_it() {
    let server = ApiServer::start(&[]);
    let client = common::client(&server);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let leases: Api<Lease> = Api::namespaced(client, "team");
    leases
        .create(&PostParams::default(), &lease("op", "a"))
        .await
        .unwrap();

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert!(server.get("namespaces", "", "team").is_none());
    assert!(server.list("leases.coordination.k8s.io").is_empty());
}
