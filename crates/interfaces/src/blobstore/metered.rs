//! A blobstore backend with its operations counted (see `crate::meter`): the decorator
//! [`super::bind`] puts around every backend it binds.

use super::{BlobBackend, ContainerKey, ObjectInfo};
use crate::meter::Meter;
use bytes::Bytes;
use std::sync::Arc;

pub(super) struct Metered {
    inner: Arc<dyn BlobBackend>,
    meter: Meter,
}

impl Metered {
    pub(super) fn wrap(
        inner: Arc<dyn BlobBackend>,
        workload: &str,
        backend: &str,
    ) -> Arc<dyn BlobBackend> {
        Arc::new(Self {
            inner,
            meter: Meter::new(workload, "blobstore", backend),
        })
    }
}

#[async_trait::async_trait]
impl BlobBackend for Metered {
    async fn create_container(&self, c: &ContainerKey) -> Result<(), String> {
        self.meter.measure(self.inner.create_container(c)).await
    }
    async fn container_exists(&self, c: &ContainerKey) -> Result<bool, String> {
        self.meter.measure(self.inner.container_exists(c)).await
    }
    async fn container_created_at(&self, c: &ContainerKey) -> Result<u64, String> {
        self.meter.measure(self.inner.container_created_at(c)).await
    }
    async fn delete_container(&self, c: &ContainerKey) -> Result<(), String> {
        self.meter.measure(self.inner.delete_container(c)).await
    }
    async fn write_object(&self, c: &ContainerKey, name: &str, data: Bytes) -> Result<(), String> {
        self.meter
            .measure(self.inner.write_object(c, name, data))
            .await
    }
    async fn read_object(
        &self,
        c: &ContainerKey,
        name: &str,
        start: u64,
        end: u64,
    ) -> Result<Bytes, String> {
        self.meter
            .measure(self.inner.read_object(c, name, start, end))
            .await
    }
    async fn list_objects(&self, c: &ContainerKey) -> Result<Vec<String>, String> {
        self.meter.measure(self.inner.list_objects(c)).await
    }
    async fn delete_objects(&self, c: &ContainerKey, names: &[String]) -> Result<(), String> {
        self.meter
            .measure(self.inner.delete_objects(c, names))
            .await
    }
    async fn has_object(&self, c: &ContainerKey, name: &str) -> Result<bool, String> {
        self.meter.measure(self.inner.has_object(c, name)).await
    }
    async fn object_info(&self, c: &ContainerKey, name: &str) -> Result<ObjectInfo, String> {
        self.meter.measure(self.inner.object_info(c, name)).await
    }
    async fn clear(&self, c: &ContainerKey) -> Result<(), String> {
        self.meter.measure(self.inner.clear(c)).await
    }
    async fn copy_object(
        &self,
        src: &ContainerKey,
        src_name: &str,
        dest: &ContainerKey,
        dest_name: &str,
    ) -> Result<(), String> {
        self.meter
            .measure(self.inner.copy_object(src, src_name, dest, dest_name))
            .await
    }
    async fn move_object(
        &self,
        src: &ContainerKey,
        src_name: &str,
        dest: &ContainerKey,
        dest_name: &str,
    ) -> Result<(), String> {
        self.meter
            .measure(self.inner.move_object(src, src_name, dest, dest_name))
            .await
    }
}
