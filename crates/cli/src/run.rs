//! `hearth run`: a host. Applies the workloads of the manifests it is given (none is fine),
//! serves HTTP ingress and the admin API (whose lifecycle API applies and deletes workloads
//! while the host serves), and shuts down gracefully on SIGINT or SIGTERM.

use crate::logging::{self, LogFormat};
use crate::{EXIT_FAILED, EXIT_INVALID};
use hearth_http::{AdminApi, Deployed, Ingress, ServeOptions};
use hearth_runtime::{EngineOptions, Runtime, ServicePlacement, Workloads};
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
    /// Address of the admin API (`/healthz`, `/v1/workloads`, and the lifecycle API behind
    /// `hearth apply`); off unless given.
    #[arg(long, env = "HEARTH_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// A file holding the admin API's bearer token (or set HEARTH_ADMIN_TOKEN to the token);
    /// required when --admin is not a loopback address.
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,
    /// Instances the engine's pool holds at once: requests, WIT calls and message deliveries
    /// in flight plus one per running service. Default: one per 16 MiB of memory, 1,000 to
    /// 8,192.
    #[arg(long, value_name = "N")]
    pub max_instances: Option<u32>,
    /// HTTP instances made ahead of their requests (at most one per component that has
    /// served a request), so a request does not wait for its instantiation; each holds a
    /// slot of the pool, and they take an eighth of it at most. 0 turns this off.
    #[arg(long, value_name = "N", default_value_t = hearth_runtime::DEFAULT_WARM_INSTANCES)]
    pub warm_instances: usize,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Directory of the compiled-component cache.
    #[arg(long, env = "HEARTH_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Export traces to this OpenTelemetry collector (OTLP over HTTP; spans go to
    /// `URL/v1/traces`); off unless given.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Record no metrics (`GET /metrics` then answers 404 and the dashboard shows counts
    /// without latencies): each invocation saves a few atomic updates.
    #[arg(long)]
    pub no_metrics: bool,
    #[command(flatten)]
    pub ingress: crate::ingress::IngressArgs,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Manifest files (YAML, one or more documents each); none starts an empty host that
    /// waits for `hearth apply`.
    manifests: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) host: HostArgs,
    /// Compile every component afresh instead of using the cache.
    #[arg(long)]
    no_cache: bool,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM, or after their
    /// workload is deleted.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// Host address that published service ports listen on.
    #[arg(long, default_value = "127.0.0.1")]
    publish_addr: std::net::IpAddr,
    /// HTTP worker threads, each with its own runtime and listener; default: one per core
    /// this process may run on.
    #[arg(long)]
    workers: Option<usize>,
    /// Run each service on a thread of its own instead of on an HTTP worker. By default a
    /// service runs on the worker with the fewest services, and its workload's connections
    /// are served there, so that a component and its service share a thread; this spreads
    /// the workload's requests over every worker instead, at the cost of cross-thread
    /// wake-ups on each connection to the service.
    #[arg(long)]
    service_threads: bool,
    /// Allocate instances on demand instead of from a pre-reserved pool.
    #[arg(long)]
    no_pooling: bool,
}

pub fn main(args: RunArgs) -> ExitCode {
    logging::init(args.host.log_format);
    run(args, None)
}

/// Runs a host; `join` makes it a cluster member (`hearth host`).
pub(crate) fn run(args: RunArgs, join: Option<crate::host::Join>) -> ExitCode {
    let workloads = match hearth_manifest::load_files(&args.manifests) {
        Ok(w) => w,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let host = join
        .as_ref()
        .map_or_else(crate::host::default_host_id, |j| j.host_id.clone());
    let _traces = match crate::traces::install(args.host.otlp_endpoint.as_deref(), &host) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_FAILED);
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
    match rt.block_on(serve(args, workloads, join)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn serve(
    args: RunArgs,
    manifests: Vec<hearth_manifest::Workload>,
    join: Option<crate::host::Join>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let token = admin_token(&args.host)?;
    let runtime = Arc::new(Runtime::new(engine_options(
        &args.host,
        !args.no_cache,
        !args.no_pooling,
        args.publish_addr,
    ))?);

    // HTTP workers start idle, so that services can be placed on them before serving begins:
    // each on one worker, with its workload's connections steered there (`placement.rs`).
    let threads = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut ingress = Ingress::workers(threads)?;
    let services = if args.service_threads {
        ServicePlacement::OwnThreads
    } else {
        ServicePlacement::OnWorkers
    };
    runtime.use_workers(ingress.handles(), services);
    let deployed = Arc::new(Deployed::new(Vec::new()));
    let drain = Duration::from_secs(args.drain_timeout);
    let workloads = Arc::new(host_workloads(
        &runtime,
        &deployed,
        args.host.log_format,
        drain,
    ));
    for w in manifests {
        workloads.apply(w).await?;
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let http_addr = ingress
        .serve(
            args.host.http,
            Arc::clone(&deployed),
            stop_rx.clone(),
            ServeOptions {
                drain_timeout: drain,
                forward: join.as_ref().and_then(crate::host::Join::forwarder),
                limits: args.host.ingress.limits(),
                tls: args.host.ingress.tls()?,
            },
        )
        .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {}: {e}", args.host.http))?;
    let cluster = join.as_ref().map(crate::host::Join::cluster_status);
    if let Some(join) = join {
        join.start(http_addr, &runtime, &workloads).await?;
    }
    let admin = match args.host.admin {
        Some(addr) => {
            let pool = runtime.engine().max_instances();
            let api = AdminApi {
                cluster,
                ..admin_api(&workloads, pool, token)
            };
            Some(serve_admin(addr, api, stop_rx.clone()).await?)
        }
        None => None,
    };
    tracing::info!(
        addr = %http_addr,
        url = %format!("{}://{http_addr}/", args.host.ingress.scheme()),
        workloads = workloads.list().len(),
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
        workloads.stop_all();
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

/// The engine settings from the host flags.
pub(crate) fn engine_options(
    host: &HostArgs,
    cache: bool,
    pooling: bool,
    publish_ip: std::net::IpAddr,
) -> EngineOptions {
    let defaults = EngineOptions::default();
    EngineOptions {
        cache_dir: cache.then(|| host.cache_dir.clone().unwrap_or_else(default_cache_dir)),
        pooling,
        publish_ip,
        max_instances: host.max_instances.unwrap_or(defaults.max_instances),
        warm_instances: host.warm_instances,
        ..defaults
    }
}

/// The host's workload set: images fetched through the OCI cache, changes published to the
/// router.
pub(crate) fn host_workloads(
    runtime: &Arc<Runtime>,
    deployed: &Arc<Deployed>,
    log_format: LogFormat,
    drain: Duration,
) -> Workloads {
    let oci = Arc::new(hearth_oci::Oci::new(hearth_oci::OciOptions {
        // Progress bars for image pulls, only with human logs (and only on a terminal).
        progress: log_format == LogFormat::Human,
        ..hearth_oci::OciOptions::from_env()
    }));
    let fetch: hearth_runtime::Fetch = Arc::new(move |w| {
        let oci = Arc::clone(&oci);
        Box::pin(async move { hearth_oci::fetch::fetch(&oci, &w).await })
    });
    let router = Arc::clone(deployed);
    Workloads::new(
        Arc::clone(runtime),
        fetch,
        Box::new(move |previous, next| {
            router.change(previous, next);
        }),
        drain,
    )
}

/// The admin API's token from --admin-token-file or HEARTH_ADMIN_TOKEN (the rule the client
/// commands follow too), and the refusal to open a non-loopback admin address without one.
pub(crate) fn admin_token(host: &HostArgs) -> anyhow::Result<Option<String>> {
    let env = std::env::var(crate::admin_client::TOKEN_ENV).ok();
    let token = crate::admin_client::load_token(host.admin_token_file.as_deref(), env.as_deref())?
        .map(crate::admin_client::Token::into_secret);
    if let Some(addr) = host.admin
        && !addr.ip().is_loopback()
        && token.is_none()
    {
        anyhow::bail!(
            "refusing to serve the admin API on {addr} without a token: anyone who reaches it could run code on this host. Set one with --admin-token-file PATH (a file holding a secret, e.g. `openssl rand -hex 32 > admin.token`) or the HEARTH_ADMIN_TOKEN environment variable, or bind --admin to 127.0.0.1"
        );
    }
    Ok(token)
}

/// The admin API of a host that is no cluster member.
pub(crate) fn admin_api(
    workloads: &Arc<Workloads>,
    pool_size: u32,
    token: Option<String>,
) -> AdminApi {
    AdminApi {
        workloads: Arc::clone(workloads),
        token,
        metrics: crate::metrics::renderer(workloads, pool_size),
        cluster: None,
    }
}

/// Binds the admin API on `addr` and serves `api` until `stop` turns true.
pub(crate) async fn serve_admin(
    addr: SocketAddr,
    api: AdminApi,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for the admin API on {addr}: {e}"))?;
    let admin_addr = listener.local_addr()?;
    tracing::info!(addr = %admin_addr, token = api.token.is_some(), "admin API listening");
    let api = Arc::new(api);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    Ok(tokio::spawn(hearth_http::serve_admin(
        listener, api, stopped,
    )))
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
