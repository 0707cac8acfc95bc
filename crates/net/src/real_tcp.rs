//! Streams over real TCP connections (egress the policy allowed): `wasi:io` input and output
//! streams on a tokio `TcpStream`. Reads and writes are non-blocking `try_read`/`try_write`;
//! a write the kernel only partly takes is kept and finished before more is accepted. When the
//! guest drops its output stream with bytes still unsent, a task finishes sending them and
//! then shuts the write side. Virtual (loopback) connections never come here (see `pipe.rs`).

use crate::addr::io_error_code;
use crate::bindings::ErrorCode;
use bytes::{Bytes, BytesMut};
use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpStream;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// Largest read and largest write budget offered to the guest.
const CHUNK: usize = 64 * 1024;

/// A connected real TCP stream shared by the socket resource and its two streams.
pub(crate) struct RealConn {
    stream: TcpStream,
    read_closed: AtomicBool,
    write: Mutex<WriteState>,
}

#[derive(Default)]
struct WriteState {
    /// Bytes accepted from the guest that the kernel has not taken yet.
    pending: Bytes,
    /// The guest shut down sending (or dropped its output stream).
    closed: bool,
    /// A write failed; later writes report it.
    failed: Option<ErrorCode>,
}

impl RealConn {
    pub(crate) fn new(stream: TcpStream) -> Arc<Self> {
        Arc::new(Self {
            stream,
            read_closed: AtomicBool::new(false),
            write: Mutex::new(WriteState::default()),
        })
    }

    pub(crate) fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.local_addr()
    }

    fn write_state(&self) -> MutexGuard<'_, WriteState> {
        self.write.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes pending bytes to the kernel until it would block.
    fn flush_pending(&self, state: &mut WriteState) {
        while !state.pending.is_empty() {
            match self.stream.try_write(&state.pending) {
                Ok(n) => {
                    let _ = state.pending.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    state.failed = Some(io_error_code(&e));
                    state.pending = Bytes::new();
                    return;
                }
            }
        }
    }

    pub(crate) fn shutdown_receive(&self) {
        self.read_closed.store(true, Ordering::Release);
        let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Read);
    }

    /// Stops sending: FIN once every accepted byte is out (in the background if need be).
    pub(crate) fn shutdown_send(self: &Arc<Self>) {
        let pending = {
            let mut state = self.write_state();
            if state.closed {
                return;
            }
            state.closed = true;
            self.flush_pending(&mut state);
            !state.pending.is_empty()
        };
        if !pending {
            let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write);
            return;
        }
        let conn = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    loop {
                        if conn.stream.writable().await.is_err() {
                            break;
                        }
                        let mut state = conn.write_state();
                        conn.flush_pending(&mut state);
                        if state.pending.is_empty() {
                            break;
                        }
                    }
                    let _ = socket2::SockRef::from(&conn.stream).shutdown(Shutdown::Write);
                });
            }
            Err(_) => {
                tracing::debug!("no tokio runtime: dropping unsent bytes of a TCP connection");
                let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write);
            }
        }
    }
}

/// The guest's `input-stream` of a real TCP connection.
pub(crate) struct RealReader(pub(crate) Arc<RealConn>);

#[async_trait::async_trait]
impl Pollable for RealReader {
    async fn ready(&mut self) {
        if self.0.read_closed.load(Ordering::Acquire) {
            return;
        }
        let _ = self.0.stream.readable().await;
    }
}

impl InputStream for RealReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.0.read_closed.load(Ordering::Acquire) {
            return Err(StreamError::Closed);
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        let mut buf = BytesMut::zeroed(size.min(CHUNK));
        match self.0.stream.try_read(&mut buf) {
            Ok(0) => Err(StreamError::Closed),
            Ok(n) => {
                buf.truncate(n);
                Ok(buf.freeze())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Bytes::new()),
            Err(e) => Err(StreamError::LastOperationFailed(e.into())),
        }
    }
}

impl Drop for RealReader {
    fn drop(&mut self) {
        self.0.shutdown_receive();
    }
}

/// The guest's `output-stream` of a real TCP connection.
pub(crate) struct RealWriter(pub(crate) Arc<RealConn>);

fn write_error(state: &WriteState) -> Option<StreamError> {
    if let Some(code) = state.failed {
        return Some(StreamError::LastOperationFailed(code.into()));
    }
    state.closed.then_some(StreamError::Closed)
}

#[async_trait::async_trait]
impl Pollable for RealWriter {
    async fn ready(&mut self) {
        loop {
            {
                let mut state = self.0.write_state();
                self.0.flush_pending(&mut state);
                if state.pending.is_empty() || write_error(&state).is_some() {
                    return;
                }
            }
            if self.0.stream.writable().await.is_err() {
                return;
            }
        }
    }
}

impl OutputStream for RealWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut state = self.0.write_state();
        if let Some(err) = write_error(&state) {
            return Err(err);
        }
        if !state.pending.is_empty() {
            return Err(StreamError::trap(
                "write exceeds the budget granted by check-write",
            ));
        }
        state.pending = bytes;
        self.0.flush_pending(&mut state);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        let mut state = self.0.write_state();
        self.0.flush_pending(&mut state);
        match write_error(&state) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let mut state = self.0.write_state();
        self.0.flush_pending(&mut state);
        if let Some(err) = write_error(&state) {
            return Err(err);
        }
        Ok(if state.pending.is_empty() { CHUNK } else { 0 })
    }
}

impl Drop for RealWriter {
    fn drop(&mut self) {
        self.0.shutdown_send();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair over the host's real loopback: `RealConn` on one side, a plain tokio
    /// stream on the other. (Guests never reach real loopback; this only exercises the streams.)
    async fn pair() -> (Arc<RealConn>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (RealConn::new(ours.unwrap()), theirs.unwrap().0)
    }

    #[tokio::test]
    async fn reads_writes_and_eof() {
        let (conn, mut peer) = pair().await;
        let mut reader = RealReader(conn.clone());
        let mut writer = RealWriter(conn.clone());

        assert_eq!(reader.read(16).unwrap().len(), 0, "nothing yet");
        peer.write_all(b"hello").await.unwrap();
        reader.ready().await;
        assert_eq!(&reader.read(16).unwrap()[..], b"hello");

        // More than the kernel takes at once: the rest waits in `pending`, budget drops to 0.
        let mut sent = 0usize;
        let big = Bytes::from(vec![9u8; CHUNK]);
        for _ in 0..1024 {
            let budget = writer.check_write().unwrap();
            if budget == 0 {
                break;
            }
            writer.write(big.clone()).unwrap();
            sent += CHUNK;
        }
        assert_eq!(writer.check_write().unwrap(), 0, "socket buffers are full");
        assert!(matches!(
            writer.write(Bytes::from_static(b"x")),
            Err(StreamError::Trap(_))
        ));

        // Dropping the writer with bytes pending still delivers them, then FIN.
        drop(writer);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), sent);

        drop(peer);
        reader.ready().await;
        assert!(matches!(reader.read(16), Err(StreamError::Closed)));
    }

    #[tokio::test]
    async fn write_zeroes_arrive_as_zero_bytes() {
        let (conn, mut peer) = pair().await;
        let mut writer = RealWriter(conn.clone());
        writer.write_zeroes(1000).unwrap();
        writer
            .blocking_write_and_flush(Bytes::from_static(b"end"))
            .await
            .unwrap();
        drop(writer);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        let mut expected = vec![0u8; 1000];
        expected.extend_from_slice(b"end");
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn shutdown_receive_closes_the_input_stream() {
        let (conn, _peer) = pair().await;
        let mut reader = RealReader(conn.clone());
        conn.shutdown_receive();
        reader.ready().await;
        assert!(matches!(reader.read(16), Err(StreamError::Closed)));
        let mut writer = RealWriter(conn.clone());
        conn.shutdown_send();
        assert!(matches!(writer.check_write(), Err(StreamError::Closed)));
    }
}
