//! The `vnet` target's input, its model of the sockets and the wire, the address rules it
//! restates, and the stream half of its checks (reads, writes, pollables, shutdowns,
//! drops and the host's own connections); `vnet.rs` holds the harness and the socket
//! lifecycle half.

use super::*;

pub(crate) const EPHEMERAL_PORT_START: u16 = hearth_net::EPHEMERAL_PORT_START;
pub(crate) const DEFAULT_BACKLOG: usize = hearth_net::DEFAULT_BACKLOG;
pub(crate) const MAX_BACKLOG: usize = 4096;

// ---- the input ----

#[derive(Debug, Clone, Copy, Arbitrary)]
pub(crate) enum Port {
    /// One of a few ports, so binds collide and connects find listeners.
    Few(u8),
    Zero,
    Any(u16),
}

impl Port {
    pub(crate) fn get(self) -> u16 {
        match self {
            Port::Few(n) => 8000 + u16::from(n % 3),
            Port::Zero => 0,
            Port::Any(p) => p,
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub(crate) enum Ip {
    Loopback4,
    Loopback6,
    Any4,
    Any6,
    /// 127.0.0.2: the host's loopback, not the workload's.
    OtherLoopback,
    /// `::ffff:127.0.0.1`, which IPv6 sockets refuse.
    Mapped,
    Broadcast,
    Multicast6,
    V4([u8; 4]),
    V6([u16; 8]),
}

impl Ip {
    pub(crate) fn get(self) -> IpAddr {
        match self {
            Ip::Loopback4 => Ipv4Addr::LOCALHOST.into(),
            Ip::Loopback6 => Ipv6Addr::LOCALHOST.into(),
            Ip::Any4 => Ipv4Addr::UNSPECIFIED.into(),
            Ip::Any6 => Ipv6Addr::UNSPECIFIED.into(),
            Ip::OtherLoopback => Ipv4Addr::new(127, 0, 0, 2).into(),
            Ip::Mapped => Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(),
            Ip::Broadcast => Ipv4Addr::BROADCAST.into(),
            Ip::Multicast6 => Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).into(),
            Ip::V4(o) => Ipv4Addr::from(o).into(),
            Ip::V6(s) => Ipv6Addr::from(s).into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub(crate) enum How {
    Receive,
    Send,
    Both,
}

/// `part` picks the service (`false`) or the component (`true`); `s` picks one of that
/// part's sockets (modulo how many it has).
#[derive(Debug, Arbitrary)]
pub(crate) enum Op {
    Create {
        part: bool,
        v6: bool,
    },
    StartBind {
        part: bool,
        s: u8,
        ip: Ip,
        port: Port,
    },
    FinishBind {
        part: bool,
        s: u8,
    },
    StartListen {
        part: bool,
        s: u8,
    },
    FinishListen {
        part: bool,
        s: u8,
    },
    StartConnect {
        part: bool,
        s: u8,
        ip: Ip,
        port: Port,
    },
    FinishConnect {
        part: bool,
        s: u8,
    },
    /// Bind, listen, or connect, started and finished in one go (what guests do).
    Listen {
        part: bool,
        s: u8,
        ip: Ip,
        port: Port,
    },
    Connect {
        part: bool,
        s: u8,
        ip: Ip,
        port: Port,
    },
    Accept {
        part: bool,
        s: u8,
    },
    Backlog {
        part: bool,
        s: u8,
        size: u64,
    },
    Addresses {
        part: bool,
        s: u8,
    },
    Write {
        part: bool,
        s: u8,
        data: Vec<u8>,
        fill: u16,
    },
    Read {
        part: bool,
        s: u8,
        len: u16,
    },
    PollInput {
        part: bool,
        s: u8,
    },
    PollOutput {
        part: bool,
        s: u8,
    },
    PollSocket {
        part: bool,
        s: u8,
    },
    Shutdown {
        part: bool,
        s: u8,
        how: How,
    },
    DropInput {
        part: bool,
        s: u8,
    },
    DropOutput {
        part: bool,
        s: u8,
    },
    DropSocket {
        part: bool,
        s: u8,
    },
    /// The part's store is dropped whole (a crash) and a fresh one starts.
    Restart {
        part: bool,
    },
    HostConnect {
        port: Port,
    },
    HostWrite {
        c: u8,
        data: Vec<u8>,
    },
    HostRead {
        c: u8,
        len: u16,
    },
    HostShutdown {
        c: u8,
    },
    HostDrop {
        c: u8,
    },
}

// ---- the model ----

/// One direction of a connection: what is in flight and which ends closed.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    pub(crate) buf: VecDeque<u8>,
    pub(crate) read_closed: bool,
    pub(crate) write_closed: bool,
}

impl Wire {
    pub(crate) fn close_read(&mut self) {
        self.read_closed = true;
        self.buf.clear();
    }
    pub(crate) fn close_write(&mut self) {
        self.write_closed = true;
    }
    pub(crate) fn at_eof(&self) -> bool {
        self.read_closed || (self.write_closed && self.buf.is_empty())
    }
}

/// A connection end: the wire it reads and the wire it writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct End {
    pub(crate) rx: usize,
    pub(crate) tx: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Unbound,
    Bound,
    Listening,
    Connecting,
    Connected,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Bind,
    Listen,
    Connect,
}

pub(crate) struct Sock {
    pub(crate) handle: Resource<TcpSocket>,
    pub(crate) v6: bool,
    pub(crate) phase: Phase,
    pub(crate) in_progress: Option<Step>,
    /// The port this socket holds in the workload's port table.
    pub(crate) port: Option<u16>,
    pub(crate) local_ip: Option<IpAddr>,
    pub(crate) backlog: usize,
    /// Connecting: the attempt's end (`None`: refused); connected: the connection's end.
    pub(crate) end: Option<End>,
    pub(crate) input: Option<Resource<DynInputStream>>,
    pub(crate) output: Option<Resource<DynOutputStream>>,
}

/// A listener's accept queue: the listener's ends of queued connections.
pub(crate) struct Listener {
    pub(crate) queue: VecDeque<End>,
    pub(crate) capacity: usize,
}

pub(crate) struct Part {
    pub(crate) role: Role,
    pub(crate) ctx: NetCtx,
    pub(crate) table: ResourceTable,
    pub(crate) net: Resource<NetworkResource>,
    pub(crate) socks: Vec<Sock>,
}

pub(crate) struct World {
    pub(crate) network: Arc<Network>,
    pub(crate) parts: [Part; 2],
    pub(crate) wires: Vec<Wire>,
    /// Port → who holds it (`true`: listening, with its backlog).
    pub(crate) ports: BTreeMap<u16, Option<Listener>>,
    pub(crate) hosts: Vec<(VirtualStream, End)>,
}

pub(crate) fn new_part(network: &Arc<Network>, role: Role) -> Part {
    let mut ctx = NetCtx::new(network.clone(), role);
    let mut table = ResourceTable::new();
    let net = no_trap(instance_network::Host::instance_network(&mut NetCtxView {
        ctx: &mut ctx,
        table: &mut table,
    }));
    Part {
        role,
        ctx,
        table,
        net,
        socks: Vec::new(),
    }
}

impl Part {
    pub(crate) fn view(&mut self) -> NetCtxView<'_> {
        NetCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

pub(crate) fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(r.rep())
}

#[track_caller]
pub(crate) fn no_trap<T>(r: wasmtime::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("host call trapped: {e:?}"),
    }
}

/// A socket call's outcome: `Ok`, or the guest-visible error code (a trap is a bug).
#[track_caller]
pub(crate) fn code<T>(r: SocketResult<T>) -> Result<T, ErrorCode> {
    match r {
        Ok(v) => Ok(v),
        Err(SocketError::Code(c)) => Err(c),
        Err(SocketError::Trap(t)) => panic!("socket call trapped: {t:?}"),
    }
}

#[track_caller]
pub(crate) fn expect<T: std::fmt::Debug>(
    got: &Result<T, ErrorCode>,
    want: Result<(), ErrorCode>,
    what: &str,
) {
    match (got, want) {
        (Ok(_), Ok(())) => {}
        (Err(g), Err(w)) if *g == w => {}
        _ => panic!("{what}: host says {got:?}, model says {want:?}"),
    }
}

pub(crate) fn to_wit(addr: SocketAddr) -> IpSocketAddress {
    match addr {
        SocketAddr::V4(a) => {
            let [a0, a1, a2, a3] = a.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port: a.port(),
                address: (a0, a1, a2, a3),
            })
        }
        SocketAddr::V6(a) => {
            let [s0, s1, s2, s3, s4, s5, s6, s7] = a.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: a.port(),
                flow_info: 0,
                address: (s0, s1, s2, s3, s4, s5, s6, s7),
                scope_id: 0,
            })
        }
    }
}

pub(crate) fn from_wit(addr: IpSocketAddress) -> SocketAddr {
    match addr {
        IpSocketAddress::Ipv4(a) => {
            let (a0, a1, a2, a3) = a.address;
            SocketAddr::new(Ipv4Addr::new(a0, a1, a2, a3).into(), a.port)
        }
        IpSocketAddress::Ipv6(a) => {
            let (s0, s1, s2, s3, s4, s5, s6, s7) = a.address;
            SocketAddr::new(Ipv6Addr::new(s0, s1, s2, s3, s4, s5, s6, s7).into(), a.port)
        }
    }
}

// ---- hearth's address rules, restated ----

pub(crate) fn family_ok(ip: IpAddr, v6: bool) -> bool {
    match (v6, ip) {
        (false, IpAddr::V4(_)) => true,
        (true, IpAddr::V6(v6)) => {
            let s = v6.segments();
            let compatible = s[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback();
            !compatible && v6.to_ipv4_mapped().is_none()
        }
        _ => false,
    }
}

pub(crate) fn unicast(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => !v4.is_multicast() && !v4.is_broadcast(),
        IpAddr::V6(v6) => !v6.is_multicast(),
    }
}

pub(crate) fn virtual_loopback(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

pub(crate) fn loopback(v6: bool) -> IpAddr {
    if v6 {
        Ipv6Addr::LOCALHOST.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    }
}

impl World {
    pub(crate) fn write(&mut self, part: bool, s: u8, data: &[u8], fill: u16) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let sock = &p.socks[i];
        let (Some(output), Some(end)) = (&sock.output, sock.end) else {
            return;
        };
        let output = borrow(output);
        let stream = no_trap(p.table.get_mut(&output).map_err(wasmtime::Error::from));
        let wire = &mut self.wires[end.tx];
        let room = stream.check_write();
        if wire.read_closed || wire.write_closed {
            assert!(
                matches!(room, Err(StreamError::Closed)),
                "check-write on a closed pipe: {room:?}"
            );
            return;
        }
        let Ok(room) = room else {
            panic!("check-write on an open pipe: {room:?}", room = room.err());
        };
        assert_eq!(room, PIPE_CAPACITY - wire.buf.len(), "check-write budget");
        // `fill` lets an input fill a pipe without carrying 64 KiB of bytes.
        let mut bytes = data.to_vec();
        bytes.extend((0..fill).map(|n| n as u8));
        bytes.truncate(room);
        let written = stream.write(bytes::Bytes::from(bytes.clone()));
        assert!(written.is_ok(), "a write within budget failed: {written:?}");
        wire.buf.extend(bytes);
        let flushed = stream.flush();
        assert!(flushed.is_ok(), "flush on an open pipe failed: {flushed:?}");
    }

    pub(crate) fn read(&mut self, part: bool, s: u8, len: u16) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let sock = &p.socks[i];
        let (Some(input), Some(end)) = (&sock.input, sock.end) else {
            return;
        };
        let input = borrow(input);
        let stream = no_trap(p.table.get_mut(&input).map_err(wasmtime::Error::from));
        let wire = &mut self.wires[end.rx];
        let len = usize::from(len);
        let got = stream.read(len);
        if len == 0 {
            match got {
                Err(StreamError::Closed) => assert!(wire.at_eof(), "read(0) says closed"),
                Ok(b) if b.is_empty() => assert!(!wire.at_eof(), "read(0) misses EOF"),
                other => panic!("read(0): {other:?}"),
            }
            return;
        }
        if wire.read_closed || (wire.buf.is_empty() && wire.write_closed) {
            assert!(
                matches!(got, Err(StreamError::Closed)),
                "read at EOF: {got:?}"
            );
            return;
        }
        let Ok(got) = got else {
            panic!("read on an open pipe failed: {got:?}", got = got.err());
        };
        let want: Vec<u8> = wire.buf.drain(..len.min(wire.buf.len())).collect();
        assert_eq!(&got[..], &want[..], "bytes read differ from bytes written");
    }

    pub(crate) fn poll_input(&mut self, part: bool, s: u8) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let sock = &p.socks[i];
        let (Some(input), Some(end)) = (&sock.input, sock.end) else {
            return;
        };
        let input = borrow(input);
        let stream = no_trap(p.table.get_mut(&input).map_err(wasmtime::Error::from));
        let ready = poll_once(stream.ready()).is_some();
        let wire = &self.wires[end.rx];
        let want = !wire.buf.is_empty() || wire.write_closed || wire.read_closed;
        assert_eq!(ready, want, "input pollable readiness");
    }

    pub(crate) fn poll_output(&mut self, part: bool, s: u8) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let sock = &p.socks[i];
        let (Some(output), Some(end)) = (&sock.output, sock.end) else {
            return;
        };
        let output = borrow(output);
        let stream = no_trap(p.table.get_mut(&output).map_err(wasmtime::Error::from));
        let ready = poll_once(stream.ready()).is_some();
        let wire = &self.wires[end.tx];
        let want = wire.buf.len() < PIPE_CAPACITY || wire.read_closed || wire.write_closed;
        assert_eq!(ready, want, "output pollable readiness");
    }

    pub(crate) fn poll_socket(&mut self, part: bool, s: u8) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let sock = &p.socks[i];
        let waiting = sock.phase == Phase::Listening
            && sock.in_progress.is_none()
            && sock
                .port
                .and_then(|port| match self.ports.get(&port) {
                    Some(Some(l)) => Some(l.queue.is_empty()),
                    _ => None,
                })
                .unwrap_or(false);
        let handle = borrow(&sock.handle);
        let socket = no_trap(p.table.get_mut(&handle).map_err(wasmtime::Error::from));
        let ready = poll_once(Pollable::ready(socket)).is_some();
        assert_eq!(
            ready,
            !waiting,
            "socket pollable readiness in {:?}",
            sock_phase(p, i)
        );
    }

    pub(crate) fn shutdown(&mut self, part: bool, s: u8, how: How) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let sock = &p.socks[i];
        let want = if sock.phase == Phase::Connected {
            Ok(())
        } else {
            Err(ErrorCode::InvalidState)
        };
        let wit = match how {
            How::Receive => ShutdownType::Receive,
            How::Send => ShutdownType::Send,
            How::Both => ShutdownType::Both,
        };
        let (handle, end) = (borrow(&sock.handle), sock.end);
        let got = code(HostTcpSocket::shutdown(&mut p.view(), handle, wit));
        expect(&got, want, &format!("shutdown {how:?}"));
        if let (Ok(()), Some(end)) = (got, end) {
            if matches!(how, How::Receive | How::Both) {
                self.wires[end.rx].close_read();
            }
            if matches!(how, How::Send | How::Both) {
                self.wires[end.tx].close_write();
            }
        }
    }

    pub(crate) fn drop_input(&mut self, part: bool, s: u8) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let sock = &mut p.socks[i];
        let (Some(input), Some(end)) = (sock.input.take(), sock.end) else {
            return;
        };
        no_trap(p.table.delete(input).map_err(wasmtime::Error::from));
        self.wires[end.rx].close_read();
    }

    pub(crate) fn drop_output(&mut self, part: bool, s: u8) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let sock = &mut p.socks[i];
        let (Some(output), Some(end)) = (sock.output.take(), sock.end) else {
            return;
        };
        no_trap(p.table.delete(output).map_err(wasmtime::Error::from));
        self.wires[end.tx].close_write();
    }

    pub(crate) fn drop_socket(&mut self, part: bool, s: u8) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let sock = &p.socks[i];
        let owned = Resource::<TcpSocket>::new_own(sock.handle.rep());
        let has_streams = sock.input.is_some() || sock.output.is_some();
        let got = HostTcpSocket::drop(&mut p.view(), owned);
        if has_streams {
            // Its streams are its children: the guest must drop them first (a trap).
            assert!(got.is_err(), "a socket was dropped before its streams");
            return;
        }
        no_trap(got);
        self.forget_sock(pi, i);
    }

    pub(crate) fn restart(&mut self, part: usize) {
        let role = self.parts[part].role;
        let fresh = new_part(&self.network, role);
        let old = std::mem::replace(&mut self.parts[part], fresh);
        // The store goes with everything in it: sockets, streams, listeners.
        drop((old.ctx, old.table, old.net));
        self.parts[part].socks = old.socks;
        while !self.parts[part].socks.is_empty() {
            let last = self.parts[part].socks.len() - 1;
            self.forget_sock(part, last);
        }
    }

    pub(crate) fn host_connect(&mut self, port: u16) {
        let got = self.network.connect(port);
        let want = self.queue(port);
        match (got, want) {
            (Ok(stream), Some(end)) => self.hosts.push((stream, end)),
            (Err(_), None) => {}
            (got, want) => panic!("host connect to {port}: host {got:?}, model {want:?}"),
        }
    }

    pub(crate) fn host_write(&mut self, c: u8, data: &[u8]) {
        let Some(i) = pick(self.hosts.len(), c) else {
            return;
        };
        let (stream, end) = &mut self.hosts[i];
        let wire = &mut self.wires[end.tx];
        let got = poll_once(std::future::poll_fn(|cx| {
            Pin::new(&mut *stream).poll_write(cx, data)
        }));
        if wire.read_closed || wire.write_closed {
            assert!(
                matches!(got, Some(Err(_))),
                "host write on a closed pipe: {got:?}"
            );
        } else if data.is_empty() {
            assert!(matches!(got, Some(Ok(0))), "empty host write: {got:?}");
        } else if wire.buf.len() >= PIPE_CAPACITY {
            assert!(got.is_none(), "host write into a full pipe: {got:?}");
        } else {
            let n = data.len().min(PIPE_CAPACITY - wire.buf.len());
            assert!(
                matches!(got, Some(Ok(w)) if w == n),
                "host write: {got:?}, want {n}"
            );
            wire.buf.extend(&data[..n]);
        }
    }

    pub(crate) fn host_read(&mut self, c: u8, len: u16) {
        let Some(i) = pick(self.hosts.len(), c) else {
            return;
        };
        let (stream, end) = &mut self.hosts[i];
        let wire = &mut self.wires[end.rx];
        let mut space = vec![0u8; usize::from(len)];
        let mut buf = ReadBuf::new(&mut space);
        let got = poll_once(std::future::poll_fn(|cx: &mut Context<'_>| {
            Pin::new(&mut *stream).poll_read(cx, &mut buf)
        }));
        let filled = buf.filled().to_vec();
        if len == 0 || wire.read_closed || (wire.buf.is_empty() && wire.write_closed) {
            assert!(
                matches!(got, Some(Ok(()))) && filled.is_empty(),
                "host read at EOF"
            );
        } else if wire.buf.is_empty() {
            assert!(got.is_none(), "host read of an empty pipe: {got:?}");
        } else {
            assert!(matches!(got, Some(Ok(()))), "host read: {got:?}");
            let want: Vec<u8> = wire
                .buf
                .drain(..usize::from(len).min(wire.buf.len()))
                .collect();
            assert_eq!(
                filled, want,
                "bytes the host read differ from bytes written"
            );
        }
    }
}

pub(crate) fn pick(n: usize, i: u8) -> Option<usize> {
    (n > 0).then(|| usize::from(i) % n)
}

pub(crate) fn sock_phase(p: &Part, i: usize) -> Phase {
    p.socks[i].phase
}
