//! Events as an operator publishes them: kube-rs's `Recorder` creates an `events.k8s.io/v1`
//! `Event`, then merge-patches the same one (with a `series`) when it repeats; core `v1`
//! Events are stored too, and `ApiServer::events_for` finds both kinds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use hearth_kube_standin::ApiServer;
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

fn reference() -> ObjectReference {
    ObjectReference {
        api_version: Some("example.com/v1".into()),
        kind: Some("Widget".into()),
        name: Some("hello".into()),
        namespace: Some("default".into()),
        uid: Some("uid-1".into()),
        ..ObjectReference::default()
    }
}

fn scaled() -> Event {
    Event {
        type_: EventType::Normal,
        reason: "Scaled".into(),
        note: Some("3 replicas".into()),
        action: "Scale".into(),
        secondary: None,
    }
}

#[tokio::test]
async fn the_recorder_creates_an_event_then_patches_its_series() {
    let server = ApiServer::start(&[]);
    let reporter = Reporter {
        controller: "hearth-operator".into(),
        instance: Some("op-a".into()),
    };
    let recorder = Recorder::new(common::client(&server), reporter);
    recorder.publish(&scaled(), &reference()).await.unwrap();
    recorder.publish(&scaled(), &reference()).await.unwrap();

    let events = server.events_for("hello");
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["apiVersion"], "events.k8s.io/v1");
    assert_eq!(
        (&event["reason"], &event["note"], &event["series"]["count"]),
        (&json!("Scaled"), &json!("3 replicas"), &json!(2))
    );
    assert_eq!(event["metadata"]["namespace"], "default");
    let writes: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET"))
        .collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(writes[0].starts_with("POST /apis/events.k8s.io/v1/namespaces/default/events"));
    assert!(writes[1].starts_with("PATCH /apis/events.k8s.io/v1/namespaces/default/events/hello."));
}

#[tokio::test]
async fn core_events_are_stored_apart_and_found_too() {
    let server = ApiServer::start(&[]);
    let client = common::client(&server);
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let event: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "hello.1"},
        "involvedObject": {"kind": "Widget", "name": "hello", "namespace": "default"},
        "reason": "Started", "message": "up", "type": "Normal",
    }))
    .unwrap();
    core.create(&PostParams::default(), &event).await.unwrap();
    Recorder::new(client.clone(), "hearth-operator".into())
        .publish(&scaled(), &reference())
        .await
        .unwrap();

    assert_eq!(
        core.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let new_api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
    assert_eq!(
        new_api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let mut reasons: Vec<String> = server
        .events_for("hello")
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["Scaled", "Started"]);
    assert!(server.events_for("other").is_empty());
}
