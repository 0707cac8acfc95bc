//! `hearth operator`: the Kubernetes operator, and `hearth operator crd`.

use crate::EXIT_FAILED;
use crate::cluster::{block_on, default_id, exit_on};
use clap::{Args, Subcommand};
use hearth_cluster::nats::NatsAuth;
use hearth_operator::leader::LeaseConfig;
use hearth_operator::operator::{self, Config, Operator};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Print the CRDs as YAML (generated from the Rust types, never written by hand).
    Crd,
}

/// `hearth operator` flags.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// NATS server URL(s), comma-separated: where the hosts' heartbeats and commands go.
    #[arg(long = "nats", env = "HEARTH_NATS", value_name = "URL")]
    pub nats: Option<String>,
    #[command(flatten)]
    pub auth: NatsAuth,
    /// Watch WorkloadDeployments and Workloads in this namespace only; default: all.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The namespace of the leader-election Lease; default: the pod's namespace
    /// (POD_NAMESPACE), else `hearth-system`.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NS")]
    pub lease_namespace: Option<String>,
    /// The leader-election Lease's name.
    #[arg(long, default_value = "hearth-operator", value_name = "NAME")]
    pub lease_name: String,
    /// Seconds a Lease lasts without renewal before a standby takes over.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub lease_seconds: u64,
    /// This operator's name in the Lease; default: the pod's name (POD_NAME), else host
    /// name and process id.
    #[arg(long, env = "POD_NAME", value_name = "ID")]
    pub id: Option<String>,
    /// Serve Prometheus metrics (whether it acts, hosts and their heartbeat age, replicas
    /// desired and ready per deployment, starts and stops) at `GET /metrics` on this
    /// address, e.g. `0.0.0.0:9100` in a pod. No token: keep it on the pod network.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: crate::logging::LogFormat,
}

pub fn crd() -> ExitCode {
    match hearth_operator::crd::crds_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot render the CRDs: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

pub fn main(args: OperatorArgs) -> ExitCode {
    crate::logging::init(args.log_format);
    let Some(nats) = args.nats.clone() else {
        eprintln!(
            "error: hearth operator needs --nats URL (or HEARTH_NATS): the hosts are reached over NATS"
        );
        return ExitCode::from(crate::EXIT_INVALID);
    };
    let result = block_on(async move {
        let id = args.id.clone().unwrap_or_else(default_id);
        let kube = operator::kube_client().await?;
        let client = args
            .auth
            .connect_forever(&nats, &format!("hearth-operator-{id}"))
            .await?;
        let config = Config {
            namespace: args.namespace.clone(),
            lease: LeaseConfig {
                namespace: args
                    .lease_namespace
                    .clone()
                    .unwrap_or_else(|| "hearth-system".into()),
                name: args.lease_name.clone(),
                identity: id.clone(),
                duration: Duration::from_secs(args.lease_seconds.max(1)),
            },
            host_timeout: Duration::from_secs(3),
        };
        tracing::info!(%id, namespace = args.namespace.as_deref().unwrap_or("(all)"), "operator started");
        let operator = Operator::new(config, kube, client);
        if let Some(addr) = args.metrics {
            crate::metrics::serve(addr, "operator", &id, operator.metrics()).await?;
        }
        operator.run(crate::run::shutdown_signal()).await;
        Ok::<(), String>(())
    });
    exit_on(result)
}
