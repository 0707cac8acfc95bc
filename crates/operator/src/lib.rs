//! hearth on Kubernetes.
//!
//! - [`crd`]: the custom resources in group `hearth.dev`, version `v1alpha1`, generated from
//!   Rust types (the manifest's own types for the spec): `WorkloadDeployment` (short name
//!   `wd`, with a scale subresource), `Workload` (one replica) and `Host` (observed hosts).
//!
//! - [`replicas`]: the pure half of the operator: a deployment object as scheduler input
//!   (validated as `hearth validate` does), the `Workload` object of each replica (owned, labelled,
//!   finalised), and the deployment's status and conditions.
//!
//! - [`operator`]: `hearth operator`, two `kube::runtime::Controller`s (deployments and
//!   workloads) that place replicas on hearth hosts over NATS with the cluster's scheduler;
//! - [`leader`]: leader election on a `coordination.k8s.io` Lease (one operator acts).
//!
//! `hearth operator crd` prints the CRDs; `deploy/crds.yaml` is that output, checked by a test.

pub mod crd;
pub mod leader;
pub mod operator;
pub mod replicas;
