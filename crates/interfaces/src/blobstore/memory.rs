//! The `memory` blobstore backend: one store for the whole host, behind one lock, so copy and
//! move are atomic and a redeploy keeps its containers. Nothing survives a restart.
//!
//! Objects are `Bytes`, so reading one out is a reference-count bump, not a copy.

use super::{BlobBackend, ContainerKey, ObjectInfo, byte_range, no_container, no_object, now};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

#[derive(Default)]
pub(crate) struct MemoryBlobs {
    containers: Mutex<HashMap<ContainerKey, Container>>,
}

struct Container {
    created_at: u64,
    objects: BTreeMap<String, Object>,
}

#[derive(Clone)]
struct Object {
    data: Bytes,
    created_at: u64,
}

type Containers = HashMap<ContainerKey, Container>;

impl MemoryBlobs {
    fn lock(&self) -> MutexGuard<'_, Containers> {
        self.containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn container<'a>(all: &'a Containers, c: &ContainerKey) -> Result<&'a Container, String> {
    all.get(c).ok_or_else(|| no_container(c))
}

fn container_mut<'a>(
    all: &'a mut Containers,
    c: &ContainerKey,
) -> Result<&'a mut Container, String> {
    all.get_mut(c).ok_or_else(|| no_container(c))
}

fn object<'a>(all: &'a Containers, c: &ContainerKey, name: &str) -> Result<&'a Object, String> {
    container(all, c)?
        .objects
        .get(name)
        .ok_or_else(|| no_object(c, name))
}

#[async_trait::async_trait]
impl BlobBackend for MemoryBlobs {
    async fn create_container(&self, c: &ContainerKey) -> Result<(), String> {
        let mut all = self.lock();
        if all.contains_key(c) {
            return Err(format!("container `{}` already exists", c.name));
        }
        all.insert(
            c.clone(),
            Container {
                created_at: now(),
                objects: BTreeMap::new(),
            },
        );
        Ok(())
    }

    async fn container_exists(&self, c: &ContainerKey) -> Result<bool, String> {
        Ok(self.lock().contains_key(c))
    }

    async fn container_created_at(&self, c: &ContainerKey) -> Result<u64, String> {
        Ok(container(&self.lock(), c)?.created_at)
    }

    async fn delete_container(&self, c: &ContainerKey) -> Result<(), String> {
        self.lock()
            .remove(c)
            .map(drop)
            .ok_or_else(|| no_container(c))
    }

    async fn write_object(&self, c: &ContainerKey, name: &str, data: Bytes) -> Result<(), String> {
        let mut all = self.lock();
        container_mut(&mut all, c)?.objects.insert(
            name.to_string(),
            Object {
                data,
                created_at: now(),
            },
        );
        Ok(())
    }

    async fn read_object(
        &self,
        c: &ContainerKey,
        name: &str,
        start: u64,
        end: u64,
    ) -> Result<Bytes, String> {
        let data = object(&self.lock(), c, name)?.data.clone();
        let (offset, len) = byte_range(c, name, data.len() as u64, start, end)?;
        // The offset is below the length of data in memory, so it fits a usize.
        let offset = usize::try_from(offset).map_err(|e| e.to_string())?;
        Ok(data.slice(offset..offset + len))
    }

    async fn list_objects(&self, c: &ContainerKey) -> Result<Vec<String>, String> {
        Ok(container(&self.lock(), c)?
            .objects
            .keys()
            .cloned()
            .collect())
    }

    async fn delete_objects(&self, c: &ContainerKey, names: &[String]) -> Result<(), String> {
        let mut all = self.lock();
        let container = container_mut(&mut all, c)?;
        for name in names {
            container.objects.remove(name);
        }
        Ok(())
    }

    async fn has_object(&self, c: &ContainerKey, name: &str) -> Result<bool, String> {
        Ok(container(&self.lock(), c)?.objects.contains_key(name))
    }

    async fn object_info(&self, c: &ContainerKey, name: &str) -> Result<ObjectInfo, String> {
        let all = self.lock();
        let o = object(&all, c, name)?;
        Ok(ObjectInfo {
            size: o.data.len() as u64,
            created_at: o.created_at,
        })
    }

    async fn clear(&self, c: &ContainerKey) -> Result<(), String> {
        container_mut(&mut self.lock(), c)?.objects.clear();
        Ok(())
    }

    async fn copy_object(
        &self,
        src: &ContainerKey,
        src_name: &str,
        dest: &ContainerKey,
        dest_name: &str,
    ) -> Result<(), String> {
        let mut all = self.lock();
        let data = object(&all, src, src_name)?.data.clone();
        container_mut(&mut all, dest)?.objects.insert(
            dest_name.to_string(),
            Object {
                data,
                created_at: now(),
            },
        );
        Ok(())
    }

    async fn move_object(
        &self,
        src: &ContainerKey,
        src_name: &str,
        dest: &ContainerKey,
        dest_name: &str,
    ) -> Result<(), String> {
        let mut all = self.lock();
        object(&all, src, src_name)?;
        container(&all, dest)?;
        if src == dest && src_name == dest_name {
            return Ok(());
        }
        let moved = container_mut(&mut all, src)?
            .objects
            .remove(src_name)
            .ok_or_else(|| no_object(src, src_name))?;
        container_mut(&mut all, dest)?
            .objects
            .insert(dest_name.to_string(), moved);
        Ok(())
    }
}
