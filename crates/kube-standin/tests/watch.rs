//! LIST and WATCH as reflectors use them: label and field selectors, a watch from a
//! `resourceVersion` that sees ADDED, MODIFIED and DELETED (and objects entering and
//! leaving its selection), `410 Gone` after a compaction, bookmarks, and kube-rs's watcher
//! in both its list-then-watch and streaming-list modes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod common;

use common::{widget, widgets};
use futures::{Stream, StreamExt, TryStreamExt};
use hearth_kube_standin::ApiServer;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::watcher;
use serde_json::json;
use std::time::Duration;

async fn create(api: &Api<DynamicObject>, name: &str, labels: serde_json::Value) -> DynamicObject {
    api.create(&PostParams::default(), &widget(name, json!({}), labels))
        .await
        .unwrap()
}

async fn names(api: &Api<DynamicObject>, params: &ListParams) -> Vec<String> {
    let mut names: Vec<String> = api
        .list(params)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.metadata.name.unwrap())
        .collect();
    names.sort();
    names
}

/// The next event within a few seconds, as `(type, name)`.
async fn next<S>(events: &mut S) -> (&'static str, String)
where
    S: Stream<Item = kube::Result<WatchEvent<DynamicObject>>> + Unpin,
{
    let event = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .expect("an event in time")
        .unwrap()
        .expect("the watch goes on");
    match event {
        WatchEvent::Added(o) => ("ADDED", o.metadata.name.unwrap()),
        WatchEvent::Modified(o) => ("MODIFIED", o.metadata.name.unwrap()),
        WatchEvent::Deleted(o) => ("DELETED", o.metadata.name.unwrap()),
        WatchEvent::Bookmark(b) => ("BOOKMARK", b.metadata.resource_version),
        WatchEvent::Error(e) => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn lists_filter_by_labels_and_fields() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let client = common::client(&server);
    let api = widgets(&client, "default");
    create(&api, "a", json!({"app": "web", "tier": "front"})).await;
    create(&api, "b", json!({"app": "web"})).await;
    create(&api, "c", json!({"app": "db"})).await;
    create(&widgets(&client, "elsewhere"), "d", json!({"app": "web"})).await;

    let by = |labels: &str| ListParams::default().labels(labels);
    assert_eq!(names(&api, &by("app=web")).await, ["a", "b"]);
    assert_eq!(names(&api, &by("app=web,tier!=front")).await, ["b"]);
    assert_eq!(names(&api, &by("!tier")).await, ["b", "c"]);
    assert_eq!(names(&api, &by("app in (db, cache)")).await, ["c"]);
    let by_name = ListParams::default().fields("metadata.name=c");
    assert_eq!(names(&api, &by_name).await, ["c"]);
    let everywhere = Api::all_with(client, &common::widget_resource());
    assert_eq!(names(&everywhere, &by("app=web")).await, ["a", "b", "d"]);
    assert_eq!(server.list("widgets.example.com").len(), 4);
}

#[tokio::test]
async fn a_watch_from_a_version_sees_every_change_through_its_selector() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let api = widgets(&common::client(&server), "default");
    let a = create(&api, "a", json!({"app": "web"})).await;
    create(&api, "c", json!({"app": "db"})).await;
    let since = a.metadata.resource_version.unwrap();

    let mut all = api
        .watch(&WatchParams::default(), &since)
        .await
        .unwrap()
        .boxed();
    let mut web = api
        .watch(&WatchParams::default().labels("app=web"), &since)
        .await
        .unwrap()
        .boxed();
    assert_eq!(next(&mut all).await, ("ADDED", "c".into()));

    create(&api, "b", json!({"app": "web"})).await;
    let relabel = |app: &str| Patch::Merge(json!({"metadata": {"labels": {"app": app}}}));
    api.patch("b", &PatchParams::default(), &relabel("db"))
        .await
        .unwrap();
    api.patch("c", &PatchParams::default(), &relabel("web"))
        .await
        .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();

    for expected in [
        ("ADDED", "b"),
        ("MODIFIED", "b"),
        ("MODIFIED", "c"),
        ("DELETED", "a"),
    ] {
        assert_eq!(next(&mut all).await, (expected.0, expected.1.into()));
    }
    // Through `app=web`: b leaves its selection (DELETED), c enters it (ADDED).
    for expected in [
        ("ADDED", "b"),
        ("DELETED", "b"),
        ("ADDED", "c"),
        ("DELETED", "a"),
    ] {
        assert_eq!(next(&mut web).await, (expected.0, expected.1.into()));
    }

    // A single-object watch, as kube-rs and `kubectl delete` make them.
    let mut one = api
        .watch(&WatchParams::default().fields("metadata.name=c"), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(next(&mut one).await, ("ADDED", "c".into()));
    api.delete("b", &DeleteParams::default()).await.unwrap();
    api.delete("c", &DeleteParams::default()).await.unwrap();
    assert_eq!(next(&mut one).await, ("DELETED", "c".into()));
}

#[tokio::test]
async fn old_versions_are_gone_after_a_compaction_and_bookmarks_come() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let api = widgets(&common::client(&server), "default");
    let a = create(&api, "a", json!({})).await;
    create(&api, "b", json!({})).await;
    server.compact();

    let mut old = api
        .watch(
            &WatchParams::default(),
            a.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    match old.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410, got {other:?}"),
    }

    // At the end of its time, a watch that allows bookmarks gets the current version.
    let current = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut short = api
        .watch(&WatchParams::default().timeout(1), &current)
        .await
        .unwrap()
        .boxed();
    assert_eq!(next(&mut short).await, ("BOOKMARK", current));
    assert!(short.try_next().await.unwrap().is_none(), "then it ends");
}

/// The objects of the first complete listing a kube-rs watcher reports.
async fn initial_names(config: watcher::Config, api: Api<DynamicObject>) -> Vec<String> {
    let mut events = watcher(api, config).boxed();
    let mut names = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        match event {
            watcher::Event::Init => {}
            watcher::Event::InitApply(o) => names.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            other => panic!("{other:?}"),
        }
    }
    names.sort();
    names
}

#[tokio::test]
async fn the_kube_rs_watcher_lists_in_both_modes() {
    let server = ApiServer::start(&[common::widget_crd()]);
    let api = widgets(&common::client(&server), "default");
    create(&api, "a", json!({"app": "web"})).await;
    create(&api, "b", json!({})).await;
    let plain = watcher::Config::default().labels("app=web");
    assert_eq!(initial_names(plain, api.clone()).await, ["a"]);
    let streaming = watcher::Config::default().streaming_lists();
    assert_eq!(initial_names(streaming, api).await, ["a", "b"]);
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /apis/example.com/v1/namespaces/default/widgets")),
    );
}
