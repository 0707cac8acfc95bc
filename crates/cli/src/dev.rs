//! `hearth dev`: build, run on an embedded host, watch the sources, rebuild what changed and
//! swap it in without dropping the service or requests in flight.
//!
//! Each pass (a change, debounced) re-reads the manifest, rebuilds the parts whose sources
//! changed, and applies every workload through the host's lifecycle (`hearth apply`'s path):
//! - an unchanged workload (same spec, same bytes) is left alone;
//! - a workload whose service (image or spec) changed gets a new service, the old one
//!   stopped first (the new service may need its ports);
//! - a workload where only components changed gets new components next to its running
//!   service, whose state therefore survives, and whose WIT calls reach the new versions;
//! - requests in flight finish on the components they started on;
//! - a workload gone from the manifest is deleted.
//!
//! A failed build or a bad manifest is shown and the last good version keeps serving.

use crate::logging;
use crate::{EXIT_FAILED, EXIT_INVALID};
use hearth_http::{Deployed, Ingress, ServeOptions};
use hearth_manifest::Workload;
use hearth_runtime::{Runtime, Workloads};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// The workload manifest.
    #[arg(default_value = "workload.yaml")]
    manifest: PathBuf,
    #[command(flatten)]
    pub(crate) host: crate::run::HostArgs,
    /// How often the sources are checked for changes, in milliseconds.
    #[arg(long, default_value_t = 300)]
    poll_ms: u64,
}

/// One part (component or service) of one workload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PartId {
    workload: String,
    part: String,
}

pub fn main(args: DevArgs) -> ExitCode {
    logging::init(args.host.log_format);
    let host = crate::host::default_host_id();
    let _traces = match crate::traces::install(args.host.otlp_endpoint.as_deref(), &host) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
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
    match rt.block_on(dev(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The running state `hearth dev` manages.
struct Session {
    manifest: PathBuf,
    workloads: Arc<Workloads>,
}

async fn dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    let manifest = args.manifest.clone();
    let workloads = match hearth_manifest::load_files(std::slice::from_ref(&manifest)) {
        Ok(w) => w,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    // Watch from the start: an edit made during the first build or before the first pass
    // is a change like any other (scanning after listening would race with it).
    let mut sources = Sources::scan(&manifest, &workloads);
    if let Err(e) = crate::build::build_for_dev(&manifest, None) {
        eprintln!("{e}");
        tracing::error!("the first build failed; fix the error and save: hearth dev is watching");
    }
    let token = crate::run::admin_token(&args.host)?;
    let options =
        crate::run::engine_options(&args.host, true, true, std::net::Ipv4Addr::LOCALHOST.into());
    let runtime = Arc::new(Runtime::new(options)?);
    let mut ingress = Ingress::workers(1)?;
    runtime.use_workers(
        ingress.handles(),
        hearth_runtime::ServicePlacement::OnWorkers,
    );
    let deployed = Arc::new(Deployed::new(Vec::new()));
    let drain = Duration::from_secs(5);
    let host = Arc::new(crate::run::host_workloads(
        &runtime,
        &deployed,
        args.host.log_format,
        drain,
    ));
    let mut session = Session {
        manifest: manifest.clone(),
        workloads: Arc::clone(&host),
    };
    // Deploy before listening, so the first request finds the workload.
    session.apply(&workloads).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let addr = ingress
        .serve(
            args.host.http,
            Arc::clone(&deployed),
            stop_rx.clone(),
            ServeOptions {
                drain_timeout: drain,
                forward: None,
                limits: args.host.ingress.limits(),
                tls: args.host.ingress.tls()?,
            },
        )
        .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {}: {e}", args.host.http))?;
    if let Some(admin) = args.host.admin {
        let pool = runtime.engine().max_instances();
        let api = crate::run::admin_api(&host, pool, token);
        crate::run::serve_admin(admin, api, stop_rx.clone()).await?;
    }
    tracing::info!(
        addr = %addr,
        url = %format!("{}://{addr}/", args.host.ingress.scheme()),
        "HTTP ingress listening"
    );
    let scheme = args.host.ingress.scheme();
    eprintln!("hearth dev: serving {scheme}://{addr}/ — watching for changes (Ctrl-C to stop)");

    let poll = Duration::from_millis(args.poll_ms.max(50));
    let stop = crate::run::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(poll) => {}
        }
        let workloads_now = hearth_manifest::load_files(std::slice::from_ref(&manifest)).ok();
        let now = Sources::scan(&manifest, workloads_now.as_deref().unwrap_or(&[]));
        if now == sources {
            continue;
        }
        // Debounce: wait until the tree stops changing (an editor's save is several writes).
        let mut settled = now;
        loop {
            tokio::time::sleep(poll).await;
            let again = Sources::scan(&manifest, workloads_now.as_deref().unwrap_or(&[]));
            if again == settled {
                break;
            }
            settled = again;
        }
        let changed = settled.changed_parts(&sources);
        sources = settled;
        session.pass(&changed).await;
    }
    let _ = stop_tx.send(true);
    tokio::task::spawn_blocking(move || {
        ingress.wait_drained();
        host.stop_all();
        ingress.close();
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

impl Session {
    /// One pass after a change: re-read, rebuild what changed, swap in what differs.
    async fn pass(&mut self, changed: &[PartId]) {
        let workloads = match hearth_manifest::load_files(std::slice::from_ref(&self.manifest)) {
            Ok(w) => w,
            Err(errors) => {
                eprintln!("{errors}");
                tracing::error!("the manifest is invalid; still serving the last good version");
                return;
            }
        };
        let parts: Vec<String> = changed.iter().map(|p| p.part.clone()).collect();
        if !parts.is_empty() {
            tracing::info!(parts = %parts.join(", "), "rebuilding");
            if let Err(e) = crate::build::build_for_dev(&self.manifest, Some(&parts)) {
                eprintln!("{e}");
                tracing::error!("build failed; still serving the last good version");
                return;
            }
        }
        self.apply(&workloads).await;
    }

    /// Makes what runs match `workloads`: applies each (the lifecycle leaves unchanged ones
    /// alone and keeps services whose image and spec did not change), deletes the rest.
    async fn apply(&mut self, workloads: &[Workload]) {
        for w in workloads {
            match self.workloads.apply(w.clone()).await {
                Ok((applied, _)) => {
                    tracing::info!(workload = %w.name, result = applied.as_str(), "applied")
                }
                Err(e) => {
                    eprintln!("{e}");
                    tracing::error!(workload = %w.name, "deploy failed; keeping the last good version");
                }
            }
        }
        for gone in self.workloads.list() {
            if !workloads.iter().any(|w| *w.name == *gone.name) {
                tracing::info!(workload = %gone.name, "removed from the manifest; deleting");
                self.workloads.delete(&gone.name).await;
            }
        }
    }
}

/// The state of every watched source tree: per part, the newest modification time and the
/// number of files under its watch roots (build outputs and hidden directories ignored).
#[derive(Debug, PartialEq, Eq)]
struct Sources {
    manifest: Option<SystemTime>,
    parts: BTreeMap<PartId, (Option<SystemTime>, usize)>,
}

impl Sources {
    fn scan(manifest: &Path, workloads: &[Workload]) -> Self {
        let mut parts = BTreeMap::new();
        for w in workloads {
            let base = w
                .source
                .file
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf();
            let mut add = |part: &str, roots: Vec<PathBuf>| {
                let mut newest = None;
                let mut count = 0;
                for root in roots {
                    walk(&root, &mut newest, &mut count);
                }
                parts.insert(
                    PartId {
                        workload: w.name.clone(),
                        part: part.to_string(),
                    },
                    (newest, count),
                );
            };
            for c in &w.spec.components {
                add(&c.name, crate::build::watch_roots(&base, c.build.as_ref()));
            }
            if let Some(s) = &w.spec.service {
                add(
                    "service",
                    crate::build::watch_roots(&base, s.build.as_ref()),
                );
            }
        }
        Self {
            manifest: std::fs::metadata(manifest).and_then(|m| m.modified()).ok(),
            parts,
        }
    }

    /// Parts whose sources differ from `before`.
    fn changed_parts(&self, before: &Sources) -> Vec<PartId> {
        self.parts
            .iter()
            .filter(|(id, state)| before.parts.get(*id) != Some(*state))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Newest mtime and file count under `path`, skipping `target/`, hidden entries and `.wasm`
/// outputs.
fn walk(path: &Path, newest: &mut Option<SystemTime>, count: &mut usize) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_file() {
        *count += 1;
        if let Ok(m) = meta.modified() {
            *newest = (*newest).max(Some(m));
        }
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name.ends_with(".wasm") {
            continue;
        }
        walk(&entry.path(), newest, count);
    }
}
