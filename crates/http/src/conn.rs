//! The connection watchdog: the ingress's stream wrapper that enforces the header and idle
//! timeouts with one timer per connection, and reads each HTTP/1 request head as it arrives
//! to catch what hyper repairs silently (a head framed by both `Content-Length` and
//! `Transfer-Encoding`).
//!
//! The wrapper sees bytes; the service sees requests. They share a [`ConnState`]: the service
//! counts requests in flight (a request stays in flight until its response body is done), and
//! the wrapper decides from that which deadline applies when a read would block:
//! - a request in flight: none (the component's own timeout bounds it);
//! - a head begun and not yet handed over, or a new connection's first: the header timeout;
//! - otherwise: the idle timeout, counted from when the last request finished (noticed within
//!   a header timeout of it, so exactly when the header timeout is the shorter).

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What the service and the stream wrapper of one connection share.
pub(crate) struct ConnState {
    opened: Instant,
    /// Requests handed to the service whose responses are not done.
    in_flight: AtomicU32,
    /// Requests handed to the service so far.
    requests: AtomicU64,
    /// When the last request finished, in milliseconds after `opened`.
    idle_since_ms: AtomicU64,
    /// The head being read carries both `Content-Length` and `Transfer-Encoding`.
    framed_twice: AtomicBool,
}

impl ConnState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            framed_twice: AtomicBool::new(false),
        })
    }

    /// A request was handed to the service; it is in flight until the guard is dropped
    /// (with the response body, or with the service's future if it never answered).
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Whether the head of the request just handed over was framed two ways.
    pub(crate) fn framed_twice(&self) -> bool {
        self.framed_twice.load(Ordering::Relaxed)
    }
}

/// One request in flight on a connection.
pub(crate) struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        if state.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            let ms = state.opened.elapsed().as_millis();
            state
                .idle_since_ms
                .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its request in flight until it is done or dropped.
pub(crate) struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub(crate) fn new(body: B, in_flight: InFlight) -> Self {
        Self {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The two timeouts the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
}

/// Which deadline a blocked read is under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Idle,
}

/// The answer to an HTTP/1 client whose head did not arrive in time.
pub(crate) const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 57\r\n\r\n408 Request Timeout: the request head did not arrive in time\n";

/// A connection's stream under the watchdog.
pub(crate) struct Watched<S> {
    io: S,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    timer: Pin<Box<Sleep>>,
    /// The deadline the timer is set to, if any.
    armed: Option<Instant>,
    /// The request count when this wrapper last looked; a change ends the head being read.
    seen_requests: u64,
    /// The HTTP/1 head being read, from its first byte.
    head: Option<HeadScan>,
    /// Whether the connection speaks HTTP/2 (by ALPN or its preface): no heads to read, and
    /// no `408` to write.
    h2: bool,
    /// Bytes read so far, up to the length of the HTTP/2 preface's start.
    preface_seen: u8,
    /// Bytes read from `io` before this wrapper (a steered connection's first head), and
    /// how many of them were handed on.
    ahead: Vec<u8>,
    ahead_at: usize,
}

impl<S> Watched<S> {
    pub(crate) fn new(io: S, state: Arc<ConnState>, timeouts: Timeouts, h2: bool) -> Self {
        let first = state.opened + timeouts.header;
        Self {
            io,
            state,
            timeouts,
            timer: Box::pin(tokio::time::sleep_until(first)),
            armed: Some(first),
            seen_requests: 0,
            head: None,
            h2,
            preface_seen: 0,
            ahead: Vec::new(),
            ahead_at: 0,
        }
    }

    /// Reads `bytes` (already read from the stream by someone else) before the stream's.
    pub(crate) fn read_ahead(mut self, bytes: Vec<u8>) -> Self {
        self.ahead = bytes;
        self
    }

    /// Forgets the head being read once the service has taken it.
    fn sync(&mut self) {
        let requests = self.state.requests.load(Ordering::Relaxed);
        if requests != self.seen_requests {
            self.seen_requests = requests;
            self.head = None;
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        if !self.h2 && usize::from(self.preface_seen) < PREFACE_START.len() {
            let at = usize::from(self.preface_seen);
            let n = (PREFACE_START.len() - at).min(bytes.len());
            if bytes[..n] == PREFACE_START[at..at + n] {
                self.preface_seen += n as u8;
                self.h2 = usize::from(self.preface_seen) == PREFACE_START.len();
            } else {
                self.preface_seen = u8::MAX;
            }
        }
        if self.h2 {
            return;
        }
        if self.head.is_none() && self.state.in_flight.load(Ordering::Relaxed) == 0 {
            self.state.framed_twice.store(false, Ordering::Relaxed);
            self.head = Some(HeadScan::new(Instant::now()));
        }
        if let Some(head) = &mut self.head
            && !head.done
        {
            head.feed(bytes);
            if head.content_length && head.transfer_encoding {
                self.state.framed_twice.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The deadline a blocked read is under now, if any.
    fn deadline(&self) -> Option<(Instant, Phase)> {
        let state = &self.state;
        if state.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        if let Some(head) = &self.head {
            return Some((head.started + self.timeouts.header, Phase::Head));
        }
        if self.seen_requests == 0 {
            return Some((state.opened + self.timeouts.header, Phase::Head));
        }
        let idle_since = Duration::from_millis(state.idle_since_ms.load(Ordering::Relaxed));
        Some((state.opened + idle_since + self.timeouts.idle, Phase::Idle))
    }
}

/// The first bytes of the HTTP/2 connection preface.
const PREFACE_START: &[u8] = b"PRI * HTTP/2";

impl<S: AsyncRead + AsyncWrite + Unpin> Watched<S> {
    /// Called when a read would block: `Pending` under the deadline, an error past it.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let due = self.deadline();
            let wake_at = match due {
                Some((deadline, _)) => deadline,
                // No deadline while a request is in flight; but hyper may not read again
                // after it ends, so the timer stays set to wake this reader by then (within
                // a header timeout) to take up the idle deadline.
                None => self
                    .armed
                    .unwrap_or_else(|| Instant::now() + self.timeouts.header),
            };
            // A timer set earlier than needed fires and is set again; one set later is
            // brought forward. Either way one timer serves the connection's whole life.
            if self.armed.is_none_or(|armed| armed > wake_at) {
                self.timer.as_mut().reset(wake_at);
                self.armed = Some(wake_at);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.armed = None;
            if let Some((deadline, phase)) = due
                && Instant::now() >= deadline
            {
                return Poll::Ready(Err(self.expire(cx, phase)));
            }
        }
    }

    fn expire(&mut self, cx: &mut Context<'_>, phase: Phase) -> io::Error {
        if phase == Phase::Head && !self.h2 {
            // Best effort: a client that stopped reading does not get to hold the close up.
            let io = Pin::new(&mut self.io);
            if let Poll::Ready(Ok(_)) = io.poll_write(cx, REQUEST_TIMEOUT) {
                let _ = Pin::new(&mut self.io).poll_flush(cx);
            }
        }
        let what = match phase {
            Phase::Head => "the request head did not arrive in time",
            Phase::Idle => "the connection was idle too long",
        };
        io::Error::new(io::ErrorKind::TimedOut, what)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.sync();
        let before = buf.filled().len();
        if this.ahead_at < this.ahead.len() {
            let n = buf.remaining().min(this.ahead.len() - this.ahead_at);
            buf.put_slice(&this.ahead[this.ahead_at..this.ahead_at + n]);
            this.ahead_at += n;
            if this.ahead_at == this.ahead.len() {
                this.ahead = Vec::new();
                this.ahead_at = 0;
            }
            this.on_bytes(&buf.filled()[before..]);
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.on_bytes(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadline(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Reads an HTTP/1 request head line by line as it arrives, noting the framing headers.
/// Only each line's first bytes are kept: enough to name the two headers.
struct HeadScan {
    started: Instant,
    /// The start of the current line, lowercased.
    line: [u8; LINE_PREFIX],
    /// Bytes of the current line seen so far (kept or not).
    line_len: usize,
    content_length: bool,
    transfer_encoding: bool,
    /// A line with something on it (the request line) has been read: empty lines before it
    /// are skipped, as hyper skips them, rather than taken for the end of the head.
    in_request: bool,
    /// The empty line that ends the head has been read.
    done: bool,
}

const CONTENT_LENGTH: &[u8] = b"content-length:";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding:";
const LINE_PREFIX: usize = TRANSFER_ENCODING.len();

impl HeadScan {
    fn new(started: Instant) -> Self {
        Self {
            started,
            line: [0; LINE_PREFIX],
            line_len: 0,
            content_length: false,
            transfer_encoding: false,
            in_request: false,
            done: false,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !self.done && !bytes.is_empty() {
            let end = memchr::memchr(b'\n', bytes);
            let part = &bytes[..end.unwrap_or(bytes.len())];
            if self.line_len < LINE_PREFIX {
                let n = part.len().min(LINE_PREFIX - self.line_len);
                for (slot, b) in self.line[self.line_len..].iter_mut().zip(&part[..n]) {
                    *slot = b.to_ascii_lowercase();
                }
            }
            self.line_len += part.len();
            let Some(end) = end else { return };
            self.end_line();
            bytes = &bytes[end + 1..];
        }
    }

    fn end_line(&mut self) {
        let kept = &self.line[..self.line_len.min(LINE_PREFIX)];
        if self.line_len == 0 || kept == b"\r" {
            self.done = self.in_request;
        } else if !self.in_request {
            self.in_request = true;
        } else if kept.starts_with(CONTENT_LENGTH) {
            self.content_length = true;
        } else if kept.starts_with(TRANSFER_ENCODING) {
            self.transfer_encoding = true;
        }
        self.line_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> HeadScan {
        let mut head = HeadScan::new(Instant::now());
        for chunk in chunks {
            head.feed(chunk);
        }
        head
    }

    #[test]
    fn a_head_framed_two_ways_is_noticed_however_it_is_split() {
        let head: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n";
        for split in 0..head.len() {
            let (a, b) = head.split_at(split);
            let scanned = scan(&[a, b]);
            assert!(scanned.done, "split at {split}");
            assert!(
                scanned.content_length && scanned.transfer_encoding,
                "split at {split}"
            );
        }
        let one_byte_at_a_time: Vec<&[u8]> = head.chunks(1).collect();
        let scanned = scan(&one_byte_at_a_time);
        assert!(scanned.content_length && scanned.transfer_encoding);
    }

    #[test]
    fn only_the_head_is_read_and_only_header_names_count() {
        // The body repeats the header names; they must not count.
        let scanned = scan(&[
            b"POST /content-length: HTTP/1.1\r\nX-Note: transfer-encoding: chunked\r\nContent-Length: 46\r\n\r\nTransfer-Encoding: chunked\r\n",
        ]);
        assert!(scanned.done);
        assert!(scanned.content_length);
        assert!(!scanned.transfer_encoding);
        let bare_lf = scan(&[b"GET / HTTP/1.1\nTransfer-Encoding: chunked\n\nContent-Length: 1\n"]);
        assert!(bare_lf.done && bare_lf.transfer_encoding && !bare_lf.content_length);
    }
}
