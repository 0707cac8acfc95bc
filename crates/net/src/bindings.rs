//! Host bindings generated from the vendored WASI 0.2 `wasi:sockets` WIT (see `wit/README.md`),
//! and the error type those bindings use. `wasi:io` and `wasi:clocks` are mapped to
//! wasmtime-wasi's types so streams and pollables are shared with its `wasi:io` implementation.
//! The socket resources map to this crate's own types. The trait implementations live with the
//! state they serve (`tcp.rs`, `udp.rs`, `lookup.rs`, `ctx.rs`); this module only owns the
//! generated code, [`SocketError`] and address conversions.

mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "hearth:net/sockets",
        imports: { default: trappable },
        trappable_error_type: {
            "wasi:sockets/network.error-code" => crate::bindings::SocketError,
        },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:sockets/network.network": crate::ctx::NetworkResource,
            "wasi:sockets/tcp.tcp-socket": crate::tcp::TcpSocket,
            "wasi:sockets/udp.udp-socket": crate::udp::UdpSocket,
            "wasi:sockets/udp.incoming-datagram-stream": crate::udp::IncomingDatagramStream,
            "wasi:sockets/udp.outgoing-datagram-stream": crate::udp::OutgoingDatagramStream,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": crate::lookup::ResolveAddressStream,
        },
        require_store_data_send: true,
    });
}

pub use generated::wasi::sockets;
pub use sockets::network::ErrorCode;

/// The error of a `wasi:sockets` host call: either an `error-code` the guest sees, or a trap
/// (a host bug or a broken resource table) that aborts the guest.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("socket error: {0:?}")]
    Code(ErrorCode),
    #[error("trap: {0}")]
    Trap(wasmtime::Error),
}

impl SocketError {
    pub(crate) fn trap(err: impl Into<wasmtime::Error>) -> Self {
        Self::Trap(err.into())
    }
}

impl From<ErrorCode> for SocketError {
    fn from(code: ErrorCode) -> Self {
        Self::Code(code)
    }
}

impl From<wasmtime::component::ResourceTableError> for SocketError {
    fn from(err: wasmtime::component::ResourceTableError) -> Self {
        Self::Trap(err.into())
    }
}

pub type SocketResult<T> = Result<T, SocketError>;
