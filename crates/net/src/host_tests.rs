//! Tests of the `wasi:sockets` host traits as a guest drives them: one resource table and
//! [`NetCtx`] per simulated store, calls in the order wstd and wasi-libc make them. The Wasm
//! round trip through a real `Linker` is in `tests/all/`.

use crate::bindings::sockets::network::{IpAddressFamily, IpSocketAddress};
use crate::bindings::sockets::tcp::{HostTcpSocket, ShutdownType};
use crate::bindings::sockets::udp::{
    HostIncomingDatagramStream, HostOutgoingDatagramStream, HostUdpSocket, IncomingDatagram,
    OutgoingDatagram,
};
use crate::bindings::sockets::{
    instance_network, ip_name_lookup, tcp_create_socket, udp_create_socket,
};
use crate::bindings::{ErrorCode, SocketResult};
use crate::ctx::NetworkResource;
use crate::tcp::TcpSocket;
use crate::udp::{IncomingDatagramStream, OutgoingDatagramStream, UdpSocket};
use crate::{EgressPolicy, NetCtx, NetCtxView, Network, Role};
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, StreamError};

/// One simulated store.
struct Store {
    ctx: NetCtx,
    table: ResourceTable,
    net: Resource<NetworkResource>,
}

fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(r.rep())
}

fn own<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_own(r.rep())
}

fn addr(s: &str) -> IpSocketAddress {
    crate::addr::from_std(s.parse().unwrap())
}

fn std_addr(a: IpSocketAddress) -> SocketAddr {
    crate::addr::to_std(a)
}

#[track_caller]
fn code<T>(r: SocketResult<T>) -> ErrorCode {
    match r {
        Ok(_) => panic!("expected an error code, got Ok"),
        Err(crate::bindings::SocketError::Code(c)) => c,
        Err(crate::bindings::SocketError::Trap(t)) => {
            panic!("expected an error code, got trap {t}")
        }
    }
}

impl Store {
    fn new(network: &Arc<Network>, role: Role) -> Self {
        let mut ctx = NetCtx::new(network.clone(), role);
        let mut table = ResourceTable::new();
        let net = instance_network::Host::instance_network(&mut NetCtxView {
            ctx: &mut ctx,
            table: &mut table,
        })
        .unwrap();
        Self { ctx, table, net }
    }

    fn view(&mut self) -> NetCtxView<'_> {
        NetCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }

    fn tcp(&mut self, family: IpAddressFamily) -> Resource<TcpSocket> {
        tcp_create_socket::Host::create_tcp_socket(&mut self.view(), family).unwrap()
    }

    fn bind(&mut self, s: &Resource<TcpSocket>, local: &str) -> SocketResult<()> {
        let net = borrow(&self.net);
        HostTcpSocket::start_bind(&mut self.view(), borrow(s), net, addr(local))?;
        HostTcpSocket::finish_bind(&mut self.view(), borrow(s))
    }

    fn listen(&mut self, s: &Resource<TcpSocket>) -> SocketResult<()> {
        HostTcpSocket::start_listen(&mut self.view(), borrow(s))?;
        HostTcpSocket::finish_listen(&mut self.view(), borrow(s))
    }

    /// A listening service socket on `local`.
    fn listener(&mut self, local: &str) -> Resource<TcpSocket> {
        let s = self.tcp(IpAddressFamily::Ipv4);
        self.bind(&s, local).unwrap();
        self.listen(&s).unwrap();
        s
    }

    fn connect(
        &mut self,
        s: &Resource<TcpSocket>,
        remote: &str,
    ) -> SocketResult<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
        let net = borrow(&self.net);
        HostTcpSocket::start_connect(&mut self.view(), borrow(s), net, addr(remote))?;
        HostTcpSocket::finish_connect(&mut self.view(), borrow(s))
    }

    #[allow(clippy::type_complexity)]
    fn accept(
        &mut self,
        s: &Resource<TcpSocket>,
    ) -> SocketResult<(
        Resource<TcpSocket>,
        Resource<DynInputStream>,
        Resource<DynOutputStream>,
    )> {
        HostTcpSocket::accept(&mut self.view(), borrow(s))
    }

    fn write(&mut self, out: &Resource<DynOutputStream>, data: &'static [u8]) {
        let stream = self.table.get_mut(out).unwrap();
        assert!(stream.check_write().unwrap() >= data.len());
        stream.write(bytes::Bytes::from_static(data)).unwrap();
    }

    fn read(&mut self, input: &Resource<DynInputStream>) -> Result<Vec<u8>, StreamError> {
        Ok(self.table.get_mut(input).unwrap().read(1024)?.to_vec())
    }

    fn drop_tcp(&mut self, s: &Resource<TcpSocket>) {
        HostTcpSocket::drop(&mut self.view(), own(s)).unwrap();
    }

    /// Everything buffered on `input` right now.
    fn read_all(&mut self, input: &Resource<DynInputStream>) -> Vec<u8> {
        let mut got = Vec::new();
        loop {
            let chunk = self.read(input).unwrap();
            if chunk.is_empty() {
                return got;
            }
            got.extend_from_slice(&chunk);
        }
    }

    /// A UDP socket bound to `local`.
    fn udp(&mut self, family: IpAddressFamily, local: &str) -> Resource<UdpSocket> {
        let s = udp_create_socket::Host::create_udp_socket(&mut self.view(), family).unwrap();
        let net = borrow(&self.net);
        HostUdpSocket::start_bind(&mut self.view(), borrow(&s), net, addr(local)).unwrap();
        HostUdpSocket::finish_bind(&mut self.view(), borrow(&s)).unwrap();
        s
    }

    fn udp_stream(&mut self, s: &Resource<UdpSocket>, remote: Option<&str>) -> UdpStreams {
        HostUdpSocket::stream(&mut self.view(), borrow(s), remote.map(addr)).unwrap()
    }

    fn send(
        &mut self,
        out: &Resource<OutgoingDatagramStream>,
        data: &[u8],
        to: Option<&str>,
    ) -> SocketResult<u64> {
        HostOutgoingDatagramStream::check_send(&mut self.view(), borrow(out))?;
        let datagram = OutgoingDatagram {
            data: data.to_vec(),
            remote_address: to.map(addr),
        };
        HostOutgoingDatagramStream::send(&mut self.view(), borrow(out), vec![datagram])
    }

    fn receive(
        &mut self,
        input: &Resource<IncomingDatagramStream>,
    ) -> SocketResult<Vec<IncomingDatagram>> {
        HostIncomingDatagramStream::receive(&mut self.view(), borrow(input), 10)
    }
}

type UdpStreams = (
    Resource<IncomingDatagramStream>,
    Resource<OutgoingDatagramStream>,
);

fn network() -> Arc<Network> {
    Network::new("test", EgressPolicy::deny_all())
}

#[test]
fn components_cannot_bind_or_listen() {
    let net = network();
    let mut component = Store::new(&net, Role::Component);
    let s = component.tcp(IpAddressFamily::Ipv4);
    assert_eq!(
        code(component.bind(&s, "127.0.0.1:8080")),
        ErrorCode::AccessDenied
    );
    assert_eq!(code(component.listen(&s)), ErrorCode::AccessDenied);
    assert!(net.listening_ports().is_empty());
}

#[test]
fn bind_rules_and_errors() {
    let net = network();
    let mut service = Store::new(&net, Role::Service);
    let s = service.tcp(IpAddressFamily::Ipv4);
    assert_eq!(
        code(HostTcpSocket::finish_bind(&mut service.view(), borrow(&s))),
        ErrorCode::NotInProgress
    );
    assert_eq!(
        code(service.bind(&s, "10.1.2.3:80")),
        ErrorCode::AddressNotBindable
    );
    assert_eq!(
        code(service.bind(&s, "[::1]:80")),
        ErrorCode::InvalidArgument
    );
    // Listening needs an explicit bind in WASI 0.2.
    assert_eq!(code(service.listen(&s)), ErrorCode::InvalidState);
    assert_eq!(
        code(HostTcpSocket::local_address(
            &mut service.view(),
            borrow(&s)
        )),
        ErrorCode::InvalidState
    );

    service.bind(&s, "0.0.0.0:0").unwrap();
    let local = std_addr(HostTcpSocket::local_address(&mut service.view(), borrow(&s)).unwrap());
    assert!(local.ip().is_unspecified());
    assert!(local.port() >= crate::EPHEMERAL_PORT_START);
    assert_eq!(
        code(service.bind(&s, "127.0.0.1:81")),
        ErrorCode::InvalidState
    );

    let first = service.listener("127.0.0.1:7070");
    let second = service.tcp(IpAddressFamily::Ipv6);
    assert_eq!(
        code(service.bind(&second, "[::]:7070")),
        ErrorCode::AddressInUse
    );
    assert_eq!(net.listening_ports(), vec![7070]);
    assert!(HostTcpSocket::is_listening(&mut service.view(), borrow(&first)).unwrap());
    assert_eq!(
        code(service.accept(&first)),
        ErrorCode::WouldBlock,
        "nothing pending"
    );
}

#[tokio::test]
async fn component_connects_to_service() {
    let net = network();
    let mut service = Store::new(&net, Role::Service);
    let mut component = Store::new(&net, Role::Component);
    let listener = service.listener("127.0.0.1:7070");
    let local = HostTcpSocket::local_address(&mut service.view(), borrow(&listener)).unwrap();
    assert_eq!(std_addr(local), "127.0.0.1:7070".parse().unwrap());

    // The listener's pollable becomes ready once a connection is queued.
    let _pollable = HostTcpSocket::subscribe(&mut service.view(), borrow(&listener)).unwrap();
    let client = component.tcp(IpAddressFamily::Ipv4);
    let (c_in, c_out) = component.connect(&client, "127.0.0.1:7070").unwrap();
    {
        use wasmtime_wasi::p2::Pollable;
        let socket = service.table.get_mut(&listener).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), socket.ready())
            .await
            .unwrap();
    }

    let (accepted, s_in, s_out) = service.accept(&listener).unwrap();
    let peer =
        std_addr(HostTcpSocket::remote_address(&mut service.view(), borrow(&accepted)).unwrap());
    let client_local =
        std_addr(HostTcpSocket::local_address(&mut component.view(), borrow(&client)).unwrap());
    assert_eq!(peer, client_local);
    assert!(peer.ip().is_loopback());
    assert!(peer.port() >= crate::EPHEMERAL_PORT_START);
    let client_remote =
        std_addr(HostTcpSocket::remote_address(&mut component.view(), borrow(&client)).unwrap());
    assert_eq!(client_remote, "127.0.0.1:7070".parse().unwrap());

    component.write(&c_out, b"ping");
    assert_eq!(service.read(&s_in).unwrap(), b"ping");
    service.write(&s_out, b"pong");
    assert_eq!(component.read(&c_in).unwrap(), b"pong");

    // Send-shutdown is EOF for the peer.
    HostTcpSocket::shutdown(&mut component.view(), borrow(&client), ShutdownType::Send).unwrap();
    assert!(matches!(service.read(&s_in), Err(StreamError::Closed)));

    // Dropping the component's store closes its side: the service's writes fail.
    drop(component);
    let out = service.table.get_mut(&s_out).unwrap();
    assert!(matches!(out.check_write(), Err(StreamError::Closed)));
}

#[test]
fn connect_refused_and_closed_afterwards() {
    let net = network();
    let mut component = Store::new(&net, Role::Component);
    let s = component.tcp(IpAddressFamily::Ipv4);
    assert_eq!(
        code(component.connect(&s, "127.0.0.1:9999")),
        ErrorCode::ConnectionRefused
    );
    assert_eq!(
        code(HostTcpSocket::local_address(
            &mut component.view(),
            borrow(&s)
        )),
        ErrorCode::InvalidState
    );
    let again = component.connect(&s, "127.0.0.1:9999");
    assert_eq!(code(again), ErrorCode::InvalidState);

    let s = component.tcp(IpAddressFamily::Ipv4);
    assert_eq!(
        code(component.connect(&s, "127.0.0.1:0")),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(HostTcpSocket::finish_connect(
            &mut component.view(),
            borrow(&s)
        )),
        ErrorCode::NotInProgress
    );
}

#[test]
fn egress_denied_by_default_and_real_loopback_never_used() {
    let net = network();
    let mut component = Store::new(&net, Role::Component);
    let s = component.tcp(IpAddressFamily::Ipv4);
    assert_eq!(
        code(component.connect(&s, "93.184.216.34:80")),
        ErrorCode::AccessDenied
    );
    // Metadata is denied even when the policy lists it as a name's address.
    let s = component.tcp(IpAddressFamily::Ipv4);
    assert_eq!(
        code(component.connect(&s, "169.254.169.254:80")),
        ErrorCode::AccessDenied
    );
}

#[tokio::test]
async fn listener_drop_frees_port_and_resets_queued_connections() {
    let net = network();
    let mut service = Store::new(&net, Role::Service);
    let mut component = Store::new(&net, Role::Component);
    let listener = service.listener("0.0.0.0:7070");
    let client = component.tcp(IpAddressFamily::Ipv4);
    let (c_in, c_out) = component.connect(&client, "127.0.0.1:7070").unwrap();

    service.drop_tcp(&listener);
    assert!(net.listening_ports().is_empty());
    assert!(matches!(component.read(&c_in), Err(StreamError::Closed)));
    let out = component.table.get_mut(&c_out).unwrap();
    assert!(matches!(out.check_write(), Err(StreamError::Closed)));

    // A restarted service binds the same port at once.
    let mut restarted = Store::new(&net, Role::Service);
    let _listener = restarted.listener("127.0.0.1:7070");
    assert_eq!(net.listening_ports(), vec![7070]);
    drop(restarted);
    assert!(
        net.listening_ports().is_empty(),
        "store drop frees the port"
    );
}

#[test]
fn accepted_socket_on_unspecified_listener_reports_loopback() {
    let net = network();
    let mut service = Store::new(&net, Role::Service);
    let listener = service.listener("0.0.0.0:7070");
    let local = HostTcpSocket::local_address(&mut service.view(), borrow(&listener)).unwrap();
    assert_eq!(std_addr(local), "0.0.0.0:7070".parse().unwrap());
    let _host = net.connect(7070).unwrap();
    let (accepted, _i, _o) = service.accept(&listener).unwrap();
    let local = HostTcpSocket::local_address(&mut service.view(), borrow(&accepted)).unwrap();
    assert_eq!(std_addr(local), "127.0.0.1:7070".parse().unwrap());
}

#[test]
fn backlog_size_bounds_pending_connections() {
    let net = network();
    let mut service = Store::new(&net, Role::Service);
    let s = service.tcp(IpAddressFamily::Ipv4);
    assert_eq!(
        code(HostTcpSocket::set_listen_backlog_size(
            &mut service.view(),
            borrow(&s),
            0
        )),
        ErrorCode::InvalidArgument
    );
    HostTcpSocket::set_listen_backlog_size(&mut service.view(), borrow(&s), 1).unwrap();
    service.bind(&s, "127.0.0.1:7070").unwrap();
    service.listen(&s).unwrap();
    let mut component = Store::new(&net, Role::Component);
    let first = component.tcp(IpAddressFamily::Ipv4);
    component.connect(&first, "127.0.0.1:7070").unwrap();
    let second = component.tcp(IpAddressFamily::Ipv4);
    assert_eq!(
        code(component.connect(&second, "127.0.0.1:7070")),
        ErrorCode::ConnectionRefused
    );
}

#[test]
fn udp_over_loopback() {
    let net = network();
    let mut service = Store::new(&net, Role::Service);
    let mut component = Store::new(&net, Role::Component);

    let server =
        udp_create_socket::Host::create_udp_socket(&mut service.view(), IpAddressFamily::Ipv4)
            .unwrap();
    let snet = borrow(&service.net);
    HostUdpSocket::start_bind(
        &mut service.view(),
        borrow(&server),
        snet,
        addr("127.0.0.1:5353"),
    )
    .unwrap();
    HostUdpSocket::finish_bind(&mut service.view(), borrow(&server)).unwrap();
    let (s_in, s_out) = HostUdpSocket::stream(&mut service.view(), borrow(&server), None).unwrap();

    let client: Resource<UdpSocket> =
        udp_create_socket::Host::create_udp_socket(&mut component.view(), IpAddressFamily::Ipv4)
            .unwrap();
    let cnet = borrow(&component.net);
    assert_eq!(
        code(HostUdpSocket::start_bind(
            &mut component.view(),
            borrow(&client),
            borrow(&cnet),
            addr("127.0.0.1:53")
        )),
        ErrorCode::AccessDenied,
        "components bind only ephemeral UDP ports"
    );
    HostUdpSocket::start_bind(
        &mut component.view(),
        borrow(&client),
        cnet,
        addr("0.0.0.0:0"),
    )
    .unwrap();
    HostUdpSocket::finish_bind(&mut component.view(), borrow(&client)).unwrap();
    let (c_in, c_out) = HostUdpSocket::stream(
        &mut component.view(),
        borrow(&client),
        Some(addr("127.0.0.1:5353")),
    )
    .unwrap();
    let client_port =
        std_addr(HostUdpSocket::local_address(&mut component.view(), borrow(&client)).unwrap())
            .port();

    assert_eq!(
        HostOutgoingDatagramStream::check_send(&mut component.view(), borrow(&c_out)).unwrap(),
        64
    );
    let sent = HostOutgoingDatagramStream::send(
        &mut component.view(),
        borrow(&c_out),
        vec![
            OutgoingDatagram {
                data: b"query".to_vec(),
                remote_address: None,
            },
            // An explicit destination equal to the connected one is fine.
            OutgoingDatagram {
                data: b"lost".to_vec(),
                remote_address: Some(addr("127.0.0.1:5353")),
            },
        ],
    )
    .unwrap();
    assert_eq!(sent, 2);

    let got = HostIncomingDatagramStream::receive(&mut service.view(), borrow(&s_in), 10).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].data, b"query");
    let from = std_addr(got[0].remote_address);
    assert_eq!(
        from,
        SocketAddr::new("127.0.0.1".parse().unwrap(), client_port)
    );

    HostOutgoingDatagramStream::check_send(&mut service.view(), borrow(&s_out)).unwrap();
    let sent = HostOutgoingDatagramStream::send(
        &mut service.view(),
        borrow(&s_out),
        vec![
            OutgoingDatagram {
                data: b"answer".to_vec(),
                remote_address: Some(got[0].remote_address),
            },
            OutgoingDatagram {
                data: b"nobody".to_vec(),
                remote_address: Some(addr("127.0.0.1:1")),
            },
        ],
    )
    .unwrap();
    assert_eq!(sent, 2);
    let got =
        HostIncomingDatagramStream::receive(&mut component.view(), borrow(&c_in), 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, b"answer");

    // Once connected, other destinations are invalid.
    HostOutgoingDatagramStream::check_send(&mut component.view(), borrow(&c_out)).unwrap();
    let elsewhere = HostOutgoingDatagramStream::send(
        &mut component.view(),
        borrow(&c_out),
        vec![OutgoingDatagram {
            data: b"x".to_vec(),
            remote_address: Some(addr("127.0.0.1:9")),
        }],
    );
    assert_eq!(code(elsewhere), ErrorCode::InvalidArgument);
}

#[test]
fn udp_egress_needs_the_policy() {
    let net = network();
    let mut component = Store::new(&net, Role::Component);
    let socket: Resource<UdpSocket> =
        udp_create_socket::Host::create_udp_socket(&mut component.view(), IpAddressFamily::Ipv4)
            .unwrap();
    let cnet = borrow(&component.net);
    assert_eq!(
        code(HostUdpSocket::stream(
            &mut component.view(),
            borrow(&socket),
            None
        )),
        ErrorCode::InvalidState,
        "WASI 0.2 needs a bind first"
    );
    HostUdpSocket::start_bind(
        &mut component.view(),
        borrow(&socket),
        cnet,
        addr("0.0.0.0:0"),
    )
    .unwrap();
    HostUdpSocket::finish_bind(&mut component.view(), borrow(&socket)).unwrap();
    assert_eq!(
        code(HostUdpSocket::stream(
            &mut component.view(),
            borrow(&socket),
            Some(addr("8.8.8.8:53"))
        )),
        ErrorCode::AccessDenied
    );
    let (_in, out) = HostUdpSocket::stream(&mut component.view(), borrow(&socket), None).unwrap();
    HostOutgoingDatagramStream::check_send(&mut component.view(), borrow(&out)).unwrap();
    let denied = HostOutgoingDatagramStream::send(
        &mut component.view(),
        borrow(&out),
        vec![OutgoingDatagram {
            data: b"x".to_vec(),
            remote_address: Some(addr("8.8.8.8:53")),
        }],
    );
    assert_eq!(code(denied), ErrorCode::AccessDenied);
    // Sending more than check-send permitted is a trap, as WASI requires.
    let unpermitted = HostOutgoingDatagramStream::send(
        &mut component.view(),
        borrow(&out),
        vec![OutgoingDatagram {
            data: b"x".to_vec(),
            remote_address: Some(addr("127.0.0.1:9")),
        }],
    );
    assert!(matches!(
        unpermitted,
        Err(crate::bindings::SocketError::Trap(_))
    ));
}

#[test]
fn name_lookup() {
    use ip_name_lookup::{Host as _, HostResolveAddressStream};
    let policy = EgressPolicy::parse(&["api.example.com".to_string()]).unwrap();
    let net = Network::new("test", policy);
    let mut component = Store::new(&net, Role::Component);
    let n = borrow(&component.net);
    let stream = component
        .view()
        .resolve_addresses(n, "LOCALHOST".to_string())
        .unwrap();
    let mut got = Vec::new();
    while let Some(ip) =
        HostResolveAddressStream::resolve_next_address(&mut component.view(), borrow(&stream))
            .unwrap()
    {
        got.push(format!("{ip:?}"));
    }
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].contains("Ipv4((127, 0, 0, 1))"), "{got:?}");
    assert!(got[1].contains("Ipv6((0, 0, 0, 0, 0, 0, 0, 1))"), "{got:?}");

    let n = borrow(&component.net);
    let denied = component
        .view()
        .resolve_addresses(n, "other.example.com".to_string());
    assert_eq!(code(denied), ErrorCode::PermanentResolverFailure);
    let n = borrow(&component.net);
    let bad = component
        .view()
        .resolve_addresses(n, "not a name".to_string());
    assert_eq!(code(bad), ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn write_zeroes_reach_the_peer_as_zero_bytes() {
    use wasmtime_wasi::p2::bindings::io::streams::HostOutputStream;
    let net = network();
    let mut service = Store::new(&net, Role::Service);
    let mut component = Store::new(&net, Role::Component);
    let listener = service.listener("127.0.0.1:7070");
    let client = component.tcp(IpAddressFamily::Ipv4);
    let (_c_in, c_out) = component.connect(&client, "127.0.0.1:7070").unwrap();
    let (_accepted, s_in, _s_out) = service.accept(&listener).unwrap();

    component.write(&c_out, b"[");
    HostOutputStream::write_zeroes(&mut component.table, borrow(&c_out), 3).unwrap();
    component.write(&c_out, b"|");
    let blocking = HostOutputStream::blocking_write_zeroes_and_flush(
        &mut component.table,
        borrow(&c_out),
        4096,
    );
    tokio::time::timeout(std::time::Duration::from_secs(5), blocking)
        .await
        .unwrap()
        .unwrap();
    component.write(&c_out, b"]");

    let mut expected = b"[\0\0\0|".to_vec();
    expected.extend_from_slice(&[0; 4096]);
    expected.push(b']');
    assert_eq!(service.read_all(&s_in), expected);

    // Like any write, zeroes may not exceed what check-write grants: that is a trap.
    let budget = HostOutputStream::check_write(&mut component.table, borrow(&c_out)).unwrap();
    let over = HostOutputStream::write_zeroes(&mut component.table, borrow(&c_out), budget + 1);
    assert!(over.is_err_and(|e| matches!(e, StreamError::Trap(_))));
}

#[test]
fn udp_from_unspecified_bind_arrives_from_loopback() {
    let net = network();
    let mut service = Store::new(&net, Role::Service);
    let mut component = Store::new(&net, Role::Component);
    for (family, server_addr, any, loopback) in [
        (
            IpAddressFamily::Ipv4,
            "127.0.0.1:5353",
            "0.0.0.0:0",
            "127.0.0.1",
        ),
        (IpAddressFamily::Ipv6, "[::1]:5354", "[::]:0", "::1"),
    ] {
        let server = service.udp(family, server_addr);
        let (s_in, _s_out) = service.udp_stream(&server, None);
        let client = component.udp(family, any);
        let (_c_in, c_out) = component.udp_stream(&client, None);
        let client_port =
            std_addr(HostUdpSocket::local_address(&mut component.view(), borrow(&client)).unwrap())
                .port();

        assert_eq!(component.send(&c_out, b"hi", Some(server_addr)).unwrap(), 1);
        let got = service.receive(&s_in).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, b"hi");
        let from = SocketAddr::new(loopback.parse().unwrap(), client_port);
        assert_eq!(std_addr(got[0].remote_address), from, "{family:?}");
    }
}

#[tokio::test]
async fn connected_udp_to_closed_port_reports_connection_refused_once() {
    let net = network();
    let mut service = Store::new(&net, Role::Service);
    let mut component = Store::new(&net, Role::Component);
    let client = component.udp(IpAddressFamily::Ipv4, "0.0.0.0:0");
    let (c_in, c_out) = component.udp_stream(&client, Some("127.0.0.1:5353"));

    // The send itself succeeds (UDP cannot know yet); the refusal comes back like an ICMP
    // port-unreachable: the next receive fails, once.
    assert_eq!(component.send(&c_out, b"query", None).unwrap(), 1);
    {
        // A guest waiting on the stream's pollable wakes up to see the error.
        use wasmtime_wasi::p2::Pollable;
        let stream = component.table.get_mut(&c_in).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), stream.ready())
            .await
            .unwrap();
    }
    assert_eq!(code(component.receive(&c_in)), ErrorCode::ConnectionRefused);
    assert!(component.receive(&c_in).unwrap().is_empty());

    // Once the server is up, the same socket works normally.
    let server = service.udp(IpAddressFamily::Ipv4, "127.0.0.1:5353");
    let (s_in, s_out) = service.udp_stream(&server, None);
    assert_eq!(component.send(&c_out, b"again", None).unwrap(), 1);
    let got = service.receive(&s_in).unwrap();
    assert_eq!(got[0].data, b"again");
    let reply_to = std_addr(got[0].remote_address).to_string();
    assert_eq!(service.send(&s_out, b"answer", Some(&reply_to)).unwrap(), 1);
    let got = component.receive(&c_in).unwrap();
    assert_eq!(got[0].data, b"answer");
}

#[test]
fn udp_connection_refused_is_pending_like_a_socket_error() {
    let net = network();
    let mut service = Store::new(&net, Role::Service);
    let mut component = Store::new(&net, Role::Component);
    let server = service.udp(IpAddressFamily::Ipv4, "127.0.0.1:5353");
    let (_s_in, s_out) = service.udp_stream(&server, None);
    let client = component.udp(IpAddressFamily::Ipv4, "127.0.0.1:0");
    let client_addr =
        std_addr(HostUdpSocket::local_address(&mut component.view(), borrow(&client)).unwrap())
            .to_string();
    let (c_in, c_out) = component.udp_stream(&client, Some("127.0.0.1:5353"));

    // A reply is queued, then the server goes away and the client sends again.
    assert_eq!(
        service.send(&s_out, b"reply", Some(&client_addr)).unwrap(),
        1
    );
    drop(service);
    assert_eq!(component.send(&c_out, b"one", None).unwrap(), 1);
    // As on Linux, the error comes before queued data, and the next send may take it instead
    // of the next receive.
    assert_eq!(code(component.receive(&c_in)), ErrorCode::ConnectionRefused);
    assert_eq!(component.receive(&c_in).unwrap()[0].data, b"reply");
    assert_eq!(component.send(&c_out, b"two", None).unwrap(), 1);
    assert_eq!(
        code(component.send(&c_out, b"three", None)),
        ErrorCode::ConnectionRefused
    );
    assert!(component.receive(&c_in).unwrap().is_empty());
}

#[test]
fn unconnected_udp_to_closed_port_is_silently_dropped() {
    let net = network();
    let mut component = Store::new(&net, Role::Component);
    let socket = component.udp(IpAddressFamily::Ipv4, "0.0.0.0:0");
    let (c_in, c_out) = component.udp_stream(&socket, None);
    assert_eq!(
        component
            .send(&c_out, b"lost", Some("127.0.0.1:5353"))
            .unwrap(),
        1
    );
    assert!(component.receive(&c_in).unwrap().is_empty());
    assert_eq!(
        component
            .send(&c_out, b"lost", Some("127.0.0.1:5353"))
            .unwrap(),
        1
    );
}
