//! The TCP socket resource and its WASI 0.2 state machine (unbound, bound, listening,
//! connecting, connected, closed), and the `wasi:sockets/tcp` and `tcp-create-socket` host
//! traits over it. Loopback connects go through the workload's [`Network`] as in-memory
//! pipes; other destinations are checked against the egress policy and opened with a real
//! tokio connection. Port tables live in `network.rs`, the streams in `pipe.rs` and
//! `real_tcp.rs`.

use crate::addr::{
    check_bind, check_remote, from_std, io_error_code, is_virtual_loopback, loopback, to_std,
};
use crate::bindings::sockets::network::{IpAddressFamily, IpSocketAddress};
use crate::bindings::sockets::{tcp, tcp_create_socket};
use crate::bindings::{ErrorCode, SocketResult};
use crate::ctx::{NetCtx, NetCtxView, NetworkResource, Role};
use crate::network::{Backlog, DEFAULT_BACKLOG, TcpPort};
use crate::pipe::{Pipe, PipeReader, PipeWriter};
use crate::real_tcp::{RealConn, RealReader, RealWriter};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, Pollable};

/// Largest accepted listen backlog; larger requests are clamped, as operating systems do.
const MAX_BACKLOG: usize = 4096;

/// A `wasi:sockets/tcp` socket.
pub struct TcpSocket {
    family: IpAddressFamily,
    state: State,
    in_progress: Option<Op>,
    backlog_size: usize,
    options: Options,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Bind,
    Listen,
    Connect,
}

enum State {
    Unbound,
    Bound {
        local: SocketAddr,
        port: TcpPort,
    },
    Listening {
        local: SocketAddr,
        _port: TcpPort,
        backlog: Arc<Backlog>,
    },
    Connecting {
        remote: SocketAddr,
        attempt: Attempt,
        port: Option<TcpPort>,
    },
    Connected(Connected),
    Closed,
}

enum Attempt {
    /// A loopback connect: decided at once.
    Virtual(Result<(SocketAddr, PipeReader, PipeWriter), ErrorCode>),
    /// A real connect in flight.
    Real(ConnectTask),
    RealDone(Result<TcpStream, ErrorCode>),
}

/// A real connect task; a socket dropped mid-connect abandons the attempt.
struct ConnectTask(JoinHandle<std::io::Result<TcpStream>>);

impl Drop for ConnectTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Connected {
    local: SocketAddr,
    remote: SocketAddr,
    link: Link,
    _port: Option<TcpPort>,
}

/// The socket's handle on its connection, for `shutdown` (the streams are separate resources).
enum Link {
    Virtual { rx: Arc<Pipe>, tx: Arc<Pipe> },
    Real(Arc<RealConn>),
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Link::Virtual { rx, tx } = self {
            rx.close_read();
            tx.close_write();
        }
    }
}

/// Socket options. They have no effect on virtual connections; they are kept so guests read
/// back what they set, and accepted sockets inherit them from the listener.
#[derive(Debug, Clone, Copy)]
struct Options {
    keep_alive_enabled: bool,
    keep_alive_idle_time: u64,
    keep_alive_interval: u64,
    keep_alive_count: u32,
    hop_limit: u8,
    receive_buffer_size: u64,
    send_buffer_size: u64,
}

impl Default for Options {
    fn default() -> Self {
        const SECOND: u64 = 1_000_000_000;
        Self {
            keep_alive_enabled: false,
            keep_alive_idle_time: 7200 * SECOND,
            keep_alive_interval: 75 * SECOND,
            keep_alive_count: 9,
            hop_limit: 64,
            receive_buffer_size: crate::pipe::PIPE_CAPACITY as u64,
            send_buffer_size: crate::pipe::PIPE_CAPACITY as u64,
        }
    }
}

fn nonzero<T: PartialEq + Default>(value: T) -> Result<T, ErrorCode> {
    if value == T::default() {
        Err(ErrorCode::InvalidArgument)
    } else {
        Ok(value)
    }
}

impl TcpSocket {
    fn new(family: IpAddressFamily) -> Self {
        Self {
            family,
            state: State::Unbound,
            in_progress: None,
            backlog_size: DEFAULT_BACKLOG,
            options: Options::default(),
        }
    }

    fn begin(&self, op_allowed: bool) -> Result<(), ErrorCode> {
        if self.in_progress.is_some() {
            return Err(ErrorCode::ConcurrencyConflict);
        }
        if !op_allowed {
            return Err(ErrorCode::InvalidState);
        }
        Ok(())
    }

    fn finish(&mut self, op: Op) -> Result<(), ErrorCode> {
        if self.in_progress != Some(op) {
            return Err(ErrorCode::NotInProgress);
        }
        self.in_progress = None;
        Ok(())
    }

    fn start_bind(&mut self, ctx: &NetCtx, local: SocketAddr) -> Result<(), ErrorCode> {
        self.begin(matches!(self.state, State::Unbound))?;
        check_bind(local, self.family)?;
        if ctx.role() == Role::Component {
            return Err(ErrorCode::AccessDenied);
        }
        let port = ctx.network().bind_tcp(local.port())?;
        let local = SocketAddr::new(local.ip(), port.port());
        self.state = State::Bound { local, port };
        self.in_progress = Some(Op::Bind);
        Ok(())
    }

    fn start_listen(&mut self, ctx: &NetCtx) -> Result<(), ErrorCode> {
        if self.in_progress.is_some() {
            return Err(ErrorCode::ConcurrencyConflict);
        }
        if ctx.role() == Role::Component {
            return Err(ErrorCode::AccessDenied);
        }
        // WASI 0.2: only an explicitly bound socket may listen.
        if !matches!(self.state, State::Bound { .. }) {
            return Err(ErrorCode::InvalidState);
        }
        let State::Bound { local, port } = std::mem::replace(&mut self.state, State::Closed) else {
            return Err(ErrorCode::InvalidState);
        };
        let backlog = port.listen(self.family, self.backlog_size);
        self.state = State::Listening {
            local,
            _port: port,
            backlog,
        };
        self.in_progress = Some(Op::Listen);
        Ok(())
    }

    fn start_connect(&mut self, ctx: &NetCtx, remote: SocketAddr) -> Result<(), ErrorCode> {
        self.begin(matches!(self.state, State::Unbound | State::Bound { .. }))?;
        check_remote(remote, self.family)?;
        let bound = match std::mem::replace(&mut self.state, State::Closed) {
            State::Bound { local, port } => Some((local, port)),
            _ => None,
        };
        let attempt = if is_virtual_loopback(remote.ip()) {
            let local = match &bound {
                Some((local, port)) if !local.ip().is_unspecified() => {
                    SocketAddr::new(local.ip(), port.port())
                }
                Some((_, port)) => SocketAddr::new(loopback(self.family), port.port()),
                None => SocketAddr::new(loopback(self.family), ctx.network().ephemeral_hint()),
            };
            Attempt::Virtual(
                ctx.network()
                    .connect_local(remote.port(), local.port())
                    .map(|(reader, writer)| (local, reader, writer))
                    .map_err(|_| ErrorCode::ConnectionRefused),
            )
        } else if !ctx.egress_allowed(remote) {
            self.state = match bound {
                Some((local, port)) => State::Bound { local, port },
                None => State::Unbound,
            };
            tracing::debug!(
                workload = ctx.network().workload(),
                %remote,
                "TCP connect denied by egress policy"
            );
            return Err(ErrorCode::AccessDenied);
        } else {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => Attempt::Real(ConnectTask(handle.spawn(TcpStream::connect(remote)))),
                Err(_) => Attempt::RealDone(Err(ErrorCode::Unknown)),
            }
        };
        self.state = State::Connecting {
            remote,
            attempt,
            port: bound.map(|(_, port)| port),
        };
        self.in_progress = Some(Op::Connect);
        Ok(())
    }

    /// Drives a real connect attempt; ready once the attempt has an outcome.
    fn poll_connect(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let State::Connecting { attempt, .. } = &mut self.state else {
            return Poll::Ready(());
        };
        let Attempt::Real(task) = attempt else {
            return Poll::Ready(());
        };
        let outcome = match Pin::new(&mut task.0).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(Ok(stream))) => Ok(stream),
            Poll::Ready(Ok(Err(err))) => Err(io_error_code(&err)),
            Poll::Ready(Err(_join)) => Err(ErrorCode::Unknown),
        };
        *attempt = Attempt::RealDone(outcome);
        Poll::Ready(())
    }

    fn finish_connect(&mut self) -> Result<(DynInputStream, DynOutputStream), ErrorCode> {
        if self.in_progress != Some(Op::Connect) {
            return Err(ErrorCode::NotInProgress);
        }
        if self
            .poll_connect(&mut Context::from_waker(Waker::noop()))
            .is_pending()
        {
            return Err(ErrorCode::WouldBlock);
        }
        self.in_progress = None;
        let State::Connecting {
            remote,
            attempt,
            port,
        } = std::mem::replace(&mut self.state, State::Closed)
        else {
            return Err(ErrorCode::InvalidState);
        };
        match attempt {
            Attempt::Virtual(Ok((local, reader, writer))) => {
                self.state = State::Connected(Connected {
                    local,
                    remote,
                    link: Link::Virtual {
                        rx: reader.pipe(),
                        tx: writer.pipe(),
                    },
                    _port: port,
                });
                Ok((Box::new(reader), Box::new(writer)))
            }
            Attempt::RealDone(Ok(stream)) => {
                let conn = RealConn::new(stream);
                let local = conn
                    .local_addr()
                    .unwrap_or_else(|_| SocketAddr::new(loopback(self.family), 0));
                self.state = State::Connected(Connected {
                    local,
                    remote,
                    link: Link::Real(conn.clone()),
                    _port: port,
                });
                Ok((
                    Box::new(RealReader(conn.clone())),
                    Box::new(RealWriter(conn)),
                ))
            }
            Attempt::Virtual(Err(err)) | Attempt::RealDone(Err(err)) => Err(err),
            Attempt::Real(_) => Err(ErrorCode::WouldBlock),
        }
    }

    fn accept(&mut self) -> Result<(TcpSocket, DynInputStream, DynOutputStream), ErrorCode> {
        let State::Listening { local, backlog, .. } = &self.state else {
            return Err(ErrorCode::InvalidState);
        };
        let conn = backlog.pop().ok_or(ErrorCode::WouldBlock)?;
        let ip = if local.ip().is_unspecified() {
            loopback(backlog.family())
        } else {
            local.ip()
        };
        let socket = TcpSocket {
            family: self.family,
            state: State::Connected(Connected {
                local: SocketAddr::new(ip, backlog.port()),
                remote: SocketAddr::new(loopback(backlog.family()), conn.peer_port),
                link: Link::Virtual {
                    rx: conn.reader.pipe(),
                    tx: conn.writer.pipe(),
                },
                _port: None,
            }),
            in_progress: None,
            backlog_size: DEFAULT_BACKLOG,
            options: self.options,
        };
        Ok((socket, Box::new(conn.reader), Box::new(conn.writer)))
    }

    fn local_address(&self) -> Result<SocketAddr, ErrorCode> {
        match &self.state {
            State::Bound { local, .. } | State::Listening { local, .. } => Ok(*local),
            State::Connected(c) => Ok(c.local),
            _ => Err(ErrorCode::InvalidState),
        }
    }

    fn remote_address(&self) -> Result<SocketAddr, ErrorCode> {
        match &self.state {
            State::Connected(c) => Ok(c.remote),
            _ => Err(ErrorCode::InvalidState),
        }
    }

    fn set_listen_backlog_size(&mut self, value: u64) -> Result<(), ErrorCode> {
        let value = usize::try_from(nonzero(value)?)
            .unwrap_or(MAX_BACKLOG)
            .min(MAX_BACKLOG);
        match &self.state {
            State::Unbound | State::Bound { .. } => {}
            State::Listening { backlog, .. } => backlog.set_capacity(value),
            _ => return Err(ErrorCode::InvalidState),
        }
        self.backlog_size = value;
        Ok(())
    }

    fn shutdown(&mut self, how: tcp::ShutdownType) -> Result<(), ErrorCode> {
        let State::Connected(c) = &self.state else {
            return Err(ErrorCode::InvalidState);
        };
        let (receive, send) = match how {
            tcp::ShutdownType::Receive => (true, false),
            tcp::ShutdownType::Send => (false, true),
            tcp::ShutdownType::Both => (true, true),
        };
        match &c.link {
            Link::Virtual { rx, tx } => {
                if receive {
                    rx.close_read();
                }
                if send {
                    tx.close_write();
                }
            }
            Link::Real(conn) => {
                if receive {
                    conn.shutdown_receive();
                }
                if send {
                    conn.shutdown_send();
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Pollable for TcpSocket {
    async fn ready(&mut self) {
        // A started bind or listen is ready to be finished at once. wstd waits on one
        // pollable for bind, then listen, then every accept, so this matters.
        if self.in_progress.is_some() && !matches!(self.state, State::Connecting { .. }) {
            return;
        }
        match &self.state {
            State::Connecting { .. } => std::future::poll_fn(|cx| self.poll_connect(cx)).await,
            State::Listening { backlog, .. } => {
                let backlog = backlog.clone();
                std::future::poll_fn(|cx| backlog.poll_ready(cx)).await
            }
            _ => {}
        }
    }
}

impl tcp_create_socket::Host for NetCtxView<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        Ok(self.table.push(TcpSocket::new(family))?)
    }
}

impl tcp::Host for NetCtxView<'_> {}

impl tcp::HostTcpSocket for NetCtxView<'_> {
    fn start_bind(
        &mut self,
        this: Resource<TcpSocket>,
        network: Resource<NetworkResource>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        self.table.get(&network)?;
        let socket = self.table.get_mut(&this)?;
        Ok(socket.start_bind(self.ctx, to_std(local_address))?)
    }

    fn finish_bind(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        Ok(self.table.get_mut(&this)?.finish(Op::Bind)?)
    }

    fn start_connect(
        &mut self,
        this: Resource<TcpSocket>,
        network: Resource<NetworkResource>,
        remote_address: IpSocketAddress,
    ) -> SocketResult<()> {
        self.table.get(&network)?;
        let socket = self.table.get_mut(&this)?;
        Ok(socket.start_connect(self.ctx, to_std(remote_address))?)
    }

    fn finish_connect(
        &mut self,
        this: Resource<TcpSocket>,
    ) -> SocketResult<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
        let (input, output) = self.table.get_mut(&this)?.finish_connect()?;
        let input = self.table.push_child(input, &this)?;
        let output = self.table.push_child(output, &this)?;
        Ok((input, output))
    }

    fn start_listen(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        let socket = self.table.get_mut(&this)?;
        Ok(socket.start_listen(self.ctx)?)
    }

    fn finish_listen(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        Ok(self.table.get_mut(&this)?.finish(Op::Listen)?)
    }

    fn accept(
        &mut self,
        this: Resource<TcpSocket>,
    ) -> SocketResult<(
        Resource<TcpSocket>,
        Resource<DynInputStream>,
        Resource<DynOutputStream>,
    )> {
        let (socket, input, output) = self.table.get_mut(&this)?.accept()?;
        let socket = self.table.push(socket)?;
        let input = self.table.push_child(input, &socket)?;
        let output = self.table.push_child(output, &socket)?;
        Ok((socket, input, output))
    }

    fn local_address(&mut self, this: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        Ok(from_std(self.table.get(&this)?.local_address()?))
    }

    fn remote_address(&mut self, this: Resource<TcpSocket>) -> SocketResult<IpSocketAddress> {
        Ok(from_std(self.table.get(&this)?.remote_address()?))
    }

    fn is_listening(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<bool> {
        Ok(matches!(
            self.table.get(&this)?.state,
            State::Listening { .. }
        ))
    }

    fn address_family(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&this)?.family)
    }

    fn set_listen_backlog_size(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        Ok(self.table.get_mut(&this)?.set_listen_backlog_size(value)?)
    }

    fn keep_alive_enabled(&mut self, this: Resource<TcpSocket>) -> SocketResult<bool> {
        Ok(self.table.get(&this)?.options.keep_alive_enabled)
    }

    fn set_keep_alive_enabled(
        &mut self,
        this: Resource<TcpSocket>,
        value: bool,
    ) -> SocketResult<()> {
        self.table.get_mut(&this)?.options.keep_alive_enabled = value;
        Ok(())
    }

    fn keep_alive_idle_time(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(self.table.get(&this)?.options.keep_alive_idle_time)
    }

    fn set_keep_alive_idle_time(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        self.table.get_mut(&this)?.options.keep_alive_idle_time = nonzero(value)?;
        Ok(())
    }

    fn keep_alive_interval(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(self.table.get(&this)?.options.keep_alive_interval)
    }

    fn set_keep_alive_interval(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        self.table.get_mut(&this)?.options.keep_alive_interval = nonzero(value)?;
        Ok(())
    }

    fn keep_alive_count(&mut self, this: Resource<TcpSocket>) -> SocketResult<u32> {
        Ok(self.table.get(&this)?.options.keep_alive_count)
    }

    fn set_keep_alive_count(&mut self, this: Resource<TcpSocket>, value: u32) -> SocketResult<()> {
        self.table.get_mut(&this)?.options.keep_alive_count = nonzero(value)?;
        Ok(())
    }

    fn hop_limit(&mut self, this: Resource<TcpSocket>) -> SocketResult<u8> {
        Ok(self.table.get(&this)?.options.hop_limit)
    }

    fn set_hop_limit(&mut self, this: Resource<TcpSocket>, value: u8) -> SocketResult<()> {
        self.table.get_mut(&this)?.options.hop_limit = nonzero(value)?;
        Ok(())
    }

    fn receive_buffer_size(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(self.table.get(&this)?.options.receive_buffer_size)
    }

    fn set_receive_buffer_size(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        self.table.get_mut(&this)?.options.receive_buffer_size = nonzero(value)?;
        Ok(())
    }

    fn send_buffer_size(&mut self, this: Resource<TcpSocket>) -> SocketResult<u64> {
        Ok(self.table.get(&this)?.options.send_buffer_size)
    }

    fn set_send_buffer_size(&mut self, this: Resource<TcpSocket>, value: u64) -> SocketResult<()> {
        self.table.get_mut(&this)?.options.send_buffer_size = nonzero(value)?;
        Ok(())
    }

    fn subscribe(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    fn shutdown(
        &mut self,
        this: Resource<TcpSocket>,
        shutdown_type: tcp::ShutdownType,
    ) -> SocketResult<()> {
        Ok(self.table.get_mut(&this)?.shutdown(shutdown_type)?)
    }

    fn drop(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
