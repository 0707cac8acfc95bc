//! The hearth workload manifest.
//!
//! Owns the manifest's types ([`Workload`] and everything under it), reading YAML files with
//! one or more documents, and validating them with errors that name the file, the field path
//! (`spec.components[1].http.path`) and what was expected. It knows nothing about Wasm beyond
//! file paths and the syntax of `oci://` references: checking that an image really is a component, and what it exports, belongs to
//! the runtime.

mod error;
mod image;
mod parse;
mod part;
#[cfg(feature = "crd")]
mod schema;
mod types;
mod validate;

pub use error::{ManifestError, ManifestErrors};
pub use image::{OCI_REFERENCE_SHAPE, OCI_SCHEME, OciReference, PullPolicy};
pub use parse::{load_files, parse_str};
pub use part::{LocalImage, LocalImages, Part};
pub use types::*;
pub use validate::{RouteKey, bare_host, dns_label, package_of, prefix_matches};

/// The only `apiVersion` this version of hearth understands.
pub const API_VERSION: &str = "hearth.dev/v1alpha1";

/// The label that marks a workload as one replica of a deployment: workloads with the same
/// value may serve the same routes on one host (requests are spread over them).
pub const DEPLOYMENT_LABEL: &str = "hearth.dev/deployment";
