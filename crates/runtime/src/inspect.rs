//! What `hearth inspect` asks of a file: what it is and exports (the plan's own rules in
//! `plan/world.rs`), who would serve each import on this host (the plan's one rule in
//! `plan/links.rs`), and the worlds it was built against.

pub use crate::plan::links::{Provider, provider, satisfies, served_packages};
pub use crate::plan::world::{CLI_RUN, HTTP_HANDLER, MESSAGE_HANDLER, WasmKind, World, kind};

use wasmparser::{Parser, Payload};

/// The worlds a component was built against, from the `component-type:` custom sections
/// that bindings generators embed (`ns:pkg/world`); empty when it carries none.
pub fn worlds(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::CustomSection(section)) = payload else {
            continue;
        };
        // e.g. `component-type:wit-bindgen:0.61.1:hearth-test:iface-http:imports:encoded world`
        let Some(rest) = section.name().strip_prefix("component-type:") else {
            continue;
        };
        let parts: Vec<&str> = rest.split(':').collect();
        if let [.., ns, pkg, world, _encoded] = parts.as_slice() {
            let name = format!("{ns}:{pkg}/{world}");
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}
