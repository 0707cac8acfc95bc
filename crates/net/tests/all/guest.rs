//! Builds small test components from WIT and WAT at test time, so these tests need no
//! `wasm32-wasip2` toolchain. The vendored WASI WIT is re-versioned to `0.2.0` to act like a
//! guest built against the oldest 0.2 release.

use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::{ManglingAndAbi, Resolve};

/// The vendored WASI packages, re-versioned from 0.2.12 to `version`, plus `world` (a WIT
/// package text using them). Returns the resolve and the world to encode.
fn resolve(version: &str, world: &str) -> (Resolve, wit_parser::WorldId) {
    let mut resolve = Resolve::default();
    let deps = concat!(env!("CARGO_MANIFEST_DIR"), "/wit/deps");
    for file in ["io.wit", "clocks.wit", "sockets.wit"] {
        let text = std::fs::read_to_string(format!("{deps}/{file}")).unwrap();
        let text = text.replace("@0.2.12", &format!("@{version}"));
        resolve.push_source(file, &text).unwrap();
    }
    let pkg = resolve.push_source("world.wit", world).unwrap();
    let world = resolve.select_world(&[pkg], None).unwrap();
    (resolve, world)
}

/// A component whose imports are exactly `world`'s, with bodies that trap: enough to check
/// that everything links.
pub fn dummy(version: &str, world: &str) -> Vec<u8> {
    let (resolve, world) = resolve(version, world);
    let module = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    encode(module, &resolve, world)
}

/// A component from a core module in WAT implementing `world`.
pub fn from_wat(version: &str, world: &str, wat: &str) -> Vec<u8> {
    let (resolve, world) = resolve(version, world);
    let module = wat::parse_str(wat).unwrap();
    encode(module, &resolve, world)
}

fn encode(mut module: Vec<u8>, resolve: &Resolve, world: wit_parser::WorldId) -> Vec<u8> {
    wit_component::embed_component_metadata(&mut module, resolve, world, StringEncoding::UTF8)
        .unwrap();
    ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}
