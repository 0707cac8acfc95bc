//! The resources a guest holds: open containers, outgoing and incoming values, the body
//! stream an outgoing value is written through, and paged object-name listings.
//!
//! It does not talk to a backend: `host.rs` does, with what these hold.

use super::{ContainerKey, MAX_VALUE_BYTES};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// An open container: which one, as the part's binding scoped it.
pub struct Container {
    pub(super) key: ContainerKey,
}

/// Bytes on their way into the store, written through [`BodyWriter`].
#[derive(Default)]
pub struct OutgoingValue {
    body: Arc<Mutex<BytesMut>>,
    pub(super) stream_taken: bool,
    /// The objects `write-data` stored this value to, with how many bytes each got; `finish`
    /// stores the value again where bytes came after.
    pub(super) written_to: Vec<(ContainerKey, String, usize)>,
}

impl OutgoingValue {
    /// The bytes written so far.
    pub(super) fn bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&lock(&self.body))
    }

    /// The stream that appends to this value.
    pub(super) fn writer(&self) -> BodyWriter {
        BodyWriter {
            body: Arc::clone(&self.body),
        }
    }
}

/// Bytes read from the store.
pub struct IncomingValue {
    pub(super) data: Bytes,
}

/// A listing of object names, read in pages.
pub struct StreamObjectNames {
    pub(super) names: VecDeque<String>,
}

impl StreamObjectNames {
    /// Up to `len` names, and whether the listing is exhausted after them.
    pub(super) fn read(&mut self, len: u64) -> (Vec<String>, bool) {
        let n = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(self.names.len());
        let page = self.names.drain(..n).collect();
        (page, self.names.is_empty())
    }

    /// Skips up to `num` names: how many were skipped, and whether the listing is exhausted.
    pub(super) fn skip(&mut self, num: u64) -> (u64, bool) {
        let n = usize::try_from(num)
            .unwrap_or(usize::MAX)
            .min(self.names.len());
        self.names.drain(..n);
        (n as u64, self.names.is_empty())
    }
}

fn lock(body: &Mutex<BytesMut>) -> MutexGuard<'_, BytesMut> {
    body.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `output-stream` of an outgoing value: appends to its buffer, up to
/// [`MAX_VALUE_BYTES`]; a write past that fails (the guest sees `last-operation-failed`).
pub(super) struct BodyWriter {
    body: Arc<Mutex<BytesMut>>,
}

fn too_large() -> StreamError {
    StreamError::LastOperationFailed(wasmtime::format_err!(
        "a blobstore value may hold at most {} MiB",
        MAX_VALUE_BYTES >> 20
    ))
}

#[async_trait::async_trait]
impl OutputStream for BodyWriter {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        let mut body = lock(&self.body);
        if bytes.len() > MAX_VALUE_BYTES - body.len().min(MAX_VALUE_BYTES) {
            return Err(too_large());
        }
        body.extend_from_slice(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        let room = MAX_VALUE_BYTES.saturating_sub(lock(&self.body).len());
        if room == 0 {
            return Err(too_large());
        }
        Ok(room)
    }
}

#[async_trait::async_trait]
impl Pollable for BodyWriter {
    async fn ready(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_stream_appends_and_stops_at_the_cap() {
        let value = OutgoingValue::default();
        let mut w = value.writer();
        w.write(Bytes::from_static(b"abc")).unwrap();
        w.write(Bytes::from_static(b"def")).unwrap();
        assert_eq!(&value.bytes()[..], b"abcdef");
        assert_eq!(w.check_write().unwrap(), MAX_VALUE_BYTES - 6);
        let err = w.write(Bytes::from(vec![0; MAX_VALUE_BYTES])).unwrap_err();
        assert!(err.to_string().contains("at most 64 MiB"), "{err}");
        assert_eq!(value.bytes().len(), 6);
    }

    #[test]
    fn names_are_read_in_pages() {
        let mut names = StreamObjectNames {
            names: ["a", "b", "c"].map(String::from).into(),
        };
        assert_eq!(
            names.read(2),
            (vec!["a".to_string(), "b".to_string()], false)
        );
        assert_eq!(names.skip(5), (1, true));
        assert_eq!(names.read(2), (vec![], true));
    }
}
