//! `hearth operator`: WorkloadDeployments and Workloads in the Kubernetes API, replicas on
//! hearth hosts over NATS.
//!
//! Two `kube::runtime::Controller`s share one context:
//! - **deployments** ([`deployments`]): plans every deployment with the cluster's pure
//!   scheduler (the same `plan` as `hearth controller`) and carries out the steps of the one
//!   it reconciles: a new replica is a `Workload` object (owned by its deployment, with a
//!   finalizer) and a `start` command to its host; a replica to go is a deleted object. It
//!   writes the deployment's status and emits Events for placements, failures and rollouts.
//! - **workloads** ([`workloads`]): keeps each `Workload`'s status in step with its host's
//!   heartbeats, runs a `Workload` applied on its own as one replica, and on deletion stops
//!   the replica on its host before letting its finalizer go (bounded retries).
//!
//! Heartbeats arrive on NATS ([`hosts`]), which also mirrors hosts into `Host` objects when
//! they change state, never per heartbeat.
//!
//! **One acts.** Several operators may run; the holder of a `coordination.k8s.io` Lease acts
//! ([`crate::leader`]) and sends its term with every command. **Partition guard**: it acts only
//! while it holds a recently renewed Lease (so it reaches the API server), has been connected
//! to NATS for longer than a host's heartbeat timeout, has heard some host within that
//! timeout, and has read its caches. An operator that cannot see the hosts never stops or
//! replaces their replicas.

mod deployments;
mod hosts;
#[cfg(test)]
mod scenarios;
mod workloads;

use crate::crd::{Workload, WorkloadDeployment};
use crate::leader::{Change, Elector, LeaseConfig};
use crate::replicas;
use futures::StreamExt;
use hearth_cluster::commands::Commands;
use hearth_cluster::deployment::Prepared;
use hearth_cluster::metrics;
use hearth_cluster::observed::Observed;
use hearth_cluster::protocol::{self, PROTOCOL, ReplicaCommand, Reply, StartCommand, subject};
use hearth_cluster::scheduler::{Backoff, Desired, HostView, Replica};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller::{self, Action};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Watch this namespace only; all namespaces when `None`.
    pub namespace: Option<String>,
    /// The Lease that elects the acting operator.
    pub lease: LeaseConfig,
    /// A host whose heartbeats stop for this long is lost.
    pub host_timeout: Duration,
}

/// Why a reconcile did not finish; its object is reconciled again soon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("waiting for host `{host}` to stop replica `{replica}`")]
    Stopping { replica: String, host: String },
    #[error("not acting: {0}")]
    NotActing(&'static str),
}

/// A deployment's scheduler input, cached per (uid, generation): validating every
/// deployment on every pass would be quadratic.
type Prepare = Result<(Prepared, Desired), String>;

/// Everything the reconcilers share.
pub(crate) struct Ctx {
    config: Config,
    client: kube::Client,
    nats: async_nats::Client,
    elector: Elector,
    observed: Mutex<Observed>,
    synced: AtomicBool,
    deployments: Store<WorkloadDeployment>,
    workloads: Store<Workload>,
    prepared: Mutex<HashMap<(String, i64), Arc<Prepare>>>,
    recorder: Recorder,
    commands: Commands,
    /// Stop attempts per `Workload` uid, for the finalizer's bound.
    stop_attempts: Mutex<HashMap<String, (u32, Instant)>>,
    /// Deployments the replica gauges have named (a gone one is set to 0).
    shown: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An operator, built and ready to run.
pub struct Operator {
    ctx: Arc<Ctx>,
    deployments: Controller<WorkloadDeployment>,
    workloads: Controller<Workload>,
    workloads_api: Api<Workload>,
}

impl Operator {
    pub fn new(config: Config, client: kube::Client, nats: async_nats::Client) -> Self {
        let deployments_api: Api<WorkloadDeployment> = scoped(&client, config.namespace.as_deref());
        let workloads_api: Api<Workload> = scoped(&client, config.namespace.as_deref());
        let deployments = Controller::new(deployments_api, watcher::Config::default());
        let workloads = Controller::new(workloads_api.clone(), watcher::Config::default());
        let ctx = Ctx::new(config, client, nats, deployments.store(), workloads.store());
        Self {
            ctx,
            deployments,
            workloads,
            workloads_api,
        }
    }

    /// Sets the cluster gauges from the operator's view (call it per scrape): whether it
    /// acts, the hosts and their heartbeat age, each deployment's desired and ready
    /// replicas. The same series as `hearth controller --metrics`.
    pub fn metrics(&self) -> impl Fn() + Send + Sync + 'static {
        let ctx = Arc::clone(&self.ctx);
        move || ctx.collect_metrics()
    }

    /// Runs until `stop` resolves, then gives the Lease up.
    pub async fn run(self, stop: impl Future<Output = ()> + Send + 'static) {
        let Self {
            ctx,
            deployments,
            workloads,
            workloads_api,
        } = self;
        let (changed_tx, changed) = tokio::sync::watch::channel(0u64);
        let (stop_tx, stopped) = tokio::sync::watch::channel(false);
        let tasks = [
            tokio::spawn(hosts::watch_heartbeats(Arc::clone(&ctx), changed_tx)),
            tokio::spawn(hosts::keep_host_objects(Arc::clone(&ctx))),
            tokio::spawn(Arc::clone(&ctx).keep_lease()),
            tokio::spawn(Arc::clone(&ctx).wait_for_caches()),
        ];
        let settings = controller::Config::default()
            .concurrency(1)
            .debounce(Duration::from_millis(50));
        let deployments = deployments
            .owns(workloads_api, watcher::Config::default())
            .reconcile_all_on(changes(changed.clone()))
            .with_config(settings.clone())
            .graceful_shutdown_on(signalled(stopped.clone()))
            .run(deployments::reconcile, error_policy, Arc::clone(&ctx))
            .for_each(|result| async move { log_result("WorkloadDeployment", result) });
        let workloads = workloads
            .reconcile_all_on(changes(changed))
            .with_config(settings)
            .graceful_shutdown_on(signalled(stopped))
            .run(workloads::reconcile, error_policy, Arc::clone(&ctx))
            .for_each(|result| async move { log_result("Workload", result) });
        let controllers = tokio::spawn(async move {
            futures::join!(deployments, workloads);
        });
        stop.await;
        let _ = stop_tx.send(true);
        for task in tasks {
            task.abort();
        }
        let _ = controllers.await;
        match ctx.elector.release().await {
            Ok(()) => tracing::info!("gave the Lease up"),
            Err(e) => tracing::warn!(error = %e, "could not give the Lease up"),
        }
    }
}

/// Runs an operator until `stop` resolves, then gives the Lease up.
pub async fn run(
    config: Config,
    client: kube::Client,
    nats: async_nats::Client,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    Operator::new(config, client, nats).run(stop).await;
}

/// The API of `K` in one namespace, or in all.
fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The cache key of a listed object.
fn object_ref<K>(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> ObjectRef<K>
where
    K: Resource<DynamicType = ()>,
{
    let r = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
    match &meta.namespace {
        Some(ns) => r.within(ns),
        None => r,
    }
}

/// A stream that yields once per change of the heartbeat view.
fn changes(rx: tokio::sync::watch::Receiver<u64>) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    })
}

/// Resolves once `stop` turns true (or its sender goes).
async fn signalled(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn log_result<T>(kind: &'static str, result: Result<T, controller::Error<Error, watcher::Error>>) {
    match result {
        Ok(_) => {}
        Err(controller::Error::ReconcilerFailed(
            Error::Stopping { .. } | Error::NotActing(_),
            _,
        )) => {}
        Err(e) => tracing::warn!(kind, error = %e, "reconcile failed"),
    }
}

/// Back soon: at once for a replica that is stopping, a little later for the rest.
fn error_policy<K>(_object: Arc<K>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    match error {
        Error::Stopping { .. } => Action::requeue(Duration::from_millis(300)),
        Error::NotActing(_) => Action::requeue(Duration::from_secs(1)),
        _ => Action::requeue(Duration::from_secs(2)),
    }
}

impl Ctx {
    fn new(
        config: Config,
        client: kube::Client,
        nats: async_nats::Client,
        deployments: Store<WorkloadDeployment>,
        workloads: Store<Workload>,
    ) -> Arc<Self> {
        let reporter = Reporter {
            controller: replicas::FIELD_MANAGER.into(),
            instance: Some(config.lease.identity.clone()),
        };
        Arc::new(Self {
            commands: Commands::new(nats.clone()),
            elector: Elector::new(client.clone(), config.lease.clone()),
            observed: Mutex::new(Observed::new(config.host_timeout)),
            synced: AtomicBool::new(false),
            deployments,
            workloads,
            prepared: Mutex::new(HashMap::new()),
            recorder: Recorder::new(client.clone(), reporter),
            stop_attempts: Mutex::new(HashMap::new()),
            shown: Mutex::new(HashSet::new()),
            config,
            client,
            nats,
        })
    }

    fn collect_metrics(&self) {
        let desired: BTreeMap<String, Option<u32>> = self
            .deployments
            .state()
            .iter()
            .map(|wd| (replicas::deployment_key(wd), Some(wd.spec.replicas)))
            .collect();
        // `acting` locks `observed` itself: ask before taking it here.
        let leads = self.acting().is_ok();
        metrics::view(
            leads,
            &lock(&self.observed),
            &desired,
            &mut lock(&self.shown),
        );
    }

    /// The term to act with, or why this operator must not act now (the partition guard).
    fn acting(&self) -> Result<u64, &'static str> {
        let connected = self.nats.connection_state() == async_nats::connection::State::Connected;
        if let Some(why) = lock(&self.observed).cannot_see_hosts(connected) {
            return Err(why);
        }
        if !self.synced.load(Ordering::Acquire) {
            return Err("the caches are not filled yet");
        }
        self.elector
            .acting_term()
            .ok_or("not holding a freshly renewed Lease")
    }

    async fn keep_lease(self: Arc<Self>) {
        let mut last = None;
        loop {
            // Say when this operator starts or stops acting, and why.
            let now = self.acting();
            if now.err() != last {
                match now {
                    Err(reason) => tracing::info!(reason, "not acting"),
                    Ok(term) => tracing::info!(term, "acting"),
                }
                last = now.err();
            }
            match self.elector.step().await {
                Ok(Change::None) => {}
                Ok(Change::Took { term, previous }) => {
                    tracing::info!(
                        term,
                        previous = previous.as_deref().unwrap_or("-"),
                        "took the Lease; acting"
                    );
                }
                Ok(Change::Lost { holder }) => {
                    tracing::warn!(
                        holder = holder.as_deref().unwrap_or("-"),
                        "lost the Lease; standing by"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "the Lease could not be read or renewed"),
            }
            tokio::time::sleep(self.elector.period()).await;
        }
    }

    /// Marks the caches filled once they hold every object a fresh LIST returns. (Not
    /// `Store::wait_until_ready`: its one-shot channel wakes a single waiter, and the
    /// controllers' runners wait on it too.)
    async fn wait_for_caches(self: Arc<Self>) {
        let deployments: Api<WorkloadDeployment> =
            scoped(&self.client, self.config.namespace.as_deref());
        let workloads: Api<Workload> = scoped(&self.client, self.config.namespace.as_deref());
        let all = kube::api::ListParams::default();
        loop {
            let listed = futures::try_join!(
                deployments.list_metadata(&all),
                workloads.list_metadata(&all)
            );
            match listed {
                Ok((wds, wls)) => {
                    let cached = wds
                        .items
                        .iter()
                        .all(|m| self.deployments.get(&object_ref(&m.metadata)).is_some())
                        && wls
                            .items
                            .iter()
                            .all(|m| self.workloads.get(&object_ref(&m.metadata)).is_some());
                    if cached {
                        self.synced.store(true, Ordering::Release);
                        tracing::info!("caches filled");
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list WorkloadDeployments and Workloads")
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Live hosts, the replicas on them (with pending starts and stops laid over), the
    /// backoffs in force and the scheduler's clock.
    fn snapshot(&self) -> (Vec<HostView>, Vec<Replica>, Vec<Backoff>, u64) {
        let mut observed = lock(&self.observed);
        let (hosts, current) = observed.snapshot();
        (hosts, current, observed.backoffs(), observed.now_ms())
    }

    /// A deployment validated and turned into scheduler input, from the cache when its
    /// generation was seen before.
    fn prepare(&self, wd: &WorkloadDeployment) -> Arc<Prepare> {
        let key = (
            wd.uid().unwrap_or_default(),
            wd.metadata.generation.unwrap_or(0),
        );
        if let Some(hit) = lock(&self.prepared).get(&key) {
            return Arc::clone(hit);
        }
        let prepared = Arc::new(replicas::prepare(wd).map(|p| {
            let d = replicas::desired(wd, &p);
            (p, d)
        }));
        let mut cache = lock(&self.prepared);
        // Old generations and deleted deployments drop out now and then.
        if cache.len() > 4 * self.deployments.state().len() + 64 {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&prepared));
        prepared
    }

    /// Every deployment and standalone workload the scheduler should place, valid ones only.
    fn desired(&self) -> Vec<Desired> {
        let mut all: Vec<Desired> = self
            .deployments
            .state()
            .iter()
            .filter(|wd| wd.metadata.deletion_timestamp.is_none())
            .filter_map(|wd| {
                self.prepare(wd)
                    .as_ref()
                    .as_ref()
                    .ok()
                    .map(|(_, d)| d.clone())
            })
            .collect();
        all.extend(
            self.workloads
                .state()
                .iter()
                .filter(|wl| {
                    workloads::is_standalone(wl) && wl.metadata.deletion_timestamp.is_none()
                })
                .filter_map(|wl| workloads::prepare(wl).ok().map(|(_, d)| d)),
        );
        all
    }

    /// Sends a command to `host` and waits for its answer.
    async fn command(
        &self,
        host: &str,
        verb: subject::Verb,
        payload: bytes::Bytes,
    ) -> Result<Reply, String> {
        self.commands.send(host, verb, payload).await
    }

    /// Publishes an Event about `object`; a failure to publish is logged, never fatal.
    async fn event(&self, object: &ObjectReference, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, object).await {
            tracing::warn!(reason, error = %e, "an Event could not be published");
        }
    }
}

/// A client for the API server: the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or, in a
/// pod, its service account.
pub async fn kube_client() -> Result<kube::Client, String> {
    kube::Client::try_default().await.map_err(|e| {
        format!("cannot reach the Kubernetes API (kubeconfig or in-cluster service account): {e}")
    })
}

/// An RFC 3339 time, to the second, for conditions.
fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl Ctx {
    /// Starts `replica` on its host (counting it as pending until the host reports it); a
    /// host that does not take it is backed off and an Event says why.
    fn start_replica(
        self: &Arc<Self>,
        term: u64,
        replica: Replica,
        workload: serde_json::Value,
        regarding: ObjectReference,
    ) {
        lock(&self.observed).started(replica.clone());
        metrics::started(None);
        let command = StartCommand {
            protocol: PROTOCOL,
            term,
            replica: replica.id.clone(),
            deployment: replica.deployment.clone(),
            revision: replica.revision.clone(),
            workload,
        };
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let reply = me
                .command(
                    &replica.host,
                    subject::Verb::Start,
                    protocol::encode(&command),
                )
                .await;
            let refused = match reply {
                Ok(Reply::Ok { .. }) => return,
                Ok(Reply::NotFound) => "the host does not know the replica".to_string(),
                Ok(Reply::Refused { reason } | Reply::Invalid { reason }) | Err(reason) => reason,
            };
            tracing::warn!(replica = %replica.id, host = %replica.host, reason = %refused, "start not accepted; backing off that host");
            lock(&me.observed).start_failed(&replica.id, &replica.deployment, &replica.host);
            me.event(
                &regarding,
                EventType::Warning,
                "StartRefused",
                format!(
                    "host `{}` did not start replica {}: {refused}; another host will be tried",
                    replica.host, replica.id
                ),
            )
            .await;
        });
    }

    /// Asks `host` to stop `replica`; `Ok` once the host has it stopping or does not
    /// know it.
    async fn stop_replica(&self, term: u64, replica: &str, host: &str) -> Result<(), String> {
        lock(&self.observed).stopping(replica);
        let command = ReplicaCommand {
            protocol: PROTOCOL,
            term,
            replica: replica.to_string(),
        };
        match self
            .command(host, subject::Verb::Stop, protocol::encode(&command))
            .await
        {
            Ok(Reply::Ok { .. } | Reply::NotFound) => Ok(()),
            Ok(Reply::Refused { reason } | Reply::Invalid { reason }) | Err(reason) => {
                lock(&self.observed).stop_failed(replica);
                Err(reason)
            }
        }
    }
}
