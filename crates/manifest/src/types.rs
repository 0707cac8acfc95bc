//! The manifest's types, as read from YAML.
//!
//! The wire shapes ([`WorkloadDocument`], [`DeploymentDocument`]) mirror the Kubernetes
//! resources one-to-one so the same file can later be applied to a cluster; [`Workload`] is the
//! normalised form the rest of hearth consumes, whichever kind the document was.

use crate::image::{OCI_SCHEME, OciReference, PullPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Default memory limit of one component instance.
pub const DEFAULT_MEMORY_MIB: u32 = 64;
/// Default deadline of one invocation.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default number of instances of one component that may run at once.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 256;
/// Default most resources (handles, streams, pollables) one component instance may hold.
pub const DEFAULT_MAX_RESOURCES: u32 = 10_000;
/// Default most resources a service may hold: it keeps many connections for a long time.
pub const DEFAULT_SERVICE_MAX_RESOURCES: u32 = 100_000;
/// Default largest request body one component accepts (16 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024;

/// A workload, normalised from either manifest kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// `metadata.name`.
    pub name: String,
    /// Which kind the document was.
    pub kind: WorkloadKind,
    /// `spec.replicas` of a `WorkloadDeployment`; 1 for a `Workload`.
    pub replicas: u32,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.strategy` of a `WorkloadDeployment`: how replicas move to a new version.
    pub strategy: Strategy,
    /// `spec.hostSelector` of a `WorkloadDeployment`: labels a host must carry to run it.
    pub host_selector: BTreeMap<String, String>,
    /// The workload itself.
    pub spec: WorkloadSpec,
    /// Where the document came from.
    pub source: Source,
}

/// The file (and document within it) a workload was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// The manifest file.
    pub file: PathBuf,
    /// 0-based index of the YAML document within the file.
    pub document: usize,
    /// How many documents the file has; messages number documents only when it is several.
    pub documents_in_file: usize,
    /// The field path prefix of the workload spec inside the document (`spec` or
    /// `spec.template.spec`), for error messages raised after parsing.
    pub spec_path: &'static str,
}

impl Workload {
    /// The deployment this workload is a replica of (its `hearth.dev/deployment` label).
    pub fn deployment(&self) -> Option<&str> {
        self.labels.get(crate::DEPLOYMENT_LABEL).map(String::as_str)
    }
}

impl Source {
    /// The document number to show in messages, if the file has several.
    pub fn document_label(&self) -> Option<usize> {
        (self.documents_in_file > 1).then_some(self.document)
    }

    /// The directory relative image paths are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    /// A field path under this workload's spec, e.g. `spec.components[1].image`.
    pub fn field(&self, rest: &str) -> String {
        format!("{}.{rest}", self.spec_path)
    }
}

/// The two resource kinds a manifest document may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// A single workload.
    Workload,
    /// A workload with a replica count, `spec.template.spec` holding the workload.
    WorkloadDeployment,
}

/// `kind: Workload`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadDocument {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: WorkloadSpec,
}

/// `kind: WorkloadDeployment`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentDocument {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: DeploymentSpec,
}

/// `spec` of a `WorkloadDeployment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    #[serde(default = "one")]
    pub replicas: u32,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub host_selector: BTreeMap<String, String>,
    pub template: Template,
}

/// `spec.strategy`: how a deployment's replicas move to a new version, as in a Kubernetes
/// Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Strategy {
    /// New replicas start next to old ones, within `maxSurge` extra and `maxUnavailable`
    /// missing ready replicas.
    RollingUpdate {
        #[serde(default, rename = "rollingUpdate")]
        rolling_update: RollingUpdate,
    },
    /// Every old replica stops before new ones start.
    Recreate,
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::RollingUpdate {
            rolling_update: RollingUpdate::default(),
        }
    }
}

/// `spec.strategy.rollingUpdate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdate {
    #[serde(default = "quarter")]
    pub max_surge: IntOrPercent,
    #[serde(default = "quarter")]
    pub max_unavailable: IntOrPercent,
}

impl Default for RollingUpdate {
    fn default() -> Self {
        Self {
            max_surge: quarter(),
            max_unavailable: quarter(),
        }
    }
}

fn quarter() -> IntOrPercent {
    IntOrPercent::Percent("25%".into())
}

/// A count, either absolute (`1`) or a share of the replicas (`"25%"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    Int(u32),
    Percent(String),
}

impl IntOrPercent {
    /// The count for `replicas`: a percentage rounds up when `round_up` (Kubernetes rounds
    /// `maxSurge` up and `maxUnavailable` down). `None` for a malformed percentage.
    pub fn resolve(&self, replicas: u32, round_up: bool) -> Option<u32> {
        match self {
            IntOrPercent::Int(n) => Some(*n),
            IntOrPercent::Percent(text) => {
                let pct: u64 = text.strip_suffix('%')?.trim().parse().ok()?;
                let scaled = u64::from(replicas) * pct;
                let n = if round_up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                };
                u32::try_from(n).ok()
            }
        }
    }
}

fn one() -> u32 {
    1
}

/// `spec.template` of a `WorkloadDeployment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Template {
    #[serde(default)]
    pub metadata: Option<TemplateMetadata>,
    pub spec: WorkloadSpec,
}

/// `spec.template.metadata`: only labels make sense on a template.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateMetadata {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `metadata`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// What a workload is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// The stateless components, each instantiated fresh per invocation.
    #[serde(default)]
    pub components: Vec<ComponentSpec>,
    /// The workload's one long-running service, if any.
    #[serde(default)]
    pub service: Option<ServiceSpec>,
    /// Which component serves an import that several components export.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Backends of the host interfaces every part of the workload imports; a component or
    /// the service may override an entry with its own `hostInterfaces`.
    #[serde(default)]
    pub host_interfaces: Vec<HostInterfaceSpec>,
}

/// `hostInterfaces[]`: which backend serves a host interface, and how it is reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostInterfaceSpec {
    /// The interface or its package: `wasi:keyvalue/store`, `wasi:keyvalue`,
    /// `wasmcloud:messaging/consumer`, ... (a version suffix is accepted and ignored).
    pub interface: String,
    /// The backend's name: `memory`, `filesystem`, `redis`, `nats`.
    pub backend: String,
    /// The backend's own settings (`path`, `url`, ...); checked by the backend.
    #[serde(default)]
    #[cfg_attr(
        feature = "crd",
        schemars(schema_with = "crate::schema::free_form_map")
    )]
    pub config: BTreeMap<String, serde_yaml::Value>,
}

/// `spec.links[]`: pins an imported interface to the component that serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkSpec {
    /// The interface, `ns:pkg/iface` with an optional `@version`.
    pub import: String,
    /// The component (by name) that exports it.
    pub component: String,
}

/// Default memory limit of a service: it keeps state, so more than a component's.
pub const DEFAULT_SERVICE_MEMORY_MIB: u32 = 256;

/// The long-running, stateful part of a workload: a `wasi:cli/run` component that is the
/// workload's `localhost`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// Path of the `.wasm` file, relative to the manifest, or an `oci://` reference.
    pub image: String,
    /// When an `oci://` image is fetched from its registry (default `IfNotPresent`).
    #[serde(default)]
    pub image_pull_policy: Option<PullPolicy>,
    /// Environment variables the guest sees.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Configuration values served by `wasi:config/store`; a value may reference
    /// `${env:NAME}` or `${file:path}`, resolved at deploy.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Ports the service listens on in the workload's network, optionally published on the host.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// What happens when the service exits.
    #[serde(default)]
    pub restart: RestartSpec,
    /// Where the service may connect outside its workload (deny by default).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(default)]
    pub limits: ServiceLimits,
    /// Backends for the service alone, overriding the workload's `hostInterfaces`.
    #[serde(default)]
    pub host_interfaces: Vec<HostInterfaceSpec>,
    /// How `hearth build` produces `image`; absent = `cargo` in the manifest's directory.
    #[serde(default)]
    pub build: Option<BuildSpec>,
}

/// One port of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// The port the service listens on inside the workload.
    pub port: u16,
    /// A host port whose connections are spliced into `port`.
    #[serde(default)]
    pub publish: Option<u16>,
}

/// Restart behaviour of a service, after Kubernetes' pod restart policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartSpec {
    #[serde(default)]
    pub policy: RestartPolicy,
    /// Restarts allowed before the service is left `failed`; absent = unlimited.
    #[serde(default)]
    pub max_restarts: Option<u32>,
}

impl Default for RestartSpec {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::OnFailure,
            max_restarts: None,
        }
    }
}

/// When a service is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// After any exit, clean or not.
    Always,
    /// After a crash (trap, non-zero exit, `run` returning an error); a clean exit completes.
    #[default]
    OnFailure,
    /// Never.
    Never,
}

/// Resource limits of a service instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceLimits {
    /// Linear memory limit in MiB.
    #[serde(rename = "memoryMiB", default = "default_service_memory")]
    pub memory_mib: u32,
    /// Most resources (handles, streams, pollables, sockets) held at once; past it the
    /// guest's call fails and the incarnation ends, named in the service's last exit.
    #[serde(default = "default_service_max_resources")]
    pub max_resources: u32,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            memory_mib: DEFAULT_SERVICE_MEMORY_MIB,
            max_resources: DEFAULT_SERVICE_MAX_RESOURCES,
        }
    }
}

fn default_service_memory() -> u32 {
    DEFAULT_SERVICE_MEMORY_MIB
}
fn default_service_max_resources() -> u32 {
    DEFAULT_SERVICE_MAX_RESOURCES
}

/// One stateless component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentSpec {
    /// Unique within the workload; a DNS label.
    pub name: String,
    /// Path of the `.wasm` file, relative to the manifest, or an `oci://` reference.
    pub image: String,
    /// When an `oci://` image is fetched from its registry (default `IfNotPresent`).
    #[serde(default)]
    pub image_pull_policy: Option<PullPolicy>,
    /// Route HTTP requests to this component.
    #[serde(default)]
    pub http: Option<HttpRoute>,
    #[serde(default)]
    pub limits: Limits,
    /// Environment variables the guest sees.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Configuration values served by `wasi:config/store`; a value may reference
    /// `${env:NAME}` or `${file:path}`, resolved at deploy.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Where the component may connect outside its workload (deny by default).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Backends for this component alone, overriding the workload's `hostInterfaces`.
    #[serde(default)]
    pub host_interfaces: Vec<HostInterfaceSpec>,
    /// Messaging subjects whose messages invoke this component's
    /// `wasmcloud:messaging/handler` export, each on a fresh instance.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// How `hearth build` produces `image`; absent = `cargo` in the manifest's directory.
    #[serde(default)]
    pub build: Option<BuildSpec>,
}

/// `build`: how `hearth build` (and `hearth dev`) turn a part's sources into its `image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildSpec {
    /// The source directory, relative to the manifest; default `.`. Without `command` it must
    /// hold a `Cargo.toml`, and `cargo build --release --target wasm32-wasip2` runs there.
    #[serde(default = "current_dir")]
    pub path: String,
    /// A shell command (run with `sh -c` in `path`) that writes `image`, for languages other
    /// than Rust.
    #[serde(default)]
    pub command: Option<String>,
    /// Files, directories or globs (relative to the manifest) whose changes trigger a rebuild
    /// in `hearth dev`; absent = everything under `path` except `target/`.
    #[serde(default)]
    pub watch: Option<Vec<String>>,
}

impl Default for BuildSpec {
    fn default() -> Self {
        Self {
            path: current_dir(),
            command: None,
            watch: None,
        }
    }
}

fn current_dir() -> String {
    ".".to_string()
}

impl BuildSpec {
    /// `path` resolved against the directory of the manifest it came from.
    pub fn dir(&self, source: &Source) -> PathBuf {
        let path = Path::new(&self.path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            source.base_dir().join(path)
        }
    }
}

/// Which HTTP requests reach a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// Matches the request's `Host` (port ignored, case-insensitive); absent matches any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix, matched on segment boundaries; the longest matching prefix wins.
    #[serde(default = "root_path")]
    pub path: String,
}

fn root_path() -> String {
    "/".to_string()
}

/// Resource limits of one component instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Linear memory limit in MiB.
    #[serde(rename = "memoryMiB", default = "default_memory")]
    pub memory_mib: u32,
    /// Deadline of one invocation, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Instances allowed to run at once; further requests queue briefly, then get `503`.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    /// Largest request body accepted, in bytes: a larger `Content-Length` gets `413` before
    /// any instance starts, and a body that streams past it ends in an error to the guest
    /// and `413` to the client.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u64,
    /// Most resources (handles, streams, pollables) one instance holds at once; past it the
    /// guest's call fails and the request gets `500`, logged with the limit named.
    #[serde(default = "default_max_resources")]
    pub max_resources: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: DEFAULT_MEMORY_MIB,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_resources: DEFAULT_MAX_RESOURCES,
        }
    }
}

fn default_memory() -> u32 {
    DEFAULT_MEMORY_MIB
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_concurrency() -> u32 {
    DEFAULT_MAX_CONCURRENCY
}
fn default_max_request_bytes() -> u64 {
    DEFAULT_MAX_REQUEST_BYTES
}
fn default_max_resources() -> u32 {
    DEFAULT_MAX_RESOURCES
}

/// Where a component's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A local file, already resolved against the manifest's directory.
    File(PathBuf),
    /// An artifact in an OCI registry (`image: oci://...`), fetched per `policy`.
    Oci {
        reference: OciReference,
        policy: PullPolicy,
    },
}

impl ComponentSpec {
    /// Resolves `image` against the directory of the manifest it came from.
    pub fn image_ref(&self, source: &Source) -> ImageRef {
        resolve_image(&self.image, self.image_pull_policy, source)
    }
}

impl ServiceSpec {
    /// Resolves `image` against the directory of the manifest it came from.
    pub fn image_ref(&self, source: &Source) -> ImageRef {
        resolve_image(&self.image, self.image_pull_policy, source)
    }
}

/// An `oci://` value that does not parse (validation refuses those before anyone asks) is
/// returned as a file path, so reading it fails naming the value.
fn resolve_image(image: &str, policy: Option<PullPolicy>, source: &Source) -> ImageRef {
    if image.starts_with(OCI_SCHEME)
        && let Ok(reference) = OciReference::parse(image)
    {
        return ImageRef::Oci {
            reference,
            policy: policy.unwrap_or_default(),
        };
    }
    let path = Path::new(image);
    if path.is_absolute() {
        ImageRef::File(path.to_path_buf())
    } else {
        ImageRef::File(source.base_dir().join(path))
    }
}
