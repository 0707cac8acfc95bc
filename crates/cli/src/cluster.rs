//! The cluster side of the client commands: `apply`, `delete`, `get` and `scale` with
//! `--cluster URL` talk to the cluster's store in NATS instead of one host's admin API, and
//! `hearth controller` runs a controller.
//!
//! Desired state goes to the store with revision checks: two clients applying the same
//! deployment at once cannot both win; the second is told and nothing is lost.

use crate::get::Output;
use crate::{EXIT_FAILED, EXIT_INVALID};
use hearth_cluster::controller::{Controller, ControllerConfig};
use hearth_cluster::nats::NatsAuth;
use hearth_cluster::protocol::{self, Heartbeat, subject};
use hearth_cluster::store::{DeploymentRecord, DeploymentStatus, Store, StoreError};
use hearth_manifest::WorkloadKind;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// `--cluster URL` and the NATS credentials of the client commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArgs {
    /// Talk to the cluster behind this NATS URL (comma-separated servers) instead of one
    /// host's admin API.
    #[arg(long = "cluster", env = "HEARTH_CLUSTER", value_name = "URL")]
    pub url: Option<String>,
    #[command(flatten)]
    pub auth: NatsAuth,
}

/// Runs `f` on a small runtime of its own.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(f))
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// The exit status of a command run item by item: `Ok(false)` when every item went well,
/// `Ok(true)` when one failed (and said so), `Err` when the command as a whole failed.
fn exit_status(result: Result<Result<bool, String>, String>) -> ExitCode {
    match result.and_then(|r| r) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(EXIT_FAILED),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn open(cluster: &ClusterArgs) -> Result<(async_nats::Client, Store), String> {
    let url = cluster.url.as_deref().unwrap_or_default();
    let client = cluster.auth.connect(url, "hearth-cli").await?;
    let replicas = Store::default_replicas(&client);
    let store = Store::open(&client, replicas)
        .await
        .map_err(|e| e.to_string())?;
    Ok((client, store))
}

fn kind_word(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Workload => "workload",
        WorkloadKind::WorkloadDeployment => "workloaddeployment",
    }
}

/// `hearth apply -f FILE... --cluster URL`: every document, validated here, goes to the
/// store with its `oci://` tags pinned to digests; one line per document.
pub fn apply(
    mut documents: Vec<(String, hearth_manifest::Workload, Value)>,
    cluster: &ClusterArgs,
) -> ExitCode {
    match block_on(pin_images(&mut documents)) {
        Ok(Ok(())) => {}
        Ok(Err(errors)) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_FAILED);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    }
    let plaintext = cluster.auth.nats_ca.is_none()
        && !cluster
            .url
            .as_deref()
            .unwrap_or_default()
            .starts_with("tls://");
    let mut prepared = Vec::new();
    for (label, workload, json) in documents {
        if plaintext && carries_config(&json) {
            eprintln!(
                "warning: {label}: `{}` has config values, which travel to hosts inside NATS messages: use TLS to NATS (--nats-ca, tls://) wherever others can reach it",
                workload.name
            );
        }
        match hearth_cluster::deployment::prepare(Path::new(&label), json) {
            Ok(p) => prepared.push((workload.kind, p)),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(EXIT_INVALID);
            }
        }
    }
    let result = block_on(async {
        let (_client, store) = open(cluster).await?;
        let existing = store.list().await.map_err(|e| e.to_string())?;
        let mut failed = false;
        for (kind, p) in prepared {
            if let Some(message) = route_clash(&p, &existing) {
                eprintln!("error: {}/{}: {message}", kind_word(kind), p.name);
                failed = true;
                continue;
            }
            match store.apply(&p.name, &p.revision, p.document).await {
                Ok((applied, _)) => println!("{}/{} {}", kind_word(kind), p.name, applied.as_str()),
                Err(e @ (StoreError::Conflict { .. } | StoreError::Invalid(_))) => {
                    eprintln!("error: {}/{}: {e}", kind_word(kind), p.name);
                    failed = true;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(failed)
    });
    exit_status(result)
}

/// Whether a document has a non-empty `config` mapping anywhere (a part's values, or a
/// backend's settings).
fn carries_config(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| {
            (k == "config" && v.as_object().is_some_and(|m| !m.is_empty())) || carries_config(v)
        }),
        Value::Array(items) => items.iter().any(carries_config),
        _ => false,
    }
}

/// Replaces every `oci://` tag in `documents` with the digest it points to now, so every
/// replica on every host runs the same bytes whenever it starts. Resolving pulls the image
/// (into this machine's cache), which also checks that it exists and is a component.
async fn pin_images(
    documents: &mut [(String, hearth_manifest::Workload, Value)],
) -> Result<(), hearth_manifest::ManifestErrors> {
    use hearth_manifest::{ImageRef, ManifestError, PullPolicy};
    let oci = hearth_oci::Oci::new(hearth_oci::OciOptions::from_env());
    let mut errors = Vec::new();
    for (_, workload, json) in documents.iter_mut() {
        let spec = format!("/{}", workload.source.spec_path.replace('.', "/"));
        let mut images: Vec<(String, String, ImageRef)> = workload
            .spec
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    format!("{spec}/components/{i}/image"),
                    workload.source.field(&format!("components[{i}].image")),
                    c.image_ref(&workload.source),
                )
            })
            .collect();
        if let Some(s) = &workload.spec.service {
            images.push((
                format!("{spec}/service/image"),
                workload.source.field("service.image"),
                s.image_ref(&workload.source),
            ));
        }
        for (pointer, field, image) in images {
            let ImageRef::Oci { mut reference, .. } = image else {
                continue;
            };
            if reference.digest.is_some() {
                continue;
            }
            match oci.pull(&reference, PullPolicy::Always).await {
                Ok(pulled) => {
                    reference.digest = Some(pulled.digest);
                    if let Some(slot) = json.pointer_mut(&pointer) {
                        *slot =
                            Value::String(format!("{}{reference}", hearth_manifest::OCI_SCHEME));
                    }
                }
                Err(e) => errors.push(ManifestError {
                    file: workload.source.file.clone(),
                    document: workload.source.document_label(),
                    path: field,
                    message: format!(
                        "cannot pin `oci://{reference}` to a digest for the cluster: {e}"
                    ),
                }),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(hearth_manifest::ManifestErrors(errors))
    }
}

/// Why `p` cannot join the deployments already in the store, if it cannot.
fn route_clash(
    p: &hearth_cluster::deployment::Prepared,
    existing: &[DeploymentRecord],
) -> Option<String> {
    existing
        .iter()
        .filter(|r| r.name != p.name)
        .filter_map(|r| {
            let other = hearth_cluster::deployment::parse(Path::new(&r.name), &r.document).ok()?;
            let (field, route) = hearth_cluster::deployment::route_clash(&p.workload, &other)?;
            Some(format!(
                "{field}: route `{route}` is already served by deployment `{}`: expected each host and path pair once in a cluster",
                r.name
            ))
        })
        .next()
}

/// `hearth delete NAME... --cluster URL`.
pub fn delete(names: &[String], cluster: &ClusterArgs) -> ExitCode {
    let result = block_on(async {
        let (_client, store) = open(cluster).await?;
        let mut failed = false;
        for name in names {
            let kind = match store.get(name).await.map_err(|e| e.to_string())? {
                Some((record, _)) => match record.document.get("kind").and_then(Value::as_str) {
                    Some("Workload") => "workload",
                    _ => "workloaddeployment",
                },
                None => {
                    eprintln!("error: workloaddeployment/{name} not found");
                    failed = true;
                    continue;
                }
            };
            match store.delete(name).await {
                Ok(_) => println!("{kind}/{name} deleted"),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(failed)
    });
    exit_status(result)
}

/// `hearth scale NAME --replicas N --cluster URL`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// The deployment.
    pub name: String,
    /// The replica count wanted.
    #[arg(long, value_name = "N")]
    pub replicas: u32,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn scale(args: &ScaleArgs) -> ExitCode {
    if args.cluster.url.is_none() {
        eprintln!("error: scale works on a cluster: pass --cluster nats://HOST:4222");
        return ExitCode::from(EXIT_INVALID);
    }
    if args.replicas == 0 {
        eprintln!("error: --replicas: expected at least 1 (delete the deployment to run none)");
        return ExitCode::from(EXIT_INVALID);
    }
    let result = block_on(async {
        let (_client, store) = open(&args.cluster).await?;
        store
            .scale(&args.name, args.replicas)
            .await
            .map_err(|e| e.to_string())
    });
    match result.and_then(|r| r) {
        Ok((applied, _)) => {
            let word = match applied {
                hearth_cluster::store::Applied::Unchanged => "unchanged",
                _ => "scaled",
            };
            println!("workloaddeployment/{} {word}", args.name);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// What `hearth get --cluster` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Deployments,
    Replicas,
    Hosts,
}

fn resource(word: Option<&str>) -> Result<Resource, String> {
    match word {
        Some("deployments" | "deployment" | "deploy" | "wd" | "workloaddeployments") | None => {
            Ok(Resource::Deployments)
        }
        Some("replicas" | "replica") => Ok(Resource::Replicas),
        Some("hosts" | "host") => Ok(Resource::Hosts),
        Some(other) => Err(format!(
            "`{other}`: expected `deployments`, `replicas` or `hosts`"
        )),
    }
}

/// `hearth get deployments|replicas|hosts [NAME] --cluster URL`.
pub fn get(
    what: Option<&str>,
    name: Option<&str>,
    output: Option<Output>,
    cluster: &ClusterArgs,
) -> ExitCode {
    let resource = match resource(what) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let result = block_on(async {
        let (client, store) = open(cluster).await?;
        match resource {
            Resource::Hosts => Ok(hosts_value(&heartbeats(&client).await)),
            Resource::Deployments | Resource::Replicas => {
                let mut rows = Vec::new();
                for record in store.list().await.map_err(|e| e.to_string())? {
                    if name.is_some_and(|n| n != record.name) {
                        continue;
                    }
                    let status = store
                        .status(&record.name)
                        .await
                        .map_err(|e| e.to_string())?;
                    rows.push(deployment_value(&record, status.as_ref()));
                }
                if let Some(n) = name
                    && rows.is_empty()
                {
                    return Err(format!("deployment/{n} not found"));
                }
                Ok(Value::Array(rows))
            }
        }
    });
    let value = match result.and_then(|r| r) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let wide = output == Some(Output::Wide);
    let text = match output {
        Some(Output::Json) => serde_json::to_string_pretty(&value).unwrap_or_default() + "\n",
        Some(Output::Yaml) => serde_yaml::to_string(&value).unwrap_or_default(),
        _ => match resource {
            Resource::Deployments => deployments_table(&value, wide),
            Resource::Replicas => replicas_table(&value, wide),
            Resource::Hosts => hosts_table(&value, wide),
        },
    };
    print!("{text}");
    ExitCode::SUCCESS
}

/// The heartbeats heard within a little more than one period, one per host.
async fn heartbeats(client: &async_nats::Client) -> Vec<Heartbeat> {
    let Ok(mut sub) = client.subscribe(subject::heartbeats()).await else {
        return Vec::new();
    };
    one_period(&mut sub).await
}

/// What `heartbeats` (a heartbeat subscription) brings within a little more than one
/// heartbeat period: every live host once, its latest.
pub(crate) async fn one_period(heartbeats: &mut async_nats::Subscriber) -> Vec<Heartbeat> {
    use futures::StreamExt;
    let mut seen = BTreeMap::new();
    let deadline =
        tokio::time::sleep(hearth_cluster::agent::HEARTBEAT_EVERY + Duration::from_millis(300));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            Some(message) = heartbeats.next() => {
                if let Ok(hb) = protocol::decode::<Heartbeat>(&message.payload) {
                    seen.insert(hb.host_id.clone(), hb);
                }
            }
        }
    }
    seen.into_values().collect()
}

fn deployment_value(record: &DeploymentRecord, status: Option<&DeploymentStatus>) -> Value {
    let desired = record
        .document
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let mut value = json!({
        "name": record.name,
        "kind": record.document.get("kind").cloned().unwrap_or(Value::Null),
        "generation": record.generation,
        "revision": record.revision,
        "replicas": desired,
        "spec": record.document.get("spec").cloned().unwrap_or(Value::Null),
    });
    if let Some(s) = status {
        value["status"] = serde_json::to_value(s).unwrap_or(Value::Null);
    }
    value
}

fn hosts_value(heartbeats: &[Heartbeat]) -> Value {
    Value::Array(
        heartbeats
            .iter()
            .map(|hb| serde_json::to_value(hb).unwrap_or(Value::Null))
            .collect(),
    )
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn deployments_table(value: &Value, wide: bool) -> String {
    let mut header = vec![
        "NAME",
        "DESIRED",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "GENERATION",
    ];
    if wide {
        header.extend(["REVISION", "CONDITIONS"]);
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for d in value.as_array().map_or(&[][..], Vec::as_slice) {
        let s = &d["status"];
        let mut row = vec![
            cell(&d["name"]),
            cell(&d["replicas"]),
            cell(&s["readyReplicas"]),
            cell(&s["updatedReplicas"]),
            cell(&s["availableReplicas"]),
            cell(&d["generation"]),
        ];
        if wide {
            row.push(cell(&d["revision"]));
            let conditions: Vec<String> = s["conditions"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter(|c| c["status"] == "True")
                .map(|c| format!("{}({})", cell(&c["type"]), cell(&c["reason"])))
                .collect();
            row.push(if conditions.is_empty() {
                "-".into()
            } else {
                conditions.join(",")
            });
        }
        rows.push(row);
    }
    crate::table::render(&rows)
}

fn replicas_table(value: &Value, wide: bool) -> String {
    let mut header = vec!["NAME", "DEPLOYMENT", "HOST", "STATE"];
    if wide {
        header.extend(["REVISION", "MESSAGE"]);
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for d in value.as_array().map_or(&[][..], Vec::as_slice) {
        for p in d["status"]["placements"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
        {
            let mut row = vec![
                cell(&p["replica"]),
                cell(&d["name"]),
                cell(&p["host"]),
                cell(&p["state"]),
            ];
            if wide {
                row.push(cell(&p["revision"]));
                row.push(cell(&p["message"]));
            }
            rows.push(row);
        }
    }
    crate::table::render(&rows)
}

fn hosts_table(value: &Value, wide: bool) -> String {
    let mut header = vec!["NAME", "REPLICAS", "HTTP", "LABELS"];
    if wide {
        header.extend(["CORES", "MEMORY-FREE", "POOL", "VERSION"]);
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for h in value.as_array().map_or(&[][..], Vec::as_slice) {
        let labels: Vec<String> = h["labels"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect())
            .unwrap_or_default();
        let capacity = &h["capacity"];
        let mut row = vec![
            cell(&h["hostId"]),
            format!(
                "{}/{}",
                h["replicas"].as_array().map_or(0, Vec::len),
                cell(&capacity["maxReplicas"])
            ),
            cell(&h["http"]),
            if labels.is_empty() {
                "-".into()
            } else {
                labels.join(",")
            },
        ];
        if wide {
            row.push(cell(&capacity["cores"]));
            row.push(format!(
                "{} MiB",
                capacity["memoryFreeBytes"].as_u64().unwrap_or(0) >> 20
            ));
            row.push(format!(
                "{}/{}",
                cell(&capacity["poolInUse"]),
                cell(&capacity["poolSize"])
            ));
            row.push(cell(&h["version"]));
        }
        rows.push(row);
    }
    crate::table::render(&rows)
}

/// `hearth controller`.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long = "nats", env = "HEARTH_NATS", value_name = "URL")]
    pub nats: String,
    #[command(flatten)]
    pub auth: NatsAuth,
    /// This controller's name in the leader lease; default: host name and process id.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Copies of the store's buckets when this controller creates them; default: 3 when
    /// the NATS cluster has three nodes or more, else 1.
    #[arg(long, value_name = "N")]
    pub store_replicas: Option<usize>,
    /// Serve Prometheus metrics (hosts and their heartbeat age, replicas desired and ready,
    /// reschedules, leadership) at `GET /metrics` on this address, e.g. `127.0.0.1:9100`.
    /// No token: keep it on loopback or a private network. Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: crate::logging::LogFormat,
}

pub fn controller(args: ControllerArgs) -> ExitCode {
    crate::logging::init(args.log_format);
    let result = block_on(async move {
        let id = args.id.clone().unwrap_or_else(default_id);
        let client = args
            .auth
            .connect_forever(&args.nats, &format!("hearth-controller-{id}"))
            .await?;
        // The store needs JetStream: wait for it rather than fail while NATS starts.
        let store = loop {
            let replicas = args
                .store_replicas
                .unwrap_or_else(|| Store::default_replicas(&client));
            match Store::open(&client, replicas).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(error = %e, "the store is not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        tracing::info!(%id, "controller started");
        let controller = Controller::new(ControllerConfig::new(id.clone()), client, store);
        if let Some(addr) = args.metrics {
            let view = std::sync::Arc::clone(&controller);
            crate::metrics::serve(addr, "controller", &id, move || view.collect_metrics()).await?;
        }
        controller.run(crate::run::shutdown_signal()).await;
        Ok::<(), String>(())
    });
    exit_on(result)
}

/// A long-running process's name when none is given: host name and process id.
pub(crate) fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

/// The exit status of a long-running command: success, or its error printed.
pub(crate) fn exit_on(result: Result<Result<(), String>, String>) -> ExitCode {
    match result.and_then(|r| r) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
