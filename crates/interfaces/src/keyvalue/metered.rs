//! A key-value backend with its operations counted (see `crate::meter`): the decorator
//! [`super::bind`] puts around every backend it binds.

use super::{BucketId, KeyPage, KeyValueBackend};
use crate::meter::Meter;
use std::sync::Arc;

pub(super) struct Metered {
    inner: Arc<dyn KeyValueBackend>,
    meter: Meter,
}

impl Metered {
    pub(super) fn wrap(
        inner: Arc<dyn KeyValueBackend>,
        workload: &str,
        backend: &str,
    ) -> Arc<dyn KeyValueBackend> {
        Arc::new(Self {
            inner,
            meter: Meter::new(workload, "keyvalue", backend),
        })
    }
}

#[async_trait::async_trait]
impl KeyValueBackend for Metered {
    // Argument checks are not operations: the guest's mistake, not the backend's work.
    fn check_bucket(&self, bucket: &BucketId) -> Result<(), String> {
        self.inner.check_bucket(bucket)
    }
    fn check_key(&self, key: &str) -> Result<(), String> {
        self.inner.check_key(key)
    }
    async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.meter.measure(self.inner.get(bucket, key)).await
    }
    async fn set(&self, bucket: &BucketId, key: &str, value: Vec<u8>) -> Result<(), String> {
        self.meter.measure(self.inner.set(bucket, key, value)).await
    }
    async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), String> {
        self.meter.measure(self.inner.delete(bucket, key)).await
    }
    async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, String> {
        self.meter.measure(self.inner.exists(bucket, key)).await
    }
    async fn list_keys(&self, bucket: &BucketId, cursor: Option<u64>) -> Result<KeyPage, String> {
        self.meter
            .measure(self.inner.list_keys(bucket, cursor))
            .await
    }
    async fn increment(&self, bucket: &BucketId, key: &str, delta: u64) -> Result<u64, String> {
        self.meter
            .measure(self.inner.increment(bucket, key, delta))
            .await
    }
    async fn get_many(
        &self,
        bucket: &BucketId,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        self.meter.measure(self.inner.get_many(bucket, keys)).await
    }
    async fn set_many(
        &self,
        bucket: &BucketId,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        self.meter
            .measure(self.inner.set_many(bucket, entries))
            .await
    }
    async fn delete_many(&self, bucket: &BucketId, keys: Vec<String>) -> Result<(), String> {
        self.meter
            .measure(self.inner.delete_many(bucket, keys))
            .await
    }
}
