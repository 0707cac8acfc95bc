//! hearth-net: each workload's own in-memory loopback network, served to guests as the host
//! side of WASI 0.2 `wasi:sockets`.
//!
//! A workload's service may `bind`/`listen` on TCP and *is* `127.0.0.1`/`::1`/`localhost` for
//! that workload. Components (and the service itself) that connect to a loopback address reach
//! the service's listener through in-memory pipes; no kernel socket is opened, two workloads
//! can listen on the same port, and no workload can reach another's service or the host's real
//! loopback. Other destinations are reached through the real network only where the workload's
//! [`EgressPolicy`] allows.
//!
//! Layout: `network.rs` (port tables, listeners, virtual connect), `pipe.rs` (in-memory pipes,
//! [`VirtualStream`]), `real_tcp.rs` (streams over real TCP), `tcp.rs`, `udp.rs`, `lookup.rs`
//! (the `wasi:sockets` resources), `ctx.rs` (per-store state), `policy.rs` (`allowedHosts`),
//! `addr.rs` (address rules), `bindings.rs` (generated from `wit/`).
//!
//! Linking: add wasmtime-wasi's p2 interfaces first, then let ours replace its sockets:
//!
//! ```ignore
//! wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
//! linker.allow_shadowing(true);
//! hearth_net::add_to_linker(&mut linker)?;
//! ```

mod addr;
mod bindings;
mod ctx;
mod lookup;
mod network;
mod pipe;
mod policy;
mod real_tcp;
mod tcp;
mod udp;

#[cfg(test)]
mod host_tests;

pub use addr::is_loopback_host;
pub use ctx::{NetCtx, NetCtxView, NetView, Role};
pub use network::{
    ConnectError, DEFAULT_BACKLOG, EPHEMERAL_PORT_START, InFlightRequest, NetLimits, Network,
};
pub use pipe::{PIPE_CAPACITY, VirtualStream};
pub use policy::{EgressPolicy, PolicyError};

use bindings::sockets;

/// The `wasi:sockets` host traits and the types they take, for the fuzz harness (`fuzz/`),
/// which calls them on a [`NetCtxView`] the way a guest's imports do. Not a stable API: only
/// with the `fuzzing` feature, which hearth itself never enables.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    pub use crate::bindings::sockets::network::{
        IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    };
    pub use crate::bindings::sockets::tcp::{HostTcpSocket, ShutdownType};
    pub use crate::bindings::sockets::udp::{
        HostIncomingDatagramStream, HostOutgoingDatagramStream, HostUdpSocket, IncomingDatagram,
        OutgoingDatagram,
    };
    pub use crate::bindings::sockets::{instance_network, tcp_create_socket, udp_create_socket};
    pub use crate::bindings::{ErrorCode, SocketError, SocketResult};
    pub use crate::ctx::NetworkResource;
    pub use crate::tcp::TcpSocket;
    pub use crate::udp::{IncomingDatagramStream, OutgoingDatagramStream, UdpSocket};
}
use wasmtime::component::{HasData, Linker};

/// The WASI version of the `wasi:sockets` interfaces this crate defines. Guests importing any
/// semver-compatible `0.2.x` link against them.
pub const WASI_SOCKETS_VERSION: &str = "0.2.12";

struct HasNet;

impl HasData for HasNet {
    type Data<'a> = NetCtxView<'a>;
}

/// Adds every `wasi:sockets` interface (`network`, `instance-network`, `tcp`,
/// `tcp-create-socket`, `udp`, `udp-create-socket`, `ip-name-lookup`) to `linker`.
///
/// To replace wasmtime-wasi's sockets, add its p2 set first, then call
/// `linker.allow_shadowing(true)` and this function.
pub fn add_to_linker<T: NetView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let options = sockets::network::LinkOptions::default();
    sockets::network::add_to_linker::<T, HasNet>(linker, &options, T::net)?;
    sockets::instance_network::add_to_linker::<T, HasNet>(linker, T::net)?;
    sockets::tcp::add_to_linker::<T, HasNet>(linker, T::net)?;
    sockets::tcp_create_socket::add_to_linker::<T, HasNet>(linker, T::net)?;
    sockets::udp::add_to_linker::<T, HasNet>(linker, T::net)?;
    sockets::udp_create_socket::add_to_linker::<T, HasNet>(linker, T::net)?;
    sockets::ip_name_lookup::add_to_linker::<T, HasNet>(linker, T::net)?;
    Ok(())
}
