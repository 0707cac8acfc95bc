//! `hearth run`: deploy workloads from manifests, serve HTTP ingress (and the admin API),
//! and shut down gracefully on SIGINT or SIGTERM.

use crate::logging::{self, LogFormat};
use crate::{EXIT_FAILED, EXIT_INVALID};
use hearth_http::{Deployed, Ingress, ServeOptions};
use hearth_runtime::{EngineOptions, Runtime};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The flags `hearth run` and `hearth dev` share: where to listen, how to log, where the
/// compile cache lives.
#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// Address the HTTP ingress listens on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "HEARTH_HTTP")]
    pub http: SocketAddr,
    /// Address of the admin API (`/healthz`, `/v1/workloads`); off unless given.
    #[arg(long, env = "HEARTH_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Directory of the compiled-component cache.
    #[arg(long, env = "HEARTH_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Manifest files (YAML, one or more documents each).
    #[arg(required = true)]
    manifests: Vec<PathBuf>,
    #[command(flatten)]
    host: HostArgs,
    /// Compile every component afresh instead of using the cache.
    #[arg(long)]
    no_cache: bool,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// Host address that published service ports listen on.
    #[arg(long, default_value = "127.0.0.1")]
    publish_addr: std::net::IpAddr,
    /// HTTP worker threads, each with its own runtime and listener; default: one per core
    /// this process may run on.
    #[arg(long)]
    workers: Option<usize>,
    /// Allocate instances on demand instead of from a pre-reserved pool.
    #[arg(long)]
    no_pooling: bool,
}

pub fn main(args: RunArgs) -> ExitCode {
    logging::init(args.host.log_format);
    let workloads = match hearth_manifest::load_files(&args.manifests) {
        Ok(w) => w,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    // The control runtime deploys, serves the admin API and waits for signals; HTTP is
    // served by the ingress's own per-core workers.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match rt.block_on(serve(args, workloads)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn serve(args: RunArgs, workloads: Vec<hearth_manifest::Workload>) -> anyhow::Result<()> {
    let started = Instant::now();
    let cache_dir = if args.no_cache {
        None
    } else {
        Some(args.host.cache_dir.unwrap_or_else(default_cache_dir))
    };
    let runtime = Arc::new(Runtime::new(EngineOptions {
        cache_dir,
        pooling: !args.no_pooling,
        publish_ip: args.publish_addr,
        // Progress bars for image pulls, only with human logs (and only on a terminal).
        oci: hearth_oci::OciOptions {
            progress: args.host.log_format == LogFormat::Human,
            ..hearth_oci::OciOptions::from_env()
        },
        ..EngineOptions::default()
    })?);

    // HTTP workers start idle. When everything shares one core, services run on the worker's
    // runtime too, so a request to a service needs no cross-thread wake-ups.
    let threads = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut ingress = Ingress::workers(threads)?;
    if threads == 1 {
        runtime.place_services_on(ingress.handle(0));
    }

    let mut running = Vec::with_capacity(workloads.len());
    for w in &workloads {
        running.push(runtime.deploy(w).await?);
    }
    let deployed = Arc::new(Deployed::new(running));

    let (stop_tx, stop_rx) = watch::channel(false);
    let http_addr = ingress
        .serve(
            args.host.http,
            Arc::clone(&deployed),
            stop_rx.clone(),
            ServeOptions {
                drain_timeout: Duration::from_secs(args.drain_timeout),
            },
        )
        .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {}: {e}", args.host.http))?;

    let admin = match args.host.admin {
        Some(addr) => {
            let admin_listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for the admin API on {addr}: {e}"))?;
            let admin_addr = admin_listener.local_addr()?;
            tracing::info!(addr = %admin_addr, "admin API listening");
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            Some(tokio::spawn(hearth_http::serve_admin(
                admin_listener,
                Arc::clone(&deployed),
                stopped,
            )))
        }
        None => None,
    };

    tracing::info!(
        addr = %http_addr,
        url = %format!("http://{http_addr}/"),
        workloads = deployed.load().workloads.len(),
        workers = threads,
        pooling = runtime.engine().pooling(),
        startup_ms = started.elapsed().as_secs_f64() * 1e3,
        "HTTP ingress listening"
    );

    shutdown_signal().await;
    let _ = stop_tx.send(true);
    // Drain requests first (they may still use services), then stop services, then end the
    // workers' runtimes.
    let drained = tokio::task::spawn_blocking(move || {
        let drained = ingress.wait_drained();
        deployed.load().workloads.iter().for_each(|w| w.stop());
        ingress.close();
        drained
    })
    .await
    .unwrap_or(false);
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    tracing::info!(drained, "hearth stopped");
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop hearth with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
}

pub(crate) fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("hearth").join("components")
}
