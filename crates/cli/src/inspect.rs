//! `hearth inspect`: what a Wasm file (or a registry reference, pulled into the cache) is and
//! what it needs. Prints its kind (component,
//! service, or neither), the worlds it was built against, its exports, and for every import
//! who would satisfy it on this host: WASI, one of hearth's host interfaces (with backends),
//! or another part of a workload (resolved against `--manifest` when given).

use anyhow::Context;
use hearth_runtime::inspect::{self, Provider, WasmKind};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

/// The exports of each component of a workload, for resolving non-host imports.
struct WorkloadExports {
    name: String,
    components: Vec<(String, Vec<String>)>,
}

fn workload_exports(manifest: &Path) -> anyhow::Result<Vec<WorkloadExports>> {
    let workloads = hearth_manifest::load_files(&[manifest.to_path_buf()])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::new();
    for w in workloads {
        let mut components = Vec::new();
        for c in &w.spec.components {
            // Registry images are not pulled just to inspect a neighbour.
            let hearth_manifest::ImageRef::File(path) = c.image_ref(&w.source) else {
                continue;
            };
            let bytes = std::fs::read(&path).with_context(|| {
                format!("reading `{}` (component `{}`)", path.display(), c.name)
            })?;
            let exports = inspect::World::read(&bytes)
                .map(|i| i.exports)
                .unwrap_or_default();
            components.push((c.name.clone(), exports));
        }
        out.push(WorkloadExports {
            name: w.name.clone(),
            components,
        });
    }
    Ok(out)
}

fn describe(import: &str, workloads: &[WorkloadExports]) -> (String, bool) {
    match inspect::provider(import) {
        Provider::Wasi(by) => (by.to_string(), true),
        Provider::Host { package, backends } => {
            let mut list: Vec<String> = backends.iter().map(|b| b.to_string()).collect();
            if let Some(first) = list.first_mut() {
                first.push_str(" (default)");
            }
            (
                format!("host interface {package}: {}", list.join(", ")),
                true,
            )
        }
        Provider::NotProvided => (
            format!(
                "NOT PROVIDED by this host (it provides {})",
                inspect::served_packages().join(", ")
            ),
            false,
        ),
        Provider::Workload if workloads.is_empty() => (
            "a component of the workload that exports it (pass --manifest to check)".into(),
            true,
        ),
        Provider::Workload => {
            let by: Vec<String> = workloads
                .iter()
                .flat_map(|w| {
                    w.components
                        .iter()
                        .filter(move |(_, exports)| {
                            exports.iter().any(|e| inspect::satisfies(import, e))
                        })
                        .map(move |(name, _)| {
                            format!("component `{name}` of workload `{}`", w.name)
                        })
                })
                .collect();
            if by.is_empty() {
                (
                    "NOT EXPORTED by any component of the workload".into(),
                    false,
                )
            } else {
                (by.join(", "), true)
            }
        }
    }
}

fn kind_of(kind: WasmKind, interfaces: &inspect::World) -> String {
    match kind {
        WasmKind::CoreModule => {
            "neither: a core WebAssembly module, not a component (build for wasm32-wasip2)".into()
        }
        WasmKind::NotWasm => "neither: not a WebAssembly file".into(),
        WasmKind::Component => {
            if interfaces.export(inspect::CLI_RUN).is_some() {
                "service (exports wasi:cli/run; runs for the workload's lifetime)".into()
            } else if interfaces.export(inspect::HTTP_HANDLER).is_some() {
                "component (HTTP handler: exports wasi:http/incoming-handler)".into()
            } else if interfaces.export(inspect::MESSAGE_HANDLER).is_some() {
                "component (message handler: exports wasmcloud:messaging/handler)".into()
            } else if interfaces.exports.is_empty() {
                "component (exports nothing: nothing can invoke it)".into()
            } else {
                "component (callable over WIT by the service or other components)".into()
            }
        }
    }
}

pub fn main(file: &Path, manifest: Option<&Path>, as_json: bool) -> ExitCode {
    // Not a file: a registry reference (`oci://registry/repo:tag`, or without the scheme).
    let text = file.to_string_lossy();
    let pulled;
    let file = if !file.exists() && (text.starts_with("oci://") || text.contains('/')) {
        pulled = match crate::oci::fetch_for_inspect(&text) {
            Ok(path) => path,
            Err(code) => return code,
        };
        pulled.as_path()
    } else {
        file
    };
    match run(file, manifest, as_json) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(crate::EXIT_FAILED)
        }
    }
}

fn run(file: &Path, manifest: Option<&Path>, as_json: bool) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading `{}`", file.display()))?;
    let kind = inspect::kind(&bytes);
    let interfaces = match kind {
        WasmKind::Component => inspect::World::read(&bytes)
            .with_context(|| format!("`{}` is not a valid component", file.display()))?,
        _ => inspect::World::default(),
    };
    let workloads = match manifest {
        Some(m) => workload_exports(m)?,
        None => Vec::new(),
    };
    let imports: Vec<(String, String, bool)> = interfaces
        .imports
        .iter()
        .map(|i| {
            let (by, ok) = describe(i, &workloads);
            (i.clone(), by, ok)
        })
        .collect();
    let all_satisfied = imports.iter().all(|(_, _, ok)| *ok);
    let kind_text = kind_of(kind, &interfaces);
    let worlds = inspect::worlds(&bytes);

    if as_json {
        let doc = json!({
            "file": file.display().to_string(),
            "size": bytes.len(),
            "kind": kind_text,
            "worlds": worlds,
            "exports": interfaces.exports,
            "imports": imports.iter().map(|(name, by, ok)| json!({
                "name": name, "satisfiedBy": by, "satisfied": ok,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{}  ({})", file.display(), human_size(bytes.len()));
        println!("kind:     {kind_text}");
        if !worlds.is_empty() {
            println!("worlds:   {}", worlds.join(", "));
        }
        if kind == WasmKind::Component {
            println!("exports:");
            if interfaces.exports.is_empty() {
                println!("  (none)");
            }
            for e in &interfaces.exports {
                println!("  {e}");
            }
            println!("imports:");
            if imports.is_empty() {
                println!("  (none)");
            }
            let width = imports.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
            for (name, by, _) in &imports {
                println!("  {name:width$}  {by}");
            }
        }
    }
    Ok(if kind == WasmKind::Component && all_satisfied {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_FAILED)
    })
}

fn human_size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}
