//! The controller: watches desired state (the store) and actual state (heartbeats) and
//! makes them meet, through the pure scheduler.
//!
//! Several controllers may run; one acts at a time, holding a lease in the store. The KV
//! revision of the write that took the lease is its *term*, sent with every command; hosts
//! refuse terms older than one they have obeyed, so a paused ex-leader cannot act.
//!
//! **Partition guard.** A controller acts only while all of these hold: it is connected to
//! NATS, it has been for longer than a host's heartbeat timeout (so its view of the hosts
//! is fresh), at least one host has been heard within that timeout (every host silent at
//! once means its own link is down, even if the connection still looks up), it renewed its
//! lease recently, and it has read the desired state. It never stops or replaces replicas
//! because *it* cannot see the hosts.

use crate::commands::Commands;
use crate::deployment;
use crate::metrics::{self, Reschedules};
use crate::observed::Observed;
use crate::protocol::{
    self, Heartbeat, PROTOCOL, ReplicaCommand, ReplicaState, Reply, StartCommand, subject,
};
use crate::scheduler::{self, Action, Desired, Inputs, Replica, StopReason};
use crate::store::{DeploymentRecord, DeploymentStatus, Store};
use async_nats::Client;
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod status;
use status::{Seen, status_of};

/// Timings of the control loop.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This controller's name in the lease.
    pub id: String,
    /// A host whose heartbeats stop for this long is lost.
    pub host_timeout: Duration,
    /// A lease not renewed for this long may be taken over.
    pub lease: Duration,
    /// How often the controller plans.
    pub tick: Duration,
}

impl ControllerConfig {
    pub fn new(id: String) -> Self {
        Self {
            id,
            host_timeout: Duration::from_secs(3),
            lease: Duration::from_secs(3),
            tick: Duration::from_millis(200),
        }
    }
}

/// A deployment as read from the store.
struct DesiredEntry {
    record: DeploymentRecord,
    /// The scheduler's view, or why the stored document is invalid.
    desired: Result<Desired, String>,
}

#[derive(Default)]
struct Leadership {
    /// The term while leading.
    term: Option<u64>,
    /// The lease's last revision written by us (leading) or seen (standing by).
    revision: u64,
    /// Leading: when we last renewed. Standing by: when the revision last changed.
    at: Option<Instant>,
}

/// The controller's state, shared by its tasks.
pub struct Controller {
    config: ControllerConfig,
    client: Client,
    store: Store,
    /// Heartbeats, with this controller's pending starts and stops laid over.
    observed: Mutex<Observed>,
    /// Statuses as last written.
    written: Mutex<HashMap<String, DeploymentStatus>>,
    desired: Mutex<BTreeMap<String, DesiredEntry>>,
    desired_loaded: std::sync::atomic::AtomicBool,
    lead: Mutex<Leadership>,
    commands: Commands,
    /// Which starts replace a lost or failed replica, for the metrics.
    reschedules: Mutex<Reschedules>,
    /// Deployments the metrics have shown.
    shown: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Controller {
    pub fn new(config: ControllerConfig, client: Client, store: Store) -> Arc<Self> {
        Arc::new(Self {
            commands: Commands::new(client.clone()),
            observed: Mutex::new(Observed::new(config.host_timeout)),
            written: Mutex::new(HashMap::new()),
            config,
            client,
            store,
            desired: Mutex::new(BTreeMap::new()),
            desired_loaded: std::sync::atomic::AtomicBool::new(false),
            lead: Mutex::new(Leadership::default()),
            reschedules: Mutex::new(Reschedules::default()),
            shown: Mutex::new(HashSet::new()),
        })
    }

    /// Runs until `stop` resolves, then gives up the lease if held.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let heartbeats = tokio::spawn(Arc::clone(&self).watch_heartbeats());
        let desired = tokio::spawn(Arc::clone(&self).watch_desired());
        let lease = tokio::spawn(Arc::clone(&self).keep_lease());
        let reconcile = tokio::spawn(Arc::clone(&self).reconcile_loop());
        stop.await;
        for task in [heartbeats, desired, lease, reconcile] {
            task.abort();
        }
        let held = {
            let lead = lock(&self.lead);
            lead.term.map(|_| lead.revision)
        };
        if let Some(revision) = held {
            match self.store.release_lease(revision).await {
                Ok(()) => tracing::info!("gave up the leader lease"),
                Err(e) => tracing::warn!(error = %e, "could not give up the leader lease"),
            }
        }
    }

    /// The term this controller leads with, if it leads.
    pub fn term(&self) -> Option<u64> {
        lock(&self.lead).term
    }

    /// Sets the cluster's gauges (see [`crate::metrics`]) from this controller's view now:
    /// call it just before rendering a scrape. A standby reports the same hosts and replicas
    /// as the leader (it hears the same heartbeats and reads the same store).
    pub fn collect_metrics(&self) {
        let desired: BTreeMap<String, Option<u32>> = lock(&self.desired)
            .iter()
            .map(|(name, e)| (name.clone(), e.desired.as_ref().ok().map(|d| d.replicas)))
            .collect();
        let leads = self.term().is_some();
        metrics::view(
            leads,
            &lock(&self.observed),
            &desired,
            &mut lock(&self.shown),
        );
    }

    async fn watch_heartbeats(self: Arc<Self>) {
        loop {
            match self.client.subscribe(subject::heartbeats()).await {
                Ok(mut sub) => {
                    while let Some(message) = sub.next().await {
                        match protocol::decode::<Heartbeat>(&message.payload) {
                            Ok(hb) => lock(&self.observed).heard(hb),
                            Err(e) => {
                                tracing::warn!(subject = %message.subject, error = %e, "ignored a heartbeat")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to heartbeats"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Keeps the desired map equal to the deployments bucket: a full read, then the
    /// bucket's changes; again from the start whenever the watch breaks.
    async fn watch_desired(self: Arc<Self>) {
        loop {
            match self.store.list().await {
                Ok(records) => {
                    let mut desired = lock(&self.desired);
                    desired.clear();
                    for record in records {
                        desired.insert(record.name.clone(), entry_of(record));
                    }
                    drop(desired);
                    self.desired_loaded
                        .store(true, std::sync::atomic::Ordering::Release);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the desired state");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            let mut watch = match self.store.watch_deployments().await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the desired state");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Re-read everything now and then too: a watch can miss changes across a
            // reconnect, a full read cannot.
            let resync = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(resync);
            loop {
                tokio::select! {
                    () = &mut resync => break,
                    next = watch.next() => match next {
                        Some(Ok(entry)) => {
                            let mut desired = lock(&self.desired);
                            if entry.operation == async_nats::jetstream::kv::Operation::Put {
                                match crate::store::decode_record(&entry.key, &entry.value) {
                                    Ok(record) => {
                                        desired.insert(entry.key.clone(), entry_of(record));
                                    }
                                    Err(e) => tracing::warn!(error = %e, "ignored a record"),
                                }
                            } else {
                                desired.remove(&entry.key);
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "the desired-state watch broke");
                            break;
                        }
                        None => break,
                    }
                }
            }
        }
    }

    /// Takes, renews or watches the leader lease.
    async fn keep_lease(self: Arc<Self>) {
        let period = self.config.lease / 6;
        loop {
            tokio::time::sleep(period).await;
            if let Err(e) = self.lease_step().await {
                tracing::warn!(error = %e, "the leader lease could not be checked");
            }
        }
    }

    async fn lease_step(&self) -> Result<(), crate::store::StoreError> {
        let (term, revision) = {
            let lead = lock(&self.lead);
            (lead.term, lead.revision)
        };
        if let Some(term) = term {
            match self
                .store
                .renew_lease(&self.config.id, term, revision)
                .await?
            {
                Some(rev) => {
                    let mut lead = lock(&self.lead);
                    lead.revision = rev;
                    lead.at = Some(Instant::now());
                }
                None => {
                    tracing::warn!(
                        term,
                        "lost the leader lease to another controller; standing by"
                    );
                    *lock(&self.lead) = Leadership::default();
                }
            }
            return Ok(());
        }
        let current = self.store.lease().await?;
        let takeover = match &current {
            None => Some(None),
            Some((_, rev)) => {
                let mut lead = lock(&self.lead);
                if lead.revision != *rev || lead.at.is_none() {
                    lead.revision = *rev;
                    lead.at = Some(Instant::now());
                    None
                } else if lead.at.is_some_and(|at| at.elapsed() > self.config.lease) {
                    Some(Some(*rev))
                } else {
                    None
                }
            }
        };
        let Some(previous) = takeover else {
            return Ok(());
        };
        if let Some((term, revision)) = self.store.take_lease(&self.config.id, previous).await? {
            let mut lead = lock(&self.lead);
            lead.term = Some(term);
            lead.revision = revision;
            lead.at = Some(Instant::now());
            drop(lead);
            match current {
                Some((old, _)) => {
                    tracing::info!(term, previous = %old.holder, "took over the leader lease; acting")
                }
                None => tracing::info!(term, "took the leader lease; acting"),
            }
        }
        Ok(())
    }

    /// Why this controller must not act now, if it must not.
    fn must_not_act(&self) -> Option<&'static str> {
        let connected = self.client.connection_state() == async_nats::connection::State::Connected;
        if let Some(why) = lock(&self.observed).cannot_see_hosts(connected) {
            return Some(why);
        }
        let lead = lock(&self.lead);
        if lead.term.is_none() {
            return Some("standing by");
        }
        // Stop acting well before a standby could take the lease over.
        if lead
            .at
            .is_none_or(|at| at.elapsed() > self.config.lease * 2 / 3)
        {
            return Some("the leader lease was not renewed recently");
        }
        drop(lead);
        if !self
            .desired_loaded
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Some("the desired state is not read yet");
        }
        None
    }

    async fn reconcile_loop(self: Arc<Self>) {
        let mut last_reason = None;
        loop {
            tokio::time::sleep(self.config.tick).await;
            let reason = self.must_not_act();
            if reason != last_reason {
                match reason {
                    Some(r) => tracing::info!(reason = r, "not acting"),
                    None => tracing::info!(term = ?self.term(), "acting"),
                }
                last_reason = reason;
            }
            if reason.is_none() {
                self.reconcile().await;
            } else {
                lock(&self.reschedules).forget();
            }
        }
    }

    /// One pass: plan, act, write statuses.
    async fn reconcile(self: &Arc<Self>) {
        let Some(term) = self.term() else { return };
        let (hosts, current, backoffs, now_ms) = {
            let mut observed = lock(&self.observed);
            let (hosts, current) = observed.snapshot();
            (hosts, current, observed.backoffs(), observed.now_ms())
        };
        let (desired, records): (Vec<Desired>, HashMap<String, DeploymentRecord>) = {
            let map = lock(&self.desired);
            (
                map.values()
                    .filter_map(|e| e.desired.as_ref().ok().cloned())
                    .collect(),
                map.iter()
                    .map(|(k, e)| (k.clone(), e.record.clone()))
                    .collect(),
            )
        };
        let plan = scheduler::plan(Inputs {
            desired: &desired,
            hosts: &hosts,
            current: &current,
            backoffs: &backoffs,
            now_ms,
        });
        let replacing = {
            let desired = lock(&self.desired);
            lock(&self.reschedules)
                .pass(&hosts, &current, &plan.actions, |d| desired.contains_key(d))
        };
        for (action, replacing) in plan.actions.into_iter().zip(replacing) {
            match action {
                Action::Start {
                    deployment,
                    revision,
                    host,
                } => {
                    let Some(record) = records.get(&deployment) else {
                        continue;
                    };
                    metrics::started(replacing);
                    self.start(term, record, &revision, &host);
                }
                Action::Stop {
                    replica,
                    deployment,
                    host,
                    why,
                } => {
                    metrics::stopped(why);
                    self.stop(term, &replica, &deployment, &host, why);
                }
            }
        }
        self.write_statuses(&current, &plan.unschedulable).await;
    }

    fn start(self: &Arc<Self>, term: u64, record: &DeploymentRecord, revision: &str, host: &str) {
        let id = deployment::replica_id(&record.name);
        let workload = deployment::replica_document(&record.document, &record.name, revision, &id);
        let replica = Replica {
            id: id.clone(),
            deployment: record.name.clone(),
            revision: revision.to_string(),
            host: host.to_string(),
            state: ReplicaState::Pending,
        };
        lock(&self.observed).started(replica);
        tracing::info!(replica = %id, deployment = %record.name, %host, %revision, "placing replica");
        let command = StartCommand {
            protocol: PROTOCOL,
            term,
            replica: id.clone(),
            deployment: record.name.clone(),
            revision: revision.to_string(),
            workload,
        };
        let me = Arc::clone(self);
        let host = host.to_string();
        let deployment = record.name.clone();
        tokio::spawn(async move {
            let reply = me
                .command(&host, subject::Verb::Start, protocol::encode(&command))
                .await;
            if let Err(why) = reply.and_then(ok_or_reason) {
                tracing::warn!(replica = %id, %host, reason = %why, "start not accepted; backing off that host");
                lock(&me.observed).start_failed(&id, &deployment, &host);
            }
        });
    }

    fn stop(
        self: &Arc<Self>,
        term: u64,
        replica: &str,
        deployment: &str,
        host: &str,
        why: StopReason,
    ) {
        lock(&self.observed).stopping(replica);
        tracing::info!(%replica, %deployment, %host, why = ?why, "stopping replica");
        let command = ReplicaCommand {
            protocol: PROTOCOL,
            term,
            replica: replica.to_string(),
        };
        let me = Arc::clone(self);
        let host = host.to_string();
        let replica = replica.to_string();
        tokio::spawn(async move {
            match me
                .command(&host, subject::Verb::Stop, protocol::encode(&command))
                .await
            {
                Ok(Reply::Ok { .. } | Reply::NotFound) => {}
                Ok(other) => {
                    tracing::warn!(%replica, %host, reply = ?other, "stop not accepted");
                    lock(&me.observed).stop_failed(&replica);
                }
                Err(e) => {
                    tracing::warn!(%replica, %host, error = %e, "stop not delivered");
                    lock(&me.observed).stop_failed(&replica);
                }
            }
        });
    }

    async fn command(
        &self,
        host: &str,
        verb: subject::Verb,
        payload: bytes::Bytes,
    ) -> Result<Reply, String> {
        self.commands.send(host, verb, payload).await
    }

    async fn write_statuses(&self, current: &[Replica], unschedulable: &BTreeMap<String, String>) {
        let statuses: Vec<(String, Option<DeploymentStatus>)> = {
            let desired = lock(&self.desired);
            let mut observed = lock(&self.observed);
            let written = lock(&self.written);
            let mut out: Vec<(String, Option<DeploymentStatus>)> = desired
                .iter()
                .map(|(name, entry)| {
                    let mine: Vec<&Replica> =
                        current.iter().filter(|r| r.deployment == *name).collect();
                    let seen = Seen {
                        messages: observed.messages(),
                        last_failure: observed.last_failure(name),
                    };
                    let status = status_of(entry, &mine, unschedulable.get(name), &seen);
                    (name.clone(), Some(status))
                })
                .filter(|(name, status)| written.get(name) != status.as_ref())
                .collect();
            // A failure is history once every wanted replica is up to date and ready.
            for (name, status) in &out {
                let settled = status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.kind == "Progressing" && c.reason == "NewReplicasAvailable")
                });
                if settled {
                    observed.settled(name);
                }
            }
            // Deleted deployments lose their status once their replicas are gone.
            for name in written.keys() {
                if !desired.contains_key(name) && !current.iter().any(|r| r.deployment == *name) {
                    out.push((name.clone(), None));
                }
            }
            out
        };
        for (name, status) in statuses {
            let result = match &status {
                Some(s) => self.store.put_status(&name, s).await,
                None => self.store.delete_status(&name).await,
            };
            match result {
                Ok(()) => {
                    let mut written = lock(&self.written);
                    match status {
                        Some(s) => written.insert(name, s),
                        None => written.remove(&name),
                    };
                }
                Err(e) => tracing::warn!(deployment = %name, error = %e, "status not written"),
            }
        }
    }
}

fn entry_of(record: DeploymentRecord) -> DesiredEntry {
    let label = Path::new(&record.name);
    let desired = deployment::parse(label, &record.document)
        .map(|w| deployment::desired(&w, &record.revision));
    if let Err(e) = &desired {
        tracing::warn!(deployment = %record.name, error = %e, "the stored document is invalid; leaving its replicas alone");
    }
    DesiredEntry { record, desired }
}

fn ok_or_reason(reply: Reply) -> Result<(), String> {
    match reply {
        Reply::Ok { .. } => Ok(()),
        Reply::NotFound => Err("not found".into()),
        Reply::Refused { reason } | Reply::Invalid { reason } => Err(reason),
    }
}
