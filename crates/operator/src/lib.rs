//! hearth on Kubernetes.
//!
//! - [`crd`]: the custom resources in group `hearth.dev`, version `v1alpha1`, generated from
//!   Rust types (the manifest's own types for the spec): `WorkloadDeployment` (short name
//!   `wd`, with a scale subresource), `Workload` (one replica) and `Host` (observed hosts).
//!
//! `hearth operator crd` prints them; `deploy/crds.yaml` is that output, checked by a test.

pub mod crd;
