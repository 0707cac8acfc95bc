//! The host side of every interface this crate serves, generated from `wit/`.
//!
//! Resources are mapped onto this crate's own types, so each lives in the module of its
//! interface; `wasi:io` comes from wasmtime-wasi, which serves it.

mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "hearth:interfaces/host",
        imports: { default: async | trappable },
        with: {
            // Add `"wasi:io": wasmtime_wasi::p2::bindings::io,` once a world uses its streams.
        },
        require_store_data_send: true,
    });
}

pub use generated::wasi::{config, logging};
pub use generated::wasmcloud::messaging;

/// The messaging handler a subscribed component exports, called by the host.
pub mod handler {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "hearth:interfaces/messaging-handler",
        exports: { default: async },
    });
}
