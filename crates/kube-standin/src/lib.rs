//! A **stand-in** Kubernetes API server, for tests. It is not Kubernetes: no real API server
//! can run on this machine (Debian ships only the client, and no package registry reachable
//! here ships the server), so the tests of the operator talk to this one, in memory, over
//! real HTTP, with the real `kubectl` and the real kube-rs client. It aims to be faithful for
//! what a kube-rs operator and kubectl do, and no further.
//!
//! What it implements:
//! - `/version`; legacy discovery (`/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`);
//!   OpenAPI v3 (`/openapi/v3` and one document per group version) with each kind's schema.
//! - Kinds: built-in `v1` `Namespace` (cluster-scoped) and `Event`, `events.k8s.io/v1`
//!   `Event`, `coordination.k8s.io/v1` `Lease`, `apiextensions.k8s.io/v1`
//!   `CustomResourceDefinition` (cluster-scoped); and the kind of every stored CRD, from
//!   creating (or applying) the CRD, or from [`ApiServer::start`]'s list.
//! - GET and LIST (JSON, a `Table` with printer columns for `kubectl get`, or
//!   `PartialObjectMetadata`), with label selectors (`=`, `==`, `!=`, `in`, `notin`,
//!   existence) and field selectors; POST (with `generateName`); PUT; JSON merge patch, JSON
//!   patch (RFC 6902) and server-side apply; strategic merge patch for built-in kinds only (as
//!   a merge patch); the `/status` and `/scale` subresources where the kind has them.
//! - `resourceVersion` (one counter), `uid`, `creationTimestamp`, `generation` (spec changes
//!   only), optimistic concurrency (a stale `metadata.resourceVersion` in a PUT, patch or
//!   apply is a `409 Conflict`), `managedFields` entries per field manager.
//! - DELETE (one, or a collection) with `DeleteOptions` (propagation policy, preconditions),
//!   finalizers and `deletionTimestamp`, and owner-reference garbage collection, done at once
//!   (see the `delete` module).
//! - WATCH from a `resourceVersion`, with selectors, bookmarks and `410 Gone` (see `watch`);
//!   the last 10 000 changes are kept for watches, and [`ApiServer::compact`] forgets them.
//!
//! What it does not do:
//! - No authentication or authorization: every request is served.
//! - No validation against schemas (`fieldValidation` is accepted and ignored), no defaults
//!   from schemas, no admission, no conversion between versions (a CRD's first version is the
//!   only one served).
//! - Namespaces are not enforced: objects may be created in a namespace that does not exist.
//! - A PUT without `metadata.resourceVersion` is taken as an unconditional update (the real
//!   server refuses that for custom resources).
//! - The two `Event` APIs store their objects apart (the real server shares them).
//! - Server-side apply takes JSON only (not YAML) and computes no field ownership: no
//!   conflicts, and fields omitted by a later apply stay (see the `apply` module).
//! - Protobuf and CBOR bodies are refused with `415` (kubectl's typed commands for built-in
//!   kinds send protobuf: `kubectl create namespace x` fails, `kubectl apply` works).
//! - `dryRun`, `limit`/`continue` (LISTs answer everything), `kubectl get -w` (no `Table`
//!   watch events), aggregated discovery, `/log`, `/exec` and the like.

mod apply;
mod delete;
mod discovery;
mod kinds;
mod meta;
mod objects;
mod patch;
mod query;
mod respond;
mod router;
mod selectors;
mod store;
mod table;
mod time;
mod watch;
mod writes;

use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use store::State;

/// The running stand-in. Dropping it (or [`ApiServer::stop`]) stops serving.
pub struct ApiServer {
    /// Where it listens, on the loopback interface.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// The state, even if a handler panicked while holding it.
pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ApiServer {
    /// Starts serving on a free port, with `crds` (CustomResourceDefinition objects as JSON)
    /// stored as if created. Panics if it cannot (a test cannot go on without it); see
    /// [`ApiServer::try_start`].
    #[allow(clippy::expect_used)] // a test helper: failing loudly is the point
    pub fn start(crds: &[Value]) -> Self {
        Self::try_start(crds).expect("starting the stand-in API server")
    }

    /// Starts serving on a free port of 127.0.0.1 on a runtime of its own, so it may be
    /// started from inside a tokio runtime or outside any.
    pub fn try_start(crds: &[Value]) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(seeded(crds)?));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kube-standin")
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        runtime.spawn(serve(listener, Arc::clone(&state)));
        Ok(Self {
            addr,
            state,
            runtime: Some(runtime),
        })
    }

    /// `http://{addr}`, for a kube-rs `Config::new`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig file for this server (namespace `default`) into `dir`.
    #[allow(clippy::expect_used)] // a test helper: failing loudly is the point
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: standin, cluster: {{server: \"{}\"}}}}]\ncontexts: [{{name: standin, context: {{cluster: standin, user: test, namespace: default}}}}]\nusers: [{{name: test, user: {{token: standin}}}}]\ncurrent-context: standin\n",
                self.url()
            ),
        )
        .expect("writing the kubeconfig");
        path
    }

    /// An object, if stored. `resource` is a plural (`workloads`) or `plural.group`
    /// (`leases.coordination.k8s.io`); `namespace` is empty for cluster-scoped kinds.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let st = lock(&self.state);
        st.kinds
            .iter()
            .filter(|k| k.is_called(resource))
            .find_map(|k| st.stored(k, namespace, name).cloned())
    }

    /// Every stored object of `resource` (a plural, or `plural.group`), in every namespace.
    pub fn list(&self, resource: &str) -> Vec<Value> {
        let st = lock(&self.state);
        st.kinds
            .iter()
            .filter(|k| k.is_called(resource))
            .flat_map(|k| st.of_kind(k, ""))
            .collect()
    }

    /// The `Event`s (of both APIs) about an object named `name`: their `regarding` or
    /// `involvedObject` names it.
    pub fn events_for(&self, name: &str) -> Vec<Value> {
        self.list("events")
            .into_iter()
            .filter(|e| e["regarding"]["name"] == name || e["involvedObject"]["name"] == name)
            .collect()
    }

    /// The requests served so far, as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// Forgets the changes so far, as an etcd compaction does: a watch from an older
    /// `resourceVersion` is then answered `410 Gone`.
    pub fn compact(&self) {
        lock(&self.state).compact();
    }

    /// Stops serving: open connections and watches end.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Without blocking, so it may be dropped inside another runtime too.
            runtime.shutdown_background();
        }
    }
}

/// A state with `crds` created.
fn seeded(crds: &[Value]) -> std::io::Result<State> {
    let mut st = State::new();
    let crd_kind = st
        .kind_by_resource(kinds::CRD_RESOURCE)
        .ok_or_else(|| std::io::Error::other("no CustomResourceDefinition kind"))?;
    for crd in crds {
        writes::create(&mut st, &crd_kind, "", crd.clone(), None)
            .map_err(|f| std::io::Error::new(std::io::ErrorKind::InvalidInput, f.message))?;
    }
    Ok(st)
}

/// Accepts connections until the runtime stops.
async fn serve(listener: tokio::net::TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: let some close before trying again.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(router::handle(state, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
