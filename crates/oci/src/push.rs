//! Pushing a component file to a registry as an OCI artifact: the component layer and the
//! config blob (each skipped when the registry already has it), then the manifest under the
//! reference's tag. Checking that the file is a component is the caller's job (the CLI uses
//! the runtime's inspector); this module packs whatever bytes it is given.

use crate::Oci;
use crate::artifact;
use crate::credentials::Credentials;
use crate::error::OciError;
use crate::registry::Registry;
use bytes::Bytes;
use hearth_manifest::OciReference;
use oci_client::RegistryOperation;
use std::path::Path;

/// What a push produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest digest: `REGISTRY/REPOSITORY@DIGEST` names exactly this push.
    pub digest: String,
    /// The component layer's digest.
    pub layer_digest: String,
    /// The component's size in bytes.
    pub size: u64,
}

pub(crate) async fn push(
    oci: &Oci,
    file: &Path,
    reference: &OciReference,
    credentials: &Credentials,
) -> Result<Pushed, OciError> {
    if reference.digest.is_some() {
        return Err(OciError::InvalidReference {
            reference: reference.to_string(),
            why: "a push needs a tag (`REGISTRY/REPOSITORY:TAG`), not a digest: the digest is what the push produces".into(),
        });
    }
    let bytes = std::fs::read(file).map_err(|e| OciError::io("cannot read", file, e))?;
    let packed = artifact::pack(&bytes).map_err(|e| OciError::Registry {
        registry: reference.registry.clone(),
        message: format!("cannot build the manifest: {e}"),
    })?;
    let registry = Registry::new(&reference.registry, credentials, oci.retry)?;
    registry
        .authenticate(reference, RegistryOperation::Push)
        .await?;
    let blobs = [
        (Bytes::from(bytes), &packed.layer_digest, "component"),
        (
            Bytes::from(packed.config.clone()),
            &packed.config_digest,
            "config",
        ),
    ];
    let size = blobs[0].0.len() as u64;
    for (data, digest, label) in blobs {
        if registry.has_blob(reference, digest).await? {
            tracing::debug!(%digest, "the registry already has this blob");
            continue;
        }
        let bar = oci
            .progress
            .bar(format!("{reference} ({label})"), data.len() as u64);
        registry.push_blob(reference, data, digest, &bar).await?;
        bar.finish_and_clear();
    }
    registry
        .push_manifest(reference, Bytes::from(packed.manifest))
        .await?;
    tracing::info!(image = %reference, digest = %packed.manifest_digest, size, "component pushed");
    Ok(Pushed {
        digest: packed.manifest_digest,
        layer_digest: packed.layer_digest,
        size,
    })
}
