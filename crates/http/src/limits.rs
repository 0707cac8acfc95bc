//! What one client may do on the ingress, and the gate that counts its connections.
//!
//! Header size and count, and HTTP/2 streams, are hyper's to enforce (it answers `431` or
//! resets the stream); timeouts and request framing are the connection watchdog's
//! ([`crate::conn`]); open connections, in total and per client address, are counted here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The limits on a client of the ingress. Each has a flag on `hearth run`, `host` and `dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLimits {
    /// Largest request head (request line and headers), in bytes; larger gets `431`.
    /// hyper cannot hold a head in less than 8 KiB, so smaller values act as 8 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in one request; more gets `431`.
    pub max_headers: usize,
    /// How long a client has to send a whole request head once it starts one (and a new
    /// connection, its first); then `408` and the connection is closed.
    pub header_timeout: Duration,
    /// How long a connection may sit with no request in flight before it is closed.
    pub idle_timeout: Duration,
    /// Connections open at once on this host; more are answered `503` with `Retry-After`
    /// (plain HTTP) or closed (TLS) straight after accept.
    pub max_connections: usize,
    /// Connections open at once from one client address; more are refused the same way.
    pub max_connections_per_client: usize,
    /// HTTP/2 streams one connection may have open at once.
    pub max_h2_streams: u32,
    /// HTTP/2 streams a client may reset before the server accepts them, before the
    /// connection is closed with `GOAWAY` (the rapid-reset pattern).
    pub max_h2_pending_resets: usize,
}

/// hyper's own count, kept unless a different one is asked for: setting any count makes
/// hyper allocate each request's header array on the heap.
pub(crate) const HYPER_MAX_HEADERS: usize = 100;

/// The smallest read buffer hyper accepts, which bounds the smallest head limit.
pub(crate) const HYPER_MIN_BUF: usize = 8 * 1024;

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: HYPER_MAX_HEADERS,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_client: 1_024,
            max_h2_streams: 100,
            max_h2_pending_resets: 20,
        }
    }
}

/// Counts open connections, in total and per client address, across every worker.
pub(crate) struct Gate {
    max_total: usize,
    max_per_client: usize,
    open: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Total,
    PerClient,
}

/// One admitted connection; dropping it gives its place back.
pub(crate) struct Admitted {
    gate: Arc<Gate>,
    client: IpAddr,
}

impl Gate {
    pub(crate) fn new(limits: &ClientLimits) -> Arc<Self> {
        Arc::new(Self {
            max_total: limits.max_connections,
            max_per_client: limits.max_connections_per_client,
            open: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a place for a connection from `client`, unless the host or that client is full.
    pub(crate) fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Admitted, Refused> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Total);
        }
        let mut per_client = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = per_client.entry(client).or_insert(0);
        if *open >= self.max_per_client {
            drop(per_client);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::PerClient);
        }
        *open += 1;
        Ok(Admitted {
            gate: Arc::clone(self),
            client,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_client = self
            .gate
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(open) = per_client.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                per_client.remove(&self.client);
            }
        }
        drop(per_client);
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a refused plain-HTTP connection is told before it is closed.
pub(crate) fn refusal(why: Refused) -> &'static [u8] {
    match why {
        Refused::Total => {
            b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 51\r\n\r\n503 Service Unavailable: too many open connections\n"
        }
        Refused::PerClient => {
            b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 62\r\n\r\n503 Service Unavailable: too many connections from one client\n"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_share_is_refused_and_its_places_come_back() {
        let gate = Gate::new(&ClientLimits {
            max_connections: 3,
            max_connections_per_client: 2,
            ..ClientLimits::default()
        });
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let first = gate.admit(a).ok();
        let second = gate.admit(a).ok();
        assert!(first.is_some() && second.is_some());
        assert_eq!(gate.admit(a).err(), Some(Refused::PerClient));
        let third = gate.admit(b).ok();
        assert!(third.is_some());
        assert_eq!(gate.admit(b).err(), Some(Refused::Total));
        assert_eq!(gate.open(), 3);
        drop(first);
        assert!(gate.admit(a).is_ok(), "a place freed is a place to take");
        drop((second, third));
        assert_eq!(gate.open(), 0);
        assert!(
            gate.per_client
                .lock()
                .map(|m| m.is_empty())
                .unwrap_or(false)
        );
    }

    #[test]
    fn the_refusals_are_well_framed() {
        for why in [Refused::Total, Refused::PerClient] {
            let text = String::from_utf8_lossy(refusal(why)).into_owned();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.parse::<usize>().ok());
            assert_eq!(length, Some(body.len()), "{text}");
        }
    }
}
