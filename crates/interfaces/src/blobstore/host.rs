//! The WIT `Host` traits of `wasi:blobstore` (`types`, `container`, `blobstore`) for
//! [`InterfacesView`]: resolve the guest's resources and names, call the part's backend, and
//! hand back resources. A backend `Err` is the guest's `error` string; a missing resource is a
//! trap (a host bug or a forged handle), never an `error`.

use super::values::{Container, IncomingValue, OutgoingValue, StreamObjectNames};
use super::{BlobBackend, ContainerKey, check_name};
use crate::InterfacesView;
use crate::bindings::blobstore::blobstore as store;
use crate::bindings::blobstore::container;
use crate::bindings::blobstore::types::{self, ContainerMetadata, ObjectId, ObjectMetadata};
use std::sync::Arc;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

impl InterfacesView<'_> {
    fn blob_backend(&self) -> Arc<dyn BlobBackend> {
        Arc::clone(&self.ctx.part.blobstore.backend)
    }

    fn container_key(&self, c: &Resource<Container>) -> wasmtime::Result<ContainerKey> {
        Ok(self.table.get(c)?.key.clone())
    }

    /// The container and object an `object-id` names, as scoped for this part.
    fn object_key(&self, id: &ObjectId) -> Result<ContainerKey, String> {
        check_name("object", &id.object)?;
        self.ctx.part.blobstore.key(&id.container)
    }
}

impl types::Host for InterfacesView<'_> {}

impl types::HostOutgoingValue for InterfacesView<'_> {
    async fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
        Ok(self.table.push(OutgoingValue::default())?)
    }

    async fn outgoing_value_write_body(
        &mut self,
        value: Resource<OutgoingValue>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
        let value = self.table.get_mut(&value)?;
        if value.stream_taken {
            return Ok(Err(()));
        }
        value.stream_taken = true;
        let stream: DynOutputStream = Box::new(value.writer());
        Ok(Ok(self.table.push(stream)?))
    }

    async fn finish(
        &mut self,
        value: Resource<OutgoingValue>,
    ) -> wasmtime::Result<Result<(), String>> {
        let value = self.table.delete(value)?;
        // `write-data` stored what had been written then; store again where more came after.
        let bytes = value.bytes();
        let backend = self.blob_backend();
        for (key, name, stored) in &value.written_to {
            if *stored != bytes.len()
                && let Err(e) = backend.write_object(key, name, bytes.clone()).await
            {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    async fn drop(&mut self, value: Resource<OutgoingValue>) -> wasmtime::Result<()> {
        self.table.delete(value)?;
        Ok(())
    }
}

impl types::HostIncomingValue for InterfacesView<'_> {
    async fn incoming_value_consume_sync(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        Ok(Ok(self.table.delete(value)?.data.to_vec()))
    }

    async fn incoming_value_consume_async(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> wasmtime::Result<Result<Resource<DynInputStream>, String>> {
        let data = self.table.delete(value)?.data;
        let stream: DynInputStream = Box::new(MemoryInputPipe::new(data));
        Ok(Ok(self.table.push(stream)?))
    }

    async fn size(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&value)?.data.len() as u64)
    }

    async fn drop(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<()> {
        self.table.delete(value)?;
        Ok(())
    }
}

impl container::Host for InterfacesView<'_> {}

impl container::HostContainer for InterfacesView<'_> {
    async fn name(&mut self, c: Resource<Container>) -> wasmtime::Result<Result<String, String>> {
        Ok(Ok(self.container_key(&c)?.name))
    }

    async fn info(
        &mut self,
        c: Resource<Container>,
    ) -> wasmtime::Result<Result<ContainerMetadata, String>> {
        let key = self.container_key(&c)?;
        Ok(self
            .blob_backend()
            .container_created_at(&key)
            .await
            .map(|created_at| ContainerMetadata {
                name: key.name,
                created_at,
            }))
    }

    async fn get_data(
        &mut self,
        c: Resource<Container>,
        name: String,
        start: u64,
        end: u64,
    ) -> wasmtime::Result<Result<Resource<IncomingValue>, String>> {
        let key = self.container_key(&c)?;
        if let Err(e) = check_name("object", &name) {
            return Ok(Err(e));
        }
        match self
            .blob_backend()
            .read_object(&key, &name, start, end)
            .await
        {
            Ok(data) => Ok(Ok(self.table.push(IncomingValue { data })?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn write_data(
        &mut self,
        c: Resource<Container>,
        name: String,
        data: Resource<OutgoingValue>,
    ) -> wasmtime::Result<Result<(), String>> {
        let key = self.container_key(&c)?;
        if let Err(e) = check_name("object", &name) {
            return Ok(Err(e));
        }
        let bytes = self.table.get(&data)?.bytes();
        let len = bytes.len();
        if let Err(e) = self.blob_backend().write_object(&key, &name, bytes).await {
            return Ok(Err(e));
        }
        let value = self.table.get_mut(&data)?;
        value
            .written_to
            .retain(|(k, n, _)| !(*k == key && *n == name));
        value.written_to.push((key, name, len));
        Ok(Ok(()))
    }

    async fn list_objects(
        &mut self,
        c: Resource<Container>,
    ) -> wasmtime::Result<Result<Resource<StreamObjectNames>, String>> {
        let key = self.container_key(&c)?;
        match self.blob_backend().list_objects(&key).await {
            Ok(names) => Ok(Ok(self.table.push(StreamObjectNames {
                names: names.into(),
            })?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn delete_object(
        &mut self,
        c: Resource<Container>,
        name: String,
    ) -> wasmtime::Result<Result<(), String>> {
        let key = self.container_key(&c)?;
        Ok(self.blob_backend().delete_objects(&key, &[name]).await)
    }

    async fn delete_objects(
        &mut self,
        c: Resource<Container>,
        names: Vec<String>,
    ) -> wasmtime::Result<Result<(), String>> {
        let key = self.container_key(&c)?;
        Ok(self.blob_backend().delete_objects(&key, &names).await)
    }

    async fn has_object(
        &mut self,
        c: Resource<Container>,
        name: String,
    ) -> wasmtime::Result<Result<bool, String>> {
        let key = self.container_key(&c)?;
        Ok(self.blob_backend().has_object(&key, &name).await)
    }

    async fn object_info(
        &mut self,
        c: Resource<Container>,
        name: String,
    ) -> wasmtime::Result<Result<ObjectMetadata, String>> {
        let key = self.container_key(&c)?;
        Ok(self
            .blob_backend()
            .object_info(&key, &name)
            .await
            .map(|info| ObjectMetadata {
                name,
                container: key.name,
                created_at: info.created_at,
                size: info.size,
            }))
    }

    async fn clear(&mut self, c: Resource<Container>) -> wasmtime::Result<Result<(), String>> {
        let key = self.container_key(&c)?;
        Ok(self.blob_backend().clear(&key).await)
    }

    async fn drop(&mut self, c: Resource<Container>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl container::HostStreamObjectNames for InterfacesView<'_> {
    async fn read_stream_object_names(
        &mut self,
        names: Resource<StreamObjectNames>,
        len: u64,
    ) -> wasmtime::Result<Result<(Vec<String>, bool), String>> {
        Ok(Ok(self.table.get_mut(&names)?.read(len)))
    }

    async fn skip_stream_object_names(
        &mut self,
        names: Resource<StreamObjectNames>,
        num: u64,
    ) -> wasmtime::Result<Result<(u64, bool), String>> {
        Ok(Ok(self.table.get_mut(&names)?.skip(num)))
    }

    async fn drop(&mut self, names: Resource<StreamObjectNames>) -> wasmtime::Result<()> {
        self.table.delete(names)?;
        Ok(())
    }
}

impl store::Host for InterfacesView<'_> {
    async fn create_container(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<Container>, String>> {
        let key = match self.ctx.part.blobstore.key(&name) {
            Ok(key) => key,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self.blob_backend().create_container(&key).await {
            return Ok(Err(e));
        }
        Ok(Ok(self.table.push(Container { key })?))
    }

    async fn get_container(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<Container>, String>> {
        let key = match self.ctx.part.blobstore.key(&name) {
            Ok(key) => key,
            Err(e) => return Ok(Err(e)),
        };
        match self.blob_backend().container_exists(&key).await {
            Ok(true) => Ok(Ok(self.table.push(Container { key })?)),
            Ok(false) => Ok(Err(super::no_container(&key))),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn delete_container(&mut self, name: String) -> wasmtime::Result<Result<(), String>> {
        Ok(match self.ctx.part.blobstore.key(&name) {
            Ok(key) => self.blob_backend().delete_container(&key).await,
            Err(e) => Err(e),
        })
    }

    async fn container_exists(&mut self, name: String) -> wasmtime::Result<Result<bool, String>> {
        Ok(match self.ctx.part.blobstore.key(&name) {
            Ok(key) => self.blob_backend().container_exists(&key).await,
            Err(e) => Err(e),
        })
    }

    async fn copy_object(
        &mut self,
        src: ObjectId,
        dest: ObjectId,
    ) -> wasmtime::Result<Result<(), String>> {
        let keys = self
            .object_key(&src)
            .and_then(|s| Ok((s, self.object_key(&dest)?)));
        Ok(match keys {
            Ok((s, d)) => {
                self.blob_backend()
                    .copy_object(&s, &src.object, &d, &dest.object)
                    .await
            }
            Err(e) => Err(e),
        })
    }

    async fn move_object(
        &mut self,
        src: ObjectId,
        dest: ObjectId,
    ) -> wasmtime::Result<Result<(), String>> {
        let keys = self
            .object_key(&src)
            .and_then(|s| Ok((s, self.object_key(&dest)?)));
        Ok(match keys {
            Ok((s, d)) => {
                self.blob_backend()
                    .move_object(&s, &src.object, &d, &dest.object)
                    .await
            }
            Err(e) => Err(e),
        })
    }
}
