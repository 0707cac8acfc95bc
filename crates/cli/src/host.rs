//! `hearth host`: a host that joins a cluster. It is `hearth run` (same ingress, same admin
//! API, same flags) plus the cluster agent, which heartbeats over NATS and takes `start` and
//! `stop` commands from the controller, applying them through the host's lifecycle path.

use crate::run::RunArgs;
use hearth_cluster::agent::{Agent, AgentConfig, HostRuntime, Peers};
use hearth_cluster::nats::NatsAuth;
use hearth_cluster::protocol::{Capacity, LogEntry, RouteReport, check_host_id};
use hearth_cluster::view::ClusterView;
use hearth_runtime::{Runtime, Workloads};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct ClusterHostArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub cluster: ClusterJoinArgs,
}

/// How a host joins its cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterJoinArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long = "nats",
        env = "HEARTH_NATS",
        value_name = "URL",
        required = true
    )]
    pub nats: String,
    #[command(flatten)]
    pub auth: NatsAuth,
    /// This host's id in the cluster (lower-case letters, digits, `-`, `_`); default: the
    /// machine's host name.
    #[arg(long, value_name = "ID")]
    pub host_id: Option<String>,
    /// A label for `hostSelector`s to match (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// The address peers and load balancers reach this host's HTTP ingress at; default:
    /// the --http address when it is a specific one.
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<SocketAddr>,
    /// Replicas this host accepts in all.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_replicas: u32,
    /// Offer only these host-interface backends (`wasi:keyvalue=redis`, repeatable);
    /// default: every backend hearth has.
    #[arg(long = "offer", value_name = "PACKAGE=BACKEND")]
    pub offers: Vec<String>,
    /// Answer only for workloads this host runs (404 otherwise) instead of forwarding to a
    /// host that runs them.
    #[arg(long)]
    pub no_forward: bool,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{text}`: expected KEY=VALUE")),
    }
}

/// Everything needed to join, checked before the host starts.
pub struct Join {
    pub args: ClusterJoinArgs,
    pub host_id: String,
    pub peers: Arc<Peers>,
    /// The cluster as this host sees it, for `GET /v1/cluster` and the dashboard.
    pub view: Arc<ClusterView>,
}

impl Join {
    /// Checks the flags: a usable host id and known backends.
    pub fn new(args: ClusterJoinArgs) -> anyhow::Result<Self> {
        let host_id = match &args.host_id {
            Some(id) => id.clone(),
            None => default_host_id(),
        };
        check_host_id(&host_id)
            .map_err(|e| anyhow::anyhow!("--host-id: {e} (a host id is one NATS subject token)"))?;
        let known = all_offers();
        for offer in &args.offers {
            if !known.contains(offer) {
                anyhow::bail!(
                    "--offer `{offer}`: expected one of {}",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
        Ok(Self {
            args,
            view: Arc::new(ClusterView::new(host_id.clone())),
            host_id,
            peers: Arc::new(Peers::default()),
        })
    }

    /// What `GET /v1/cluster` serves: [`ClusterView::snapshot`] as JSON.
    pub fn cluster_status(&self) -> hearth_http::ClusterStatus {
        let view = Arc::clone(&self.view);
        Arc::new(move || serde_json::to_value(view.snapshot()).unwrap_or_default())
    }

    /// What the ingress forwards through, unless --no-forward.
    pub fn forwarder(&self) -> Option<Arc<dyn hearth_http::Forward>> {
        if self.args.no_forward {
            return None;
        }
        Some(Arc::new(PeerForward {
            host_id: self.host_id.clone(),
            peers: Arc::clone(&self.peers),
        }))
    }

    /// Starts the agent on a thread and runtime of its own (so nothing the host does can
    /// delay a heartbeat). Returns once connected to NATS, or with the reason it cannot be
    /// (refused credentials, TLS); servers that are down are retried in the background.
    pub async fn start(
        self,
        http: SocketAddr,
        runtime: &Arc<Runtime>,
        workloads: &Arc<Workloads>,
    ) -> anyhow::Result<()> {
        let advertise = match (self.args.advertise, http.ip().is_unspecified()) {
            (Some(a), _) => Some(a.to_string()),
            (None, false) => Some(http.to_string()),
            (None, true) => {
                tracing::warn!(%http, "no --advertise address: peers cannot forward requests to this host");
                None
            }
        };
        let config = AgentConfig {
            host_id: self.host_id.clone(),
            labels: self.args.labels.iter().cloned().collect(),
            http: advertise,
            max_replicas: self.args.max_replicas,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let offers: BTreeSet<String> = if self.args.offers.is_empty() {
            all_offers()
        } else {
            self.args.offers.iter().cloned().collect()
        };
        let host: Arc<dyn HostRuntime> = Arc::new(HostSide {
            workloads: Arc::clone(workloads),
            runtime: Arc::clone(runtime),
            control: tokio::runtime::Handle::current(),
            offers,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let url = self.args.nats.clone();
        let auth = self.args.auth.clone();
        let peers = Arc::clone(&self.peers);
        let view = Arc::clone(&self.view);
        std::thread::Builder::new()
            .name("hearth-agent".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(format!("cannot start the agent's runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let name = format!("hearth-host-{}", config.host_id);
                    let client = match auth.connect_forever(&url, &name).await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(()));
                    if let Err(e) = Agent::run(config, client, host, peers, view).await {
                        tracing::error!(error = %e, "the cluster agent stopped");
                    }
                });
            })?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!("{e}")),
            Err(_) => Err(anyhow::anyhow!("the cluster agent ended before connecting")),
        }
    }
}

/// Forwarding through the peers the agent hears.
struct PeerForward {
    host_id: String,
    peers: Arc<Peers>,
}

impl hearth_http::Forward for PeerForward {
    fn host_id(&self) -> &str {
        &self.host_id
    }

    fn candidates(&self, host: Option<&str>, path: &str) -> Vec<String> {
        self.peers.candidates(host, path)
    }
}

/// Every `package=backend` this build of hearth can bind.
fn all_offers() -> BTreeSet<String> {
    hearth_interfaces::PACKAGES
        .iter()
        .flat_map(|(package, backends)| backends.iter().map(move |b| format!("{package}={b}")))
        .collect()
}

/// The machine's host name as a host id, or `host` when it cannot be one.
pub(crate) fn default_host_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase().replace('.', "-"))
        .ok()
        .filter(|h| check_host_id(h).is_ok())
        .unwrap_or_else(|| "host".to_string())
}

/// The host as the agent sees it: the lifecycle path, run on the host's control runtime.
struct HostSide {
    workloads: Arc<Workloads>,
    runtime: Arc<Runtime>,
    control: tokio::runtime::Handle,
    offers: BTreeSet<String>,
}

#[async_trait::async_trait]
impl HostRuntime for HostSide {
    async fn start(
        &self,
        replica: String,
        document: serde_json::Value,
    ) -> Result<Vec<RouteReport>, String> {
        let label = format!("{replica} (replica)");
        let workload = hearth_cluster::deployment::parse(Path::new(&label), &document)?;
        if workload.name != replica {
            return Err(format!(
                "{label}: metadata.name `{}` is not the replica id",
                workload.name
            ));
        }
        let workloads = Arc::clone(&self.workloads);
        let applied = self
            .control
            .spawn(async move { workloads.apply(workload).await })
            .await
            .map_err(|e| format!("the deploy task failed: {e}"))?;
        let (_, running) = applied.map_err(|e| e.to_string())?;
        Ok(running
            .components
            .iter()
            .filter_map(|c| c.route())
            .map(|r| RouteReport {
                host: r.host.clone(),
                path: r.path.clone(),
            })
            .collect())
    }

    async fn stop(&self, replica: String) {
        let workloads = Arc::clone(&self.workloads);
        let _ = self
            .control
            .spawn(async move { workloads.delete(&replica).await })
            .await;
    }

    fn capacity(&self) -> Capacity {
        let (total, free) = memory();
        let running = self.workloads.list();
        let in_use: u32 = running
            .iter()
            .map(|w| w.in_flight() + u32::from(w.service.is_some()))
            .sum();
        Capacity {
            cores: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            memory_total_bytes: total,
            memory_free_bytes: free,
            pool_size: self.runtime.engine().max_instances(),
            pool_in_use: in_use,
            max_replicas: 0,
        }
    }

    fn offers(&self) -> BTreeSet<String> {
        self.offers.clone()
    }

    fn logs(&self, replica: &str, after: u64, since_ms: u64) -> Vec<LogEntry> {
        hearth_runtime::logs::hub()
            .recent(replica, since_ms)
            .iter()
            .filter(|l| l.seq > after)
            .map(|l| LogEntry {
                seq: l.seq,
                time_ms: l.time_ms,
                replica: l.workload.clone(),
                part: l.part.clone(),
                stream: l.stream.clone(),
                level: l.level.clone(),
                text: l.text.clone(),
            })
            .collect()
    }
}

/// `MemTotal` and `MemAvailable` from /proc/meminfo, in bytes (0 when unknown).
fn memory() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return (0, 0);
    };
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

pub fn main(args: ClusterHostArgs) -> std::process::ExitCode {
    crate::logging::init(args.run.host.log_format);
    match Join::new(args.cluster) {
        Ok(join) => crate::run::run(args.run, Some(join)),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(crate::EXIT_INVALID)
        }
    }
}
