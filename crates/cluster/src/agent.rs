//! The host agent: what makes a `hearth host` a member of a cluster.
//!
//! It runs on a runtime of its own (its own thread), so nothing the host does (a slow pull,
//! a compile, a burst of requests) delays a heartbeat. It:
//! - publishes a heartbeat every second, and at once when a replica changes state;
//! - answers `start`, `stop` and `status` for its own host id, concurrently with a bound,
//!   keyed by replica id: a repeated `start` with the same spec is a no-op, a new spec is an
//!   update (the host's zero-downtime path);
//! - refuses commands from a controller term older than one it has obeyed (fencing);
//! - watches its peers' heartbeats, so the ingress can forward requests for workloads it
//!   does not run ([`Peers`]), and keeps the cluster's picture for the dashboard
//!   ([`ClusterView`]).
//!
//! While NATS is away the host keeps serving what it runs; the client reconnects forever
//! and heartbeats resume, which is how the controller reconciles.

use crate::protocol::{
    self, Capacity, Heartbeat, LogEntry, LogsReply, LogsRequest, MAX_LOG_LINES, PROTOCOL,
    ReplicaCommand, ReplicaReport, ReplicaState, Reply, RouteReport, StartCommand, subject,
};
use crate::view::ClusterView;
use async_nats::Client;
use futures::StreamExt;
use hearth_manifest::{RouteKey, bare_host, prefix_matches};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// Heartbeat period.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Commands handled at once.
const MAX_COMMANDS: usize = 64;
/// Replicas fetched, compiled and started at once.
const MAX_STARTS: usize = 4;
/// Bytes of lines in one `logs` answer (well under NATS's default 1 MiB message limit; a
/// kept line is at most 16 KiB).
const MAX_LOG_BYTES: usize = 512 << 10;
/// How long a stopping replica keeps serving after its heartbeat says it is stopping, so
/// peers stop forwarding to it before its routes go.
const UNROUTE_GRACE: Duration = Duration::from_millis(300);

/// What the agent needs from the host it runs in.
#[async_trait::async_trait]
pub trait HostRuntime: Send + Sync + 'static {
    /// Runs (or updates to) `document`, a `kind: Workload` document named `replica`;
    /// returns once it serves, with its routes, or the error (field path included).
    async fn start(&self, replica: String, document: Value) -> Result<Vec<RouteReport>, String>;
    /// Stops `replica`: routing ends, requests in flight drain, its service stops.
    async fn stop(&self, replica: String);
    /// Cores, memory and the instance pool (the agent fills in `max_replicas`).
    fn capacity(&self) -> Capacity;
    /// Host interfaces and backends it can bind (`wasi:keyvalue=redis`).
    fn offers(&self) -> BTreeSet<String>;
    /// `replica`'s kept guest lines numbered after `after` and written at or after
    /// `since_ms`, oldest first.
    fn logs(&self, replica: &str, after: u64, since_ms: u64) -> Vec<LogEntry>;
}

/// Who this host is in the cluster.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub host_id: String,
    pub labels: BTreeMap<String, String>,
    /// Where peers reach its HTTP ingress (for forwarding).
    pub http: Option<String>,
    pub max_replicas: u32,
    pub version: String,
}

/// One replica this host holds.
struct Entry {
    report: ReplicaReport,
    /// Hash of the document it was last started with.
    spec: String,
    /// Bumped by every command that changes it; a finishing start or stop whose epoch is
    /// stale leaves the entry alone.
    epoch: u64,
}

/// The agent's state, shared by its tasks.
pub struct Agent {
    config: AgentConfig,
    /// Identifies this run of the host process.
    instance: String,
    runtime: Arc<dyn HostRuntime>,
    replicas: Mutex<BTreeMap<String, Entry>>,
    /// The highest controller term obeyed.
    term: AtomicU64,
    seq: AtomicU64,
    changed: Notify,
    starts: Semaphore,
    peers: Arc<Peers>,
    view: Arc<ClusterView>,
}

impl Agent {
    /// Joins the cluster through `client` and serves until the process ends. Run it on a
    /// runtime no other work uses.
    pub async fn run(
        config: AgentConfig,
        client: Client,
        runtime: Arc<dyn HostRuntime>,
        peers: Arc<Peers>,
        view: Arc<ClusterView>,
    ) -> Result<(), String> {
        let agent = Arc::new(Agent {
            instance: crate::deployment::replica_id("run"),
            config,
            runtime,
            replicas: Mutex::new(BTreeMap::new()),
            term: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            changed: Notify::new(),
            starts: Semaphore::new(MAX_STARTS),
            peers,
            view,
        });
        let commands = client
            .subscribe(subject::commands(&agent.config.host_id))
            .await
            .map_err(|e| format!("cannot subscribe to commands: {e}"))?;
        let heartbeats = client
            .subscribe(subject::heartbeats())
            .await
            .map_err(|e| format!("cannot subscribe to heartbeats: {e}"))?;
        if client.connection_state() == async_nats::connection::State::Connected {
            tracing::info!(host = %agent.config.host_id, "joined the cluster");
        } else {
            tracing::warn!(host = %agent.config.host_id, "cluster agent started; it joins when NATS is reachable");
        }
        tokio::spawn(Arc::clone(&agent).watch_peers(heartbeats));
        tokio::spawn({
            let (view, client) = (Arc::clone(&agent.view), client.clone());
            async move { view.watch_statuses(client).await }
        });
        tokio::spawn(Arc::clone(&agent).beat(client.clone()));
        agent.serve_commands(client, commands).await;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.replicas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Heartbeats: every second, and soon after a replica changes state.
    async fn beat(self: Arc<Self>, client: Client) {
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = self.changed.notified() => {
                    // Coalesce a burst of changes into one heartbeat.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            next = tokio::time::Instant::now() + HEARTBEAT_EVERY;
            // While disconnected, a heartbeat would only queue up and arrive stale.
            if client.connection_state() != async_nats::connection::State::Connected {
                continue;
            }
            let heartbeat = self.heartbeat();
            let subject = subject::heartbeat(&self.config.host_id);
            if let Err(e) = client.publish(subject, protocol::encode(&heartbeat)).await {
                tracing::debug!(error = %e, "heartbeat not sent");
            }
        }
    }

    /// The heartbeat as of now.
    pub fn heartbeat(&self) -> Heartbeat {
        let replicas: Vec<ReplicaReport> = self.lock().values().map(|e| e.report.clone()).collect();
        let mut capacity = self.runtime.capacity();
        capacity.max_replicas = self.config.max_replicas;
        Heartbeat {
            protocol: PROTOCOL,
            host_id: self.config.host_id.clone(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            instance: self.instance.clone(),
            version: self.config.version.clone(),
            labels: self.config.labels.clone(),
            capacity,
            offers: self.runtime.offers(),
            http: self.config.http.clone(),
            term: self.term.load(Ordering::Relaxed),
            replicas,
        }
    }

    async fn serve_commands(
        self: &Arc<Self>,
        client: Client,
        mut commands: async_nats::Subscriber,
    ) {
        let bound = Arc::new(Semaphore::new(MAX_COMMANDS));
        while let Some(message) = commands.next().await {
            let Ok(permit) = Arc::clone(&bound).acquire_owned().await else {
                break;
            };
            let agent = Arc::clone(self);
            let client = client.clone();
            tokio::spawn(async move {
                let reply = match subject::Verb::of_subject(&message.subject) {
                    Some(subject::Verb::Logs) => protocol::encode(&agent.logs(&message.payload)),
                    _ => protocol::encode(&agent.handle(&message.subject, &message.payload)),
                };
                if let Some(to) = message.reply {
                    let _ = client.publish(to, reply).await;
                }
                drop(permit);
            });
        }
    }

    /// Answers one command (the work it starts goes on in the background).
    pub fn handle(self: &Arc<Self>, subject: &str, payload: &[u8]) -> Reply {
        // The subscription is for this host's id only; check anyway, so a misrouted
        // command is never obeyed.
        let ours = subject::command(&self.config.host_id, subject::Verb::Status);
        let prefix = ours.trim_end_matches("status");
        if !subject.starts_with(prefix) {
            return Reply::Refused {
                reason: format!(
                    "`{subject}` is not addressed to host `{}`",
                    self.config.host_id
                ),
            };
        }
        match subject::Verb::of_subject(subject) {
            Some(subject::Verb::Start) => match protocol::decode::<StartCommand>(payload) {
                Ok(cmd) => self.start(cmd),
                Err(reason) => Reply::Invalid { reason },
            },
            Some(subject::Verb::Stop) => match protocol::decode::<ReplicaCommand>(payload) {
                Ok(cmd) => self.stop(&cmd),
                Err(reason) => Reply::Invalid { reason },
            },
            Some(subject::Verb::Status) => match protocol::decode::<ReplicaCommand>(payload) {
                Ok(cmd) => self
                    .lock()
                    .get(&cmd.replica)
                    .map_or(Reply::NotFound, |e| Reply::Ok {
                        replica: e.report.clone(),
                    }),
                Err(reason) => Reply::Invalid { reason },
            },
            Some(subject::Verb::Logs) | None => Reply::Invalid {
                reason: format!("`{subject}`: expected a start, stop or status command"),
            },
        }
    }

    /// Answers `logs`: the lines of the named deployment's replicas here (or of the named
    /// replica), merged in the order written, at most `max` of them.
    pub fn logs(&self, payload: &[u8]) -> LogsReply {
        let request = match protocol::decode::<LogsRequest>(payload) {
            Ok(r) => r,
            Err(reason) => return LogsReply::Invalid { reason },
        };
        let replicas: Vec<String> = self
            .lock()
            .values()
            .filter(|e| e.report.deployment == request.name || e.report.id == request.name)
            .map(|e| e.report.id.clone())
            .collect();
        let mut scanned = request.after;
        let mut lines: Vec<LogEntry> = Vec::new();
        for replica in &replicas {
            for line in self.runtime.logs(replica, request.after, request.since_ms) {
                scanned = scanned.max(line.seq);
                if request.part.as_ref().is_none_or(|p| *p == line.part) {
                    lines.push(line);
                }
            }
        }
        lines.sort_unstable_by_key(|l| l.seq);
        // At most `max` lines, and few enough bytes for one NATS message.
        let max = request.max.clamp(1, MAX_LOG_LINES) as usize;
        let mut bytes = 0;
        let fit = lines
            .iter()
            .take(max)
            .take_while(|l| {
                bytes += l.text.len() + l.part.len() + l.replica.len() + 96;
                bytes <= MAX_LOG_BYTES
            })
            .count()
            .max(1);
        let more = lines.len() > fit;
        lines.truncate(fit);
        let cursor = match (more, lines.last()) {
            (true, Some(last)) => last.seq,
            _ => scanned,
        };
        LogsReply::Ok {
            instance: self.instance.clone(),
            lines,
            cursor,
            more,
        }
    }

    /// Obeys `term` if it is not older than the newest obeyed; else the refusal.
    fn admit(&self, term: u64) -> Option<Reply> {
        let newest = self.term.fetch_max(term, Ordering::AcqRel);
        if term < newest {
            tracing::warn!(
                term,
                newest,
                "refused a command from a stale controller term"
            );
            return Some(Reply::Refused {
                reason: format!(
                    "stale controller term {term}: this host obeys term {newest} or newer"
                ),
            });
        }
        None
    }

    fn start(self: &Arc<Self>, cmd: StartCommand) -> Reply {
        if let Some(refused) = self.admit(cmd.term) {
            return refused;
        }
        let spec = crate::deployment::revision(&serde_json::json!({"spec": cmd.workload}));
        let mut replicas = self.lock();
        let epoch = match replicas.get_mut(&cmd.replica) {
            Some(e) if e.spec == spec || e.report.state == ReplicaState::Stopping => {
                return Reply::Ok {
                    replica: e.report.clone(),
                };
            }
            Some(e) => {
                // A new spec for a live replica: an update, served by the old version
                // until the new one is ready.
                e.spec = spec;
                e.epoch += 1;
                e.epoch
            }
            None => {
                let live = replicas
                    .values()
                    .filter(|e| e.report.state != ReplicaState::Stopping)
                    .count();
                if live >= self.config.max_replicas as usize {
                    return Reply::Refused {
                        reason: format!(
                            "host `{}` is full ({live}/{} replicas)",
                            self.config.host_id, self.config.max_replicas
                        ),
                    };
                }
                replicas.insert(
                    cmd.replica.clone(),
                    Entry {
                        report: ReplicaReport {
                            id: cmd.replica.clone(),
                            deployment: cmd.deployment.clone(),
                            revision: cmd.revision.clone(),
                            state: ReplicaState::Starting,
                            message: None,
                            routes: Vec::new(),
                        },
                        spec,
                        epoch: 0,
                    },
                );
                0
            }
        };
        let report = replicas
            .get(&cmd.replica)
            .map(|e| e.report.clone())
            .unwrap_or_else(|| starting(&cmd));
        drop(replicas);
        self.changed.notify_one();
        tracing::info!(replica = %cmd.replica, deployment = %cmd.deployment, revision = %cmd.revision, "starting replica");
        let agent = Arc::clone(self);
        tokio::spawn(async move {
            let Ok(_permit) = agent.starts.acquire().await else {
                return;
            };
            let result = agent.runtime.start(cmd.replica.clone(), cmd.workload).await;
            let mut replicas = agent.lock();
            let Some(entry) = replicas.get_mut(&cmd.replica).filter(|e| e.epoch == epoch) else {
                return;
            };
            match result {
                Ok(routes) => {
                    tracing::info!(replica = %cmd.replica, "replica ready");
                    entry.report.state = ReplicaState::Ready;
                    entry.report.revision = cmd.revision;
                    entry.report.routes = routes;
                    entry.report.message = None;
                }
                Err(message) if entry.report.state == ReplicaState::Ready => {
                    // A failed update: the old version keeps serving.
                    tracing::warn!(replica = %cmd.replica, %message, "update failed; the previous version keeps serving");
                    entry.report.message = Some(message);
                }
                Err(message) => {
                    tracing::warn!(replica = %cmd.replica, %message, "replica failed to start");
                    entry.report.state = ReplicaState::Failed;
                    entry.report.message = Some(message);
                }
            }
            drop(replicas);
            agent.changed.notify_one();
        });
        Reply::Ok { replica: report }
    }

    fn stop(self: &Arc<Self>, cmd: &ReplicaCommand) -> Reply {
        if let Some(refused) = self.admit(cmd.term) {
            return refused;
        }
        let mut replicas = self.lock();
        let Some(entry) = replicas.get_mut(&cmd.replica) else {
            return Reply::NotFound;
        };
        if entry.report.state == ReplicaState::Stopping {
            return Reply::Ok {
                replica: entry.report.clone(),
            };
        }
        entry.report.state = ReplicaState::Stopping;
        entry.epoch += 1;
        let epoch = entry.epoch;
        let report = entry.report.clone();
        drop(replicas);
        self.changed.notify_one();
        tracing::info!(replica = %cmd.replica, "stopping replica");
        let agent = Arc::clone(self);
        let replica = cmd.replica.clone();
        tokio::spawn(async move {
            tokio::time::sleep(UNROUTE_GRACE).await;
            agent.runtime.stop(replica.clone()).await;
            let mut replicas = agent.lock();
            if replicas.get(&replica).is_some_and(|e| e.epoch == epoch) {
                replicas.remove(&replica);
            }
            drop(replicas);
            tracing::info!(%replica, "replica stopped");
            agent.changed.notify_one();
        });
        Reply::Ok { replica: report }
    }

    async fn watch_peers(self: Arc<Self>, mut heartbeats: async_nats::Subscriber) {
        while let Some(message) = heartbeats.next().await {
            match protocol::decode::<Heartbeat>(&message.payload) {
                Ok(hb) => {
                    self.view.saw(hb.clone());
                    if hb.host_id != self.config.host_id {
                        self.peers.saw(hb);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "ignored a heartbeat"),
            }
        }
    }
}

fn starting(cmd: &StartCommand) -> ReplicaReport {
    ReplicaReport {
        id: cmd.replica.clone(),
        deployment: cmd.deployment.clone(),
        revision: cmd.revision.clone(),
        state: ReplicaState::Starting,
        message: None,
        routes: Vec::new(),
    }
}

/// Other hosts' ready replicas and where to reach them, from their heartbeats: the
/// ingress forwards a request it has no route for to one of them.
#[derive(Default)]
pub struct Peers {
    hosts: Mutex<HashMap<String, Peer>>,
    next: AtomicUsize,
}

/// One peer as of its last heartbeat: where it is reached and the routes of its ready
/// replicas, normalised once per heartbeat rather than per forwarded request.
struct Peer {
    seen: Instant,
    http: String,
    routes: Vec<RouteKey>,
}

/// A peer is used for forwarding only while its heartbeats are this fresh (and the
/// dashboard's view shows it lost after that).
pub(crate) const PEER_FRESH: Duration = Duration::from_secs(3);

impl Peers {
    fn saw(&self, heartbeat: Heartbeat) {
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A peer without an HTTP address cannot take forwarded requests.
        let Some(http) = heartbeat.http else {
            hosts.remove(&heartbeat.host_id);
            return;
        };
        let routes = heartbeat
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Ready)
            .flat_map(|r| &r.routes)
            .map(|route| RouteKey::new(route.host.as_deref(), &route.path))
            .collect();
        let peer = Peer {
            seen: Instant::now(),
            http,
            routes,
        };
        hosts.insert(heartbeat.host_id, peer);
    }

    /// The HTTP addresses of live peers with a ready replica serving `path` on `host` (a
    /// `Host` header), starting with a different one each call.
    pub fn candidates(&self, host: Option<&str>, path: &str) -> Vec<String> {
        let host = host.map(bare_host);
        let hosts = self
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The best match is the longest prefix, a route naming the host beating any-host:
        // the router's own rules.
        let mut best: Option<(bool, usize)> = None;
        let mut candidates: Vec<&str> = Vec::new();
        for peer in hosts.values().filter(|p| p.seen.elapsed() <= PEER_FRESH) {
            for key in &peer.routes {
                let named = key.host.is_some();
                if named && key.host.as_deref() != host.as_deref() {
                    continue;
                }
                if !prefix_matches(&key.path, path) {
                    continue;
                }
                let rank = (named, key.path.len());
                match best {
                    Some(b) if b > rank => {}
                    Some(b) if b == rank => candidates.push(&peer.http),
                    _ => {
                        best = Some(rank);
                        candidates = vec![&peer.http];
                    }
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        if candidates.is_empty() {
            return Vec::new();
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed) % candidates.len();
        let mut ordered: Vec<String> = candidates.iter().map(|c| (*c).to_string()).collect();
        ordered.rotate_left(first);
        ordered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, http: &str, path: &str, host: Option<&str>) -> Heartbeat {
        Heartbeat {
            protocol: PROTOCOL,
            host_id: id.into(),
            seq: 0,
            instance: "i".into(),
            version: "0".into(),
            labels: BTreeMap::new(),
            capacity: Capacity::default(),
            offers: BTreeSet::new(),
            http: Some(http.into()),
            term: 0,
            replicas: vec![ReplicaReport {
                id: format!("{id}-r"),
                deployment: "d".into(),
                revision: "r".into(),
                state: ReplicaState::Ready,
                message: None,
                routes: vec![RouteReport {
                    host: host.map(Into::into),
                    path: path.into(),
                }],
            }],
        }
    }

    #[test]
    fn peers_are_picked_by_longest_route_and_in_turn() {
        let peers = Peers::default();
        peers.saw(peer("a", "10.0.0.1:80", "/", None));
        peers.saw(peer("b", "10.0.0.2:80", "/api", None));
        peers.saw(peer("c", "10.0.0.3:80", "/api", None));
        peers.saw(peer("d", "10.0.0.4:80", "/", Some("shop.example")));
        let mut firsts = BTreeSet::new();
        for _ in 0..4 {
            let all = peers.candidates(Some("x"), "/api/v1");
            assert_eq!(all.len(), 2, "{all:?}");
            firsts.insert(all[0].clone());
        }
        assert_eq!(
            firsts,
            BTreeSet::from(["10.0.0.2:80".into(), "10.0.0.3:80".into()])
        );
        assert_eq!(peers.candidates(None, "/other"), ["10.0.0.1:80"]);
        assert_eq!(
            peers.candidates(Some("Shop.Example:8080"), "/"),
            ["10.0.0.4:80"]
        );
        assert_eq!(peers.candidates(None, "/apix"), ["10.0.0.1:80"]);
    }

    /// A host whose replicas `d-a` and `d-b` wrote lines 1..=6 alternately (odd: `d-a`).
    struct Lines;

    #[async_trait::async_trait]
    impl HostRuntime for Lines {
        async fn start(&self, _: String, _: Value) -> Result<Vec<RouteReport>, String> {
            Ok(Vec::new())
        }
        async fn stop(&self, _: String) {}
        fn capacity(&self) -> Capacity {
            Capacity::default()
        }
        fn offers(&self) -> BTreeSet<String> {
            BTreeSet::new()
        }
        fn logs(&self, replica: &str, after: u64, since_ms: u64) -> Vec<LogEntry> {
            (1..=6u64)
                .filter(|seq| (seq % 2 == 1) == (replica == "d-a"))
                .filter(|seq| *seq > after && *seq * 1000 >= since_ms)
                .map(|seq| LogEntry {
                    seq,
                    time_ms: seq * 1000,
                    replica: replica.into(),
                    part: if seq == 6 { "svc" } else { "web" }.into(),
                    stream: "stdout".into(),
                    level: "info".into(),
                    text: format!("line {seq}"),
                })
                .collect()
        }
    }

    fn agent_with(replicas: &[&str]) -> Arc<Agent> {
        let entries = replicas
            .iter()
            .map(|id| {
                let report = ReplicaReport {
                    id: (*id).into(),
                    deployment: "d".into(),
                    revision: "r".into(),
                    state: ReplicaState::Ready,
                    message: None,
                    routes: Vec::new(),
                };
                let entry = Entry {
                    report,
                    spec: String::new(),
                    epoch: 0,
                };
                ((*id).to_string(), entry)
            })
            .collect();
        Arc::new(Agent {
            config: AgentConfig {
                host_id: "h1".into(),
                labels: BTreeMap::new(),
                http: None,
                max_replicas: 10,
                version: "0".into(),
            },
            instance: "run-1".into(),
            runtime: Arc::new(Lines),
            replicas: Mutex::new(entries),
            term: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            changed: Notify::new(),
            starts: Semaphore::new(1),
            peers: Arc::new(Peers::default()),
            view: Arc::new(ClusterView::new("h1")),
        })
    }

    fn ask(
        agent: &Agent,
        name: &str,
        part: Option<&str>,
        after: u64,
        max: u32,
    ) -> (Vec<u64>, u64, bool) {
        let request = LogsRequest {
            protocol: PROTOCOL,
            name: name.into(),
            part: part.map(Into::into),
            after,
            since_ms: 0,
            max,
        };
        match agent.logs(&protocol::encode(&request)) {
            LogsReply::Ok {
                instance,
                lines,
                cursor,
                more,
            } => {
                assert_eq!(instance, "run-1");
                (lines.iter().map(|l| l.seq).collect(), cursor, more)
            }
            LogsReply::Invalid { reason } => panic!("{reason}"),
        }
    }

    #[test]
    fn logs_merge_replicas_in_order_and_page_by_cursor() {
        let agent = agent_with(&["d-a", "d-b"]);
        assert_eq!(
            ask(&agent, "d", None, 0, 100),
            (vec![1, 2, 3, 4, 5, 6], 6, false)
        );
        // Pages: four lines, then the rest after the cursor.
        assert_eq!(ask(&agent, "d", None, 0, 4), (vec![1, 2, 3, 4], 4, true));
        assert_eq!(ask(&agent, "d", None, 4, 4), (vec![5, 6], 6, false));
        // One replica by id; one part; a part with no lines still moves the cursor on.
        assert_eq!(ask(&agent, "d-b", None, 0, 100), (vec![2, 4, 6], 6, false));
        assert_eq!(ask(&agent, "d", Some("svc"), 0, 100), (vec![6], 6, false));
        assert_eq!(ask(&agent, "d", Some("none"), 0, 100), (vec![], 6, false));
        // Nothing runs under that name: no lines, the cursor stays.
        assert_eq!(ask(&agent, "other", None, 3, 100), (vec![], 3, false));
        assert!(matches!(
            agent.logs(b"{\"protocol\": 1}"),
            LogsReply::Invalid { .. }
        ));
    }
}
