//! Deletion as an operator meets it: kube-rs's `finalizer` helper adds and removes its
//! finalizer with JSON patches around a `deletionTimestamp`; owner references take
//! dependents along (background), leave them (orphan) or hold the owner (foreground); and a
//! CRD created through the API serves its kind until it is deleted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use common::{widget, widgets};
use futures::{StreamExt, TryStreamExt};
use hearth_kube_standin::ApiServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use serde_json::json;
use std::sync::Arc;

/// Runs kube-rs's finalizer helper once for `name`; answers which event it ran.
async fn run_finalizer(api: &Api<DynamicObject>, finalizer_name: &str, name: &str) -> &'static str {
    let object = Arc::new(api.get(name).await.unwrap());
    let mut ran = "nothing";
    finalizer(api, finalizer_name, object, |event| {
        ran = match event {
            Event::Apply(_) => "apply",
            Event::Cleanup(_) => "cleanup",
        };
        async { Ok::<_, kube::Error>(Action::await_change()) }
    })
    .await
    .unwrap();
    ran
}

#[tokio::test]
async fn the_finalizer_helper_holds_a_deleted_object_until_it_lets_go() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let api = widgets(&common::client(&server), "default");
    let created = api
        .create(
            &PostParams::default(),
            &widget("w", json!({"replicas": 1}), json!({})),
        )
        .await
        .unwrap();
    let mut changes = api
        .watch(
            &WatchParams::default(),
            created.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();

    // No finalizer yet: the helper adds it (`test` null, `add` the list) and stops there.
    assert_eq!(
        run_finalizer(&api, "example.com/cleanup", "w").await,
        "nothing"
    );
    assert_eq!(
        run_finalizer(&api, "example.com/cleanup", "w").await,
        "apply"
    );
    // A second controller appends its own (`test` the list, `add` at `-`).
    assert_eq!(run_finalizer(&api, "other.io/x", "w").await, "nothing");
    let stored = server.get("widgets", "default", "w").unwrap();
    assert_eq!(
        stored["metadata"]["finalizers"],
        json!(["example.com/cleanup", "other.io/x"])
    );
    assert_eq!(
        stored["metadata"]["generation"], 1,
        "finalizers are not spec"
    );

    // Deleted: marked, not gone; kube-rs reads the answer as the object.
    let answer = api.delete("w", &DeleteParams::default()).await.unwrap();
    let marked = answer.left().expect("the object, still there");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));

    // Nobody may add a finalizer now.
    let late =
        json!({"metadata": {"finalizers": ["example.com/cleanup", "other.io/x", "late.io/y"]}});
    let err = api
        .patch("w", &PatchParams::default(), &Patch::Merge(&late))
        .await
        .unwrap_err();
    let status = common::status_of(err);
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        status.message
    );

    // A `test` that fails fails the whole patch.
    let wrong = json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "nope"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]);
    let err = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(wrong).unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(common::status_of(err).code, 422);

    // Each controller cleans up and lets go; the last one out removes the object.
    assert_eq!(
        run_finalizer(&api, "example.com/cleanup", "w").await,
        "cleanup"
    );
    assert!(server.get("widgets", "default", "w").is_some());
    assert_eq!(run_finalizer(&api, "other.io/x", "w").await, "cleanup");
    assert!(api.get_opt("w").await.unwrap().is_none());

    // The watch saw it all, ending with the removal under a newer version.
    let mut seen = Vec::new();
    while let Some(event) = changes.try_next().await.unwrap() {
        let (verb, object) = match event {
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            other => panic!("unexpected {other:?}"),
        };
        let version: u64 = object.metadata.resource_version.unwrap().parse().unwrap();
        seen.push((verb, version));
        if verb == "DELETED" {
            break;
        }
    }
    assert_eq!(
        seen.iter().filter(|(v, _)| *v == "MODIFIED").count(),
        4,
        "{seen:?}"
    ); // two finalizers added, the mark, one removed
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "{seen:?}");
}

fn owner_ref(owner: &DynamicObject) -> OwnerReference {
    OwnerReference {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        name: owner.metadata.name.clone().unwrap(),
        uid: owner.metadata.uid.clone().unwrap(),
        controller: None,
        block_owner_deletion: Some(true),
    }
}

/// Creates widget `name` owned by `owners`, with `finalizers`.
async fn dependent(
    api: &Api<DynamicObject>,
    name: &str,
    owners: &[&DynamicObject],
    finalizers: &[&str],
) -> DynamicObject {
    let mut object = widget(name, json!({}), json!({}));
    object.metadata.owner_references = Some(owners.iter().map(|o| owner_ref(o)).collect());
    object.metadata.finalizers = Some(finalizers.iter().map(|f| f.to_string()).collect());
    api.create(&PostParams::default(), &object).await.unwrap()
}

async fn plain(api: &Api<DynamicObject>, name: &str) -> DynamicObject {
    api.create(&PostParams::default(), &widget(name, json!({}), json!({})))
        .await
        .unwrap()
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents_transitively() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let api = widgets(&common::client(&server), "default");
    let owner = plain(&api, "owner").await;
    let other = plain(&api, "other-owner").await;
    let child = dependent(&api, "child", &[&owner], &[]).await;
    dependent(&api, "grandchild", &[&child], &[]).await;
    dependent(&api, "held", &[&owner], &["keep.io/x"]).await;
    dependent(&api, "shared", &[&owner, &other], &[]).await;

    let gone = api.delete("owner", &DeleteParams::default()).await.unwrap();
    assert!(gone.is_left());
    for name in ["owner", "child", "grandchild"] {
        assert!(api.get_opt(name).await.unwrap().is_none(), "{name}");
    }
    let held = api.get("held").await.unwrap();
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "its finalizer holds it"
    );
    let shared = api.get("shared").await.unwrap();
    assert_eq!(
        shared.metadata.owner_references.unwrap(),
        vec![owner_ref(&other)]
    );

    let release = json!({"metadata": {"finalizers": null}});
    api.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    assert!(api.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn orphan_and_foreground_propagation() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let api = widgets(&common::client(&server), "default");

    let owner = plain(&api, "orphaner").await;
    dependent(&api, "orphan", &[&owner], &[]).await;
    api.delete("orphaner", &DeleteParams::orphan())
        .await
        .unwrap();
    assert!(api.get_opt("orphaner").await.unwrap().is_none());
    let orphan = api.get("orphan").await.unwrap();
    assert!(orphan.metadata.owner_references.is_none());

    let owner = plain(&api, "fg").await;
    dependent(&api, "fg-child", &[&owner], &["keep.io/x"]).await;
    let answer = api.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let waiting = answer.left().unwrap();
    assert_eq!(
        waiting.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert!(
        api.get("fg-child")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let release = json!({"metadata": {"finalizers": null}});
    api.patch("fg-child", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    assert!(api.get_opt("fg-child").await.unwrap().is_none());
    assert!(
        api.get_opt("fg").await.unwrap().is_none(),
        "the owner goes once its dependents have"
    );
}

#[tokio::test]
async fn delete_preconditions_are_checked() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let api = widgets(&common::client(&server), "default");
    plain(&api, "w").await;
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-its-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let status = common::status_of(api.delete("w", &params).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status
            .message
            .contains("Precondition failed: UID in precondition: not-its-uid")
    );
    assert!(api.get_opt("w").await.unwrap().is_some());
}

#[tokio::test]
async fn a_crd_created_through_the_api_serves_its_kind_until_deleted() {
    let server = ApiServer::start(&[]);
    let client = common::client(&server);
    let api = widgets(&client, "default");
    assert_eq!(common::status_of(api.get("w").await.unwrap_err()).code, 404);

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(common::widget_crd()).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conditions = created.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    plain(&api, "w").await;
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery.has_group("example.com"));

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert!(server.list("widgets").is_empty());
    assert_eq!(common::status_of(api.get("w").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn a_collection_is_deleted_by_label() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let api = widgets(&common::client(&server), "default");
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        api.create(
            &PostParams::default(),
            &widget(name, json!({}), json!({"app": app})),
        )
        .await
        .unwrap();
    }
    let params = kube::api::ListParams::default().labels("app=web");
    let deleted = api
        .delete_collection(&DeleteParams::default(), &params)
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(deleted.items.len(), 2);
    let left: Vec<String> = server
        .list("widgets")
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["c"]);
}
