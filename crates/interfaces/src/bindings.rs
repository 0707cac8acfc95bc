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
            "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:blobstore/types.outgoing-value": crate::blobstore::OutgoingValue,
            "wasi:blobstore/types.incoming-value": crate::blobstore::IncomingValue,
            "wasi:blobstore/container.container": crate::blobstore::Container,
            "wasi:blobstore/container.stream-object-names": crate::blobstore::StreamObjectNames,
        },
        require_store_data_send: true,
    });
}

pub use generated::wasi::{blobstore, config, keyvalue, logging};
pub use generated::wasmcloud::messaging;

/// The messaging handler a subscribed component exports, called by the host.
pub mod handler {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "hearth:interfaces/messaging-handler",
        exports: { default: async },
    });
}
