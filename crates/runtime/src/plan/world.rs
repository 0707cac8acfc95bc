//! What a file is, without compiling it: a component, a core module, or not Wasm at all; the
//! names a component imports and exports at its top level (its [`World`]); and whether a
//! part's file is what its place in the manifest needs.

use crate::DeployError;
use hearth_manifest::{LocalImage, Part, Workload};
use wasmparser::{Parser, Payload};

/// The interface every HTTP-routed component must export.
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler";
/// The interface a service exports.
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
pub struct World {
    /// Imported names.
    pub imports: Vec<String>,
    /// Exported names.
    pub exports: Vec<String>,
}

impl World {
    /// Reads the top-level import and export sections of a component.
    pub fn read(bytes: &[u8]) -> Result<Self, wasmparser::BinaryReaderError> {
        let mut out = World::default();
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

    /// The exported name for `interface` (any version), if exported.
    pub fn export(&self, interface: &str) -> Option<&str> {
        find(&self.exports, interface)
    }

    /// The imported name for `interface` (any version), if imported.
    pub fn import(&self, interface: &str) -> Option<&str> {
        find(&self.imports, interface)
    }

    /// The exports as a phrase for messages: `a, b` or `nothing`.
    fn exports_phrase(&self) -> String {
        if self.exports.is_empty() {
            "nothing".to_string()
        } else {
            self.exports.join(", ")
        }
    }
}

fn find<'a>(names: &'a [String], interface: &str) -> Option<&'a str> {
    names.iter().map(String::as_str).find(|n| {
        *n == interface
            || n.strip_prefix(interface)
                .is_some_and(|rest| rest.starts_with('@'))
    })
}

/// A part's file, read and checked.
pub(crate) struct PartFile {
    pub bytes: Vec<u8>,
    pub world: World,
}

/// Reads the file of `part` and checks it is a component exporting what the part needs: a
/// service `wasi:cli/run`, a routed component `wasi:http/incoming-handler`, a subscribed one
/// `wasmcloud:messaging/handler`.
pub(crate) fn read_part(
    workload: &Workload,
    part: Part,
    image: &LocalImage,
) -> Result<PartFile, DeployError> {
    let at = |field: &str| workload.field_of(part, field);
    let fail = |field: &str, message: String| DeployError::at(workload, at(field), message);
    let bytes = std::fs::read(&image.path).map_err(|e| {
        fail(
            "image",
            format!("cannot read `{}`: {e}", image.path.display()),
        )
    })?;
    let label = &image.label;
    match kind(&bytes) {
        WasmKind::Component => {}
        WasmKind::CoreModule => {
            return Err(fail(
                "image",
                format!(
                    "`{label}` is a core WebAssembly module, not a component: expected a component (build for the `wasm32-wasip2` target)"
                ),
            ));
        }
        WasmKind::NotWasm => {
            return Err(fail(
                "image",
                format!(
                    "`{label}` is not a WebAssembly file: expected a component built for `wasm32-wasip2`"
                ),
            ));
        }
    }
    let world = World::read(&bytes)
        .map_err(|e| fail("image", format!("`{label}` is not a valid component: {e}")))?;
    for need in required_exports(workload, part) {
        if world.export(need.export).is_none() {
            return Err(fail(
                need.field,
                format!(
                    "`{label}` does not export `{}`, which {} must (it exports {}){}",
                    need.export,
                    need.who,
                    world.exports_phrase(),
                    need.hint
                ),
            ));
        }
    }
    Ok(PartFile { bytes, world })
}

/// An export a part must have, and why.
struct Need {
    /// The manifest field that asks for it.
    field: &'static str,
    export: &'static str,
    who: &'static str,
    hint: &'static str,
}

/// What `part` must export.
fn required_exports(workload: &Workload, part: Part) -> Vec<Need> {
    let need = |field, export, who, hint| Need {
        field,
        export,
        who,
        hint,
    };
    match part {
        Part::Service => vec![need(
            "image",
            CLI_RUN,
            "a service",
            "; build the service as a binary for `wasm32-wasip2`",
        )],
        Part::Component(i) => {
            let Some(spec) = workload.spec.components.get(i) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            if spec.http.is_some() {
                out.push(need(
                    "http",
                    HTTP_HANDLER,
                    "a component with an `http` route",
                    "",
                ));
            }
            if !spec.subscriptions.is_empty() {
                out.push(need(
                    "subscriptions",
                    MESSAGE_HANDLER,
                    "a component with `subscriptions`",
                    "",
                ));
            }
            out
        }
    }
}
