//! The host's workloads while it serves: apply (create or update), delete, get, list.
//!
//! `apply` runs fetch → plan → build → start next to the version that serves, then swaps the
//! new version in for the router in one step; requests in flight finish on the old version,
//! whose components drop when the last of them ends. An update keeps the running service (its
//! state, its connections) unless its own image or spec changed, and always keeps the
//! workload's network and the host ports it still publishes. Any failure before the swap
//! leaves the old version serving as it was.
//!
//! `delete` stops routing at once, waits (bounded by the drain timeout) for in-flight
//! invocations, then stops the service and closes the published ports.
//!
//! Operations on one name are serialised (in arrival order, by a per-name lock); operations
//! on different names run in parallel. Compiling happens on the blocking pool, never on the
//! threads that serve requests.

use crate::workload::RunningWorkload;
use crate::{DeployError, Runtime};
use hearth_manifest::{LocalImages, ManifestError, Part, RouteKey, Workload};
use hearth_net::{EgressPolicy, Network};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Longest an apply waits for a new service to listen on the ports its spec lists before the
/// new version takes requests; past it the version serves anyway (the service may be slow or
/// crash-looping, which its status shows).
const SERVICE_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches a workload's images to local files (pulling `oci://` ones), before planning.
pub type Fetch = Arc<dyn Fn(Workload) -> FetchFuture + Send + Sync>;

/// What a [`Fetch`] returns.
pub type FetchFuture =
    Pin<Box<dyn Future<Output = Result<LocalImages, Vec<ManifestError>>> + Send>>;

/// Told of every change to the running set: the version replaced (none for a new workload)
/// and the one that replaces it (none for a deletion). The router updates its table. Calls
/// come one at a time, in the order the changes were made.
pub type Publish =
    Box<dyn Fn(Option<&Arc<RunningWorkload>>, Option<&Arc<RunningWorkload>>) + Send + Sync>;

/// What an apply did, as `kubectl apply` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A workload of that name did not run before.
    Created,
    /// A new version replaced the running one.
    Configured,
    /// The running version is already this one (same spec, same bytes).
    Unchanged,
}

impl Applied {
    /// `created`, `configured` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// Why an apply did not happen; the running version (if any) is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Another workload already serves one of its routes.
    #[error("{0}")]
    Conflict(ManifestError),
    /// Its images could not be fetched, or it could not be planned, built or started.
    #[error("{}", display_all(.0))]
    Failed(Vec<ManifestError>),
}

fn display_all(errors: &[ManifestError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl From<DeployError> for ApplyError {
    fn from(e: DeployError) -> Self {
        ApplyError::Failed(vec![e.0])
    }
}

/// The workloads of one host.
pub struct Workloads {
    rt: Arc<Runtime>,
    fetch: Fetch,
    publish: Publish,
    drain_timeout: Duration,
    running: Mutex<Running>,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Workloads {
    /// An empty set on `rt`. `fetch` turns images into files; `publish` hears of every change.
    pub fn new(rt: Arc<Runtime>, fetch: Fetch, publish: Publish, drain_timeout: Duration) -> Self {
        Self {
            rt,
            fetch,
            publish,
            drain_timeout,
            running: Mutex::new(Running::default()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The running version of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<RunningWorkload>> {
        lock(&self.running).by_name.get(name).cloned()
    }

    /// Every running workload, by name.
    pub fn list(&self) -> Vec<Arc<RunningWorkload>> {
        lock(&self.running).by_name.values().cloned().collect()
    }

    /// Creates or updates `workload`, returning once the new version serves.
    pub async fn apply(
        &self,
        workload: Workload,
    ) -> Result<(Applied, Arc<RunningWorkload>), ApplyError> {
        let _turn = self.turn(&workload.name).await;
        let started = Instant::now();
        let images = (self.fetch)(workload.clone())
            .await
            .map_err(ApplyError::Failed)?;
        // Parsing and hashing a large file is CPU work too: it runs where compiling does.
        let plan = self
            .rt
            .compiler
            .run(move || crate::plan::plan(&workload, &images))
            .await
            .ok_or_else(|| ApplyError::Failed(vec![internal("the planning task failed")]))?
            .map_err(|errors| ApplyError::Failed(errors.into_iter().map(|e| e.0).collect()))?;
        let workload = &plan.workload;
        self.check_routes(workload)?;
        let previous = self.get(&workload.name);
        if let Some(previous) = previous
            .as_ref()
            .filter(|p| p.fingerprint == plan.fingerprint)
        {
            return Ok((Applied::Unchanged, Arc::clone(previous)));
        }
        let keep_service = previous.as_ref().is_some_and(|p| {
            p.service.is_some() && p.fingerprint.service == plan.fingerprint.service
        });
        let network = match &previous {
            Some(p) => Arc::clone(&p.network),
            None => Network::new(&workload.name, EgressPolicy::deny_all()),
        };
        let name = workload.name.clone();
        match &previous {
            Some(_) if keep_service => {
                tracing::info!(workload = %name, "updating the components; the service keeps running")
            }
            Some(p) if p.service.is_some() => {
                tracing::info!(workload = %name, "replacing the service (its image or spec changed)")
            }
            _ => {}
        }
        let built = crate::build::build(&self.rt, plan, network, keep_service).await?;
        let running = Arc::new(crate::start::start(&self.rt, built, previous.as_ref()).await?);
        running.wait_until_listening(SERVICE_READY_TIMEOUT).await;
        self.swap(&name, Some(Arc::clone(&running)));
        if let Some(old) = &previous {
            old.stop_subscriptions();
            old.published.retire(&running.published);
        }
        let applied = match previous {
            Some(_) => Applied::Configured,
            None => Applied::Created,
        };
        tracing::info!(
            workload = %name,
            result = applied.as_str(),
            generation = running.generation,
            service_kept = keep_service,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "workload applied"
        );
        Ok((applied, running))
    }

    /// Removes `name`: no new requests at once, in-flight ones drain (bounded), then the
    /// service stops and its ports close. `false` if no such workload runs.
    pub async fn delete(&self, name: &str) -> bool {
        let _turn = self.turn(name).await;
        let Some(gone) = self.swap(name, None) else {
            return false;
        };
        let deadline = Instant::now() + self.drain_timeout;
        // A request routed just before the swap may not have reached its gate yet.
        tokio::time::sleep(Duration::from_millis(10)).await;
        while gone.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let drained = gone.in_flight() == 0;
        let stopping = Arc::clone(&gone);
        let _ = tokio::task::spawn_blocking(move || stopping.stop()).await;
        tracing::info!(workload = %name, drained, "workload deleted");
        // Its kept lines go with it: replica names are unique, so lines of deleted ones would
        // otherwise pile up over rollouts.
        crate::logs::hub().forget(name);
        true
    }

    /// Stops every workload (at host shutdown, once requests have drained). Blocking.
    pub fn stop_all(&self) {
        for w in self.list() {
            w.stop();
        }
    }

    /// Waits for this name's turn: one apply or delete of a name at a time.
    async fn turn(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = {
            let mut locks = lock(&self.locks);
            locks.retain(|_, m| m.strong_count() > 0);
            match locks.get(name).and_then(Weak::upgrade) {
                Some(m) => m,
                None => {
                    let m = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(name.to_string(), Arc::downgrade(&m));
                    m
                }
            }
        };
        mutex.lock_owned().await
    }

    /// Replaces (or removes) `name` in the running set and tells the router; returns what it
    /// replaced.
    fn swap(&self, name: &str, next: Option<Arc<RunningWorkload>>) -> Option<Arc<RunningWorkload>> {
        let mut running = lock(&self.running);
        let previous = match &next {
            Some(w) => running.by_name.insert(name.to_string(), Arc::clone(w)),
            None => running.by_name.remove(name),
        };
        if let Some(previous) = &previous {
            running.unroute(previous);
        }
        if let Some(next) = &next {
            running.route(next);
        }
        (self.publish)(previous.as_ref(), next.as_ref());
        previous
    }

    /// Fails if another running workload serves a route of `workload` (replicas of one
    /// deployment share theirs).
    fn check_routes(&self, workload: &Workload) -> Result<(), ApplyError> {
        let running = lock(&self.running);
        let group = workload.deployment();
        for (i, c) in workload.spec.components.iter().enumerate() {
            let Some(route) = &c.http else { continue };
            let key = RouteKey::new(route.host.as_deref(), &route.path);
            let taken = running.routes.get(&key).and_then(|serving| {
                serving
                    .iter()
                    .filter(|w| *w.name != *workload.name)
                    .find(|w| group.is_none() || w.deployment.as_deref() != group)
            });
            if let Some(other) = taken {
                return Err(ApplyError::Conflict(workload.error_at(
                    workload.field_of(Part::Component(i), "http"),
                    format!(
                        "route `{key}` is already served by workload `{}`: expected each host and path pair once on a host",
                        other.name
                    ),
                )));
            }
        }
        Ok(())
    }
}

/// The running workloads, by name, and which of them serve each route (so that checking a
/// new workload's routes does not look at every other workload).
#[derive(Default)]
struct Running {
    by_name: BTreeMap<String, Arc<RunningWorkload>>,
    routes: HashMap<RouteKey, Vec<Arc<RunningWorkload>>>,
}

impl Running {
    fn keys(workload: &RunningWorkload) -> impl Iterator<Item = RouteKey> + '_ {
        workload
            .components
            .iter()
            .filter_map(|c| c.route())
            .map(|r| RouteKey::new(r.host.as_deref(), &r.path))
    }

    fn route(&mut self, workload: &Arc<RunningWorkload>) {
        for key in Self::keys(workload) {
            self.routes
                .entry(key)
                .or_default()
                .push(Arc::clone(workload));
        }
    }

    fn unroute(&mut self, workload: &Arc<RunningWorkload>) {
        for key in Self::keys(workload) {
            if let Some(serving) = self.routes.get_mut(&key) {
                serving.retain(|w| !Arc::ptr_eq(w, workload));
                if serving.is_empty() {
                    self.routes.remove(&key);
                }
            }
        }
    }
}

fn internal(message: &str) -> ManifestError {
    ManifestError {
        file: "(host)".into(),
        document: None,
        path: String::new(),
        message: format!("internal error: {message}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
