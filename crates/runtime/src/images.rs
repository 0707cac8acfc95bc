//! Where each part's component bytes are, before anything reads them.
//!
//! A file `image` is used as it is. `oci://` images are pulled into the OCI cache through
//! `hearth-oci`: all of a workload's at once (concurrently), and if any fails the workload is
//! not deployed at all. For `hearth validate`, [`available`] looks in the cache only and
//! reports what it had to skip. Checking that the bytes are a component is `deploy.rs`'s job.

use crate::deploy::DeployError;
use hearth_manifest::{ImageRef, PullPolicy, Workload};
use hearth_oci::{Oci, OciError, OciReference};
use std::collections::HashMap;
use std::path::PathBuf;

/// One part's component file.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// The file to read.
    pub path: PathBuf,
    /// How messages name it: the path, or the `oci://` reference.
    pub label: String,
}

/// The local file of each part of a workload, keyed by its field prefix (`components[0]`,
/// `service`).
#[derive(Debug, Default)]
pub struct LocalImages {
    parts: HashMap<String, LocalImage>,
}

impl LocalImages {
    /// The file of the part at `at` (`components[1]`, `service`), if known.
    pub fn get(&self, at: &str) -> Option<&LocalImage> {
        self.parts.get(at)
    }
}

/// Every part's `(field prefix, image)`.
fn parts(workload: &Workload) -> Vec<(String, ImageRef)> {
    let mut out: Vec<(String, ImageRef)> = workload
        .spec
        .components
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("components[{i}]"), c.image_ref(&workload.source)))
        .collect();
    if let Some(s) = &workload.spec.service {
        out.push(("service".into(), s.image_ref(&workload.source)));
    }
    out
}

fn file(path: PathBuf) -> LocalImage {
    LocalImage {
        label: path.display().to_string(),
        path,
    }
}

/// Resolves every part of `workload`, pulling its `oci://` images concurrently. Fails with
/// every pull that failed, each naming its field (all but the first are also logged).
pub async fn resolve(oci: &Oci, workload: &Workload) -> Result<LocalImages, Vec<DeployError>> {
    let mut images = LocalImages::default();
    let mut remote: Vec<(String, OciReference, PullPolicy)> = Vec::new();
    for (at, image) in parts(workload) {
        match image {
            ImageRef::File(path) => {
                images.parts.insert(at, file(path));
            }
            ImageRef::Oci { reference, policy } => remote.push((at, reference, policy)),
        }
    }
    if remote.is_empty() {
        return Ok(images);
    }
    let asked: Vec<(OciReference, PullPolicy)> =
        remote.iter().map(|(_, r, p)| (r.clone(), *p)).collect();
    let results = oci.pull_all(&asked).await;
    let mut errors = Vec::new();
    for ((at, reference, policy), result) in remote.into_iter().zip(results) {
        match result {
            Ok(pulled) => {
                tracing::info!(
                    workload = %workload.name,
                    part = %at,
                    image = %reference.to_url(),
                    digest = %pulled.digest,
                    from_cache = !pulled.contacted_registry,
                    "image ready"
                );
                images.parts.insert(
                    at,
                    LocalImage {
                        path: pulled.path,
                        label: reference.to_url(),
                    },
                );
            }
            Err(e) => errors.push(pull_error(workload, &at, &reference, policy, &e)),
        }
    }
    // The deploy reports the first failure; the log gets the others.
    for error in errors.iter().skip(1) {
        tracing::error!(workload = %workload.name, "{error}");
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
pub fn available(oci: &Oci, workload: &Workload) -> (LocalImages, Vec<DeployError>, Vec<String>) {
    let mut images = LocalImages::default();
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    for (at, image) in parts(workload) {
        match image {
            ImageRef::File(path) => {
                images.parts.insert(at, file(path));
            }
            ImageRef::Oci { reference, policy } => match oci.cached(&reference) {
                Some(pulled) => {
                    images.parts.insert(
                        at,
                        LocalImage {
                            path: pulled.path,
                            label: reference.to_url(),
                        },
                    );
                }
                None if policy == PullPolicy::Never => {
                    let e = OciError::NotCached {
                        reference: reference.to_string(),
                        cache: oci.cache().root().to_path_buf(),
                    };
                    errors.push(pull_error(workload, &at, &reference, policy, &e));
                }
                None => notes.push(format!(
                    "{}: {}: `{}` is not in the local cache, so its file checks were skipped (`hearth pull {reference}` fetches it)",
                    workload.source.file.display(),
                    workload.source.field(&format!("{at}.image")),
                    reference.to_url(),
                )),
            },
        }
    }
    (images, errors, notes)
}

fn pull_error(
    workload: &Workload,
    at: &str,
    reference: &OciReference,
    policy: PullPolicy,
    e: &OciError,
) -> DeployError {
    let message = match e {
        OciError::NotCached { cache, .. } => format!(
            "`{}` is not in the local cache ({}) and imagePullPolicy is {policy}: expected it pulled first (`hearth pull {reference}`)",
            reference.to_url(),
            cache.display()
        ),
        e => format!("cannot pull `{}`: {e}", reference.to_url()),
    };
    DeployError::at(
        workload,
        workload.source.field(&format!("{at}.image")),
        message,
    )
}
