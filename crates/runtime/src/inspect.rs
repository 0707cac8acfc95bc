//! What a file is, without compiling it: a component, a core module, or not Wasm at all, and
//! the names a component imports and exports at its top level.

use wasmparser::{Parser, Payload};

/// The interface every HTTP-routed component must export.
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler";
/// The interface a command (and later a service) exports.
pub const CLI_RUN: &str = "wasi:cli/run";
/// The interface a component with messaging `subscriptions` exports.
pub const MESSAGE_HANDLER: &str = "wasmcloud:messaging/handler";

/// What the bytes of a file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A WebAssembly component (what hearth runs).
    Component,
    /// A core WebAssembly module: built for `wasm32-wasip1` or `wasm32-unknown-unknown`.
    CoreModule,
    /// Not WebAssembly.
    NotWasm,
}

/// Looks at the 8-byte preamble.
pub fn kind(bytes: &[u8]) -> WasmKind {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => WasmKind::Component,
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => WasmKind::CoreModule,
        _ => WasmKind::NotWasm,
    }
}

/// The top-level imports and exports of a component, as `ns:pkg/iface@version` names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    /// Imported names.
    pub imports: Vec<String>,
    /// Exported names.
    pub exports: Vec<String>,
}

impl Interfaces {
    /// The exported name for `interface` (any version), if exported.
    pub fn export(&self, interface: &str) -> Option<&str> {
        find(&self.exports, interface)
    }

    /// The imported name for `interface` (any version), if imported.
    pub fn import(&self, interface: &str) -> Option<&str> {
        find(&self.imports, interface)
    }
}

fn find<'a>(names: &'a [String], interface: &str) -> Option<&'a str> {
    names.iter().map(String::as_str).find(|n| {
        *n == interface
            || n.strip_prefix(interface)
                .is_some_and(|rest| rest.starts_with('@'))
    })
}

/// Reads the top-level import and export sections of a component.
pub fn interfaces(bytes: &[u8]) -> Result<Interfaces, wasmparser::BinaryReaderError> {
    let mut out = Interfaces::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    out.imports.push(import?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    out.exports.push(export?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
