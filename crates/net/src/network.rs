//! One workload's virtual network: the TCP and UDP port tables of its loopback host, listener
//! backlogs, virtual `connect`, ephemeral port allocation and the workload's egress policy.
//! Ports are held by RAII guards ([`TcpPort`], [`UdpPort`]) owned by socket resources, so a
//! dropped store frees its ports at once. It does not know about WASI resources or streams
//! (see `tcp.rs`, `udp.rs`, `pipe.rs`).

use crate::bindings::ErrorCode;
use crate::bindings::sockets::network::IpAddressFamily;
use crate::pipe::{self, OpenConnection, PipeReader, PipeWriter, VirtualStream};
use crate::policy::EgressPolicy;
use crate::udp::UdpInbox;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// First port handed out for `bind(…:0)` and for the local side of outgoing connections.
pub const EPHEMERAL_PORT_START: u16 = 49152;

/// Listen backlog when the guest does not set one.
pub const DEFAULT_BACKLOG: usize = 128;

/// What one workload's parts may hold in its network at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetLimits {
    /// Virtual connections open (each end a pipe of at most [`crate::PIPE_CAPACITY`] bytes
    /// each way, so this also bounds the bytes buffered in the workload's pipes).
    pub connections: usize,
    /// TCP ports bound, listening or not.
    pub bound_ports: usize,
    /// Outgoing `wasi:http` requests whose connections are still open.
    pub outgoing_http: usize,
}

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            connections: 10_000,
            bound_ports: 1_000,
            outgoing_http: 1_000,
        }
    }
}

/// Why [`Network::connect`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Nothing listens on the port in this workload.
    #[error("connection refused: nothing listens on that port in the workload")]
    Refused,
    /// The listener's accept queue is full (the service is not accepting fast enough).
    #[error("connection refused: the listener's backlog is full")]
    BacklogFull,
    /// The workload has as many virtual connections open as it may.
    #[error("connection refused: the workload has its limit of {0} virtual connections open")]
    Limit(usize),
}

/// One workload's loopback network: port tables plus the egress policy for everything else.
pub struct Network {
    workload: String,
    policy: EgressPolicy,
    tcp: Mutex<HashMap<u16, TcpEntry>>,
    udp: Mutex<HashMap<u16, Arc<UdpInbox>>>,
    /// Next candidate ephemeral port (as an offset into the ephemeral range).
    next_ephemeral: AtomicU32,
    /// Virtual connections with an end still alive (see [`Network::open_connections`]).
    open_connections: Arc<AtomicUsize>,
    /// Outgoing `wasi:http` requests whose connections are open.
    outgoing_http: Arc<AtomicUsize>,
    limits: NetLimits,
    /// When a limit was last logged (seconds since the Unix epoch): at most once a second.
    warned_at: AtomicU64,
    /// Connections made from a thread other than their listener's (see
    /// [`Network::connections_across_threads`]).
    across_threads: AtomicU64,
    /// The host worker its listeners run on, if the host pinned them to one ([`NO_HOME`]
    /// when not).
    home: AtomicUsize,
}

/// [`Network::home`]'s "none".
const NO_HOME: usize = usize::MAX;

enum TcpEntry {
    /// Bound but not (yet) listening: the port is taken, connections are refused.
    Bound,
    Listening(Arc<Backlog>),
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("workload", &self.workload)
            .field("listening_ports", &self.listening_ports())
            .field("policy", &self.policy)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Network {
    pub fn new(workload: &str, policy: EgressPolicy) -> Arc<Network> {
        Self::with_limits(workload, policy, NetLimits::default())
    }

    /// A network whose parts may hold at most `limits`.
    pub fn with_limits(workload: &str, policy: EgressPolicy, limits: NetLimits) -> Arc<Network> {
        Arc::new(Network {
            workload: workload.to_string(),
            policy,
            tcp: Mutex::new(HashMap::new()),
            udp: Mutex::new(HashMap::new()),
            next_ephemeral: AtomicU32::new(0),
            open_connections: Arc::new(AtomicUsize::new(0)),
            outgoing_http: Arc::new(AtomicUsize::new(0)),
            limits,
            warned_at: AtomicU64::new(0),
            across_threads: AtomicU64::new(0),
            home: AtomicUsize::new(NO_HOME),
        })
    }

    /// The host worker (by the host's own numbering) that runs the workload's listening
    /// service, if the host placed it on one: connections to the workload are best served
    /// there, so that each virtual connection's two ends share a thread.
    pub fn home(&self) -> Option<usize> {
        Some(self.home.load(Ordering::Relaxed)).filter(|&h| h != NO_HOME)
    }

    /// Records where the workload's service runs now (see [`Network::home`]).
    pub fn set_home(&self, worker: Option<usize>) {
        self.home
            .store(worker.unwrap_or(NO_HOME), Ordering::Relaxed);
    }

    /// Virtual connections made so far from a thread other than the one their listener was
    /// opened on: each of those wakes another thread for every write that the far end waits
    /// for. A counter for metrics and tests; the thread check costs one thread-local read.
    pub fn connections_across_threads(&self) -> u64 {
        self.across_threads.load(Ordering::Relaxed)
    }

    /// Logs that the workload ran into `what`'s limit, at most once a second.
    fn at_limit(&self, what: &str, limit: usize) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.warned_at.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(workload = %self.workload, limit, "workload at its limit of {what}; refusing more");
        }
    }

    /// Counts an outgoing `wasi:http` request until the guard is dropped (with its
    /// connection); `None` when the workload has its limit in flight.
    pub fn begin_outgoing_http(&self) -> Option<InFlightRequest> {
        let limit = self.limits.outgoing_http;
        if self.outgoing_http.fetch_add(1, Ordering::Relaxed) >= limit {
            self.outgoing_http.fetch_sub(1, Ordering::Relaxed);
            self.at_limit("outgoing HTTP requests in flight", limit);
            return None;
        }
        Some(InFlightRequest(Arc::clone(&self.outgoing_http)))
    }

    /// Connect to the workload's loopback listener on `port` (used for published ports and
    /// for `wasi:http` requests to localhost). Refused at once if nothing listens.
    pub fn connect(&self, port: u16) -> Result<VirtualStream, ConnectError> {
        let local_port = self.ephemeral_hint();
        let (reader, writer) = self.connect_local(port, local_port)?;
        Ok(VirtualStream::new(reader, writer))
    }

    /// The TCP ports a listener is registered on, ascending.
    pub fn listening_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = lock(&self.tcp)
            .iter()
            .filter(|(_, e)| matches!(e, TcpEntry::Listening(_)))
            .map(|(p, _)| *p)
            .collect();
        ports.sort_unstable();
        ports
    }

    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// Virtual connections open now: made by a guest's `connect` to loopback, a published
    /// port or a `wasi:http` request to localhost, and not yet closed at both ends (queued in
    /// a backlog counts). One atomic load: cheap enough for every scrape.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// The workload this network belongs to.
    pub fn workload(&self) -> &str {
        &self.workload
    }

    /// Opens a virtual connection to the listener on `port`, queueing the far end for
    /// `accept`. `peer_port` is the connecting side's (ephemeral) port, as the acceptor sees it.
    pub(crate) fn connect_local(
        &self,
        port: u16,
        peer_port: u16,
    ) -> Result<(PipeReader, PipeWriter), ConnectError> {
        let backlog = match lock(&self.tcp).get(&port) {
            Some(TcpEntry::Listening(backlog)) => backlog.clone(),
            _ => return Err(ConnectError::Refused),
        };
        let limit = self.limits.connections;
        if self.open_connections() >= limit {
            self.at_limit("virtual connections", limit);
            return Err(ConnectError::Limit(limit));
        }
        if backlog.owner != std::thread::current().id() {
            self.across_threads.fetch_add(1, Ordering::Relaxed);
        }
        let (client, server) =
            pipe::duplex_counted(Some(OpenConnection::new(&self.open_connections)));
        backlog.push(PendingConn {
            reader: server.0,
            writer: server.1,
            peer_port,
        })?;
        Ok(client)
    }

    /// Reserves a TCP port (0: a free ephemeral one) for a bound socket.
    pub(crate) fn bind_tcp(self: &Arc<Self>, port: u16) -> Result<TcpPort, ErrorCode> {
        let mut table = lock(&self.tcp);
        if table.len() >= self.limits.bound_ports {
            drop(table);
            self.at_limit("bound TCP ports", self.limits.bound_ports);
            return Err(ErrorCode::NewSocketLimit);
        }
        let port = match port {
            0 => self.free_port(|p| table.contains_key(&p))?,
            p if table.contains_key(&p) => return Err(ErrorCode::AddressInUse),
            p => p,
        };
        table.insert(port, TcpEntry::Bound);
        Ok(TcpPort {
            network: self.clone(),
            port,
        })
    }

    /// Registers a UDP socket's inbox on a port (0: a free ephemeral one).
    pub(crate) fn bind_udp(
        self: &Arc<Self>,
        port: u16,
        inbox: Arc<UdpInbox>,
    ) -> Result<UdpPort, ErrorCode> {
        let mut table = lock(&self.udp);
        let port = match port {
            0 => self.free_port(|p| table.contains_key(&p))?,
            p if table.contains_key(&p) => return Err(ErrorCode::AddressInUse),
            p => p,
        };
        table.insert(port, inbox);
        Ok(UdpPort {
            network: self.clone(),
            port,
        })
    }

    /// The inbox of the UDP socket bound to `port`, if any.
    pub(crate) fn udp_inbox(&self, port: u16) -> Option<Arc<UdpInbox>> {
        lock(&self.udp).get(&port).cloned()
    }

    /// A port for the local end of an outgoing connection. Not reserved: like a kernel's
    /// ephemeral port, it only names the connection.
    pub(crate) fn ephemeral_hint(&self) -> u16 {
        let offset = self.next_ephemeral.fetch_add(1, Ordering::Relaxed) % ephemeral_count();
        EPHEMERAL_PORT_START.saturating_add(offset as u16)
    }

    fn free_port(&self, taken: impl Fn(u16) -> bool) -> Result<u16, ErrorCode> {
        for _ in 0..ephemeral_count() {
            let port = self.ephemeral_hint();
            if !taken(port) {
                return Ok(port);
            }
        }
        Err(ErrorCode::AddressInUse)
    }
}

fn ephemeral_count() -> u32 {
    u32::from(u16::MAX - EPHEMERAL_PORT_START) + 1
}

/// A reserved TCP port; dropping it frees the port and closes the listener's backlog.
pub(crate) struct TcpPort {
    network: Arc<Network>,
    port: u16,
}

impl TcpPort {
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Starts accepting connections on this port into a new backlog.
    pub(crate) fn listen(&self, family: IpAddressFamily, capacity: usize) -> Arc<Backlog> {
        let backlog = Arc::new(Backlog {
            family,
            port: self.port,
            owner: std::thread::current().id(),
            state: Mutex::new(BacklogState {
                queue: VecDeque::new(),
                capacity,
                closed: false,
                waker: None,
            }),
        });
        lock(&self.network.tcp).insert(self.port, TcpEntry::Listening(backlog.clone()));
        backlog
    }
}

impl Drop for TcpPort {
    fn drop(&mut self) {
        let entry = lock(&self.network.tcp).remove(&self.port);
        if let Some(TcpEntry::Listening(backlog)) = entry {
            backlog.close();
        }
    }
}

/// One outgoing `wasi:http` request counted against its workload's limit.
#[derive(Debug)]
pub struct InFlightRequest(Arc<AtomicUsize>);

impl Drop for InFlightRequest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A registered UDP port; dropping it unregisters the socket's inbox.
pub(crate) struct UdpPort {
    network: Arc<Network>,
    port: u16,
}

impl UdpPort {
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn network(&self) -> &Arc<Network> {
        &self.network
    }
}

impl Drop for UdpPort {
    fn drop(&mut self) {
        let removed = lock(&self.network.udp).remove(&self.port);
        drop(removed);
    }
}

/// A connection waiting in a listener's backlog: the listener's ends of the pipes.
pub(crate) struct PendingConn {
    pub(crate) reader: PipeReader,
    pub(crate) writer: PipeWriter,
    pub(crate) peer_port: u16,
}

/// A listener's accept queue. Dropping a pending connection closes it, so the connecting
/// side sees EOF.
pub(crate) struct Backlog {
    family: IpAddressFamily,
    port: u16,
    /// The thread that opened it (the one its accepts are expected on).
    owner: std::thread::ThreadId,
    state: Mutex<BacklogState>,
}

struct BacklogState {
    queue: VecDeque<PendingConn>,
    capacity: usize,
    closed: bool,
    waker: Option<Waker>,
}

impl Backlog {
    pub(crate) fn family(&self) -> IpAddressFamily {
        self.family
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    fn push(&self, conn: PendingConn) -> Result<(), ConnectError> {
        let waker = {
            let mut s = lock(&self.state);
            if s.closed {
                return Err(ConnectError::Refused);
            }
            if s.queue.len() >= s.capacity {
                return Err(ConnectError::BacklogFull);
            }
            s.queue.push_back(conn);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<PendingConn> {
        lock(&self.state).queue.pop_front()
    }

    pub(crate) fn set_capacity(&self, capacity: usize) {
        lock(&self.state).capacity = capacity;
    }

    pub(crate) fn poll_ready(&self, cx: &Context<'_>) -> Poll<()> {
        let mut s = lock(&self.state);
        if !s.queue.is_empty() || s.closed {
            return Poll::Ready(());
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Refuses new connections and drops the queued ones (their peers see EOF).
    fn close(&self) {
        let queued = {
            let mut s = lock(&self.state);
            s.closed = true;
            std::mem::take(&mut s.queue)
        };
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wasmtime_wasi::p2::{InputStream, OutputStream, StreamError};

    fn net(name: &str) -> Arc<Network> {
        Network::new(name, EgressPolicy::deny_all())
    }

    #[test]
    fn refused_when_nothing_listens() {
        let n = net("a");
        assert_eq!(n.connect(8080).unwrap_err(), ConnectError::Refused);
        // Bound but not listening is refused too.
        let _bound = n.bind_tcp(8080).unwrap();
        assert_eq!(n.connect(8080).unwrap_err(), ConnectError::Refused);
        assert!(n.listening_ports().is_empty());
    }

    #[test]
    fn port_tables_are_isolated_between_networks() {
        let a = net("a");
        let b = net("b");
        let pa = a.bind_tcp(7070).unwrap();
        let pb = b.bind_tcp(7070).unwrap();
        let _la = pa.listen(IpAddressFamily::Ipv4, 8);
        assert_eq!(a.listening_ports(), vec![7070]);
        assert!(b.listening_ports().is_empty());
        assert!(a.connect(7070).is_ok());
        assert_eq!(b.connect(7070).unwrap_err(), ConnectError::Refused);
        let _lb = pb.listen(IpAddressFamily::Ipv4, 8);
        assert!(b.connect(7070).is_ok());
    }

    #[test]
    fn second_bind_is_address_in_use_and_port_zero_is_ephemeral() {
        let n = net("a");
        let p = n.bind_tcp(80).unwrap();
        assert_eq!(n.bind_tcp(80).err(), Some(ErrorCode::AddressInUse));
        let e1 = n.bind_tcp(0).unwrap();
        let e2 = n.bind_tcp(0).unwrap();
        assert!(e1.port() >= EPHEMERAL_PORT_START);
        assert!(e2.port() >= EPHEMERAL_PORT_START);
        assert_ne!(e1.port(), e2.port());
        drop(p);
        assert!(n.bind_tcp(80).is_ok());
    }

    #[test]
    fn open_connections_count_until_every_end_is_gone() {
        let n = net("a");
        let port = n.bind_tcp(9000).unwrap();
        let backlog = port.listen(IpAddressFamily::Ipv4, 8);
        assert_eq!(n.open_connections(), 0);
        let client = n.connect(9000).unwrap();
        let other = n.connect(9000).unwrap();
        assert_eq!(n.open_connections(), 2);
        let accepted = backlog.pop().unwrap();
        drop(client);
        // The accepted end still lives: the connection is half-closed, not gone.
        assert_eq!(n.open_connections(), 2);
        drop(accepted);
        assert_eq!(n.open_connections(), 1);
        drop(other);
        // Its far end is still queued in the backlog until the listener goes.
        assert_eq!(n.open_connections(), 1);
        drop(port);
        drop(backlog);
        assert_eq!(n.open_connections(), 0);
    }

    #[test]
    fn a_workload_at_its_limits_is_refused_until_it_lets_go() {
        let limits = NetLimits {
            connections: 2,
            bound_ports: 2,
            outgoing_http: 1,
        };
        let n = Network::with_limits("a", EgressPolicy::default(), limits);
        let port = n.bind_tcp(9000).unwrap();
        let _backlog = port.listen(IpAddressFamily::Ipv4, 8);
        let other = n.bind_tcp(0).unwrap();
        assert_eq!(n.bind_tcp(0).err(), Some(ErrorCode::NewSocketLimit));
        drop(other);
        assert!(n.bind_tcp(9001).is_ok());

        let first = n.connect(9000).unwrap();
        let _second = n.connect(9000).unwrap();
        assert_eq!(n.connect(9000).err(), Some(ConnectError::Limit(2)));
        drop(first);
        // The accepted-side end of the first is still queued: half a connection is open.
        assert_eq!(n.connect(9000).err(), Some(ConnectError::Limit(2)));

        let request = n.begin_outgoing_http();
        assert!(request.is_some());
        assert!(n.begin_outgoing_http().is_none());
        drop(request);
        assert!(n.begin_outgoing_http().is_some());
    }

    #[test]
    fn backlog_limit() {
        let n = net("a");
        let port = n.bind_tcp(9000).unwrap();
        let backlog = port.listen(IpAddressFamily::Ipv4, 2);
        let _c1 = n.connect(9000).unwrap();
        let _c2 = n.connect(9000).unwrap();
        assert_eq!(n.connect(9000).unwrap_err(), ConnectError::BacklogFull);
        assert!(backlog.pop().is_some());
        assert!(n.connect(9000).is_ok());
    }

    #[tokio::test]
    async fn listener_drop_frees_port_and_eofs_queued_connections() {
        let n = net("a");
        let port = n.bind_tcp(7070).unwrap();
        let backlog = port.listen(IpAddressFamily::Ipv4, 8);
        let mut queued = n.connect(7070).unwrap();
        drop(port);
        drop(backlog);
        assert!(n.listening_ports().is_empty());
        let mut buf = [0u8; 8];
        assert_eq!(queued.read(&mut buf).await.unwrap(), 0);
        assert!(queued.write_all(b"x").await.is_err());
        // The next incarnation can bind the same port at once.
        let again = n.bind_tcp(7070).unwrap();
        let _b = again.listen(IpAddressFamily::Ipv4, 8);
        assert_eq!(n.listening_ports(), vec![7070]);
    }

    #[tokio::test]
    async fn accepted_end_talks_to_host_stream() {
        let n = net("a");
        let port = n.bind_tcp(7070).unwrap();
        let backlog = port.listen(IpAddressFamily::Ipv6, 8);
        let mut client = n.connect(7070).unwrap();
        let PendingConn {
            mut reader,
            mut writer,
            peer_port,
        } = backlog.pop().unwrap();
        assert!(peer_port >= EPHEMERAL_PORT_START);
        client.write_all(b"hi").await.unwrap();
        assert_eq!(&reader.read(10).unwrap()[..], b"hi");
        writer.write(bytes::Bytes::from_static(b"yo")).unwrap();
        let mut buf = [0u8; 2];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"yo");
        drop(client);
        assert!(matches!(reader.read(10), Err(StreamError::Closed)));
        assert!(matches!(writer.check_write(), Err(StreamError::Closed)));
    }
}
