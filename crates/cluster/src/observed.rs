//! What a controller knows of the hosts: their latest heartbeats, with its own overlays
//! (replicas it started that no heartbeat shows yet, stops it sent, failures it backs off
//! from). The NATS controller and the Kubernetes operator both plan from this view.

use crate::protocol::{Heartbeat, ReplicaState};
use crate::scheduler::{Backoff, HostView, Replica};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long a started replica may stay unreported before it is given up.
const PENDING_FOR: Duration = Duration::from_secs(30);
/// How long a stop may stay unconfirmed before it is sent again.
const STOPPING_FOR: Duration = Duration::from_secs(30);

/// A host's latest heartbeat and when it arrived.
#[derive(Debug, Clone)]
pub struct SeenHost {
    pub at: Instant,
    pub heartbeat: Heartbeat,
}

/// The last failure of a deployment's replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub replica: String,
    pub host: String,
    pub message: String,
}

/// Heartbeats and a controller's overlays on them.
#[derive(Debug)]
pub struct Observed {
    host_timeout: Duration,
    started: Instant,
    /// Since when the NATS connection has held, as last told.
    connected_since: Option<Instant>,
    hosts: HashMap<String, SeenHost>,
    /// Started, not yet reported by the host.
    pending: HashMap<String, (Replica, Instant)>,
    /// Stop sent, not yet gone.
    stopping: HashMap<String, Instant>,
    /// Failures per (deployment, host): count and the end of the backoff.
    failures: HashMap<(String, String), (u32, Instant)>,
    /// Failed replicas already counted.
    failed_seen: HashSet<String>,
    /// What hosts say about replicas that failed, by replica id.
    messages: HashMap<String, String>,
    /// The last failure of each deployment.
    last_failure: HashMap<String, Failure>,
}

impl Observed {
    /// A host silent for `host_timeout` is lost.
    pub fn new(host_timeout: Duration) -> Self {
        Self {
            host_timeout,
            started: Instant::now(),
            connected_since: None,
            hosts: HashMap::new(),
            pending: HashMap::new(),
            stopping: HashMap::new(),
            failures: HashMap::new(),
            failed_seen: HashSet::new(),
            messages: HashMap::new(),
            last_failure: HashMap::new(),
        }
    }

    /// Records a heartbeat.
    pub fn heard(&mut self, heartbeat: Heartbeat) {
        self.hosts.insert(
            heartbeat.host_id.clone(),
            SeenHost {
                at: Instant::now(),
                heartbeat,
            },
        );
    }

    /// Every host ever heard, live or not.
    pub fn hosts(&self) -> impl Iterator<Item = &SeenHost> {
        self.hosts.values()
    }

    /// Whether `host` was heard within the timeout.
    pub fn is_live(&self, host: &str) -> bool {
        self.hosts
            .get(host)
            .is_some_and(|h| h.at.elapsed() <= self.host_timeout)
    }

    /// Some host was heard of, and none within the timeout: far likelier this controller's
    /// own link is down (a hung connection looks connected for a while) than every host
    /// dying together.
    fn all_silent(&self) -> bool {
        !self.hosts.is_empty()
            && self
                .hosts
                .values()
                .all(|h| h.at.elapsed() > self.host_timeout)
    }

    /// The NATS half of a controller's partition guard: why the hosts cannot be seen from
    /// here, if they cannot. Not connected; connected for less than a host's timeout (the
    /// heartbeats in hand may be stale); or every host silent at once. `connected` is the
    /// connection's state now: call this every time the guard is checked, so it knows how
    /// long the connection has held.
    pub fn cannot_see_hosts(&mut self, connected: bool) -> Option<&'static str> {
        match (connected, self.connected_since) {
            (false, _) => self.connected_since = None,
            (true, None) => self.connected_since = Some(Instant::now()),
            (true, Some(_)) => {}
        }
        if !connected {
            return Some("not connected to NATS");
        }
        if self
            .connected_since
            .is_none_or(|s| s.elapsed() < self.host_timeout)
        {
            return Some("connected to NATS recently; waiting for fresh heartbeats");
        }
        if self.all_silent() {
            return Some("no host has been heard for a while; assuming this controller is cut off");
        }
        None
    }

    /// Milliseconds since this view was made: the scheduler's clock.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Live hosts and the replicas on them: heartbeats, with pending starts and stops laid
    /// over. Counts new failures (starting their backoff) and forgets overlays the
    /// heartbeats have caught up with. Both lists are sorted by id.
    pub fn snapshot(&mut self) -> (Vec<HostView>, Vec<Replica>) {
        let mut views = Vec::new();
        let mut current = Vec::new();
        let mut reported = HashSet::new();
        let mut failed = Vec::new();
        for seen in self.hosts.values() {
            if seen.at.elapsed() > self.host_timeout {
                continue;
            }
            let hb = &seen.heartbeat;
            let free = hb.capacity.memory_free_bytes;
            views.push(HostView {
                id: hb.host_id.clone(),
                labels: hb.labels.clone(),
                offers: hb.offers.clone(),
                max_replicas: hb.capacity.max_replicas,
                // Below 5 % free (and a known total), a host takes no new replicas.
                memory_short: hb.capacity.memory_total_bytes > 0
                    && free < hb.capacity.memory_total_bytes / 20,
            });
            for r in &hb.replicas {
                reported.insert(r.id.clone());
                if let Some(message) = &r.message {
                    self.messages.insert(r.id.clone(), message.clone());
                }
                if r.state == ReplicaState::Failed && !self.failed_seen.contains(&r.id) {
                    failed.push((r.clone(), hb.host_id.clone()));
                }
                if r.state == ReplicaState::Ready {
                    self.failures
                        .remove(&(r.deployment.clone(), hb.host_id.clone()));
                }
                let state = if self.stopping.contains_key(&r.id) {
                    ReplicaState::Stopping
                } else {
                    r.state
                };
                current.push(Replica {
                    id: r.id.clone(),
                    deployment: r.deployment.clone(),
                    revision: r.revision.clone(),
                    host: hb.host_id.clone(),
                    state,
                });
            }
        }
        for (r, host) in failed {
            self.failed_seen.insert(r.id.clone());
            let message = r.message.clone().unwrap_or_default();
            let count = self.back_off(&r.deployment, &host);
            tracing::warn!(replica = %r.id, %host, %message, failures = count, "replica failed; backing off that host");
            self.last_failure.insert(
                r.deployment.clone(),
                Failure {
                    replica: r.id,
                    host,
                    message,
                },
            );
        }
        let live: HashSet<&str> = views.iter().map(|h| h.id.as_str()).collect();
        self.pending
            .retain(|id, (_, since)| !reported.contains(id) && since.elapsed() < PENDING_FOR);
        for (replica, _) in self.pending.values() {
            if live.contains(replica.host.as_str()) {
                current.push(replica.clone());
            }
        }
        self.stopping
            .retain(|id, since| reported.contains(id) && since.elapsed() < STOPPING_FOR);
        self.failed_seen.retain(|id| reported.contains(id));
        self.messages.retain(|id, _| reported.contains(id));
        views.sort_by(|a, b| a.id.cmp(&b.id));
        current.sort_by(|a, b| a.id.cmp(&b.id));
        (views, current)
    }

    /// One more failure of `deployment` on `host`: that host is avoided for it for 2, 4, …
    /// up to 60 seconds. Returns the count.
    pub fn back_off(&mut self, deployment: &str, host: &str) -> u32 {
        let key = (deployment.to_string(), host.to_string());
        let count = self.failures.get(&key).map_or(0, |(n, _)| *n) + 1;
        let wait = Duration::from_secs(1 << count.min(6)).min(Duration::from_secs(60));
        self.failures.insert(key, (count, Instant::now() + wait));
        count
    }

    /// The backoffs in force, for the scheduler.
    pub fn backoffs(&self) -> Vec<Backoff> {
        let now = Instant::now();
        let now_ms = self.now_ms();
        self.failures
            .iter()
            .filter(|(_, (_, until))| *until > now)
            .map(|((deployment, host), (_, until))| Backoff {
                deployment: deployment.clone(),
                host: host.clone(),
                until_ms: now_ms + u64::try_from((*until - now).as_millis()).unwrap_or(u64::MAX),
            })
            .collect()
    }

    /// A start was sent: the replica counts as pending until its host reports it.
    pub fn started(&mut self, replica: Replica) {
        self.pending
            .insert(replica.id.clone(), (replica, Instant::now()));
    }

    /// A start was not accepted: forget it and back off that host.
    pub fn start_failed(&mut self, replica: &str, deployment: &str, host: &str) {
        self.pending.remove(replica);
        self.back_off(deployment, host);
    }

    /// Whether a start of `replica` is awaiting its host's report; its host if so.
    pub fn pending_host(&self, replica: &str) -> Option<&str> {
        self.pending.get(replica).map(|(r, _)| r.host.as_str())
    }

    /// Forgets a pending start (its object is gone).
    pub fn forget(&mut self, replica: &str) {
        self.pending.remove(replica);
    }

    /// A stop was sent: the replica counts as stopping until it is gone.
    pub fn stopping(&mut self, replica: &str) {
        self.stopping.insert(replica.to_string(), Instant::now());
    }

    /// A stop was not delivered: it may be sent again.
    pub fn stop_failed(&mut self, replica: &str) {
        self.stopping.remove(replica);
    }

    /// What its host said about a replica that failed.
    pub fn message(&self, replica: &str) -> Option<&String> {
        self.messages.get(replica)
    }

    /// Every failure message by replica id.
    pub fn messages(&self) -> &HashMap<String, String> {
        &self.messages
    }

    /// The last failure of `deployment`'s replicas, until [`Observed::settled`].
    pub fn last_failure(&self, deployment: &str) -> Option<&Failure> {
        self.last_failure.get(deployment)
    }

    /// `deployment` is fully rolled out: its past failures are history.
    pub fn settled(&mut self, deployment: &str) {
        self.last_failure.remove(deployment);
    }
}
