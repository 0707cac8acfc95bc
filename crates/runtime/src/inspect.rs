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

/// What would satisfy one import of a component on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// A WASI 0.2 interface wasmtime-wasi serves (sockets: hearth's virtual network).
    Wasi(&'static str),
    /// One of hearth's host interfaces, with its backends (the first is the default).
    Host {
        package: &'static str,
        backends: &'static [&'static str],
    },
    /// A host-style interface (`wasi:*`) this host does not provide: deploy would fail.
    NotProvided,
    /// Not a host interface: a component of the same workload must export it.
    Workload,
}

/// Who serves `import` on this host.
pub fn provider(import: &str) -> Provider {
    let package = hearth_interfaces::package_of(import);
    if let Some((package, backends)) = hearth_interfaces::PACKAGES
        .iter()
        .find(|(p, _)| *p == package)
    {
        return Provider::Host { package, backends };
    }
    match package {
        "wasi:sockets" => Provider::Wasi("hearth's virtual network (hearth-net)"),
        "wasi:http" => Provider::Wasi("wasmtime-wasi-http; localhost goes to the service"),
        p if crate::links::WASI_PACKAGES.contains(&p) => Provider::Wasi("wasmtime-wasi"),
        p if p.starts_with("wasi:") => Provider::NotProvided,
        _ => Provider::Workload,
    }
}

/// Whether a component exporting `export` would satisfy `import` at deploy: the same
/// interface at a semver-compatible version (the rule deploy links by).
pub fn satisfies(import: &str, export: &str) -> bool {
    crate::links::satisfies(import, export)
}

/// Every host interface package this host serves.
pub fn served_packages() -> Vec<&'static str> {
    crate::links::served_packages()
}

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
