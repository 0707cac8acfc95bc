//! `wasi:keyvalue@0.2.0-draft`: buckets (`store`), `atomics.increment` and `batch`, served
//! from one of three backends behind [`KeyValueBackend`]: `memory` (host-wide, in process),
//! `filesystem` (`config: {path}`, one durable file per key) and `redis` (`config: {url}`, one
//! Redis hash per bucket).
//!
//! **Scoping.** A bucket belongs to the workload that opens it: two workloads opening
//! `counter` get two different buckets. A bucket named in the entry's `config.shared` list is
//! host-wide instead: every workload that lists it sees the same data. Backends see a
//! [`BucketId`] (`{workload}/{name}` or `_shared/{name}`; workload names are DNS labels, which
//! cannot contain `_`, so the two never collide). `open("")` opens the bucket named `default`.
//!
//! **Values.** Opaque bytes, except that `increment` stores its result as decimal ASCII in
//! every backend (`get` then returns e.g. `b"5"`); incrementing anything else is an error.
//! `list-keys` pages are at most [`LIST_PAGE`] keys; the batch operations are not atomic as a
//! whole (each key is). Backend failures reach the guest as `error::other` with a message
//! that names the backend; only host bugs (a bad resource handle) trap.
//!
//! It does not own the manifest syntax (`hearth-manifest`) or the store's resource table.

mod filesystem;
mod memory;
mod metered;
mod redis;

use crate::bindings::keyvalue::store::{Error, KeyResponse};
use crate::bindings::keyvalue::{atomics, batch, store};
use crate::{BackendConfig, Declared, FieldError, InterfacesView};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use wasmtime::component::Resource;

pub(crate) const PACKAGE: &str = "wasi:keyvalue";
pub(crate) const BACKENDS: &[&str] = &["memory", "filesystem", "redis"];

/// Most keys one `list-keys` page returns (Redis treats it as a hint).
pub(crate) const LIST_PAGE: usize = 1000;

/// Longest bucket name, in bytes.
const MAX_BUCKET_NAME: usize = 200;

/// Longest key, in bytes (the filesystem backend is stricter, see its module).
const MAX_KEY: usize = 4096;

/// The bucket `open("")` opens.
const DEFAULT_BUCKET: &str = "default";

/// The scope of buckets listed in `config.shared`.
const SHARED_SCOPE: &str = "_shared";

/// Which bucket a backend operates on: its owner (a workload name, or `_shared`) and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketId {
    pub scope: Arc<str>,
    pub name: String,
}

impl fmt::Display for BucketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.scope, self.name)
    }
}

/// One page of keys and where the next one starts (`None` on the last page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    pub cursor: Option<u64>,
}

/// A key-value backend. Errors are messages for the guest (they become `error::other`), so
/// they say which backend failed and why, e.g. `redis at redis://…: connection refused`.
///
/// The batch operations default to one call per key; backends override them when they can
/// do better. They are never called with an empty batch: the host answers those itself.
#[async_trait::async_trait]
pub trait KeyValueBackend: Send + Sync + 'static {
    /// Checks, at `open`, that this backend can hold a bucket of that name.
    fn check_bucket(&self, _bucket: &BucketId) -> Result<(), String> {
        Ok(())
    }
    /// Checks that this backend can hold `key` (called before every operation on it).
    fn check_key(&self, _key: &str) -> Result<(), String> {
        Ok(())
    }
    async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, String>;
    async fn set(&self, bucket: &BucketId, key: &str, value: Vec<u8>) -> Result<(), String>;
    /// Deleting an absent key succeeds.
    async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), String>;
    async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, String>;
    /// The page of keys at `cursor` (`None` = the first page).
    async fn list_keys(&self, bucket: &BucketId, cursor: Option<u64>) -> Result<KeyPage, String>;
    /// Adds `delta` to the decimal number at `key` (absent = 0), atomically, and returns it.
    async fn increment(&self, bucket: &BucketId, key: &str, delta: u64) -> Result<u64, String>;

    async fn get_many(
        &self,
        bucket: &BucketId,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        let mut out = Vec::with_capacity(keys.len());
        for key in &keys {
            out.push(self.get(bucket, key).await?);
        }
        Ok(out)
    }

    async fn set_many(
        &self,
        bucket: &BucketId,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        for (key, value) in entries {
            self.set(bucket, &key, value).await?;
        }
        Ok(())
    }

    async fn delete_many(&self, bucket: &BucketId, keys: Vec<String>) -> Result<(), String> {
        for key in &keys {
            self.delete(bucket, key).await?;
        }
        Ok(())
    }
}

/// The message for a stored value `increment` cannot add to.
pub(crate) fn not_a_number(key: &str) -> String {
    format!("the value at `{key}` is not a decimal number, so it cannot be incremented")
}

/// The message for an increment past `u64::MAX` (or Redis's `i64::MAX`).
pub(crate) fn overflow(key: &str, delta: u64) -> String {
    format!("incrementing `{key}` by {delta} overflows")
}

/// Reads a stored counter: decimal ASCII, absent = 0.
pub(crate) fn parse_counter(key: &str, value: Option<&[u8]>) -> Result<u64, String> {
    match value {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| not_a_number(key)),
    }
}

/// An open bucket, as the guest holds it.
pub struct Bucket {
    id: BucketId,
}

/// Host-wide key-value state: the `memory` store and one `filesystem` store per directory
/// (so workloads sharing a directory share its locks). Both outlive redeploys.
#[derive(Default)]
pub(crate) struct Shared {
    memory: Arc<memory::MemoryStore>,
    filesystems: Mutex<HashMap<std::path::PathBuf, Arc<filesystem::FsStore>>>,
}

/// The backend one part uses, and how it names buckets.
#[derive(Clone)]
pub(crate) struct Binding {
    backend: Arc<dyn KeyValueBackend>,
    workload: Arc<str>,
    shared: Arc<[String]>,
}

impl Binding {
    /// The bucket `open(identifier)` means for this part.
    fn bucket_id(&self, identifier: &str) -> Result<BucketId, Error> {
        let name = if identifier.is_empty() {
            DEFAULT_BUCKET
        } else {
            identifier
        };
        if name.len() > MAX_BUCKET_NAME {
            return Err(Error::Other(format!(
                "bucket name too long: {} bytes, expected at most {MAX_BUCKET_NAME}",
                name.len()
            )));
        }
        let scope = if self.shared.iter().any(|s| s == name) {
            SHARED_SCOPE.into()
        } else {
            Arc::clone(&self.workload)
        };
        let id = BucketId {
            scope,
            name: name.to_string(),
        };
        self.backend.check_bucket(&id).map_err(Error::Other)?;
        Ok(id)
    }

    fn check_key(&self, key: &str) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::Other("empty key: expected at least one byte".into()));
        }
        if key.len() > MAX_KEY {
            return Err(Error::Other(format!(
                "key too long: {} bytes, expected at most {MAX_KEY}",
                key.len()
            )));
        }
        self.backend.check_key(key).map_err(Error::Other)
    }
}

/// Reads the `shared` list every backend takes.
fn shared_buckets(config: &mut BackendConfig<'_>) -> Result<Vec<String>, FieldError> {
    let names = config.strings("shared", "bucket names")?;
    for (i, name) in names.iter().enumerate() {
        if name.len() > MAX_BUCKET_NAME {
            return Err(config.error(
                &format!("shared[{i}]"),
                format!("bucket name too long: expected at most {MAX_BUCKET_NAME} bytes"),
            ));
        }
    }
    Ok(names)
}

/// Checks an entry's backend and settings, without I/O; returns its `shared` list.
fn settings(d: Declared<'_>) -> Result<Vec<String>, FieldError> {
    let mut config = d.config();
    let shared = shared_buckets(&mut config)?;
    match d.spec.backend.as_str() {
        "memory" => config.finish(&["shared"])?,
        "filesystem" => {
            filesystem::settings(&mut config)?;
            config.finish(&["path", "shared"])?;
        }
        "redis" => {
            redis::settings(&mut config)?;
            config.finish(&["url", "shared"])?;
        }
        _ => return Err(d.unknown_backend(BACKENDS)),
    }
    Ok(shared)
}

pub(crate) fn check(d: Declared<'_>) -> Result<(), FieldError> {
    settings(d).map(drop)
}

/// Binds the backend a part declared (`None`: the host's memory store). Creates the
/// filesystem directory or connects to Redis, so a backend that cannot be used fails here.
pub(crate) async fn bind(
    shared: &Shared,
    workload: &Arc<str>,
    decl: Option<Declared<'_>>,
) -> Result<Binding, FieldError> {
    let Some(d) = decl else {
        return Ok(Binding {
            backend: metered::Metered::wrap(shared.memory.clone(), workload, "memory"),
            workload: Arc::clone(workload),
            shared: Arc::new([]),
        });
    };
    let buckets = settings(d)?;
    let mut config = d.config();
    let backend: Arc<dyn KeyValueBackend> = match d.spec.backend.as_str() {
        "memory" => shared.memory.clone(),
        "filesystem" => {
            let path = filesystem::settings(&mut config)?;
            let mut stores = shared
                .filesystems
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
            match stores.get(&key) {
                Some(store) => store.clone(),
                None => {
                    let store = Arc::new(
                        filesystem::FsStore::open(&key).map_err(|why| config.error("path", why))?,
                    );
                    stores.insert(key, Arc::clone(&store));
                    store
                }
            }
        }
        "redis" => {
            let url = redis::settings(&mut config)?;
            Arc::new(
                redis::RedisStore::connect(&url)
                    .await
                    .map_err(|why| config.error("url", why))?,
            )
        }
        _ => return Err(d.unknown_backend(BACKENDS)),
    };
    Ok(Binding {
        backend: metered::Metered::wrap(backend, workload, &d.spec.backend),
        workload: Arc::clone(workload),
        shared: buckets.into(),
    })
}

impl InterfacesView<'_> {
    /// The bucket behind a handle and the backend to ask; a bad handle is a host bug (trap).
    fn kv(
        &self,
        bucket: &Resource<Bucket>,
    ) -> wasmtime::Result<(BucketId, Arc<dyn KeyValueBackend>)> {
        let id = self.table.get(bucket)?.id.clone();
        Ok((id, Arc::clone(&self.ctx.part.keyvalue.backend)))
    }

    fn kv_keys(&self, keys: &[String]) -> Result<(), Error> {
        keys.iter()
            .try_for_each(|k| self.ctx.part.keyvalue.check_key(k))
    }
}

/// `Ok(Err(..))` for an invalid argument, before touching the backend.
macro_rules! guest_err {
    ($check:expr) => {
        if let Err(e) = $check {
            return Ok(Err(e));
        }
    };
}

impl store::Host for InterfacesView<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, Error>> {
        let id = match self.ctx.part.keyvalue.bucket_id(&identifier) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.table.push(Bucket { id })?))
    }
}

impl store::HostBucket for InterfacesView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let (id, backend) = self.kv(&bucket)?;
        guest_err!(self.ctx.part.keyvalue.check_key(&key));
        Ok(backend.get(&id, &key).await.map_err(Error::Other))
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (id, backend) = self.kv(&bucket)?;
        guest_err!(self.ctx.part.keyvalue.check_key(&key));
        Ok(backend.set(&id, &key, value).await.map_err(Error::Other))
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (id, backend) = self.kv(&bucket)?;
        guest_err!(self.ctx.part.keyvalue.check_key(&key));
        Ok(backend.delete(&id, &key).await.map_err(Error::Other))
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let (id, backend) = self.kv(&bucket)?;
        guest_err!(self.ctx.part.keyvalue.check_key(&key));
        Ok(backend.exists(&id, &key).await.map_err(Error::Other))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<KeyResponse, Error>> {
        let (id, backend) = self.kv(&bucket)?;
        Ok(backend
            .list_keys(&id, cursor)
            .await
            .map(|page| KeyResponse {
                keys: page.keys,
                cursor: page.cursor,
            })
            .map_err(Error::Other))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for InterfacesView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let (id, backend) = self.kv(&bucket)?;
        guest_err!(self.ctx.part.keyvalue.check_key(&key));
        Ok(backend
            .increment(&id, &key, delta)
            .await
            .map_err(Error::Other))
    }
}

impl batch::Host for InterfacesView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, Error>> {
        let (id, backend) = self.kv(&bucket)?;
        guest_err!(self.kv_keys(&keys));
        if keys.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let values = match backend.get_many(&id, keys.clone()).await {
            Ok(values) => values,
            Err(e) => return Ok(Err(Error::Other(e))),
        };
        Ok(Ok(keys
            .into_iter()
            .zip(values)
            .map(|(k, v)| v.map(|v| (k, v)))
            .collect()))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (id, backend) = self.kv(&bucket)?;
        for (key, _) in &key_values {
            guest_err!(self.ctx.part.keyvalue.check_key(key));
        }
        if key_values.is_empty() {
            return Ok(Ok(()));
        }
        Ok(backend
            .set_many(&id, key_values)
            .await
            .map_err(Error::Other))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (id, backend) = self.kv(&bucket)?;
        guest_err!(self.kv_keys(&keys));
        if keys.is_empty() {
            return Ok(Ok(()));
        }
        Ok(backend.delete_many(&id, keys).await.map_err(Error::Other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_decimal_ascii() {
        assert_eq!(parse_counter("k", None), Ok(0));
        assert_eq!(parse_counter("k", Some(b"42")), Ok(42));
        assert!(parse_counter("k", Some(b"")).is_err());
        assert!(parse_counter("k", Some(b"-1")).is_err());
        assert!(parse_counter("k", Some(b" 1")).is_err());
        assert!(parse_counter("k", Some(b"abc")).is_err());
        assert!(parse_counter("k", Some(b"99999999999999999999999")).is_err());
    }

    fn binding(shared: &[&str]) -> Binding {
        Binding {
            backend: Arc::new(memory::MemoryStore::default()),
            workload: "shop".into(),
            shared: shared.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn buckets_are_scoped_to_the_workload_unless_shared() {
        let b = binding(&["common"]);
        assert_eq!(b.bucket_id("counter").unwrap().to_string(), "shop/counter");
        assert_eq!(b.bucket_id("common").unwrap().to_string(), "_shared/common");
        assert_eq!(b.bucket_id("").unwrap().to_string(), "shop/default");
        assert!(b.bucket_id(&"x".repeat(MAX_BUCKET_NAME + 1)).is_err());
        assert!(b.check_key("").is_err());
        assert!(b.check_key("a").is_ok());
    }
}
