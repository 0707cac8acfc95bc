//! Distributing Wasm components through OCI registries.
//!
//! A component travels as an OCI image manifest (`application/vnd.oci.image.manifest.v1+json`)
//! with a small `application/vnd.wasm.config.v0+json` config (created time, architecture
//! `wasm`, os `wasip2`, layer digests) and exactly one `application/wasm` layer: the
//! component's bytes.
//!
//! [`Oci`] pushes a file ([`Oci::push`]), pulls references into a digest-addressed cache
//! ([`Oci::pull`], [`Oci::pull_all`] for a workload's images at once) honouring
//! `imagePullPolicy`, and keeps registry credentials ([`Oci::login`], [`Oci::logout`]).
//!
//! | module | owns |
//! |---|---|
//! | `artifact` | the manifest and config JSON, digests |
//! | `cache` | the on-disk cache layout, atomic writes |
//! | `credentials` | reading Docker-format credential files, writing hearth's |
//! | `registry` | the Distribution API via `oci-client`: HTTP for loopback, auth, retries, error wording |
//! | `pull`, `push` | the two operations |
//! | `fetch` | a workload's images as local files, before the runtime plans it |
//! | `progress` | progress bars on a terminal |
//!
//! The reference syntax (`oci://REGISTRY/REPOSITORY:TAG` or `@sha256:...`) and
//! [`PullPolicy`] belong to `hearth-manifest`, which re-exports nothing from here. [`fetch`] turns a
//! workload's images into local files; checking what those files are belongs to
//! `hearth-runtime`.

mod artifact;
mod cache;
mod credentials;
mod error;
pub mod fetch;
mod progress;
mod pull;
mod push;
mod registry;

pub use artifact::{CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, sha256_digest};
pub use cache::{Cache, Cached};
pub use credentials::{CredentialFiles, Credentials};
pub use error::OciError;
pub use hearth_manifest::{OciReference, PullPolicy};
pub use pull::Pulled;
pub use push::Pushed;
pub use registry::Retry;

use progress::Progress;
use std::path::{Path, PathBuf};

/// Where the cache and credentials are, and how transfers behave.
#[derive(Debug, Clone)]
pub struct OciOptions {
    /// The pull cache; default [`Cache::default_dir`].
    pub cache_dir: PathBuf,
    /// Credential files; default [`CredentialFiles::from_env`].
    pub credentials: CredentialFiles,
    /// Draw progress bars (only ever on a terminal).
    pub progress: bool,
    /// Retries of transient failures.
    pub retry: Retry,
}

impl OciOptions {
    /// The standard locations from the environment, no progress bars, default retries.
    pub fn from_env() -> Self {
        Self {
            cache_dir: Cache::default_dir(),
            credentials: CredentialFiles::from_env(),
            progress: false,
            retry: Retry::default(),
        }
    }
}

impl Default for OciOptions {
    fn default() -> Self {
        Self::from_env()
    }
}

/// Push, pull and credentials, sharing one cache and one set of progress bars.
#[derive(Debug, Clone)]
pub struct Oci {
    cache: Cache,
    credentials: CredentialFiles,
    progress: Progress,
    retry: Retry,
}

impl Oci {
    pub fn new(options: OciOptions) -> Self {
        Self {
            cache: Cache::new(options.cache_dir),
            credentials: options.credentials,
            progress: Progress::new(options.progress),
            retry: options.retry,
        }
    }

    /// The pull cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The credential files.
    pub fn credentials(&self) -> &CredentialFiles {
        &self.credentials
    }

    /// Pushes the component in `file` to `reference` (which must have a tag); returns the
    /// manifest digest.
    pub async fn push(
        &self,
        file: &Path,
        reference: &OciReference,
        credentials: &Credentials,
    ) -> Result<Pushed, OciError> {
        push::push(self, file, reference, credentials).await
    }

    /// Makes the component `reference` names available locally, per `policy`, using the
    /// stored credentials for its registry.
    pub async fn pull(
        &self,
        reference: &OciReference,
        policy: PullPolicy,
    ) -> Result<Pulled, OciError> {
        pull::pull(self, reference, policy).await
    }

    /// Pulls several images concurrently; one result per image, in order.
    pub async fn pull_all(
        &self,
        images: &[(OciReference, PullPolicy)],
    ) -> Vec<Result<Pulled, OciError>> {
        pull::pull_all(self, images).await
    }

    /// The cached component `reference` names, without any network access.
    pub fn cached(&self, reference: &OciReference) -> Option<Pulled> {
        self.cache.lookup(reference).map(|c| Pulled {
            reference: reference.clone(),
            digest: c.digest,
            layer_digest: c.layer.digest,
            path: c.path,
            size: c.layer.size,
            contacted_registry: false,
        })
    }

    /// Checks the credentials against `registry`, then stores them in hearth's credentials
    /// file; returns that file's path.
    pub async fn login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<PathBuf, OciError> {
        let credentials = Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        };
        registry::check_login(registry, &credentials, self.retry).await?;
        self.credentials.store(registry, username, password)
    }

    /// Forgets hearth's stored credentials for `registry`; `false` when there were none.
    pub fn logout(&self, registry: &str) -> Result<bool, OciError> {
        self.credentials.remove(registry)
    }
}
