//! The `filesystem` blobstore backend (`config: {path}`): a directory per container, a file
//! per object, under `{path}/{scope}/` (the scope is the workload's name, or `_shared`).
//!
//! Names are arbitrary UTF-8 (`/` included), so each becomes a file name by percent-encoding
//! every byte outside `A-Z a-z 0-9 - _ .` (and a leading `.`): `photos/2024 a.jpg` is
//! `photos%2F2024%20a.jpg`. A name whose encoding is longer than 255 bytes is refused.
//! Files starting with `.` are the backend's own: `.created` (a container's creation time),
//! and temporaries.
//!
//! Durability: an object is written to a temporary file, `fsync`ed, renamed over its name and
//! the directory `fsync`ed, so a host killed at any point leaves the old bytes or the new,
//! never a torn object. A deleted container is first renamed away, so it vanishes at once.
//! Temporaries a killed host left behind are swept when a workload binds the store.
//! An object's creation time is its file's modification time (a move keeps it).
//!
//! All file work runs on tokio's blocking pool, one task per operation.

use super::{BlobBackend, ContainerKey, ObjectInfo, byte_range, no_container, no_object, now};
use bytes::Bytes;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The file holding a container's creation time.
const CREATED: &str = ".created";
/// Longest file name most file systems take.
const MAX_FILE_NAME: usize = 255;
/// Temporaries older than this are left over from a killed host.
const STALE: Duration = Duration::from_secs(3600);

pub(crate) struct FsBlobs {
    root: PathBuf,
}

impl FsBlobs {
    /// Opens the store at `root`, creating it, checking that files can be written there and
    /// sweeping what a killed host left in the scopes of `workload` and `shared`.
    pub(crate) async fn open(root: PathBuf, workload: &str, shared: &str) -> Result<Self, String> {
        let scopes = [root.join(workload), root.join(shared)];
        blocking(move || {
            let shown = root.display().to_string();
            fs::create_dir_all(&root)
                .map_err(|e| format!("cannot create directory `{shown}`: {e}"))?;
            let probe = root.join(temp_name("probe"));
            let written = File::create_new(&probe).and_then(|f| f.sync_all());
            let _ = fs::remove_file(&probe);
            written.map_err(|e| format!("cannot write to `{shown}`: {e}"))?;
            for scope in scopes {
                sweep(&scope);
            }
            Ok(Self { root })
        })
        .await
    }

    fn container_dir(&self, c: &ContainerKey) -> Result<PathBuf, String> {
        Ok(self
            .root
            .join(&*c.scope)
            .join(file_name("container", &c.name)?))
    }
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(format!("blob storage task failed: {e}")))
}

/// The file name of a container or object name.
fn file_name(what: &str, name: &str) -> Result<String, String> {
    let encoded = encode(name);
    if encoded.len() > MAX_FILE_NAME {
        return Err(format!(
            "{what} name is too long for the filesystem backend: {} bytes once encoded, at most {MAX_FILE_NAME}",
            encoded.len()
        ));
    }
    Ok(encoded)
}

fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name a file stands for; `None` for a file this backend did not write.
fn decode(file: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(file.len());
    let mut rest = file.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    let name = String::from_utf8(bytes).ok()?;
    (!name.is_empty() && encode(&name) == file).then_some(name)
}

fn temp_name(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        ".{kind}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn seconds(time: io::Result<SystemTime>) -> u64 {
    time.ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes `dir/file` hold what `fill` puts in a fresh temporary file, atomically and durably.
fn replace(dir: &Path, file: &str, fill: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let tmp = dir.join(temp_name("tmp"));
    let result = fill(&tmp)
        .and_then(|()| fs::rename(&tmp, dir.join(file)))
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn require_dir(dir: &Path, c: &ContainerKey) -> Result<(), String> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(no_container(c))
    }
}

/// Describes a failed file operation for the guest (no host paths).
fn failed(doing: String) -> impl FnOnce(io::Error) -> String {
    move |e| format!("{doing} failed: {e}")
}

/// The error for `io` failing on an object: not found means no object (or no container).
fn object_error(e: io::Error, dir: &Path, c: &ContainerKey, name: &str, doing: &str) -> String {
    match e.kind() {
        ErrorKind::NotFound if dir.is_dir() => no_object(c, name),
        ErrorKind::NotFound => no_container(c),
        _ => format!(
            "{doing} object `{name}` in container `{}` failed: {e}",
            c.name
        ),
    }
}

/// Removes what a killed host left in a scope: renamed-away containers and old temporaries.
fn sweep(scope: &Path) {
    let Ok(entries) = fs::read_dir(scope) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".trash-") {
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a deleted blob container");
            }
        } else if !name.starts_with('.') {
            let Ok(files) = fs::read_dir(entry.path()) else {
                continue;
            };
            for file in files.flatten() {
                let stale = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE));
                if file.file_name().to_string_lossy().starts_with(".tmp-") && stale {
                    let _ = fs::remove_file(file.path());
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl BlobBackend for FsBlobs {
    async fn create_container(&self, c: &ContainerKey) -> Result<(), String> {
        let dir = self.container_dir(c)?;
        let c = c.clone();
        blocking(move || {
            let creating = || format!("creating container `{}`", c.name);
            let scope = dir.parent().unwrap_or(&dir).to_path_buf();
            fs::create_dir_all(&scope).map_err(failed(creating()))?;
            match fs::create_dir(&dir) {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(format!("container `{}` already exists", c.name));
                }
                other => other.map_err(failed(creating()))?,
            }
            let created = now().to_string();
            replace(&dir, CREATED, |tmp| write_file(tmp, created.as_bytes()))
                .and_then(|()| sync_dir(&scope))
                .map_err(failed(creating()))
        })
        .await
    }

    async fn container_exists(&self, c: &ContainerKey) -> Result<bool, String> {
        let dir = self.container_dir(c)?;
        blocking(move || Ok(dir.is_dir())).await
    }

    async fn container_created_at(&self, c: &ContainerKey) -> Result<u64, String> {
        let dir = self.container_dir(c)?;
        let c = c.clone();
        blocking(move || {
            require_dir(&dir, &c)?;
            let recorded = fs::read_to_string(dir.join(CREATED))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            // A container whose creation was cut short has no record: its directory's time.
            Ok(recorded.unwrap_or_else(|| seconds(fs::metadata(&dir).and_then(|m| m.modified()))))
        })
        .await
    }

    async fn delete_container(&self, c: &ContainerKey) -> Result<(), String> {
        let dir = self.container_dir(c)?;
        let c = c.clone();
        blocking(move || {
            let scope = dir.parent().unwrap_or(&dir).to_path_buf();
            let trash = scope.join(temp_name("trash"));
            match fs::rename(&dir, &trash) {
                Err(e) if e.kind() == ErrorKind::NotFound => return Err(no_container(&c)),
                other => other.map_err(failed(format!("deleting container `{}`", c.name)))?,
            }
            sync_dir(&scope).map_err(failed(format!("deleting container `{}`", c.name)))?;
            if let Err(e) = fs::remove_dir_all(&trash) {
                tracing::warn!(path = %trash.display(), error = %e, "could not remove a deleted blob container");
            }
            Ok(())
        })
        .await
    }

    async fn write_object(&self, c: &ContainerKey, name: &str, data: Bytes) -> Result<(), String> {
        let dir = self.container_dir(c)?;
        let file = file_name("object", name)?;
        let (c, name) = (c.clone(), name.to_string());
        blocking(move || {
            require_dir(&dir, &c)?;
            replace(&dir, &file, |tmp| write_file(tmp, &data))
                .map_err(|e| object_error(e, &dir, &c, &name, "writing"))
        })
        .await
    }

    async fn read_object(
        &self,
        c: &ContainerKey,
        name: &str,
        start: u64,
        end: u64,
    ) -> Result<Bytes, String> {
        let dir = self.container_dir(c)?;
        let file = file_name("object", name)?;
        let (c, name) = (c.clone(), name.to_string());
        blocking(move || {
            let error = |e| object_error(e, &dir, &c, &name, "reading");
            // The open file is the object as it was: a replacement is a new file.
            let mut f = File::open(dir.join(&file)).map_err(error)?;
            let size = f.metadata().map_err(error)?.len();
            let (offset, len) = byte_range(&c, &name, size, start, end)?;
            let mut buf = vec![0; len];
            f.seek(SeekFrom::Start(offset))
                .and_then(|_| f.read_exact(&mut buf))
                .map_err(error)?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn list_objects(&self, c: &ContainerKey) -> Result<Vec<String>, String> {
        let dir = self.container_dir(c)?;
        let c = c.clone();
        blocking(move || {
            let entries = fs::read_dir(&dir).map_err(|e| match e.kind() {
                ErrorKind::NotFound => no_container(&c),
                _ => format!("listing container `{}` failed: {e}", c.name),
            })?;
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(failed(format!("listing container `{}`", c.name)))?;
                let is_file = entry.file_type().is_ok_and(|t| t.is_file());
                if let Some(name) = entry.file_name().to_str().and_then(decode)
                    && is_file
                {
                    names.push(name);
                }
            }
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn delete_objects(&self, c: &ContainerKey, names: &[String]) -> Result<(), String> {
        let dir = self.container_dir(c)?;
        // A name too long to be a file cannot name an object: nothing to delete.
        let files: Vec<(String, String)> = names
            .iter()
            .filter_map(|n| Some((file_name("object", n).ok()?, n.clone())))
            .collect();
        let c = c.clone();
        blocking(move || {
            require_dir(&dir, &c)?;
            for (file, name) in &files {
                match fs::remove_file(dir.join(file)) {
                    Err(e) if e.kind() != ErrorKind::NotFound => {
                        return Err(object_error(e, &dir, &c, name, "deleting"));
                    }
                    _ => {}
                }
            }
            sync_dir(&dir).map_err(failed(format!("deleting from container `{}`", c.name)))
        })
        .await
    }

    async fn has_object(&self, c: &ContainerKey, name: &str) -> Result<bool, String> {
        let dir = self.container_dir(c)?;
        let file = file_name("object", name).ok();
        let c = c.clone();
        blocking(move || {
            require_dir(&dir, &c)?;
            Ok(file.is_some_and(|f| dir.join(f).is_file()))
        })
        .await
    }

    async fn object_info(&self, c: &ContainerKey, name: &str) -> Result<ObjectInfo, String> {
        let dir = self.container_dir(c)?;
        let file = file_name("object", name)?;
        let (c, name) = (c.clone(), name.to_string());
        blocking(move || {
            let meta = fs::metadata(dir.join(&file))
                .map_err(|e| object_error(e, &dir, &c, &name, "inspecting"))?;
            Ok(ObjectInfo {
                size: meta.len(),
                created_at: seconds(meta.modified()),
            })
        })
        .await
    }

    async fn clear(&self, c: &ContainerKey) -> Result<(), String> {
        let dir = self.container_dir(c)?;
        let c = c.clone();
        blocking(move || {
            let clearing = || format!("clearing container `{}`", c.name);
            let entries = fs::read_dir(&dir).map_err(|e| match e.kind() {
                ErrorKind::NotFound => no_container(&c),
                _ => failed(clearing())(e),
            })?;
            for entry in entries {
                let entry = entry.map_err(failed(clearing()))?;
                if entry.file_name().to_str().and_then(decode).is_some() {
                    match fs::remove_file(entry.path()) {
                        Err(e) if e.kind() != ErrorKind::NotFound => {
                            return Err(failed(clearing())(e));
                        }
                        _ => {}
                    }
                }
            }
            sync_dir(&dir).map_err(failed(clearing()))
        })
        .await
    }

    async fn copy_object(
        &self,
        src: &ContainerKey,
        src_name: &str,
        dest: &ContainerKey,
        dest_name: &str,
    ) -> Result<(), String> {
        let src_dir = self.container_dir(src)?;
        let src_file = file_name("object", src_name)?;
        let dest_dir = self.container_dir(dest)?;
        let dest_file = file_name("object", dest_name)?;
        let (src, src_name, dest) = (src.clone(), src_name.to_string(), dest.clone());
        blocking(move || {
            let from = src_dir.join(&src_file);
            let src_error = |e| object_error(e, &src_dir, &src, &src_name, "copying");
            fs::metadata(&from).map_err(src_error)?;
            require_dir(&dest_dir, &dest)?;
            if from == dest_dir.join(&dest_file) {
                return Ok(());
            }
            replace(&dest_dir, &dest_file, |tmp| {
                fs::copy(&from, tmp)?;
                File::open(tmp)?.sync_all()
            })
            .map_err(src_error)
        })
        .await
    }

    async fn move_object(
        &self,
        src: &ContainerKey,
        src_name: &str,
        dest: &ContainerKey,
        dest_name: &str,
    ) -> Result<(), String> {
        let src_dir = self.container_dir(src)?;
        let src_file = file_name("object", src_name)?;
        let dest_dir = self.container_dir(dest)?;
        let dest_file = file_name("object", dest_name)?;
        let (src, src_name, dest) = (src.clone(), src_name.to_string(), dest.clone());
        blocking(move || {
            let from = src_dir.join(&src_file);
            let to = dest_dir.join(&dest_file);
            let src_error = |e| object_error(e, &src_dir, &src, &src_name, "moving");
            fs::metadata(&from).map_err(src_error)?;
            require_dir(&dest_dir, &dest)?;
            if from == to {
                return Ok(());
            }
            fs::rename(&from, &to).map_err(src_error)?;
            sync_dir(&dest_dir).map_err(src_error)?;
            if src_dir != dest_dir {
                sync_dir(&src_dir).map_err(src_error)?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_encode_to_safe_file_names_and_back() {
        for (name, file) in [
            ("plain-name_1.txt", "plain-name_1.txt"),
            ("a/b c", "a%2Fb%20c"),
            (".", "%2E"),
            ("..", "%2E."),
            (".hidden", "%2Ehidden"),
            ("100%", "100%25"),
            ("é", "%C3%A9"),
        ] {
            assert_eq!(encode(name), file);
            assert_eq!(decode(file).as_deref(), Some(name));
        }
        for foreign in [".created", ".tmp-1-2-3", "%2e", "%zz", "a%2", "%FF", ""] {
            assert_eq!(decode(foreign), None, "{foreign}");
        }
        assert!(file_name("object", &"x".repeat(255)).is_ok());
        assert!(file_name("object", &"/".repeat(86)).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stray_files_are_not_objects_and_leftovers_are_swept() {
        let root = std::env::temp_dir().join(format!("hearth-blob-fs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let store = FsBlobs::open(root.clone(), "w", "_shared").await.unwrap();
        let c = ContainerKey {
            scope: "w".into(),
            name: "c/1".into(),
        };
        store.create_container(&c).await.unwrap();
        store
            .write_object(&c, "a", Bytes::from_static(b"x"))
            .await
            .unwrap();
        let dir = root.join("w/c%2F1");
        let old = dir.join(".tmp-old");
        fs::write(&old, b"half").unwrap();
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - 2 * STALE)
            .unwrap();
        fs::write(dir.join(".tmp-new"), b"in flight").unwrap();
        fs::write(dir.join("%zz"), b"not ours").unwrap();
        assert_eq!(store.list_objects(&c).await.unwrap(), ["a"]);
        store.clear(&c).await.unwrap();
        assert_eq!(store.list_objects(&c).await.unwrap(), Vec::<String>::new());
        assert!(
            dir.join("%zz").exists(),
            "a file this backend did not write is left alone"
        );

        // Without its `.created` record a container is as old as its directory.
        let recorded = store.container_created_at(&c).await.unwrap();
        fs::remove_file(dir.join(CREATED)).unwrap();
        assert!(store.container_created_at(&c).await.unwrap() >= recorded);

        // Reopening sweeps renamed-away containers and old temporaries, not fresh ones.
        fs::create_dir_all(root.join("w/.trash-1/x")).unwrap();
        FsBlobs::open(root.clone(), "w", "_shared").await.unwrap();
        assert!(!root.join("w/.trash-1").exists());
        assert!(!old.exists());
        assert!(dir.join(".tmp-new").exists());
        fs::remove_dir_all(&root).unwrap();
    }
}
