//! Guest stdout and stderr, forwarded line by line into the host's `tracing` output with the
//! workload and component they came from.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept before it is emitted unterminated; bounds what a guest can make us buffer.
const MAX_LINE: usize = 16 << 10;

/// Which standard stream a line came from.
#[derive(Debug, Clone, Copy)]
pub enum StdStream {
    /// `stdout`.
    Stdout,
    /// `stderr`.
    Stderr,
}

/// A `StdoutStream` for the WASI context that logs each line.
#[derive(Debug, Clone)]
pub struct GuestLog {
    workload: Arc<str>,
    component: Arc<str>,
    stream: StdStream,
}

impl GuestLog {
    /// Lines from `stream` of `component` in `workload`.
    pub fn new(workload: Arc<str>, component: Arc<str>, stream: StdStream) -> Self {
        Self {
            workload,
            component,
            stream,
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        match self.stream {
            StdStream::Stdout => tracing::info!(
                target: "guest",
                workload = &*self.workload,
                component = &*self.component,
                stream = "stdout",
                "{line}"
            ),
            StdStream::Stderr => tracing::warn!(
                target: "guest",
                workload = &*self.workload,
                component = &*self.component,
                stream = "stderr",
                "{line}"
            ),
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter::new(self.clone()))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter::new(self.clone()))
    }
}

/// Splits written bytes into lines; a partial last line is emitted when the stream is dropped.
struct LineWriter {
    log: GuestLog,
    pending: Vec<u8>,
}

impl LineWriter {
    fn new(log: GuestLog) -> Self {
        Self {
            log,
            pending: Vec::new(),
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            if self.pending.is_empty() {
                self.log.emit(&bytes[..end]);
            } else {
                self.pending.extend_from_slice(&bytes[..end]);
                self.log.emit(&self.pending);
                self.pending.clear();
            }
            bytes = &bytes[end + 1..];
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= MAX_LINE {
            self.log.emit(&self.pending);
            self.pending.clear();
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.log.emit(&self.pending);
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
