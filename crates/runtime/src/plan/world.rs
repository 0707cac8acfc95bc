//! What a file is, without compiling it: a component, a core module, or not Wasm at all; the
//! names a component imports and exports at its top level (its [`World`]); and whether a
//! part's file is what its place in the manifest needs.

use crate::DeployError;
use hearth_manifest::{LocalImage, Part, Workload};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use wasmparser::{Parser, Payload};

/// The interface every HTTP-routed component must export.
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler";
/// The interface a service exports.
pub const CLI_RUN: &str = "wasi:cli/run";
/// The interface a component with messaging `subscriptions` exports.
pub const MESSAGE_HANDLER: &str = "wasmcloud:messaging/handler";

/// What the bytes of a file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A WebAssembly component (what hearth runs).
    Component,
    /// A core WebAssembly module: built for `wasm32-wasip1` or `wasm32-unknown-unknown`.
    CoreModule,
    /// Not WebAssembly.
    NotWasm,
}

/// Looks at the 8-byte preamble.
pub fn kind(bytes: &[u8]) -> WasmKind {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => WasmKind::Component,
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => WasmKind::CoreModule,
        _ => WasmKind::NotWasm,
    }
}

/// The top-level imports and exports of a component, as `ns:pkg/iface@version` names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    /// Imported names.
    pub imports: Vec<String>,
    /// Exported names.
    pub exports: Vec<String>,
}

impl World {
    /// Reads the top-level import and export sections of a component.
    pub fn read(bytes: &[u8]) -> Result<Self, wasmparser::BinaryReaderError> {
        let mut out = World::default();
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(reader) if depth == 0 => {
                    for import in reader {
                        out.imports.push(import?.name.name.to_string());
                    }
                }
                Payload::ComponentExportSection(reader) if depth == 0 => {
                    for export in reader {
                        out.exports.push(export?.name.name.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The exported name for `interface` (any version), if exported.
    pub fn export(&self, interface: &str) -> Option<&str> {
        find(&self.exports, interface)
    }

    /// The imported name for `interface` (any version), if imported.
    pub fn import(&self, interface: &str) -> Option<&str> {
        find(&self.imports, interface)
    }

    /// The exports as a phrase for messages: `a, b` or `nothing`.
    fn exports_phrase(&self) -> String {
        if self.exports.is_empty() {
            "nothing".to_string()
        } else {
            self.exports.join(", ")
        }
    }
}

fn find<'a>(names: &'a [String], interface: &str) -> Option<&'a str> {
    names.iter().map(String::as_str).find(|n| {
        *n == interface
            || n.strip_prefix(interface)
                .is_some_and(|rest| rest.starts_with('@'))
    })
}

/// A part's file, read and checked.
#[derive(Clone)]
pub(crate) struct PartFile {
    /// Its bytes, unless the file was known already (then they are read again only if the
    /// code is not loaded: see [`PartFile::bytes`]).
    bytes: Option<Arc<[u8]>>,
    path: PathBuf,
    /// SHA-256 of the bytes: what the plan's fingerprint and the compile cache go by.
    pub digest: [u8; 32],
    pub world: Arc<World>,
}

impl PartFile {
    /// The file's bytes: those read when planning, or read again now and checked against
    /// the digest planned with.
    pub fn bytes(&self) -> std::io::Result<Arc<[u8]>> {
        if let Some(bytes) = &self.bytes {
            return Ok(Arc::clone(bytes));
        }
        let bytes = std::fs::read(&self.path)?;
        if Sha256::digest(&bytes).as_slice() != self.digest {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("`{}` changed while it was deployed", self.path.display()),
            ));
        }
        Ok(bytes.into())
    }
}

/// A file as the file system describes it: the same path, inode, size and change times
/// mean the same bytes (every write moves `ctime`).
#[derive(PartialEq, Eq, Hash)]
struct FileId {
    path: PathBuf,
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(path: &Path, meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Files already read and found to be components: their digest and world, so that applying
/// 10,000 workloads of one file reads, hashes and parses it once.
struct KnownFiles;

type Known = HashMap<FileId, ([u8; 32], Arc<World>)>;

impl KnownFiles {
    /// Entries kept; past that the memory starts over (each entry is small).
    const MAX: usize = 1024;

    fn map() -> MutexGuard<'static, Known> {
        static KNOWN: LazyLock<Mutex<Known>> = LazyLock::new(Mutex::default);
        KNOWN.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(id: &FileId) -> Option<([u8; 32], Arc<World>)> {
        Self::map().get(id).cloned()
    }

    fn insert(id: FileId, digest: [u8; 32], world: Arc<World>) {
        let mut known = Self::map();
        if known.len() >= Self::MAX {
            known.clear();
        }
        known.insert(id, (digest, world));
    }
}

/// Reads the file of `part` and checks it is a component exporting what the part needs: a
/// service `wasi:cli/run`, a routed component `wasi:http/incoming-handler`, a subscribed one
/// `wasmcloud:messaging/handler`.
pub(crate) fn read_part(
    workload: &Workload,
    part: Part,
    image: &LocalImage,
) -> Result<PartFile, DeployError> {
    let at = |field: &str| workload.field_of(part, field);
    let fail = |field: &str, message: String| DeployError::at(workload, at(field), message);
    let cannot_read = |e: std::io::Error| {
        fail(
            "image",
            format!("cannot read `{}`: {e}", image.path.display()),
        )
    };
    let label = &image.label;
    let meta = std::fs::metadata(&image.path).map_err(cannot_read)?;
    let id = FileId::of(&image.path, &meta);
    let (bytes, digest, world) = match KnownFiles::get(&id) {
        Some((digest, world)) => (None, digest, world),
        None => {
            let bytes = std::fs::read(&image.path).map_err(cannot_read)?;
            check_kind(&bytes, label).map_err(|message| fail("image", message))?;
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            let world =
                Arc::new(World::read(&bytes).map_err(|e| {
                    fail("image", format!("`{label}` is not a valid component: {e}"))
                })?);
            KnownFiles::insert(id, digest, Arc::clone(&world));
            (Some(Arc::from(bytes)), digest, world)
        }
    };
    for need in required_exports(workload, part) {
        if world.export(need.export).is_none() {
            return Err(fail(
                need.field,
                format!(
                    "`{label}` does not export `{}`, which {} must (it exports {}){}",
                    need.export,
                    need.who,
                    world.exports_phrase(),
                    need.hint
                ),
            ));
        }
    }
    Ok(PartFile {
        bytes,
        path: image.path.clone(),
        digest,
        world,
    })
}

/// Whether `bytes` are a component; if not, what they are instead.
fn check_kind(bytes: &[u8], label: &str) -> Result<(), String> {
    match kind(bytes) {
        WasmKind::Component => Ok(()),
        WasmKind::CoreModule => Err(format!(
            "`{label}` is a core WebAssembly module, not a component: expected a component (build for the `wasm32-wasip2` target)"
        )),
        WasmKind::NotWasm => Err(format!(
            "`{label}` is not a WebAssembly file: expected a component built for `wasm32-wasip2`"
        )),
    }
}

/// An export a part must have, and why.
struct Need {
    /// The manifest field that asks for it.
    field: &'static str,
    export: &'static str,
    who: &'static str,
    hint: &'static str,
}

/// What `part` must export.
fn required_exports(workload: &Workload, part: Part) -> Vec<Need> {
    let need = |field, export, who, hint| Need {
        field,
        export,
        who,
        hint,
    };
    match part {
        Part::Service => vec![need(
            "image",
            CLI_RUN,
            "a service",
            "; build the service as a binary for `wasm32-wasip2`",
        )],
        Part::Component(i) => {
            let Some(spec) = workload.spec.components.get(i) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            if spec.http.is_some() {
                out.push(need(
                    "http",
                    HTTP_HANDLER,
                    "a component with an `http` route",
                    "",
                ));
            }
            if !spec.subscriptions.is_empty() {
                out.push(need(
                    "subscriptions",
                    MESSAGE_HANDLER,
                    "a component with `subscriptions`",
                    "",
                ));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-world-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("part.wasm");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_file_rewritten_in_place_with_the_same_size_is_a_different_file() {
        let path = temp_file("rewrite", b"first version");
        let before = FileId::of(&path, &std::fs::metadata(&path).unwrap());
        assert!(before == FileId::of(&path, &std::fs::metadata(&path).unwrap()));
        std::fs::write(&path, b"other version").unwrap();
        let after = FileId::of(&path, &std::fs::metadata(&path).unwrap());
        assert!(before != after, "ctime or mtime must move on a write");
    }

    #[test]
    fn bytes_read_again_must_match_the_planned_digest() {
        let path = temp_file("digest", b"planned bytes");
        let file = PartFile {
            bytes: None,
            path: path.clone(),
            digest: Sha256::digest(b"planned bytes").into(),
            world: Arc::default(),
        };
        assert_eq!(&*file.bytes().unwrap(), b"planned bytes");
        std::fs::write(&path, b"changed bytes").unwrap();
        let err = file.bytes().unwrap_err();
        assert!(
            err.to_string().contains("changed while it was deployed"),
            "{err}"
        );
    }
}
