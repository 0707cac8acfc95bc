//! The custom resources. Their specs are the manifest's spec types, so a `WorkloadDeployment`
//! applied with `kubectl` and one applied with `hearth apply --cluster` are the same document;
//! their schemas come from those types (`hearth-manifest`, feature `crd`).

// `printcolumn(...)` is a list of kube-derive attributes, not a repeated Rust attribute.
#![allow(clippy::duplicated_attributes)]

use hearth_manifest::{
    ComponentSpec, HostInterfaceSpec, LinkSpec, ServiceSpec, Strategy, Template,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group of every hearth resource.
pub const GROUP: &str = "hearth.dev";

/// `spec` of a `WorkloadDeployment`: the manifest's `WorkloadDeployment` spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "hearth.dev",
    version = "v1alpha1",
    kind = "WorkloadDeployment",
    namespaced,
    shortname = "wd",
    category = "hearth",
    status = "WorkloadDeploymentStatus",
    doc = "A workload template, a replica count and a rollout strategy; each replica runs on a hearth host.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "DESIRED", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "READY", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "UP-TO-DATE",
        type_ = "integer",
        json_path = ".status.updatedReplicas"
    ),
    printcolumn(
        name = "AVAILABLE",
        type_ = "integer",
        json_path = ".status.availableReplicas"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadDeploymentSpec {
    /// How many replicas to run.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub replicas: u32,
    /// How replicas move to a new template.
    #[serde(default)]
    pub strategy: Strategy,
    /// Labels a host must carry to run a replica.
    #[serde(default)]
    pub host_selector: BTreeMap<String, String>,
    /// What each replica runs.
    pub template: Template,
}

fn one() -> u32 {
    1
}

/// What the operator observed of a `WorkloadDeployment`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadDeploymentStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Replicas that exist (any state).
    #[serde(default)]
    pub replicas: u32,
    #[serde(default)]
    pub ready_replicas: u32,
    /// Replicas running the current template.
    #[serde(default)]
    pub updated_replicas: u32,
    /// Ready replicas running the current template.
    #[serde(default)]
    pub available_replicas: u32,
    /// The label selector of its `Workload`s, for the scale subresource (and autoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One condition, in the Kubernetes shape.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Available`, `Progressing`, `ReplicaFailure` or `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    /// A CamelCase word for machines.
    pub reason: String,
    /// A sentence for people.
    #[serde(default)]
    pub message: String,
    /// The generation of the object this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// `spec` of a `Workload`: one copy of a workload, the manifest's `Workload` spec. The
/// operator creates one per replica of a deployment (owned by it); one applied on its own runs
/// a single replica.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "hearth.dev",
    version = "v1alpha1",
    kind = "Workload",
    namespaced,
    shortname = "wl",
    category = "hearth",
    status = "WorkloadStatus",
    doc = "One copy of a workload on one hearth host: its components, its service and the host interfaces they use.",
    printcolumn(name = "HOST", type_ = "string", json_path = ".status.host"),
    printcolumn(name = "STATE", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// The stateless components, each instantiated fresh per invocation.
    #[serde(default)]
    pub components: Vec<ComponentSpec>,
    /// The workload's one long-running service, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,
    /// Which component serves an import that several components export.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkSpec>,
    /// Backends of the host interfaces every part imports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_interfaces: Vec<HostInterfaceSpec>,
}

/// Where a `Workload` runs and how it is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// The hearth host it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `pending`, `starting`, `ready`, `failed` or `stopping`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The template revision it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// `spec` of a `Host`: a hearth host the operator has heard from. Created and updated by the
/// operator from heartbeats; liveness stays in NATS, so the status changes on transitions only.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "hearth.dev",
    version = "v1alpha1",
    kind = "Host",
    shortname = "hh",
    category = "hearth",
    status = "HostStatus",
    doc = "A hearth host as its heartbeats describe it.",
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "HTTP", type_ = "string", json_path = ".status.http"),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HostSpec {
    /// The host's id in the cluster (`hearth host --host-id`).
    pub host_id: String,
}

/// What a host's heartbeats say.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where its HTTP ingress is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub capacity: HostCapacity,
    /// Host interfaces and backends it offers, as `package=backend`.
    #[serde(default)]
    pub offers: Vec<String>,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A host's room, as of the transition that last changed its status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostCapacity {
    #[serde(default)]
    pub cores: u32,
    #[serde(default)]
    pub memory_total_bytes: u64,
    #[serde(default)]
    pub max_replicas: u32,
    #[serde(default)]
    pub pool_size: u32,
}

/// Every CRD, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![WorkloadDeployment::crd(), Workload::crd(), Host::crd()]
}

/// The CRDs as one YAML stream, as `hearth operator crd` prints and `deploy/crds.yaml`
/// holds.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::from(
        "# Generated by `hearth operator crd` from the Rust types in crates/operator/src/crd.rs.\n# Do not edit: a test checks this file against the generator.\n",
    );
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
