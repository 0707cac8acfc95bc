//! Pulling components into the cache, per `imagePullPolicy`, one image or several at once.
//!
//! A pull resolves the reference to a manifest, checks the manifest against a pinned digest,
//! finds the one `application/wasm` layer, downloads it unless the cache already has that
//! digest, checks the bytes against the layer digest, and only then writes blob, manifest and
//! tag into the cache. Any mismatch is an error and leaves the cache as it was.

use crate::Oci;
use crate::artifact::{self, sha256_digest};
use crate::cache::Cached;
use crate::error::OciError;
use crate::registry::Registry;
use futures::future::join_all;
use hearth_manifest::{OciReference, PullPolicy};
use oci_client::RegistryOperation;
use std::path::PathBuf;

/// A component available locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// What was asked for.
    pub reference: OciReference,
    /// The manifest digest it resolved to (`sha256:...`); pin it with `@` for repeatable runs.
    pub digest: String,
    /// The component layer's digest, which names the cached file.
    pub layer_digest: String,
    /// The cached component file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Whether the registry was asked (`false`: served from the cache alone).
    pub contacted_registry: bool,
}

impl Pulled {
    fn from_cache(reference: &OciReference, cached: Cached) -> Self {
        Self {
            reference: reference.clone(),
            digest: cached.digest,
            layer_digest: cached.layer.digest,
            path: cached.path,
            size: cached.layer.size,
            contacted_registry: false,
        }
    }
}

/// The component `reference` names, from the cache if `policy` allows, else from its registry.
pub(crate) async fn pull(
    oci: &Oci,
    reference: &OciReference,
    policy: PullPolicy,
) -> Result<Pulled, OciError> {
    match (policy, oci.cache.lookup(reference)) {
        (PullPolicy::IfNotPresent | PullPolicy::Never, Some(cached)) => {
            tracing::debug!(image = %reference, digest = %cached.digest, "image found in the cache");
            return Ok(Pulled::from_cache(reference, cached));
        }
        (PullPolicy::Never, None) => {
            return Err(OciError::NotCached {
                reference: reference.to_string(),
                cache: oci.cache.root().to_path_buf(),
            });
        }
        _ => {}
    }
    let credentials = oci.credentials.lookup(&reference.registry)?;
    let registry = Registry::new(&reference.registry, &credentials, oci.retry)?;
    registry
        .authenticate(reference, RegistryOperation::Pull)
        .await?;
    let (manifest, _) = registry.manifest(reference).await?;
    let digest = sha256_digest(&manifest);
    if let Some(pinned) = &reference.digest
        && *pinned != digest
    {
        return Err(OciError::DigestMismatch {
            expected: pinned.clone(),
            actual: digest,
            what: format!("manifest of {reference}"),
        });
    }
    let layer = artifact::component_layer(&manifest, &reference.to_string())?;
    let path = oci.cache.blob_path(&layer.digest);
    if !path.is_file() {
        let bar = oci.progress.bar(reference.to_string(), layer.size);
        let (bytes, actual) = registry
            .blob(reference, &layer.digest, layer.size, &bar)
            .await?;
        if actual != layer.digest {
            return Err(OciError::DigestMismatch {
                expected: layer.digest,
                actual,
                what: format!("component layer of {reference}"),
            });
        }
        if bytes.len() as u64 != layer.size {
            return Err(OciError::NotAComponent {
                reference: reference.to_string(),
                why: format!(
                    "its layer is {} bytes but the manifest says {}",
                    bytes.len(),
                    layer.size
                ),
            });
        }
        let cache = oci.cache.clone();
        let layer_digest = layer.digest.clone();
        tokio::task::spawn_blocking(move || cache.put_blob(&layer_digest, &bytes))
            .await
            .map_err(|e| {
                OciError::io(
                    "cannot write to the cache",
                    &path,
                    std::io::Error::other(e.to_string()),
                )
            })??;
    }
    oci.cache.put_manifest(&digest, &manifest)?;
    oci.cache.put_tag(reference, &digest)?;
    tracing::info!(image = %reference, %digest, size = layer.size, "image pulled");
    Ok(Pulled {
        reference: reference.clone(),
        digest,
        layer_digest: layer.digest,
        path,
        size: layer.size,
        contacted_registry: true,
    })
}

/// Pulls several images concurrently; results come back in the order asked. The same
/// reference asked for twice is pulled once, then served from the cache.
pub(crate) async fn pull_all(
    oci: &Oci,
    images: &[(OciReference, PullPolicy)],
) -> Vec<Result<Pulled, OciError>> {
    // Group the indices of equal references so each group runs in sequence.
    let mut groups: Vec<(&OciReference, Vec<usize>)> = Vec::new();
    for (i, (reference, _)) in images.iter().enumerate() {
        match groups.iter_mut().find(|(r, _)| *r == reference) {
            Some((_, members)) => members.push(i),
            None => groups.push((reference, vec![i])),
        }
    }
    let runs = groups.into_iter().map(|(_, members)| async move {
        let mut out = Vec::with_capacity(members.len());
        for (n, i) in members.into_iter().enumerate() {
            let (reference, policy) = &images[i];
            // After the first pull of a reference, the cache has it.
            let policy = if n == 0 {
                *policy
            } else {
                PullPolicy::IfNotPresent
            };
            out.push((i, pull(oci, reference, policy).await));
        }
        out
    });
    let mut results: Vec<(usize, Result<Pulled, OciError>)> =
        join_all(runs).await.into_iter().flatten().collect();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
