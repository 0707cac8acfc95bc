//! `wasi:sockets/udp` and `udp-create-socket`. Datagrams to a loopback address are delivered
//! in memory to the socket bound to that port in the workload's [`Network`]. With none bound,
//! the datagram is dropped; a connected sender then gets `connection-refused` from its next
//! `receive` or `send` (the pending socket error Linux sets on an ICMP port-unreachable), an
//! unconnected one hears nothing, as on Linux. Datagrams elsewhere go out through a real tokio
//! socket, opened on first use, only where the egress policy allows. A component may bind only
//! an ephemeral port (port 0), enough to send and get replies; binding a fixed port is for the
//! service. Inbound real datagrams from addresses the policy would not let us reach are dropped.

use crate::addr::{
    check_bind, check_remote, from_std, io_error_code, is_virtual_loopback, loopback, to_std,
};
use crate::bindings::sockets::network::{IpAddressFamily, IpSocketAddress};
use crate::bindings::sockets::{udp, udp_create_socket};
use crate::bindings::{ErrorCode, SocketError, SocketResult};
use crate::ctx::{NetCtx, NetCtxView, NetworkResource, Role};
use crate::network::{Network, UdpPort};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynPollable, Pollable};

/// Datagrams offered per `check-send` and returned per `receive` at most.
const MAX_BATCH: usize = 64;
/// What a socket's in-memory inbox holds before new datagrams are dropped.
const INBOX_MAX_DATAGRAMS: usize = 1024;
const INBOX_MAX_BYTES: usize = 1024 * 1024;
/// Largest UDP payload (IPv4; IPv6 allows 20 bytes more, but keep one limit).
const MAX_DATAGRAM: usize = 65507;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `wasi:sockets/udp` socket.
pub struct UdpSocket {
    family: IpAddressFamily,
    bound: Option<Arc<Bound>>,
    bind_in_progress: bool,
    hop_limit: u8,
    receive_buffer_size: u64,
    send_buffer_size: u64,
}

/// A bound socket's state, shared with its datagram streams.
struct Bound {
    family: IpAddressFamily,
    local: SocketAddr,
    inbox: Arc<UdpInbox>,
    port: UdpPort,
    /// The real socket for non-loopback traffic, opened on first use.
    real: Mutex<Option<Arc<tokio::net::UdpSocket>>>,
    remote: Mutex<Option<SocketAddr>>,
}

impl Bound {
    fn network(&self) -> &Arc<Network> {
        self.port.network()
    }

    fn real(&self) -> Option<Arc<tokio::net::UdpSocket>> {
        lock(&self.real).clone()
    }

    fn real_or_open(&self) -> Result<Arc<tokio::net::UdpSocket>, ErrorCode> {
        let mut slot = lock(&self.real);
        if let Some(socket) = &*slot {
            return Ok(socket.clone());
        }
        let socket = Arc::new(open_real(self.family)?);
        *slot = Some(socket.clone());
        Ok(socket)
    }

    /// Whether a datagram from `src` passes the stream's `remote` filter.
    fn matches_remote(remote: Option<SocketAddr>, src: SocketAddr) -> bool {
        match remote {
            None => true,
            Some(r) if is_virtual_loopback(r.ip()) => {
                is_virtual_loopback(src.ip()) && r.port() == src.port()
            }
            Some(r) => r == src,
        }
    }
}

fn open_real(family: IpAddressFamily) -> Result<tokio::net::UdpSocket, ErrorCode> {
    use socket2::{Domain, Protocol, Socket, Type};
    let handle = tokio::runtime::Handle::try_current().map_err(|_| ErrorCode::Unknown)?;
    let io = |e: std::io::Error| io_error_code(&e);
    let (domain, any) = match family {
        IpAddressFamily::Ipv4 => (Domain::IPV4, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        IpAddressFamily::Ipv6 => (Domain::IPV6, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(io)?;
    if family == IpAddressFamily::Ipv6 {
        socket.set_only_v6(true).map_err(io)?;
    }
    socket.set_nonblocking(true).map_err(io)?;
    socket.bind(&SocketAddr::new(any, 0).into()).map_err(io)?;
    let _guard = handle.enter();
    tokio::net::UdpSocket::from_std(socket.into()).map_err(io)
}

/// A socket's queue of in-memory datagrams and its pending socket error, registered in the
/// network's UDP port table.
pub(crate) struct UdpInbox {
    state: Mutex<InboxState>,
}

#[derive(Default)]
struct InboxState {
    /// Payload and the sender's port (the sender is always the virtual loopback).
    queue: VecDeque<(Vec<u8>, u16)>,
    bytes: usize,
    /// What the socket's next `receive` or `send` reports instead of doing its work, once
    /// (the kernel's `SO_ERROR`): set when a connected send found no socket on the port.
    error: Option<ErrorCode>,
    waker: Option<Waker>,
}

impl UdpInbox {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(InboxState::default()),
        })
    }

    /// Queues a datagram, or drops it when the inbox is full (UDP promises nothing more).
    fn deliver(&self, data: Vec<u8>, from_port: u16) {
        let waker = {
            let mut s = lock(&self.state);
            if s.queue.len() >= INBOX_MAX_DATAGRAMS || s.bytes + data.len() > INBOX_MAX_BYTES {
                return;
            }
            s.bytes += data.len();
            s.queue.push_back((data, from_port));
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Records a pending socket error (an ICMP error, on a real network) and wakes a waiting
    /// receiver so it sees it.
    fn fail(&self, code: ErrorCode) {
        let waker = {
            let mut s = lock(&self.state);
            s.error = Some(code);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Reports the pending socket error, if any, and clears it.
    fn take_error(&self) -> Result<(), ErrorCode> {
        lock(&self.state).error.take().map_or(Ok(()), Err)
    }

    fn pop(&self) -> Option<(Vec<u8>, u16)> {
        let mut s = lock(&self.state);
        let item = s.queue.pop_front()?;
        s.bytes -= item.0.len();
        Some(item)
    }

    fn poll_ready(&self, cx: &Context<'_>) -> Poll<()> {
        let mut s = lock(&self.state);
        if !s.queue.is_empty() || s.error.is_some() {
            return Poll::Ready(());
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl UdpSocket {
    fn new(family: IpAddressFamily) -> Self {
        Self {
            family,
            bound: None,
            bind_in_progress: false,
            hop_limit: 64,
            receive_buffer_size: INBOX_MAX_BYTES as u64,
            send_buffer_size: INBOX_MAX_BYTES as u64,
        }
    }

    fn start_bind(&mut self, ctx: &NetCtx, local: SocketAddr) -> Result<(), ErrorCode> {
        if self.bind_in_progress {
            return Err(ErrorCode::ConcurrencyConflict);
        }
        if self.bound.is_some() {
            return Err(ErrorCode::InvalidState);
        }
        check_bind(local, self.family)?;
        if ctx.role() == Role::Component && local.port() != 0 {
            return Err(ErrorCode::AccessDenied);
        }
        let inbox = UdpInbox::new();
        let port = ctx.network().bind_udp(local.port(), inbox.clone())?;
        self.bound = Some(Arc::new(Bound {
            family: self.family,
            local: SocketAddr::new(local.ip(), port.port()),
            inbox,
            port,
            real: Mutex::new(None),
            remote: Mutex::new(None),
        }));
        self.bind_in_progress = true;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Pollable for UdpSocket {
    async fn ready(&mut self) {
        // Binding completes at once; nothing on the socket itself waits.
    }
}

/// The `incoming-datagram-stream` resource.
pub struct IncomingDatagramStream {
    bound: Arc<Bound>,
    remote: Option<SocketAddr>,
}

#[async_trait::async_trait]
impl Pollable for IncomingDatagramStream {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| {
            if self.bound.inbox.poll_ready(cx).is_ready() {
                return Poll::Ready(());
            }
            match self.bound.real() {
                Some(real) => real.poll_recv_ready(cx).map(|_| ()),
                None => Poll::Pending,
            }
        })
        .await
    }
}

/// The `outgoing-datagram-stream` resource.
pub struct OutgoingDatagramStream {
    bound: Arc<Bound>,
    remote: Option<SocketAddr>,
    permit: usize,
}

#[async_trait::async_trait]
impl Pollable for OutgoingDatagramStream {
    async fn ready(&mut self) {
        if let Some(real) = self.bound.real() {
            let _ = std::future::poll_fn(|cx| real.poll_send_ready(cx)).await;
        }
    }
}

impl OutgoingDatagramStream {
    /// Sends one datagram; `Ok(false)` when the real socket would block.
    fn send_one(&self, ctx: &NetCtx, datagram: udp::OutgoingDatagram) -> Result<bool, ErrorCode> {
        let dest = match (datagram.remote_address.map(to_std), self.remote) {
            (Some(dest), Some(remote)) if dest != remote => {
                return Err(ErrorCode::InvalidArgument);
            }
            (Some(dest), _) | (None, Some(dest)) => dest,
            (None, None) => return Err(ErrorCode::InvalidArgument),
        };
        check_remote(dest, self.bound.family)?;
        if datagram.data.len() > MAX_DATAGRAM {
            return Err(ErrorCode::DatagramTooLarge);
        }
        if is_virtual_loopback(dest.ip()) {
            self.bound.inbox.take_error()?;
            self.send_virtual(dest.port(), datagram.data);
            return Ok(true);
        }
        if !ctx.egress_allowed(dest) {
            tracing::debug!(
                workload = ctx.network().workload(),
                %dest,
                "UDP send denied by egress policy"
            );
            return Err(ErrorCode::AccessDenied);
        }
        let real = self.bound.real_or_open()?;
        self.bound.inbox.take_error()?;
        match real.try_send_to(&datagram.data, dest) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(io_error_code(&e)),
        }
    }

    /// Delivers a datagram to the socket bound to `port` in the workload. With none there, a
    /// connected socket gets `connection-refused` pending, as an ICMP port-unreachable gives
    /// it on Linux; an unconnected one is not told.
    fn send_virtual(&self, port: u16, data: Vec<u8>) {
        match self.bound.network().udp_inbox(port) {
            Some(inbox) => inbox.deliver(data, self.bound.port.port()),
            None if self.remote.is_some() => self.bound.inbox.fail(ErrorCode::ConnectionRefused),
            None => {}
        }
    }
}

impl udp_create_socket::Host for NetCtxView<'_> {
    fn create_udp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<UdpSocket>> {
        Ok(self.table.push(UdpSocket::new(family))?)
    }
}

impl udp::Host for NetCtxView<'_> {}

impl udp::HostUdpSocket for NetCtxView<'_> {
    fn start_bind(
        &mut self,
        this: Resource<UdpSocket>,
        network: Resource<NetworkResource>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        self.table.get(&network)?;
        let socket = self.table.get_mut(&this)?;
        Ok(socket.start_bind(self.ctx, to_std(local_address))?)
    }

    fn finish_bind(&mut self, this: Resource<UdpSocket>) -> SocketResult<()> {
        let socket = self.table.get_mut(&this)?;
        if !socket.bind_in_progress {
            return Err(ErrorCode::NotInProgress.into());
        }
        socket.bind_in_progress = false;
        Ok(())
    }

    fn stream(
        &mut self,
        this: Resource<UdpSocket>,
        remote_address: Option<IpSocketAddress>,
    ) -> SocketResult<(
        Resource<IncomingDatagramStream>,
        Resource<OutgoingDatagramStream>,
    )> {
        // The previous streams must be gone first (WASI allows a trap; an error is kinder).
        let has_streams = self
            .table
            .iter_children(&this)?
            .any(|c| c.is::<IncomingDatagramStream>() || c.is::<OutgoingDatagramStream>());
        if has_streams {
            return Err(ErrorCode::InvalidState.into());
        }
        let socket = self.table.get(&this)?;
        let Some(bound) = socket.bound.clone() else {
            return Err(ErrorCode::InvalidState.into());
        };
        let remote = match remote_address.map(to_std) {
            Some(remote) => {
                check_remote(remote, socket.family)?;
                if !is_virtual_loopback(remote.ip()) && !self.ctx.egress_allowed(remote) {
                    return Err(ErrorCode::AccessDenied.into());
                }
                Some(remote)
            }
            None => None,
        };
        *lock(&bound.remote) = remote;
        let incoming = IncomingDatagramStream {
            bound: bound.clone(),
            remote,
        };
        let outgoing = OutgoingDatagramStream {
            bound,
            remote,
            permit: 0,
        };
        let incoming = self.table.push_child(incoming, &this)?;
        let outgoing = self.table.push_child(outgoing, &this)?;
        Ok((incoming, outgoing))
    }

    fn local_address(&mut self, this: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        match &self.table.get(&this)?.bound {
            Some(bound) => Ok(from_std(bound.local)),
            None => Err(ErrorCode::InvalidState.into()),
        }
    }

    fn remote_address(&mut self, this: Resource<UdpSocket>) -> SocketResult<IpSocketAddress> {
        let remote = match &self.table.get(&this)?.bound {
            Some(bound) => *lock(&bound.remote),
            None => None,
        };
        remote
            .map(from_std)
            .ok_or_else(|| ErrorCode::InvalidState.into())
    }

    fn address_family(&mut self, this: Resource<UdpSocket>) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&this)?.family)
    }

    fn unicast_hop_limit(&mut self, this: Resource<UdpSocket>) -> SocketResult<u8> {
        Ok(self.table.get(&this)?.hop_limit)
    }

    fn set_unicast_hop_limit(&mut self, this: Resource<UdpSocket>, value: u8) -> SocketResult<()> {
        if value == 0 {
            return Err(ErrorCode::InvalidArgument.into());
        }
        self.table.get_mut(&this)?.hop_limit = value;
        Ok(())
    }

    fn receive_buffer_size(&mut self, this: Resource<UdpSocket>) -> SocketResult<u64> {
        Ok(self.table.get(&this)?.receive_buffer_size)
    }

    fn set_receive_buffer_size(
        &mut self,
        this: Resource<UdpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        if value == 0 {
            return Err(ErrorCode::InvalidArgument.into());
        }
        self.table.get_mut(&this)?.receive_buffer_size = value;
        Ok(())
    }

    fn send_buffer_size(&mut self, this: Resource<UdpSocket>) -> SocketResult<u64> {
        Ok(self.table.get(&this)?.send_buffer_size)
    }

    fn set_send_buffer_size(&mut self, this: Resource<UdpSocket>, value: u64) -> SocketResult<()> {
        if value == 0 {
            return Err(ErrorCode::InvalidArgument.into());
        }
        self.table.get_mut(&this)?.send_buffer_size = value;
        Ok(())
    }

    fn subscribe(&mut self, this: Resource<UdpSocket>) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    fn drop(&mut self, this: Resource<UdpSocket>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl udp::HostIncomingDatagramStream for NetCtxView<'_> {
    fn receive(
        &mut self,
        this: Resource<IncomingDatagramStream>,
        max_results: u64,
    ) -> SocketResult<Vec<udp::IncomingDatagram>> {
        let stream = self.table.get(&this)?;
        let max = usize::try_from(max_results)
            .unwrap_or(MAX_BATCH)
            .min(MAX_BATCH);
        let bound = &stream.bound;
        if max > 0 {
            // Like the kernel, a pending error comes before any queued datagram.
            bound.inbox.take_error()?;
        }
        let mut out = Vec::new();
        while out.len() < max {
            let Some((data, from_port)) = bound.inbox.pop() else {
                break;
            };
            let src = SocketAddr::new(loopback(bound.family), from_port);
            if Bound::matches_remote(stream.remote, src) {
                out.push(udp::IncomingDatagram {
                    data,
                    remote_address: from_std(src),
                });
            }
        }
        if let Some(real) = bound.real() {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while out.len() < max {
                match real.try_recv_from(&mut buf) {
                    Ok((n, src)) => {
                        let src = SocketAddr::new(src.ip().to_canonical(), src.port());
                        if self.ctx.egress_allowed(src) && Bound::matches_remote(stream.remote, src)
                        {
                            out.push(udp::IncomingDatagram {
                                data: buf[..n].to_vec(),
                                remote_address: from_std(src),
                            });
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if out.is_empty() => return Err(io_error_code(&e).into()),
                    Err(_) => break,
                }
            }
        }
        Ok(out)
    }

    fn subscribe(
        &mut self,
        this: Resource<IncomingDatagramStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    fn drop(&mut self, this: Resource<IncomingDatagramStream>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl udp::HostOutgoingDatagramStream for NetCtxView<'_> {
    fn check_send(&mut self, this: Resource<OutgoingDatagramStream>) -> SocketResult<u64> {
        let stream = self.table.get_mut(&this)?;
        stream.permit = MAX_BATCH;
        Ok(MAX_BATCH as u64)
    }

    fn send(
        &mut self,
        this: Resource<OutgoingDatagramStream>,
        datagrams: Vec<udp::OutgoingDatagram>,
    ) -> SocketResult<u64> {
        let stream = self.table.get_mut(&this)?;
        if datagrams.is_empty() {
            return Ok(0);
        }
        if datagrams.len() > stream.permit {
            // WASI requires a trap: `send` must be permitted by a preceding `check-send`.
            return Err(SocketError::trap(wasmtime::format_err!(
                "udp send of {} datagrams exceeds the {} permitted by check-send",
                datagrams.len(),
                stream.permit
            )));
        }
        stream.permit = 0;
        let mut sent = 0u64;
        for datagram in datagrams {
            match stream.send_one(self.ctx, datagram) {
                Ok(true) => sent += 1,
                Ok(false) => break,
                // Once something was sent, WASI says report the count, not the error.
                Err(_) if sent > 0 => break,
                Err(code) => return Err(code.into()),
            }
        }
        Ok(sent)
    }

    fn subscribe(
        &mut self,
        this: Resource<OutgoingDatagramStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    fn drop(&mut self, this: Resource<OutgoingDatagramStream>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
