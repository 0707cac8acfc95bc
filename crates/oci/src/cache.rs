//! The local cache of pulled components, addressed by digest.
//!
//! Layout under the root (`$XDG_CACHE_HOME/hearth/oci`, default `~/.cache/hearth/oci`):
//!
//! - `sha256/<hex>.wasm`: a component, named by its layer digest;
//! - `manifests/sha256/<hex>.json`: a manifest, named by its own digest;
//! - `tags/<registry>/<repository>/<tag>`: the manifest digest a tag pointed to when it was
//!   last pulled.
//!
//! Everything is verified before it is written, and written to a temporary file then renamed,
//! so a reader never sees half a file and a digest-named file always matches its name.
//! Writing order (blob, manifest, tag) means a tag never points at missing content. This
//! module does no network I/O.

use crate::artifact::{self, Descriptor};
use crate::error::OciError;
use hearth_manifest::OciReference;
use std::path::{Path, PathBuf};

/// A component found in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// The manifest's digest.
    pub digest: String,
    /// The component layer.
    pub layer: Descriptor,
    /// Where the component's bytes are.
    pub path: PathBuf,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// A cache rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$XDG_CACHE_HOME/hearth/oci`, else `~/.cache/hearth/oci`, else under the temp dir.
    pub fn default_dir() -> PathBuf {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("XDG_CACHE_HOME")
            .or_else(|| var("HOME").map(|h| h.join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("hearth")
            .join("oci")
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("sha256")
            .join(format!("{}.wasm", hex_of(digest)))
    }

    fn manifest_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("manifests")
            .join("sha256")
            .join(format!("{}.json", hex_of(digest)))
    }

    fn tag_path(&self, reference: &OciReference) -> Option<PathBuf> {
        let tag = reference.tag.as_deref()?;
        let mut path = self
            .root
            .join("tags")
            .join(reference.registry.replace(':', "_"));
        for part in reference.repository.split('/') {
            path.push(part);
        }
        path.push(tag);
        Some(path)
    }

    /// The component `reference` names, if the cache has it: a pinned digest is looked up
    /// directly, a tag through the digest it pointed to when last pulled.
    pub fn lookup(&self, reference: &OciReference) -> Option<Cached> {
        let digest = match &reference.digest {
            Some(d) => d.clone(),
            None => {
                let text = std::fs::read_to_string(self.tag_path(reference)?).ok()?;
                let digest = text.trim().to_string();
                artifact::is_sha256(&digest).then_some(digest)?
            }
        };
        self.lookup_digest(&digest, reference)
    }

    /// The component whose manifest has `digest`, if both the manifest and its layer are here.
    pub fn lookup_digest(&self, digest: &str, reference: &OciReference) -> Option<Cached> {
        let manifest = std::fs::read(self.manifest_path(digest)).ok()?;
        let layer = artifact::component_layer(&manifest, &reference.to_string()).ok()?;
        let path = self.blob_path(&layer.digest);
        path.is_file().then(|| Cached {
            digest: digest.to_string(),
            layer,
            path,
        })
    }

    /// Stores a verified blob under its digest.
    pub(crate) fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<PathBuf, OciError> {
        let path = self.blob_path(digest);
        write_atomic(&path, bytes)?;
        Ok(path)
    }

    /// Stores a verified manifest under its digest.
    pub(crate) fn put_manifest(&self, digest: &str, bytes: &[u8]) -> Result<(), OciError> {
        write_atomic(&self.manifest_path(digest), bytes)
    }

    /// Records that `reference`'s tag now points at `digest` (no-op for digest references).
    pub(crate) fn put_tag(&self, reference: &OciReference, digest: &str) -> Result<(), OciError> {
        match self.tag_path(reference) {
            Some(path) => write_atomic(&path, format!("{digest}\n").as_bytes()),
            None => Ok(()),
        }
    }
}

/// The hex part of a `sha256:` digest; callers only pass verified digests.
fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| OciError::io("cannot create the cache directory", dir, e))?;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            OciError::io("cannot write to the cache", path, e)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tag_then_digest_lookup() {
        let root = std::env::temp_dir().join(format!("hearth-oci-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let cache = Cache::new(&root);
        let tagged = OciReference::parse("127.0.0.1:5000/acme/hello:v1").unwrap();
        assert_eq!(cache.lookup(&tagged), None);

        let packed = artifact::pack(b"\0asm bytes").unwrap();
        cache
            .put_blob(&packed.layer_digest, b"\0asm bytes")
            .unwrap();
        cache
            .put_manifest(&packed.manifest_digest, &packed.manifest)
            .unwrap();
        assert_eq!(cache.lookup(&tagged), None, "no tag recorded yet");
        cache.put_tag(&tagged, &packed.manifest_digest).unwrap();

        let hit = cache.lookup(&tagged).unwrap();
        assert_eq!(hit.digest, packed.manifest_digest);
        assert_eq!(std::fs::read(&hit.path).unwrap(), b"\0asm bytes");
        let pinned = OciReference::parse(&format!(
            "127.0.0.1:5000/acme/hello@{}",
            packed.manifest_digest
        ))
        .unwrap();
        assert_eq!(cache.lookup(&pinned), Some(hit));
        let _ = std::fs::remove_dir_all(&root);
    }
}
