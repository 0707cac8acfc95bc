//! The store against a real `nats-server` with JetStream: revision checks, so two writers
//! that race cannot both win; the lease's terms only grow.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use hearth_cluster::store::{Applied, Store, StoreError};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct NatsServer {
    child: Child,
    url: String,
    _dir: std::path::PathBuf,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn nats() -> NatsServer {
    let binary =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/nats-server");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("hearth-store-test-{}-{port}", std::process::id()));
    let child = Command::new(if binary.exists() {
        binary.as_os_str()
    } else {
        "nats-server".as_ref()
    })
    .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
    .arg(&dir)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("nats-server (scripts/setup installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    NatsServer {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _dir: dir,
    }
}

fn doc(replicas: u32, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "WorkloadDeployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "template": {"spec": {"components": [
            {"name": "http", "image": image, "http": {"path": "/"}}
        ]}}}
    })
}

#[tokio::test]
async fn racing_writers_cannot_both_win_and_terms_only_grow() {
    let server = nats();
    let client = async_nats::connect(&server.url).await.unwrap();
    let store = Store::open(&client, 1).await.unwrap();

    let v1 = doc(3, "/a.wasm");
    let rev1 = hearth_cluster::deployment::revision(&v1);
    assert_eq!(
        store.apply("web", &rev1, v1.clone()).await.unwrap(),
        (Applied::Created, 1)
    );
    assert_eq!(
        store.apply("web", &rev1, v1.clone()).await.unwrap(),
        (Applied::Unchanged, 1)
    );

    // Two writers read the same version; the first write wins, the second is told.
    let read_by_a = store.get("web").await.unwrap();
    let read_by_b = store.get("web").await.unwrap();
    let v2 = doc(3, "/b.wasm");
    let rev2 = hearth_cluster::deployment::revision(&v2);
    assert_eq!(
        store
            .apply_over(read_by_a, "web", &rev2, v2.clone())
            .await
            .unwrap(),
        (Applied::Configured, 2)
    );
    let lost = store
        .apply_over(read_by_b, "web", &rev1, doc(5, "/c.wasm"))
        .await;
    let err = lost.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(
        err.to_string().contains("changed by another writer"),
        "{err}"
    );
    let (now, _) = store.get("web").await.unwrap().unwrap();
    assert_eq!((now.generation, now.revision.as_str()), (2, rev2.as_str()));

    // Scaling keeps the revision and bumps the generation.
    assert_eq!(
        store.scale("web", 6).await.unwrap(),
        (Applied::Configured, 3)
    );
    let (scaled, _) = store.get("web").await.unwrap().unwrap();
    assert_eq!(scaled.revision, rev2);
    assert_eq!(scaled.document["spec"]["replicas"], 6);

    // Two creates of a new name at once: never both created.
    let (a, b) = tokio::join!(
        store.apply("api", "r1", doc(1, "/x.wasm")),
        store.apply("api", "r2", doc(1, "/y.wasm"))
    );
    let created = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Ok((Applied::Created, _))))
        .count();
    assert_eq!(created, 1, "{a:?} {b:?}");

    // The lease: one holder; a take-over only over the revision seen; terms grow.
    let (term1, rev) = store.take_lease("c1", None).await.unwrap().unwrap();
    assert!(store.take_lease("c2", None).await.unwrap().is_none());
    let renewed = store.renew_lease("c1", term1, rev).await.unwrap().unwrap();
    assert!(
        store.take_lease("c2", Some(rev)).await.unwrap().is_none(),
        "a stale revision"
    );
    let (term2, _) = store
        .take_lease("c2", Some(renewed))
        .await
        .unwrap()
        .unwrap();
    assert!(term2 > term1);
    assert!(
        store
            .renew_lease("c1", term1, renewed)
            .await
            .unwrap()
            .is_none(),
        "c1 lost it"
    );
}
