//! Fuzz target `vnet`: an arbitrary sequence of `wasi:sockets/tcp` calls from two parts of
//! one workload (its service, which may listen, and a component, which may not), plus the
//! host's own connections (published ports, `wasi:http` to localhost), against one real
//! `hearth_net::Network`, through the host traits a guest's imports reach (the `fuzzing`
//! feature of hearth-net exposes them). A part may also crash: its whole store is dropped
//! and a new one starts, as a restarted service does.
//!
//! Every call is non-blocking and every pollable is polled once with a no-op waker, so an
//! input can neither hang nor wait. Checks, at every step, against a model of the sockets,
//! the port table, the listeners' backlogs and the bytes in flight on every pipe:
//! - no panic, and no trap on a live handle (dropping a socket whose streams live is the one
//!   trap a guest can cause, and is expected);
//! - bind, listen, connect, accept, shutdown, backlog sizes: the result or error code the
//!   WASI state machine and hearth's rules (components cannot listen, a port is held once,
//!   only loopback is reachable, backlogs are bounded) say;
//! - bytes arrive in order, exactly once, on the connection they were written to, within
//!   the pipe's capacity; EOF and `closed` come exactly when the other end closed;
//! - pollables are ready exactly when a call would not have to wait;
//! - the network's listening ports are the model's, and once everything is dropped no port
//!   is held and no virtual connection is counted open.

#![no_main]

use arbitrary::Arbitrary;
use hearth_fuzz::poll_once;
use hearth_net::fuzzing::{
    ErrorCode, HostTcpSocket, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress,
    Ipv6SocketAddress, NetworkResource, ShutdownType, SocketError, SocketResult, TcpSocket,
    instance_network, tcp_create_socket,
};
use hearth_net::{EgressPolicy, NetCtx, NetCtxView, Network, PIPE_CAPACITY, Role, VirtualStream};
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, Pollable, StreamError};

mod vnet_model;
use vnet_model::*;

// ---- the harness ----

fuzz_target!(|ops: Vec<Op>| {
    let network = Network::new("fuzz", EgressPolicy::deny_all());
    let mut world = World {
        parts: [
            new_part(&network, Role::Service),
            new_part(&network, Role::Component),
        ],
        network,
        wires: Vec::new(),
        ports: BTreeMap::new(),
        hosts: Vec::new(),
    };
    for op in ops.iter().take(200) {
        world.step(op);
        let listening: Vec<u16> = world
            .ports
            .iter()
            .filter(|(_, l)| l.is_some())
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(world.network.listening_ports(), listening, "after {op:?}");
    }
    // Everything goes: both stores (as when the workload stops) and the host's streams.
    let network = Arc::clone(&world.network);
    drop(world);
    assert!(
        network.listening_ports().is_empty(),
        "ports outlive their sockets"
    );
    assert_eq!(
        network.open_connections(),
        0,
        "connections outlive every end"
    );
});

impl World {
    fn new_wire(&mut self) -> usize {
        self.wires.push(Wire::default());
        self.wires.len() - 1
    }

    /// Queues a new connection on the listener at `port`, if it takes one: returns the
    /// connecting side's end.
    fn queue(&mut self, port: u16) -> Option<End> {
        let Some(Some(listener)) = self.ports.get(&port) else {
            return None;
        };
        if listener.queue.len() >= listener.capacity {
            return None;
        }
        let (c2s, s2c) = (self.new_wire(), self.new_wire());
        if let Some(Some(listener)) = self.ports.get_mut(&port) {
            listener.queue.push_back(End { rx: c2s, tx: s2c });
        }
        Some(End { rx: s2c, tx: c2s })
    }

    /// The model's effect of an end going away (its reader and writer dropped).
    fn close_end(&mut self, end: End) {
        self.wires[end.rx].close_read();
        self.wires[end.tx].close_write();
    }

    /// The model's effect of socket `i` of `part` being dropped (its streams already are).
    fn forget_sock(&mut self, part: usize, i: usize) {
        let sock = self.parts[part].socks.swap_remove(i);
        if let Some(end) = sock.end {
            self.close_end(end);
        }
        if let Some(port) = sock.port
            && let Some(Some(listener)) = self.ports.remove(&port)
        {
            for end in listener.queue {
                self.close_end(end);
            }
        }
    }

    fn sock(&self, part: usize, s: u8) -> Option<usize> {
        let n = self.parts[part].socks.len();
        (n > 0).then(|| usize::from(s) % n)
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Create { part, v6 } => {
                let p = &mut self.parts[usize::from(part)];
                let family = if v6 {
                    IpAddressFamily::Ipv6
                } else {
                    IpAddressFamily::Ipv4
                };
                let handle = code(tcp_create_socket::Host::create_tcp_socket(
                    &mut p.view(),
                    family,
                ));
                let Ok(handle) = handle else {
                    panic!(
                        "create-tcp-socket failed: {handle:?}",
                        handle = handle.err()
                    );
                };
                p.socks.push(Sock {
                    handle,
                    v6,
                    phase: Phase::Unbound,
                    in_progress: None,
                    port: None,
                    local_ip: None,
                    backlog: DEFAULT_BACKLOG,
                    end: None,
                    input: None,
                    output: None,
                });
            }
            Op::StartBind { part, s, ip, port } => self.start_bind(part, s, ip, port),
            Op::FinishBind { part, s } => self.finish(part, s, Step::Bind),
            Op::StartListen { part, s } => self.start_listen(part, s),
            Op::FinishListen { part, s } => self.finish(part, s, Step::Listen),
            Op::StartConnect { part, s, ip, port } => self.start_connect(part, s, ip, port),
            Op::FinishConnect { part, s } => self.finish_connect(part, s),
            Op::Listen { part, s, ip, port } => {
                self.start_bind(part, s, ip, port);
                self.finish(part, s, Step::Bind);
                self.start_listen(part, s);
                self.finish(part, s, Step::Listen);
            }
            Op::Connect { part, s, ip, port } => {
                self.start_connect(part, s, ip, port);
                self.finish_connect(part, s);
            }
            Op::Accept { part, s } => self.accept(part, s),
            Op::Backlog { part, s, size } => self.backlog(part, s, size),
            Op::Addresses { part, s } => self.addresses(part, s),
            Op::Write {
                part,
                s,
                ref data,
                fill,
            } => self.write(part, s, data, fill),
            Op::Read { part, s, len } => self.read(part, s, len),
            Op::PollInput { part, s } => self.poll_input(part, s),
            Op::PollOutput { part, s } => self.poll_output(part, s),
            Op::PollSocket { part, s } => self.poll_socket(part, s),
            Op::Shutdown { part, s, how } => self.shutdown(part, s, how),
            Op::DropInput { part, s } => self.drop_input(part, s),
            Op::DropOutput { part, s } => self.drop_output(part, s),
            Op::DropSocket { part, s } => self.drop_socket(part, s),
            Op::Restart { part } => self.restart(usize::from(part)),
            Op::HostConnect { port } => self.host_connect(port.get()),
            Op::HostWrite { c, ref data } => self.host_write(c, data),
            Op::HostRead { c, len } => self.host_read(c, len),
            Op::HostShutdown { c } => {
                if let Some(i) = pick(self.hosts.len(), c) {
                    let (stream, end) = &mut self.hosts[i];
                    let done = poll_once(std::future::poll_fn(|cx| {
                        Pin::new(&mut *stream).poll_shutdown(cx)
                    }));
                    assert!(matches!(done, Some(Ok(()))), "host shutdown: {done:?}");
                    let tx = end.tx;
                    self.wires[tx].close_write();
                }
            }
            Op::HostDrop { c } => {
                if let Some(i) = pick(self.hosts.len(), c) {
                    let (stream, end) = self.hosts.swap_remove(i);
                    drop(stream);
                    self.close_end(end);
                }
            }
        }
    }

    fn start_bind(&mut self, part: bool, s: u8, ip: Ip, port: Port) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let addr = SocketAddr::new(ip.get(), port.get());
        let p = &mut self.parts[pi];
        let (role, sock) = (p.role, &p.socks[i]);
        let want = if sock.in_progress.is_some() {
            Err(ErrorCode::ConcurrencyConflict)
        } else if sock.phase != Phase::Unbound {
            Err(ErrorCode::InvalidState)
        } else if !family_ok(addr.ip(), sock.v6) || !unicast(addr.ip()) {
            Err(ErrorCode::InvalidArgument)
        } else if !(addr.ip().is_unspecified() || virtual_loopback(addr.ip())) {
            Err(ErrorCode::AddressNotBindable)
        } else if role == Role::Component {
            Err(ErrorCode::AccessDenied)
        } else if addr.port() != 0 && self.ports.contains_key(&addr.port()) {
            Err(ErrorCode::AddressInUse)
        } else {
            Ok(())
        };
        let net = borrow(&p.net);
        let handle = borrow(&sock.handle);
        let got = code(HostTcpSocket::start_bind(
            &mut p.view(),
            handle,
            net,
            to_wit(addr),
        ));
        expect(&got, want, &format!("start-bind {addr}"));
        if got.is_ok() {
            let handle = borrow(&p.socks[i].handle);
            let local = code(HostTcpSocket::local_address(&mut p.view(), handle));
            let Ok(local) = local.map(from_wit) else {
                panic!("a bound socket has no local address");
            };
            assert_eq!(local.ip(), addr.ip(), "bound address");
            if addr.port() != 0 {
                assert_eq!(local.port(), addr.port(), "bound port");
            } else {
                assert!(
                    local.port() >= EPHEMERAL_PORT_START,
                    "ephemeral port {local}"
                );
            }
            assert!(
                self.ports.insert(local.port(), None).is_none(),
                "port {} handed out twice",
                local.port()
            );
            let sock = &mut self.parts[pi].socks[i];
            sock.phase = Phase::Bound;
            sock.in_progress = Some(Step::Bind);
            sock.port = Some(local.port());
            sock.local_ip = Some(addr.ip());
        }
    }

    fn finish(&mut self, part: bool, s: u8, step: Step) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let handle = borrow(&p.socks[i].handle);
        let got = match step {
            Step::Bind => code(HostTcpSocket::finish_bind(&mut p.view(), handle)),
            Step::Listen => code(HostTcpSocket::finish_listen(&mut p.view(), handle)),
            Step::Connect => unreachable!("finish_connect has its own"),
        };
        let sock = &mut p.socks[i];
        let want = if sock.in_progress == Some(step) {
            Ok(())
        } else {
            Err(ErrorCode::NotInProgress)
        };
        expect(&got, want, &format!("finish {step:?}"));
        if got.is_ok() {
            sock.in_progress = None;
        }
    }

    fn start_listen(&mut self, part: bool, s: u8) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let sock = &p.socks[i];
        let want = if sock.in_progress.is_some() {
            Err(ErrorCode::ConcurrencyConflict)
        } else if p.role == Role::Component {
            Err(ErrorCode::AccessDenied)
        } else if sock.phase != Phase::Bound {
            Err(ErrorCode::InvalidState)
        } else {
            Ok(())
        };
        let handle = borrow(&sock.handle);
        let got = code(HostTcpSocket::start_listen(&mut p.view(), handle));
        expect(&got, want, "start-listen");
        if got.is_ok() {
            let sock = &mut p.socks[i];
            sock.phase = Phase::Listening;
            sock.in_progress = Some(Step::Listen);
            let capacity = sock.backlog;
            let Some(port) = sock.port else {
                panic!("a bound socket without a port");
            };
            self.ports.insert(
                port,
                Some(Listener {
                    queue: VecDeque::new(),
                    capacity,
                }),
            );
        }
    }

    fn start_connect(&mut self, part: bool, s: u8, ip: Ip, port: Port) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let addr = SocketAddr::new(ip.get(), port.get());
        let sock = &self.parts[pi].socks[i];
        let want = if sock.in_progress.is_some() {
            Err(ErrorCode::ConcurrencyConflict)
        } else if !matches!(sock.phase, Phase::Unbound | Phase::Bound) {
            Err(ErrorCode::InvalidState)
        } else if !family_ok(addr.ip(), sock.v6)
            || !unicast(addr.ip())
            || addr.ip().is_unspecified()
            || addr.port() == 0
        {
            Err(ErrorCode::InvalidArgument)
        } else if !virtual_loopback(addr.ip()) {
            // Egress: this workload's policy denies everything.
            Err(ErrorCode::AccessDenied)
        } else {
            Ok(())
        };
        let before = self.network.open_connections();
        let p = &mut self.parts[pi];
        let net = borrow(&p.net);
        let handle = borrow(&p.socks[i].handle);
        let got = code(HostTcpSocket::start_connect(
            &mut p.view(),
            handle,
            net,
            to_wit(addr),
        ));
        expect(&got, want, &format!("start-connect {addr}"));
        if got.is_ok() {
            // A loopback connect is decided at once: queued at the listener, or refused.
            let end = self.queue(addr.port());
            let after = self.network.open_connections();
            assert_eq!(
                after,
                before + usize::from(end.is_some()),
                "a queued connect opens one connection, a refused one none"
            );
            let sock = &mut self.parts[pi].socks[i];
            sock.phase = Phase::Connecting;
            sock.in_progress = Some(Step::Connect);
            sock.end = end;
        }
    }

    fn finish_connect(&mut self, part: bool, s: u8) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let handle = borrow(&p.socks[i].handle);
        let got = code(HostTcpSocket::finish_connect(&mut p.view(), handle));
        let sock = &mut p.socks[i];
        let want = if sock.in_progress != Some(Step::Connect) {
            Err(ErrorCode::NotInProgress)
        } else if sock.end.is_none() {
            Err(ErrorCode::ConnectionRefused)
        } else {
            Ok(())
        };
        expect(&got, want, "finish-connect");
        if want == Err(ErrorCode::NotInProgress) {
            return;
        }
        sock.in_progress = None;
        match got {
            Ok((input, output)) => {
                sock.phase = Phase::Connected;
                sock.input = Some(input);
                sock.output = Some(output);
            }
            Err(_) => {
                // A refused socket is done, and gives its bound port back.
                sock.phase = Phase::Closed;
                if let Some(port) = sock.port.take() {
                    self.ports.remove(&port);
                }
            }
        }
    }

    fn accept(&mut self, part: bool, s: u8) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let sock = &self.parts[pi].socks[i];
        let queued = sock.port.and_then(|p| match self.ports.get(&p) {
            Some(Some(l)) => Some(l.queue.len()),
            _ => None,
        });
        let want = match (sock.phase, queued) {
            (Phase::Listening, Some(0)) => Err(ErrorCode::WouldBlock),
            (Phase::Listening, Some(_)) => Ok(()),
            _ => Err(ErrorCode::InvalidState),
        };
        let (v6, port, local_ip) = (sock.v6, sock.port, sock.local_ip);
        let p = &mut self.parts[pi];
        let handle = borrow(&p.socks[i].handle);
        let got = code(HostTcpSocket::accept(&mut p.view(), handle));
        expect(&got, want, "accept");
        let Ok((handle, input, output)) = got else {
            return;
        };
        let Some(Some(listener)) = port.and_then(|p| self.ports.get_mut(&p)) else {
            return;
        };
        let Some(end) = listener.queue.pop_front() else {
            return;
        };
        let p = &mut self.parts[pi];
        let local = code(HostTcpSocket::local_address(&mut p.view(), borrow(&handle)));
        let remote = code(HostTcpSocket::remote_address(
            &mut p.view(),
            borrow(&handle),
        ));
        let (Ok(local), Ok(remote)) = (local.map(from_wit), remote.map(from_wit)) else {
            panic!("an accepted socket has no addresses");
        };
        let want_ip = match local_ip {
            Some(ip) if !ip.is_unspecified() => ip,
            _ => loopback(v6),
        };
        assert_eq!(
            local,
            SocketAddr::new(want_ip, port.unwrap_or(0)),
            "accepted local"
        );
        assert_eq!(remote.ip(), loopback(v6), "accepted remote");
        p.socks.push(Sock {
            handle,
            v6,
            phase: Phase::Connected,
            in_progress: None,
            port: None,
            local_ip: Some(want_ip),
            backlog: DEFAULT_BACKLOG,
            end: Some(end),
            input: Some(input),
            output: Some(output),
        });
    }

    fn backlog(&mut self, part: bool, s: u8, size: u64) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        // Mostly small sizes, so a full backlog happens.
        let size = if size > 1 << 32 { size } else { size % 4 };
        let p = &mut self.parts[pi];
        let sock = &p.socks[i];
        let value = usize::try_from(size)
            .unwrap_or(MAX_BACKLOG)
            .min(MAX_BACKLOG);
        let want = if size == 0 {
            Err(ErrorCode::InvalidArgument)
        } else if !matches!(sock.phase, Phase::Unbound | Phase::Bound | Phase::Listening) {
            Err(ErrorCode::InvalidState)
        } else {
            Ok(())
        };
        let handle = borrow(&sock.handle);
        let got = code(HostTcpSocket::set_listen_backlog_size(
            &mut p.view(),
            handle,
            size,
        ));
        expect(&got, want, &format!("set-listen-backlog-size {size}"));
        if got.is_ok() {
            let sock = &mut p.socks[i];
            sock.backlog = value;
            if sock.phase == Phase::Listening
                && let Some(Some(listener)) = sock.port.and_then(|p| self.ports.get_mut(&p))
            {
                listener.capacity = value;
            }
        }
    }

    fn addresses(&mut self, part: bool, s: u8) {
        let pi = usize::from(part);
        let Some(i) = self.sock(pi, s) else { return };
        let p = &mut self.parts[pi];
        let handle = &p.socks[i].handle;
        let (h1, h2, h3, h4) = (
            borrow(handle),
            borrow(handle),
            borrow(handle),
            borrow(handle),
        );
        let local = code(HostTcpSocket::local_address(&mut p.view(), h1));
        let remote = code(HostTcpSocket::remote_address(&mut p.view(), h2));
        let listening = no_trap(HostTcpSocket::is_listening(&mut p.view(), h3));
        let family = no_trap(HostTcpSocket::address_family(&mut p.view(), h4));
        let sock = &p.socks[i];
        let has_local = matches!(
            sock.phase,
            Phase::Bound | Phase::Listening | Phase::Connected
        );
        assert_eq!(
            local.is_ok(),
            has_local,
            "local-address in {:?}",
            sock.phase
        );
        assert_eq!(
            remote.is_ok(),
            sock.phase == Phase::Connected,
            "remote-address"
        );
        assert_eq!(listening, sock.phase == Phase::Listening, "is-listening");
        assert_eq!(
            matches!(family, IpAddressFamily::Ipv6),
            sock.v6,
            "address-family"
        );
        if let (Ok(local), Some(port)) = (local, sock.port) {
            assert_eq!(from_wit(local).port(), port, "local port");
        }
    }
}
