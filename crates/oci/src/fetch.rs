//! Fetching a workload's images before anything reads them: the step between the manifest
//! and the runtime's plan.
//!
//! A file `image` is used as it is. `oci://` images are pulled into the cache: all of a
//! workload's at once (concurrently), and if any fails the workload is not deployed at all.
//! For `hearth validate`, [`available`] looks in the cache only and reports what it had to
//! skip. Checking that the bytes are a component is the runtime's plan.

use crate::{Oci, OciError, OciReference, PullPolicy};
use hearth_manifest::{ImageRef, LocalImage, LocalImages, ManifestError, Part, Workload};

/// Fetches every image of `workload`, pulling its `oci://` images concurrently. Fails with
/// every pull that failed, each naming its field.
pub async fn fetch(oci: &Oci, workload: &Workload) -> Result<LocalImages, Vec<ManifestError>> {
    let mut images = LocalImages::default();
    let mut remote: Vec<(Part, OciReference, PullPolicy)> = Vec::new();
    for part in workload.parts() {
        match workload.image_of(part) {
            Some(ImageRef::File(path)) => images.insert(part, LocalImage::file(path)),
            Some(ImageRef::Oci { reference, policy }) => remote.push((part, reference, policy)),
            None => {}
        }
    }
    if remote.is_empty() {
        return Ok(images);
    }
    let asked: Vec<(OciReference, PullPolicy)> =
        remote.iter().map(|(_, r, p)| (r.clone(), *p)).collect();
    let results = oci.pull_all(&asked).await;
    let mut errors = Vec::new();
    for ((part, reference, policy), result) in remote.into_iter().zip(results) {
        match result {
            Ok(pulled) => {
                tracing::info!(
                    workload = %workload.name,
                    part = %part,
                    image = %reference.to_url(),
                    digest = %pulled.digest,
                    from_cache = !pulled.contacted_registry,
                    "image ready"
                );
                images.insert(
                    part,
                    LocalImage {
                        path: pulled.path,
                        label: reference.to_url(),
                    },
                );
            }
            Err(e) => errors.push(pull_error(workload, part, &reference, policy, &e)),
        }
    }
    if errors.is_empty() {
        Ok(images)
    } else {
        Err(errors)
    }
}

/// For `hearth validate`: file images, and `oci://` images already in the cache, without
/// touching the network. Also returns errors (`Never` with nothing cached) and notes on the
/// parts whose checks are skipped.
pub fn available(oci: &Oci, workload: &Workload) -> (LocalImages, Vec<ManifestError>, Vec<String>) {
    let mut images = LocalImages::default();
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    for part in workload.parts() {
        let Some(ImageRef::Oci { reference, policy }) = workload.image_of(part) else {
            if let Some(ImageRef::File(path)) = workload.image_of(part) {
                images.insert(part, LocalImage::file(path));
            }
            continue;
        };
        match oci.cached(&reference) {
            Some(pulled) => images.insert(
                part,
                LocalImage {
                    path: pulled.path,
                    label: reference.to_url(),
                },
            ),
            None if policy == PullPolicy::Never => {
                let e = OciError::NotCached {
                    reference: reference.to_string(),
                    cache: oci.cache().root().to_path_buf(),
                };
                errors.push(pull_error(workload, part, &reference, policy, &e));
            }
            None => notes.push(format!(
                "{}: {}: `{}` is not in the local cache, so its file checks were skipped (`hearth pull {reference}` fetches it)",
                workload.source.file.display(),
                workload.field_of(part, "image"),
                reference.to_url(),
            )),
        }
    }
    (images, errors, notes)
}

fn pull_error(
    workload: &Workload,
    part: Part,
    reference: &OciReference,
    policy: PullPolicy,
    e: &OciError,
) -> ManifestError {
    let message = match e {
        OciError::NotCached { cache, .. } => format!(
            "`{}` is not in the local cache ({}) and imagePullPolicy is {policy}: expected it pulled first (`hearth pull {reference}`)",
            reference.to_url(),
            cache.display()
        ),
        e => format!("cannot pull `{}`: {e}", reference.to_url()),
    };
    workload.error_at(workload.field_of(part, "image"), message)
}
