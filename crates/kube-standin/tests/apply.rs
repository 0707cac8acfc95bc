//! Server-side apply and replace through kube-rs: apply creates (201) then merges, records
//! its field manager, merges `status.conditions` by `type` on `/status`; PUT keeps the
//! status of a kind with a status subresource and PUT on `/status` changes only the status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use common::{widget, widgets};
use hearth_kube_standin::ApiServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// A raw PATCH, for what kube-rs does not show: the status code.
async fn raw_patch(
    client: &kube::Client,
    query: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let request = http::Request::patch(format!(
        "/apis/example.com/v1/namespaces/default/widgets/raw{query}"
    ))
    .header("content-type", content_type)
    .body(kube::client::Body::from(body.as_bytes().to_vec()))
    .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn apply_creates_then_merges_and_records_its_manager() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let client = common::client(&server);
    let api = widgets(&client, "default");
    let apply = PatchParams::apply("hearth-operator");

    let first = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"a": 1, "list": [1, 2]}});
    let created = api.patch("w", &apply, &Patch::Apply(&first)).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let managed = created.metadata.managed_fields.unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("hearth-operator"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    assert_eq!(managed[0].api_version.as_deref(), Some("example.com/v1"));
    assert!(managed[0].time.is_some());

    // Maps merge, lists are replaced; what this apply omits stays (no field ownership).
    let second = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"app": "web"}}, "spec": {"b": 2, "list": [3]}});
    let merged = api
        .patch("w", &apply, &Patch::Apply(&second))
        .await
        .unwrap();
    assert_eq!(merged.data["spec"], json!({"a": 1, "b": 2, "list": [3]}));
    assert_eq!(merged.metadata.labels.unwrap()["app"], "web");
    assert_eq!(merged.metadata.generation, Some(2));

    // The same again changes nothing, not even the resourceVersion.
    let again = api
        .patch("w", &apply, &Patch::Apply(&second))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        merged.metadata.resource_version
    );

    // Status through apply on /status: conditions merge by `type`; the spec stays.
    let status = |conditions: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"a": 99}, "status": {"conditions": conditions}});
    let ready = json!([{"type": "Ready", "status": "False", "reason": "Starting"}]);
    api.patch_status("w", &apply, &Patch::Apply(status(ready)))
        .await
        .unwrap();
    let more =
        json!([{"type": "Ready", "status": "True"}, {"type": "Progressing", "status": "False"}]);
    let patched = api
        .patch_status("w", &apply, &Patch::Apply(status(more)))
        .await
        .unwrap();
    assert_eq!(
        patched.data["status"]["conditions"],
        json!([
            {"type": "Ready", "status": "True", "reason": "Starting"},
            {"type": "Progressing", "status": "False"},
        ])
    );
    assert_eq!(
        patched.data["spec"]["a"], 1,
        "a status write leaves the spec"
    );
    assert_eq!(patched.metadata.generation, Some(2));
    let managers: Vec<(String, Option<String>)> = patched
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.subresource))
        .collect();
    assert_eq!(
        managers,
        [
            ("hearth-operator".to_string(), None),
            ("hearth-operator".to_string(), Some("status".to_string()))
        ]
    );
}

#[tokio::test]
async fn apply_answers_created_and_refuses_what_it_cannot_take() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let client = common::client(&server);
    let body = r#"{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "raw"}, "spec": {}}"#;
    let apply = "application/apply-patch+yaml";

    let (code, status) = raw_patch(&client, "", apply, body).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "no fieldManager"
    );
    let (code, _) = raw_patch(&client, "?fieldManager=m", apply, "kind: Widget\n").await;
    assert_eq!(code, 400, "YAML is not taken");
    let (code, created) = raw_patch(&client, "?fieldManager=m", apply, body).await;
    assert_eq!(
        (code, created["metadata"]["name"].as_str()),
        (201, Some("raw"))
    );
    let (code, _) = raw_patch(&client, "?fieldManager=m", apply, body).await;
    assert_eq!(code, 200);
    let (code, _) = raw_patch(&client, "", "application/strategic-merge-patch+json", "{}").await;
    assert_eq!(code, 415, "custom kinds take no strategic merge patch");
}

#[tokio::test]
async fn put_keeps_the_status_and_put_on_status_keeps_the_rest() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let api = widgets(&common::client(&server), "default");
    let created = api
        .create(
            &PostParams::default(),
            &widget("w", json!({"n": 1}), json!({})),
        )
        .await
        .unwrap();
    let mut with_status = created.clone();
    with_status.data["status"] = json!({"ready": true});
    let status_set = api
        .replace_status("w", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(status_set.data["status"], json!({"ready": true}));
    assert_eq!(status_set.metadata.generation, Some(1));

    // A PUT of the object with another status and spec: the spec changes, the status stays.
    let mut replaced = status_set.clone();
    replaced.data["spec"] = json!({"n": 2});
    replaced.data["status"] = json!({"ready": false});
    let stored = api
        .replace("w", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(stored.data["spec"], json!({"n": 2}));
    assert_eq!(stored.data["status"], json!({"ready": true}));
    assert_eq!(stored.metadata.generation, Some(2));
    assert_eq!(stored.metadata.uid, created.metadata.uid);

    // A PUT on /status with another spec: only the status changes.
    let mut status_only = stored.clone();
    status_only.data["spec"] = json!({"n": 3});
    status_only.data["status"] = json!({"ready": false});
    let stored = api
        .replace_status("w", &PostParams::default(), &status_only)
        .await
        .unwrap();
    assert_eq!(
        (&stored.data["spec"], &stored.data["status"]),
        (&json!({"n": 2}), &json!({"ready": false}))
    );

    // Replacing from a stale version is a conflict, on /status too.
    let err = api
        .replace_status("w", &PostParams::default(), &status_only)
        .await
        .unwrap_err();
    assert_eq!(common::status_of(err).code, 409);
}

#[tokio::test]
async fn an_applied_crd_serves_its_kind() {
    let server = ApiServer::start(&[]);
    let client = common::client(&server);
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let applied = crds
        .patch(
            "widgets.example.com",
            &PatchParams::apply("installer"),
            &Patch::Apply(common::widget_crd()),
        )
        .await
        .unwrap();
    assert!(applied.status.unwrap().accepted_names.is_some());
    let api = widgets(&client, "default");
    api.create(&PostParams::default(), &widget("w", json!({}), json!({})))
        .await
        .unwrap();
    assert_eq!(server.list("widgets").len(), 1);
}
