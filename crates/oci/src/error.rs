//! Errors of pushing, pulling and storing credentials, worded for the person at the terminal:
//! each says which registry or reference, and what to do about it. Mapping `oci-client`'s
//! errors into these (and deciding which are worth a retry) lives in `registry.rs`.

use std::path::PathBuf;

/// Anything that can go wrong distributing a component.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The registry refused our credentials (or wanted some and we had none).
    #[error(
        "unauthorized: check the credentials for {registry} (hearth login {registry}){}",
        detail_suffix(.detail)
    )]
    Unauthorized {
        registry: String,
        /// What the registry said, if anything useful.
        detail: String,
    },
    /// A reference that cannot be used for this operation.
    #[error("{reference}: {why}")]
    InvalidReference { reference: String, why: String },
    /// The tag or digest does not exist in the repository.
    #[error("manifest unknown: {reference} does not exist")]
    ManifestUnknown { reference: String },
    /// Content did not hash to the digest that names it.
    #[error("digest mismatch: expected {expected}, got {actual} ({what})")]
    DigestMismatch {
        expected: String,
        actual: String,
        /// What was being checked: `manifest of ...`, `layer of ...`.
        what: String,
    },
    /// The artifact is not a Wasm component packaged as hearth expects.
    #[error("{reference} is not a Wasm component artifact: {why}")]
    NotAComponent { reference: String, why: String },
    /// `imagePullPolicy: Never` (or an offline lookup) and the image is not cached.
    #[error(
        "{reference} is not in the local cache ({cache}) and may not be pulled: run `hearth pull {reference}` first"
    )]
    NotCached { reference: String, cache: PathBuf },
    /// The registry could not be reached, or kept failing, after retries.
    #[error(
        "cannot reach the registry {registry} (after {attempts} {}): {message}",
        if *.attempts == 1 { "attempt" } else { "attempts" }
    )]
    Unreachable {
        registry: String,
        attempts: u32,
        message: String,
    },
    /// The registry answered with an error we have no better words for.
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    /// A local file (the component, the cache, a credentials file) could not be used.
    #[error("{what} `{}`: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A credentials file exists but cannot be understood.
    #[error("{}: {why}", path.display())]
    BadCredentialsFile { path: PathBuf, why: String },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl OciError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
