//! In-memory pipes: the wire of the virtual loopback network. A [`Pipe`] carries bytes one way
//! through a bounded buffer (64 KiB) behind a mutex, with one waker for its reader and one for
//! its writer; no background task is involved. A connection is two pipes. This module owns the
//! pipe ends that guests see as `wasi:io` streams ([`PipeReader`], [`PipeWriter`]) and the
//! host-side end [`VirtualStream`] (tokio `AsyncRead` + `AsyncWrite`). Dropping an end closes
//! its direction: a dropped reader makes the peer's writes fail with `closed`, a dropped writer
//! gives the peer's reads EOF once the buffer is drained. Sockets and listeners are elsewhere.

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// Bytes a pipe buffers before its writer has to wait for the reader.
pub const PIPE_CAPACITY: usize = 64 * 1024;

/// Reads larger than this are cut to it (and guests are never offered more to write).
const MAX_READ: usize = PIPE_CAPACITY;

/// A one-way, bounded, in-memory byte pipe.
pub(crate) struct Pipe {
    state: Mutex<PipeState>,
    /// The connection this pipe is half of, for the network's count of open ones.
    _connection: Option<Arc<OpenConnection>>,
}

/// One open virtual connection in its network's count: held by both pipes of the
/// connection, so the count drops when the last of its four ends is gone.
pub(crate) struct OpenConnection {
    open: Arc<AtomicUsize>,
}

impl OpenConnection {
    pub(crate) fn new(open: &Arc<AtomicUsize>) -> Arc<Self> {
        open.fetch_add(1, Ordering::Relaxed);
        Arc::new(Self {
            open: Arc::clone(open),
        })
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

struct PipeState {
    chunks: VecDeque<Bytes>,
    len: usize,
    capacity: usize,
    /// The writer is gone or shut down: once `chunks` is empty, the reader sees EOF.
    write_closed: bool,
    /// The reader is gone or shut down: buffered data is discarded and writes fail.
    read_closed: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

fn store_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl Pipe {
    fn new(capacity: usize, connection: Option<Arc<OpenConnection>>) -> Arc<Self> {
        Arc::new(Self {
            _connection: connection,
            state: Mutex::new(PipeState {
                chunks: VecDeque::new(),
                len: 0,
                capacity,
                write_closed: false,
                read_closed: false,
                read_waker: None,
                write_waker: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PipeState> {
        // A panic while holding this lock cannot leave the state inconsistent in a way that
        // matters more than losing the connection, so a poisoned lock is simply reused.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the writing direction (FIN): the reader drains what is buffered, then sees EOF.
    pub(crate) fn close_write(&self) {
        let waker = {
            let mut s = self.lock();
            if s.write_closed {
                return;
            }
            s.write_closed = true;
            s.read_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Closes the reading direction: buffered data is dropped and the writer's next write fails.
    pub(crate) fn close_read(&self) {
        let (waker, _dropped) = {
            let mut s = self.lock();
            s.read_closed = true;
            s.len = 0;
            (s.write_waker.take(), std::mem::take(&mut s.chunks))
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Takes up to `max` bytes. `Ok(None)` means nothing is buffered yet; `Err(())` means EOF.
    fn take(&self, max: usize) -> Result<Option<Bytes>, ()> {
        let (data, waker) = {
            let mut s = self.lock();
            if s.read_closed {
                return Err(());
            }
            if s.len == 0 {
                return if s.write_closed { Err(()) } else { Ok(None) };
            }
            let data = s.take_bytes(max);
            (data, s.write_waker.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(Some(data))
    }

    /// Whether the reader has nothing more to get: shut down, or drained after the writer closed.
    fn at_eof(&self) -> bool {
        let s = self.lock();
        s.read_closed || (s.write_closed && s.len == 0)
    }

    fn poll_readable(&self, cx: &Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.len > 0 || s.write_closed || s.read_closed {
            Poll::Ready(())
        } else {
            store_waker(&mut s.read_waker, cx);
            Poll::Pending
        }
    }

    /// Free space for the writer; `Err` once either direction is closed.
    fn space(&self) -> Result<usize, ()> {
        let s = self.lock();
        if s.read_closed || s.write_closed {
            Err(())
        } else {
            Ok(s.capacity.saturating_sub(s.len))
        }
    }

    fn poll_writable(&self, cx: &Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.len < s.capacity || s.read_closed || s.write_closed {
            Poll::Ready(())
        } else {
            store_waker(&mut s.write_waker, cx);
            Poll::Pending
        }
    }

    /// Appends `data` if it fits. `Err(true)`: closed; `Err(false)`: more than the free space.
    fn push(&self, data: Bytes) -> Result<(), bool> {
        if data.is_empty() {
            return if self.space().is_ok() {
                Ok(())
            } else {
                Err(true)
            };
        }
        let waker = {
            let mut s = self.lock();
            if s.read_closed || s.write_closed {
                return Err(true);
            }
            if data.len() > s.capacity.saturating_sub(s.len) {
                return Err(false);
            }
            s.len += data.len();
            s.chunks.push_back(data);
            s.read_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

impl PipeState {
    /// Removes up to `max` (> 0) bytes from the front; only called with `len > 0`.
    fn take_bytes(&mut self, max: usize) -> Bytes {
        let max = max.min(self.len);
        let front_len = self.chunks.front().map_or(0, Bytes::len);
        let data = if front_len >= max {
            // Common case: one chunk satisfies the read; hand it out without copying.
            match self.chunks.front_mut() {
                Some(front) if front_len == max => {
                    let data = std::mem::take(front);
                    self.chunks.pop_front();
                    data
                }
                Some(front) => front.split_to(max),
                None => Bytes::new(),
            }
        } else {
            let mut out = BytesMut::with_capacity(max);
            while out.len() < max {
                let Some(front) = self.chunks.front_mut() else {
                    break;
                };
                let want = max - out.len();
                if front.len() <= want {
                    out.extend_from_slice(front);
                    self.chunks.pop_front();
                } else {
                    out.extend_from_slice(&front.split_to(want));
                }
            }
            out.freeze()
        };
        self.len -= data.len();
        data
    }
}

/// Creates one connection: returns the two ends, each as (reader, writer).
#[cfg(test)]
pub(crate) fn duplex() -> ((PipeReader, PipeWriter), (PipeReader, PipeWriter)) {
    duplex_counted(None)
}

/// Creates one connection counted in `connection` while any of its ends lives.
pub(crate) fn duplex_counted(
    connection: Option<Arc<OpenConnection>>,
) -> ((PipeReader, PipeWriter), (PipeReader, PipeWriter)) {
    let a_to_b = Pipe::new(PIPE_CAPACITY, connection.clone());
    let b_to_a = Pipe::new(PIPE_CAPACITY, connection);
    (
        (
            PipeReader {
                pipe: b_to_a.clone(),
            },
            PipeWriter {
                pipe: a_to_b.clone(),
            },
        ),
        (PipeReader { pipe: a_to_b }, PipeWriter { pipe: b_to_a }),
    )
}

/// The reading end of a pipe; the guest's `input-stream` of a virtual connection.
pub(crate) struct PipeReader {
    pipe: Arc<Pipe>,
}

impl PipeReader {
    pub(crate) fn pipe(&self) -> Arc<Pipe> {
        self.pipe.clone()
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.pipe.close_read();
    }
}

#[async_trait::async_trait]
impl Pollable for PipeReader {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.pipe.poll_readable(cx)).await
    }
}

impl InputStream for PipeReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if size == 0 {
            return if self.pipe.at_eof() {
                Err(StreamError::Closed)
            } else {
                Ok(Bytes::new())
            };
        }
        match self.pipe.take(size.min(MAX_READ)) {
            Ok(Some(data)) => Ok(data),
            Ok(None) => Ok(Bytes::new()),
            Err(()) => Err(StreamError::Closed),
        }
    }
}

/// The writing end of a pipe; the guest's `output-stream` of a virtual connection.
pub(crate) struct PipeWriter {
    pipe: Arc<Pipe>,
}

impl PipeWriter {
    pub(crate) fn pipe(&self) -> Arc<Pipe> {
        self.pipe.clone()
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.pipe.close_write();
    }
}

#[async_trait::async_trait]
impl Pollable for PipeWriter {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.pipe.poll_writable(cx)).await
    }
}

impl OutputStream for PipeWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        match self.pipe.push(bytes) {
            Ok(()) => Ok(()),
            Err(true) => Err(StreamError::Closed),
            Err(false) => Err(StreamError::trap(
                "write exceeds the budget granted by check-write",
            )),
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Written bytes are already visible to the reader; there is nothing to flush.
        self.pipe
            .space()
            .map(|_| ())
            .map_err(|()| StreamError::Closed)
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.pipe.space().map_err(|()| StreamError::Closed)
    }
}

/// The host's end of a virtual connection (for published ports and `wasi:http` requests to
/// `localhost`): tokio `AsyncRead` + `AsyncWrite`. Dropping it closes both directions, and
/// `shutdown` closes the writing direction (the peer reads EOF).
pub struct VirtualStream {
    reader: PipeReader,
    writer: PipeWriter,
}

impl std::fmt::Debug for VirtualStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualStream").finish_non_exhaustive()
    }
}

impl VirtualStream {
    pub(crate) fn new(reader: PipeReader, writer: PipeWriter) -> Self {
        Self { reader, writer }
    }
}

impl AsyncRead for VirtualStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let pipe = &self.reader.pipe;
        let waker = {
            let mut s = pipe.lock();
            if s.read_closed {
                return Poll::Ready(Ok(()));
            }
            if s.len == 0 {
                if s.write_closed {
                    return Poll::Ready(Ok(()));
                }
                store_waker(&mut s.read_waker, cx);
                return Poll::Pending;
            }
            let mut copied = 0;
            while buf.remaining() > 0 {
                let Some(front) = s.chunks.front_mut() else {
                    break;
                };
                let n = front.len().min(buf.remaining());
                buf.put_slice(&front[..n]);
                copied += n;
                if n == front.len() {
                    s.chunks.pop_front();
                } else {
                    let _ = front.split_to(n);
                }
            }
            s.len -= copied;
            s.write_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for VirtualStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let pipe = &self.writer.pipe;
        let waker = {
            let mut s = pipe.lock();
            if s.read_closed || s.write_closed {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let space = s.capacity.saturating_sub(s.len);
            if space == 0 {
                store_waker(&mut s.write_waker, cx);
                return Poll::Pending;
            }
            let n = space.min(buf.len());
            s.chunks.push_back(Bytes::copy_from_slice(&buf[..n]));
            s.len += n;
            (s.read_waker.take(), n)
        };
        if let Some(w) = waker.0 {
            w.wake();
        }
        Poll::Ready(Ok(waker.1))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.pipe.close_write();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn virtual_stream_is_send_and_unpin() {
        fn check<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static>() {}
        check::<VirtualStream>();
    }

    #[test]
    fn backpressure_and_budget() {
        let ((_a_in, mut a_out), (mut b_in, _b_out)) = duplex();
        assert_eq!(a_out.check_write().unwrap(), PIPE_CAPACITY);
        a_out
            .write(Bytes::from(vec![1u8; PIPE_CAPACITY - 10]))
            .unwrap();
        assert_eq!(a_out.check_write().unwrap(), 10);
        // Writing past the budget is a guest bug that traps.
        assert!(matches!(
            a_out.write(Bytes::from(vec![2u8; 11])),
            Err(StreamError::Trap(_))
        ));
        a_out.write(Bytes::from(vec![2u8; 10])).unwrap();
        assert_eq!(a_out.check_write().unwrap(), 0);
        let waker = Waker::noop();
        assert!(
            a_out
                .pipe
                .poll_writable(&Context::from_waker(waker))
                .is_pending()
        );

        // Reads across chunk boundaries copy; the writer gets room back.
        let got = b_in.read(PIPE_CAPACITY - 5).unwrap();
        assert_eq!(got.len(), PIPE_CAPACITY - 5);
        assert_eq!(got[PIPE_CAPACITY - 11], 1);
        assert_eq!(got[PIPE_CAPACITY - 10], 2);
        assert_eq!(a_out.check_write().unwrap(), PIPE_CAPACITY - 5);
        assert_eq!(b_in.read(100).unwrap().len(), 5);
        assert_eq!(b_in.read(100).unwrap().len(), 0);
    }

    #[test]
    fn writer_drop_gives_eof_after_drain() {
        let ((_a_in, mut a_out), (mut b_in, _b_out)) = duplex();
        a_out.write(Bytes::from_static(b"hello")).unwrap();
        drop(a_out);
        assert_eq!(&b_in.read(3).unwrap()[..], b"hel");
        assert_eq!(&b_in.read(10).unwrap()[..], b"lo");
        assert!(matches!(b_in.read(10), Err(StreamError::Closed)));
        assert!(matches!(b_in.read(0), Err(StreamError::Closed)));
    }

    #[test]
    fn reader_drop_fails_peer_writes() {
        let ((_a_in, mut a_out), (b_in, _b_out)) = duplex();
        a_out.write(Bytes::from_static(b"queued")).unwrap();
        drop(b_in);
        assert!(matches!(a_out.check_write(), Err(StreamError::Closed)));
        assert!(matches!(
            a_out.write(Bytes::from_static(b"x")),
            Err(StreamError::Closed)
        ));
        let waker = Waker::noop();
        assert!(
            a_out
                .pipe
                .poll_writable(&Context::from_waker(waker))
                .is_ready()
        );
    }

    #[tokio::test]
    async fn pollables_wake_on_data_and_space() {
        let ((_a_in, mut a_out), (mut b_in, _b_out)) = duplex();
        let reader = tokio::spawn(async move {
            b_in.ready().await;
            b_in.read(1024).unwrap()
        });
        tokio::task::yield_now().await;
        a_out.write(Bytes::from_static(b"ping")).unwrap();
        assert_eq!(&reader.await.unwrap()[..], b"ping");
    }

    #[tokio::test]
    async fn virtual_stream_round_trip_both_directions() {
        let ((a_in, a_out), (b_in, b_out)) = duplex();
        let mut a = VirtualStream::new(a_in, a_out);
        let mut b = VirtualStream::new(b_in, b_out);

        // More than the pipe holds, so both sides must make progress concurrently.
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&sent).await.unwrap();
            a.shutdown().await.unwrap();
            let mut back = Vec::new();
            a.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, payload);
        b.write_all(b"thanks").await.unwrap();
        drop(b);
        assert_eq!(writer.await.unwrap(), b"thanks");
    }

    #[tokio::test]
    async fn virtual_stream_write_after_peer_drop_fails() {
        let ((a_in, a_out), (b_in, b_out)) = duplex();
        let mut a = VirtualStream::new(a_in, a_out);
        drop(VirtualStream::new(b_in, b_out));
        let err = a.write_all(b"x").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        let mut buf = [0u8; 4];
        assert_eq!(a.read(&mut buf).await.unwrap(), 0);
    }
}
