//! kube-rs, the client the operator is built on, against the stand-in API server: create,
//! list, a watcher that sees changes, merge patches of the object and of its status, and a
//! generation that moves with the spec only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use futures::{StreamExt, TryStreamExt};
use hearth_kube_standin::ApiServer;
use hearth_operator::crd::WorkloadDeployment;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::time::Duration;

#[test]
fn kube_rs_creates_lists_watches_and_patches_through_the_stand_in() {
    let crds: Vec<serde_json::Value> = hearth_operator::crd::crds()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    let server = ApiServer::start(&crds);
    let url = format!("http://{}", server.addr);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        let api: Api<WorkloadDeployment> = Api::namespaced(client, "default");
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/cluster/deployment.yaml"),
        )
        .unwrap();
        let wd: WorkloadDeployment = serde_yaml::from_str(&text).unwrap();
        let created = api.create(&PostParams::default(), &wd).await.unwrap();
        assert_eq!(created.metadata.generation, Some(1));
        assert!(created.metadata.uid.is_some());
        assert_eq!(
            api.list(&ListParams::default()).await.unwrap().items.len(),
            1
        );

        let mut changes = watcher(api.clone(), watcher::Config::default())
            .applied_objects()
            .boxed();
        let seen = tokio::time::timeout(Duration::from_secs(10), changes.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(seen.spec.replicas, 3);

        let patched = api
            .patch(
                "hello",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 5}})),
            )
            .await
            .unwrap();
        assert_eq!(
            (patched.spec.replicas, patched.metadata.generation),
            (5, Some(2))
        );
        let seen = tokio::time::timeout(Duration::from_secs(10), changes.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(seen.spec.replicas, 5, "the watcher sees the change");

        let status = api
            .patch_status(
                "hello",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"replicas": 5, "readyReplicas": 5}})),
            )
            .await
            .unwrap();
        assert_eq!(status.status.unwrap().ready_replicas, 5);
        assert_eq!(
            status.metadata.generation,
            Some(2),
            "a status write is not a spec change"
        );
    });
}
