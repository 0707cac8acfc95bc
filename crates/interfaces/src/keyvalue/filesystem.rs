//! The `filesystem` key-value backend (`config: {path: DIR}`): one file per key, durable
//! across crashes of the host and of the machine. `DIR` is created at deploy (a relative path
//! is relative to hearth's working directory); one that cannot be written fails the deploy.
//!
//! Layout: `DIR/{scope}/{bucket}/{key}`, where `scope` is the workload name or `_shared`, and
//! the bucket and key names are percent-encoded: letters, digits and `-_.:@+=,` stay as they
//! are (except a leading `.`), every other byte becomes `%XX`. A name must fit in 255 bytes
//! once encoded. A file holds the value's bytes and nothing else.
//!
//! A write goes to a temporary file (`.tmp.{pid}.{n}`, in the bucket's directory) that is
//! written, `fsync`ed, renamed over the key's file and followed by an `fsync` of the
//! directory. A `kill -9` (or power loss) mid-write therefore leaves either the old value or
//! the new one, never a torn one; a stray temporary file is ignored by `list-keys` and removed
//! the next time a host opens the directory.
//!
//! Writes to one key are serialised by a lock (a stripe of a fixed lock table), which makes
//! `increment` atomic **within one host process**: two hosts writing one directory are not
//! supported. All file work runs on tokio's blocking pool.

use super::{BucketId, KeyPage, KeyValueBackend, LIST_PAGE, overflow, parse_counter};
use crate::{BackendConfig, FieldError};
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Longest file name most Linux file systems take.
const NAME_MAX: usize = 255;

/// How many locks the keys of one directory share.
const LOCK_STRIPES: usize = 64;

/// Prefix of temporary files (encoded names never start with `.`).
const TMP_PREFIX: &str = ".tmp.";

/// Reads the entry's `path`.
pub(crate) fn settings(config: &mut BackendConfig<'_>) -> Result<PathBuf, FieldError> {
    Ok(PathBuf::from(config.string(
        "path",
        "a directory for the key-value files, such as `/var/lib/hearth/kv`",
    )?))
}

/// Percent-encodes a bucket or key name into a file name.
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b"-_:@+=,".contains(&b) || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name a file name encodes; `None` for names this backend did not write.
fn decode(file: &str) -> Option<String> {
    let bytes = file.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn fits(what: &str, name: &str) -> Result<String, String> {
    let encoded = encode(name);
    if encoded.len() > NAME_MAX {
        return Err(format!(
            "{what} too long for the filesystem backend: {} bytes once encoded, expected at most {NAME_MAX} (letters, digits and `-_.:@+=,` take one byte, other bytes three)",
            encoded.len()
        ));
    }
    Ok(encoded)
}

/// `fsync`s a directory, so the entries just created, renamed or removed in it are durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(crate) struct FsStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    locks: [Mutex<()>; LOCK_STRIPES],
    next_tmp: AtomicU64,
}

impl FsStore {
    /// Creates `root` if needed, checks that it is writable, and removes temporary files
    /// that a previous host process left behind.
    pub(crate) fn open(root: &Path) -> Result<Self, String> {
        let cannot = |e: std::io::Error| {
            format!(
                "cannot use `{}` as the key-value directory: {e}",
                root.display()
            )
        };
        fs::create_dir_all(root).map_err(cannot)?;
        let probe = root.join(format!("{TMP_PREFIX}{}.probe", std::process::id()));
        File::create(&probe).map_err(cannot)?;
        fs::remove_file(&probe).map_err(cannot)?;
        sweep_temporaries(root);
        Ok(Self {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                locks: std::array::from_fn(|_| Mutex::new(())),
                next_tmp: AtomicU64::new(0),
            }),
        })
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| format!("filesystem key-value task failed: {e}"))?
    }
}

/// Removes `.tmp.{pid}.*` files of other (dead) processes in every bucket directory.
fn sweep_temporaries(root: &Path) {
    let ours = format!("{TMP_PREFIX}{}.", std::process::id());
    let Ok(scopes) = fs::read_dir(root) else {
        return;
    };
    for scope in scopes.flatten() {
        let Ok(buckets) = fs::read_dir(scope.path()) else {
            continue;
        };
        for bucket in buckets.flatten() {
            let Ok(files) = fs::read_dir(bucket.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(TMP_PREFIX) && !name.starts_with(&ours) {
                    let _ = fs::remove_file(file.path());
                }
            }
        }
    }
}

impl Inner {
    fn bucket_dir(&self, bucket: &BucketId) -> PathBuf {
        self.root.join(&*bucket.scope).join(encode(&bucket.name))
    }

    fn key_path(&self, bucket: &BucketId, key: &str) -> PathBuf {
        self.bucket_dir(bucket).join(encode(key))
    }

    fn lock(&self, bucket: &BucketId, key: &str) -> MutexGuard<'_, ()> {
        self.lock_stripe(stripe_of(bucket, key))
    }

    fn lock_stripe(&self, stripe: usize) -> MutexGuard<'_, ()> {
        self.locks[stripe % LOCK_STRIPES]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fail(&self, what: &str, e: std::io::Error) -> String {
        format!(
            "filesystem key-value store at `{}`: cannot {what}: {e}",
            self.root.display()
        )
    }

    fn read(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, String> {
        match fs::read(self.key_path(bucket, key)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.fail(&format!("read `{key}`"), e)),
        }
    }

    /// Creates the bucket's directory (and its scope's) durably.
    fn make_bucket_dir(&self, dir: &Path) -> std::io::Result<()> {
        fs::create_dir_all(dir)?;
        if let Some(scope) = dir.parent() {
            sync_dir(scope)?;
        }
        sync_dir(&self.root)
    }

    /// Writes `value` to a fresh temporary file in `dir` and `fsync`s it.
    fn temporary(&self, dir: &Path, value: &[u8]) -> std::io::Result<PathBuf> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TMP_PREFIX}{}.{n}", std::process::id()));
        let mut open = OpenOptions::new();
        open.write(true).create_new(true);
        let mut file = match open.open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.make_bucket_dir(dir)?;
                open.open(&path)?
            }
            Err(e) => return Err(e),
        };
        let written = file.write_all(value).and_then(|()| file.sync_data());
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }

    /// Replaces the values of `entries` durably: temporary files, renames, one directory
    /// `fsync`. The caller holds the keys' locks.
    fn write(&self, bucket: &BucketId, entries: &[(&str, &[u8])]) -> Result<(), String> {
        let dir = self.bucket_dir(bucket);
        let mut temporaries = Vec::with_capacity(entries.len());
        let result = (|| {
            for (key, value) in entries {
                let tmp = self
                    .temporary(&dir, value)
                    .map_err(|e| self.fail(&format!("write `{key}`"), e))?;
                temporaries.push((tmp, dir.join(encode(key)), *key));
            }
            for (tmp, path, key) in &temporaries {
                fs::rename(tmp, path).map_err(|e| self.fail(&format!("write `{key}`"), e))?;
            }
            sync_dir(&dir).map_err(|e| self.fail("sync the bucket directory", e))
        })();
        if result.is_err() {
            for (tmp, _, _) in &temporaries {
                let _ = fs::remove_file(tmp);
            }
        }
        result
    }

    fn remove(&self, bucket: &BucketId, keys: &[String]) -> Result<(), String> {
        let dir = self.bucket_dir(bucket);
        let mut removed = false;
        for key in keys {
            let _guard = self.lock(bucket, key);
            match fs::remove_file(dir.join(encode(key))) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.fail(&format!("delete `{key}`"), e)),
            }
        }
        if removed {
            sync_dir(&dir).map_err(|e| self.fail("sync the bucket directory", e))?;
        }
        Ok(())
    }

    fn list(&self, bucket: &BucketId, cursor: Option<u64>) -> Result<KeyPage, String> {
        let entries = match fs::read_dir(self.bucket_dir(bucket)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(KeyPage::default()),
            Err(e) => return Err(self.fail("list the bucket", e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.fail("list the bucket", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            if let Some(key) = decode(name) {
                keys.push(key);
            }
        }
        keys.sort_unstable();
        let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let total = keys.len();
        let page: Vec<String> = keys.into_iter().skip(skip).take(LIST_PAGE).collect();
        let next = skip.saturating_add(page.len());
        Ok(KeyPage {
            keys: page,
            cursor: (next < total).then_some(next as u64),
        })
    }
}

#[async_trait::async_trait]
impl KeyValueBackend for FsStore {
    fn check_bucket(&self, bucket: &BucketId) -> Result<(), String> {
        fits("bucket name", &bucket.name).map(drop)
    }

    fn check_key(&self, key: &str) -> Result<(), String> {
        fits("key", key).map(drop)
    }

    async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, String> {
        let (bucket, key) = (bucket.clone(), key.to_string());
        self.blocking(move |s| s.read(&bucket, &key)).await
    }

    async fn set(&self, bucket: &BucketId, key: &str, value: Vec<u8>) -> Result<(), String> {
        let (bucket, key) = (bucket.clone(), key.to_string());
        self.blocking(move |s| {
            let _guard = s.lock(&bucket, &key);
            s.write(&bucket, &[(&key, &value)])
        })
        .await
    }

    async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), String> {
        let (bucket, keys) = (bucket.clone(), vec![key.to_string()]);
        self.blocking(move |s| s.remove(&bucket, &keys)).await
    }

    async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, String> {
        let path = self.inner.key_path(bucket, key);
        let key = key.to_string();
        self.blocking(move |s| match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(s.fail(&format!("look up `{key}`"), e)),
        })
        .await
    }

    async fn list_keys(&self, bucket: &BucketId, cursor: Option<u64>) -> Result<KeyPage, String> {
        let bucket = bucket.clone();
        self.blocking(move |s| s.list(&bucket, cursor)).await
    }

    async fn increment(&self, bucket: &BucketId, key: &str, delta: u64) -> Result<u64, String> {
        let (bucket, key) = (bucket.clone(), key.to_string());
        self.blocking(move |s| {
            let _guard = s.lock(&bucket, &key);
            let current = parse_counter(&key, s.read(&bucket, &key)?.as_deref())?;
            let sum = current
                .checked_add(delta)
                .ok_or_else(|| overflow(&key, delta))?;
            s.write(&bucket, &[(&key, sum.to_string().as_bytes())])?;
            Ok(sum)
        })
        .await
    }

    async fn get_many(
        &self,
        bucket: &BucketId,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        let bucket = bucket.clone();
        self.blocking(move |s| keys.iter().map(|k| s.read(&bucket, k)).collect())
            .await
    }

    /// Each key is replaced atomically, but not the set as a whole: a crash midway leaves
    /// some keys new and some old.
    async fn set_many(
        &self,
        bucket: &BucketId,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        let bucket = bucket.clone();
        self.blocking(move |s| {
            // Lock the stripes in index order (each once) so two batches cannot deadlock.
            let mut stripes: Vec<usize> =
                entries.iter().map(|(k, _)| stripe_of(&bucket, k)).collect();
            stripes.sort_unstable();
            stripes.dedup();
            let _guards: Vec<_> = stripes.iter().map(|&i| s.lock_stripe(i)).collect();
            let refs: Vec<(&str, &[u8])> = entries
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            s.write(&bucket, &refs)
        })
        .await
    }

    async fn delete_many(&self, bucket: &BucketId, keys: Vec<String>) -> Result<(), String> {
        let bucket = bucket.clone();
        self.blocking(move |s| s.remove(&bucket, &keys)).await
    }
}

fn stripe_of(bucket: &BucketId, key: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (bucket, key).hash(&mut h);
    (h.finish() % LOCK_STRIPES as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_file_names() {
        for name in [
            "plain", "a/b", "..", ".hidden", "x.y", "%41", "ünï", "a b\n", "k:1@x",
        ] {
            let file = encode(name);
            assert!(!file.contains('/') && !file.starts_with('.'), "{file}");
            assert_eq!(decode(&file).as_deref(), Some(name));
        }
        assert_eq!(encode("user:1.json"), "user:1.json");
        assert_eq!(decode("%zz"), None);
        assert!(fits("key", &"a".repeat(255)).is_ok());
        assert!(fits("key", &"/".repeat(86)).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn values_survive_reopening_and_increments_are_atomic() {
        let dir = std::env::temp_dir().join(format!("hearth-kv-fs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let bucket = BucketId {
            scope: "w".into(),
            name: "b/1".into(),
        };
        let store = Arc::new(FsStore::open(&dir).unwrap());
        store.set(&bucket, "a", b"1".to_vec()).await.unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (store, bucket) = (Arc::clone(&store), bucket.clone());
                tokio::spawn(async move {
                    for _ in 0..25 {
                        store.increment(&bucket, "n", 2).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // A leftover of a dead process is swept when the directory is opened again.
        let stale = dir.join("w/b%2F1/.tmp.1.0");
        fs::write(&stale, b"torn").unwrap();
        let store = FsStore::open(&dir).unwrap();
        assert!(!stale.exists());
        assert_eq!(
            store.get(&bucket, "n").await.unwrap(),
            Some(b"200".to_vec())
        );
        assert_eq!(store.get(&bucket, "a").await.unwrap(), Some(b"1".to_vec()));
        let page = store.list_keys(&bucket, None).await.unwrap();
        assert_eq!(page.keys, ["a", "n"]);
        store
            .delete_many(&bucket, vec!["a".into(), "zz".into()])
            .await
            .unwrap();
        assert!(!store.exists(&bucket, "a").await.unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }
}
