//! The `memory` key-value backend: one store for the whole host, kept in `Shared`, so a
//! bucket outlives the workload instance that wrote it (a redeploy keeps its data) but not the
//! process. One lock guards every bucket: operations are short and never wait on I/O, and
//! `increment` is atomic because it reads and writes under that lock.

use super::{BucketId, KeyPage, KeyValueBackend, LIST_PAGE, overflow, parse_counter};
use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

type Buckets = HashMap<BucketId, BTreeMap<String, Vec<u8>>>;

#[derive(Default)]
pub(crate) struct MemoryStore {
    buckets: RwLock<Buckets>,
}

impl MemoryStore {
    fn read(&self) -> RwLockReadGuard<'_, Buckets> {
        self.buckets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Buckets> {
        self.buckets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl KeyValueBackend for MemoryStore {
    async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.read().get(bucket).and_then(|b| b.get(key)).cloned())
    }

    async fn set(&self, bucket: &BucketId, key: &str, value: Vec<u8>) -> Result<(), String> {
        self.write()
            .entry(bucket.clone())
            .or_default()
            .insert(key.to_string(), value);
        Ok(())
    }

    async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), String> {
        let mut buckets = self.write();
        if let Some(b) = buckets.get_mut(bucket) {
            b.remove(key);
            if b.is_empty() {
                buckets.remove(bucket);
            }
        }
        Ok(())
    }

    async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, String> {
        Ok(self.read().get(bucket).is_some_and(|b| b.contains_key(key)))
    }

    /// The cursor is the number of keys already returned, in key order; keys added or
    /// removed between pages may shift a later page by that many.
    async fn list_keys(&self, bucket: &BucketId, cursor: Option<u64>) -> Result<KeyPage, String> {
        let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let buckets = self.read();
        let Some(b) = buckets.get(bucket) else {
            return Ok(KeyPage::default());
        };
        let keys: Vec<String> = b.keys().skip(skip).take(LIST_PAGE).cloned().collect();
        let next = skip.saturating_add(keys.len());
        let cursor = (next < b.len()).then_some(next as u64);
        Ok(KeyPage { keys, cursor })
    }

    async fn increment(&self, bucket: &BucketId, key: &str, delta: u64) -> Result<u64, String> {
        let mut buckets = self.write();
        let b = buckets.entry(bucket.clone()).or_default();
        let current = parse_counter(key, b.get(key).map(Vec::as_slice))?;
        let sum = current
            .checked_add(delta)
            .ok_or_else(|| overflow(key, delta))?;
        b.insert(key.to_string(), sum.to_string().into_bytes());
        Ok(sum)
    }

    async fn get_many(
        &self,
        bucket: &BucketId,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        let buckets = self.read();
        let b = buckets.get(bucket);
        Ok(keys
            .iter()
            .map(|k| b.and_then(|b| b.get(k)).cloned())
            .collect())
    }

    async fn set_many(
        &self,
        bucket: &BucketId,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        self.write()
            .entry(bucket.clone())
            .or_default()
            .extend(entries);
        Ok(())
    }

    async fn delete_many(&self, bucket: &BucketId, keys: Vec<String>) -> Result<(), String> {
        let mut buckets = self.write();
        if let Some(b) = buckets.get_mut(bucket) {
            for key in &keys {
                b.remove(key);
            }
            if b.is_empty() {
                buckets.remove(bucket);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn id(scope: &str, name: &str) -> BucketId {
        BucketId {
            scope: scope.into(),
            name: name.into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn increments_are_atomic_and_buckets_apart() {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (id("a", "counter"), id("b", "counter"));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, a) = (Arc::clone(&store), a.clone());
                tokio::spawn(async move {
                    for _ in 0..500 {
                        store.increment(&a, "n", 1).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.get(&a, "n").await.unwrap(), Some(b"4000".to_vec()));
        assert_eq!(store.get(&b, "n").await.unwrap(), None);
        store.set(&a, "s", b"x".to_vec()).await.unwrap();
        assert!(store.increment(&a, "s", 1).await.is_err());
        store
            .set(&a, "big", u64::MAX.to_string().into())
            .await
            .unwrap();
        assert!(
            store
                .increment(&a, "big", 1)
                .await
                .unwrap_err()
                .contains("overflows")
        );
    }

    #[tokio::test]
    async fn list_keys_pages_in_key_order() {
        let store = MemoryStore::default();
        let a = id("a", "many");
        let entries = (0..LIST_PAGE + 5)
            .map(|i| (format!("k{i:05}"), vec![1]))
            .collect();
        store.set_many(&a, entries).await.unwrap();
        let first = store.list_keys(&a, None).await.unwrap();
        assert_eq!(first.keys.len(), LIST_PAGE);
        assert_eq!(first.keys[0], "k00000");
        let second = store.list_keys(&a, first.cursor).await.unwrap();
        assert_eq!(second.keys.len(), 5);
        assert_eq!(second.cursor, None);
        assert_eq!(
            store.list_keys(&a, Some(1 << 40)).await.unwrap(),
            KeyPage::default()
        );
    }
}
