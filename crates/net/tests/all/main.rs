//! Integration tests for hearth-net: Wasm components linked the way hearth links them
//! (wasmtime-wasi's p2 set first, then hearth-net's sockets shadowing its own).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod guest;
mod linker;
