//! `wasi:blobstore@0.2.0-draft`: containers of named binary objects.
//!
//! This module owns the backend trait [`BlobBackend`], the scoping of container names per
//! workload, and checking and binding `hostInterfaces` entries. `host.rs` implements the WIT
//! `Host` traits, `values.rs` the resources a guest holds (values, body streams, containers,
//! name listings). Backends, one file each: `memory` (one store for the whole host) and
//! `filesystem` (`config: {path}`; a directory per container, a file per object).
//!
//! Scoping: a container name belongs to the workload that uses it, so two workloads never see
//! each other's containers; names listed in `config: {shared: [..]}` live in one host-wide
//! (per backend) scope instead, seen by every workload that lists them. Workload names are DNS
//! labels, so the shared scope `_shared` cannot clash with a workload's.
//!
//! It does not serve `wasi:io`: wasmtime-wasi does, and the streams handed out here are its
//! `DynInputStream`/`DynOutputStream`.

mod filesystem;
mod host;
mod memory;
mod metered;
mod values;

pub use values::{Container, IncomingValue, OutgoingValue, StreamObjectNames};

use crate::{Declared, FieldError};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) const PACKAGE: &str = "wasi:blobstore";
pub(crate) const BACKENDS: &[&str] = &["memory", "filesystem"];

/// The most bytes one value may hold: what a body stream accepts and a read may return.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

/// The scope of the containers named in `config: {shared: [..]}`.
const SHARED_SCOPE: &str = "_shared";

/// A container as a backend stores it: the scope (a workload's name, or `_shared`) and the
/// name the guest gave it. Errors for the guest name `name` alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerKey {
    pub scope: Arc<str>,
    pub name: String,
}

/// What a backend knows about one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

/// A blob storage backend. Every error is the guest-visible `error` string, naming the
/// container and object by the guest's names ("container `x` does not exist").
#[async_trait::async_trait]
pub trait BlobBackend: Send + Sync + 'static {
    /// Creates an empty container; fails if it exists.
    async fn create_container(&self, c: &ContainerKey) -> Result<(), String>;
    async fn container_exists(&self, c: &ContainerKey) -> Result<bool, String>;
    /// When the container was created, in seconds since the Unix epoch.
    async fn container_created_at(&self, c: &ContainerKey) -> Result<u64, String>;
    /// Deletes a container and every object in it; fails if it does not exist.
    async fn delete_container(&self, c: &ContainerKey) -> Result<(), String>;
    /// Creates or replaces an object, atomically: a reader sees the old bytes or the new.
    async fn write_object(&self, c: &ContainerKey, name: &str, data: Bytes) -> Result<(), String>;
    /// Bytes `start..=end` of an object (see [`byte_range`]).
    async fn read_object(
        &self,
        c: &ContainerKey,
        name: &str,
        start: u64,
        end: u64,
    ) -> Result<Bytes, String>;
    /// The names of the container's objects, sorted.
    async fn list_objects(&self, c: &ContainerKey) -> Result<Vec<String>, String>;
    /// Deletes objects; a name that does not exist is not an error.
    async fn delete_objects(&self, c: &ContainerKey, names: &[String]) -> Result<(), String>;
    async fn has_object(&self, c: &ContainerKey, name: &str) -> Result<bool, String>;
    async fn object_info(&self, c: &ContainerKey, name: &str) -> Result<ObjectInfo, String>;
    /// Deletes every object of the container, keeping the container.
    async fn clear(&self, c: &ContainerKey) -> Result<(), String>;
    /// Copies an object (the copy is a new object); replaces an existing destination.
    async fn copy_object(
        &self,
        src: &ContainerKey,
        src_name: &str,
        dest: &ContainerKey,
        dest_name: &str,
    ) -> Result<(), String>;
    /// Moves an object, keeping its creation time; replaces an existing destination.
    async fn move_object(
        &self,
        src: &ContainerKey,
        src_name: &str,
        dest: &ContainerKey,
        dest_name: &str,
    ) -> Result<(), String>;
}

/// Host-wide blobstore state: the one in-memory store.
#[derive(Default)]
pub(crate) struct Shared {
    memory: Arc<memory::MemoryBlobs>,
}

/// The backend one part uses, and how its container names are scoped.
#[derive(Clone)]
pub(crate) struct Binding {
    backend: Arc<dyn BlobBackend>,
    workload: Arc<str>,
    shared: Arc<[String]>,
    scope_shared: Arc<str>,
}

impl Binding {
    /// The key of the container the guest calls `name`.
    fn key(&self, name: &str) -> Result<ContainerKey, String> {
        check_name("container", name)?;
        let scope = if self.shared.iter().any(|s| s == name) {
            Arc::clone(&self.scope_shared)
        } else {
            Arc::clone(&self.workload)
        };
        Ok(ContainerKey {
            scope,
            name: name.to_string(),
        })
    }
}

/// A backend and its settings, as read from a `hostInterfaces` entry.
enum Kind {
    Memory,
    Filesystem(PathBuf),
}

struct Settings {
    kind: Kind,
    shared: Vec<String>,
}

fn settings(d: Declared<'_>) -> Result<Settings, FieldError> {
    let mut config = d.config();
    let (kind, known): (Kind, &[&str]) = match d.spec.backend.as_str() {
        "memory" => (Kind::Memory, &["shared"]),
        "filesystem" => {
            let path = config.string("path", "an absolute directory path")?;
            if !Path::new(&path).is_absolute() {
                return Err(config.error(
                    "path",
                    format!("`{path}` is relative: expected an absolute directory path"),
                ));
            }
            (Kind::Filesystem(path.into()), &["path", "shared"])
        }
        _ => return Err(d.unknown_backend(BACKENDS)),
    };
    let shared = config.strings("shared", "container names")?;
    config.finish(known)?;
    Ok(Settings { kind, shared })
}

/// Checks an entry without touching the disk.
pub(crate) fn check(d: Declared<'_>) -> Result<(), FieldError> {
    settings(d).map(drop)
}

/// Binds a part's backend; `filesystem` creates its directory and checks it can write there.
pub(crate) async fn bind(
    shared: &Shared,
    workload: &Arc<str>,
    decl: Option<Declared<'_>>,
) -> Result<Binding, FieldError> {
    let (backend, names): (Arc<dyn BlobBackend>, Vec<String>) = match decl {
        None => (
            metered::Metered::wrap(shared.memory.clone(), workload, "memory"),
            Vec::new(),
        ),
        Some(d) => {
            let s = settings(d)?;
            let backend: Arc<dyn BlobBackend> = match s.kind {
                Kind::Memory => shared.memory.clone(),
                Kind::Filesystem(path) => Arc::new(
                    filesystem::FsBlobs::open(path, workload, SHARED_SCOPE)
                        .await
                        .map_err(|e| d.config().error("path", e))?,
                ),
            };
            (
                metered::Metered::wrap(backend, workload, &d.spec.backend),
                s.shared,
            )
        }
    };
    Ok(Binding {
        backend,
        workload: Arc::clone(workload),
        shared: names.into(),
        scope_shared: SHARED_SCOPE.into(),
    })
}

/// Container and object names are any non-empty UTF-8.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name must not be empty"));
    }
    Ok(())
}

/// The error for a container that is not there.
pub(crate) fn no_container(c: &ContainerKey) -> String {
    format!("container `{}` does not exist", c.name)
}

/// The error for an object that is not there.
pub(crate) fn no_object(c: &ContainerKey, name: &str) -> String {
    format!("object `{name}` does not exist in container `{}`", c.name)
}

/// Resolves the inclusive range `start..=end` of an object of `size` bytes to an offset and a
/// length. `end` past the object is clamped to its last byte; `start` after `end`, or at or
/// past the end of a non-empty object, is an error. Reading `0..` of an empty object gives
/// nothing.
pub(crate) fn byte_range(
    c: &ContainerKey,
    name: &str,
    size: u64,
    start: u64,
    end: u64,
) -> Result<(u64, usize), String> {
    if start > end {
        return Err(format!(
            "invalid range {start}..={end} of object `{name}`: start is after end"
        ));
    }
    if size == 0 && start == 0 {
        return Ok((0, 0));
    }
    if start >= size {
        return Err(format!(
            "range start {start} is past the end of object `{name}` in container `{}` ({size} bytes)",
            c.name
        ));
    }
    let len = end.min(size - 1) - start + 1;
    match usize::try_from(len) {
        Ok(len) if len <= MAX_VALUE_BYTES => Ok((start, len)),
        _ => Err(format!(
            "a range of {len} bytes is more than one value may hold ({} MiB): read it in parts",
            MAX_VALUE_BYTES >> 20
        )),
    }
}

/// Now, in seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ContainerKey {
        ContainerKey {
            scope: "w".into(),
            name: "c".into(),
        }
    }

    #[test]
    fn ranges_are_inclusive_and_clamped() {
        let c = key();
        assert_eq!(byte_range(&c, "o", 10, 0, 9), Ok((0, 10)));
        assert_eq!(byte_range(&c, "o", 10, 2, 4), Ok((2, 3)));
        assert_eq!(byte_range(&c, "o", 10, 9, 9), Ok((9, 1)));
        assert_eq!(byte_range(&c, "o", 10, 3, u64::MAX), Ok((3, 7)));
        assert_eq!(byte_range(&c, "o", 0, 0, u64::MAX), Ok((0, 0)));
        assert!(byte_range(&c, "o", 10, 5, 4).is_err());
        assert!(byte_range(&c, "o", 10, 10, 12).is_err());
        assert!(byte_range(&c, "o", 0, 1, 2).is_err());
    }
}
