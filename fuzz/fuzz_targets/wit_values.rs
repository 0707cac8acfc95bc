//! Fuzz target `wit-values`: arbitrary WIT values through a real linked call.
//!
//! At start-up the harness deploys one workload on a real `hearth_runtime::Runtime`, with two
//! components: the prebuilt `types-callee` guest (`guests/`, built by `scripts/setup`), which
//! exports `hearth:types/echo@0.1.0` and echoes every value back, and `relay`, a component
//! this harness writes (WAT through `wit-component`) that exports the same functions as
//! `hearth:fuzz/relay@0.1.0` and forwards each call, as it is, to its import of
//! `hearth:types/echo`, which hearth links to the callee. Each input then picks functions
//! and arbitrary values of their parameter types (every value type the echo interface has:
//! numbers, floats with any bits, chars, strings, lists, records, variants, enums, flags,
//! options, results, nesting) and calls the relay through `ComponentRuntime::call_export`.
//!
//! A value so makes the whole trip of a linked call: lowered into the relay, lifted by
//! hearth's link (`link_export`: `Val`s on the host), lowered into a fresh callee instance,
//! echoed, lifted back, lowered into the relay and lifted to the harness. Checks: no panic,
//! every call succeeds, and what comes back equals what was sent (floats by bits, any NaN
//! equal to any NaN); `greet` answers `Ok("hello, NAME")`, `Err("empty name")`, or, when the
//! callee traps on `"trap"`, an `Err` naming the trap (the failure path of a linked call).

#![no_main]

use arbitrary::Unstructured;
use hearth_runtime::{ComponentRuntime, Workloads};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, Val};
use wit_parser::abi::{AbiVariant, WasmSignature, WasmType};
use wit_parser::{Resolve, WorldId};

const ECHO: &str = "hearth:types/echo@0.1.0";
const RELAY: &str = "hearth:fuzz/relay@0.1.0";
/// Where the relay keeps the results of the call it forwards (below the heap).
const RET_AREA: u32 = 16;
const HEAP_START: u32 = 1024;

/// The deployed workload and what calling its relay needs, made once per process.
struct Harness {
    tokio: tokio::runtime::Runtime,
    relay: Arc<ComponentRuntime>,
    /// The relay's functions, by name, with their types.
    funcs: Vec<(String, ComponentFunc)>,
    _workloads: Workloads,
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let mut u = Unstructured::new(data);
    for _ in 0..4 {
        if u.is_empty() {
            break;
        }
        let Ok((name, func)) = u.choose(&h.funcs) else {
            return;
        };
        let params: Vec<Val> = match func
            .params()
            .map(|(_, ty)| arbitrary_val(&mut u, &ty, 0))
            .collect()
        {
            Ok(p) => p,
            Err(_) => return,
        };
        let mut results = vec![Val::Bool(false); func.results().len()];
        let called =
            h.tokio.block_on(
                h.relay
                    .call_export(RELAY, name, &params, &mut results, None),
            );
        if let Err(e) = called {
            panic!("{name}({params:?}) failed: {e}");
        }
        check(name, &params, &results);
    }
});

/// What each function must answer.
fn check(name: &str, params: &[Val], results: &[Val]) {
    match name {
        "greet" => {
            let [Val::String(who)] = params else {
                panic!("greet takes one string");
            };
            let want = match who.as_str() {
                "" => Val::Result(Err(Some(Box::new(Val::String("empty name".into()))))),
                "trap" => {
                    let [Val::Result(Err(Some(reason)))] = results else {
                        panic!("a trapping callee gives Err(reason), got {results:?}");
                    };
                    let Val::String(reason) = reason.as_ref() else {
                        panic!("the reason is a string");
                    };
                    assert!(reason.contains("trapped"), "reason: {reason}");
                    return;
                }
                _ => Val::Result(Ok(Some(Box::new(Val::String(format!("hello, {who}")))))),
            };
            assert_eq!(results, [want], "greet({who:?})");
        }
        // `echo-numbers` answers its eleven arguments as one tuple.
        "echo-numbers" => assert_eq!(results, [Val::Tuple(params.to_vec())], "{name}"),
        _ => assert_eq!(results, params, "{name} did not echo its argument"),
    }
}

/// An arbitrary value of type `ty`.
fn arbitrary_val(u: &mut Unstructured<'_>, ty: &Type, depth: u32) -> arbitrary::Result<Val> {
    if depth > 8 {
        return Err(arbitrary::Error::IncorrectFormat);
    }
    let nested = |u: &mut Unstructured<'_>, ty: &Type| arbitrary_val(u, ty, depth + 1);
    Ok(match ty {
        Type::Bool => Val::Bool(u.arbitrary()?),
        Type::S8 => Val::S8(u.arbitrary()?),
        Type::U8 => Val::U8(u.arbitrary()?),
        Type::S16 => Val::S16(u.arbitrary()?),
        Type::U16 => Val::U16(u.arbitrary()?),
        Type::S32 => Val::S32(u.arbitrary()?),
        Type::U32 => Val::U32(u.arbitrary()?),
        Type::S64 => Val::S64(u.arbitrary()?),
        Type::U64 => Val::U64(u.arbitrary()?),
        Type::Float32 => Val::Float32(f32::from_bits(u.arbitrary()?)),
        Type::Float64 => Val::Float64(f64::from_bits(u.arbitrary()?)),
        Type::Char => Val::Char(u.arbitrary()?),
        Type::String => Val::String(special_string(u)?),
        Type::List(list) => {
            let len = u.int_in_range(0..=32)?;
            let elem = list.ty();
            Val::List(
                (0..len)
                    .map(|_| nested(u, &elem))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Record(record) => Val::Record(
            record
                .fields()
                .map(|f| Ok((f.name.to_string(), nested(u, &f.ty)?)))
                .collect::<arbitrary::Result<_>>()?,
        ),
        Type::Tuple(tuple) => Val::Tuple(
            tuple
                .types()
                .map(|t| nested(u, &t))
                .collect::<arbitrary::Result<_>>()?,
        ),
        Type::Variant(variant) => {
            let cases: Vec<_> = variant.cases().collect();
            let case = u.choose(&cases)?;
            let payload = match &case.ty {
                Some(t) => Some(Box::new(nested(u, t)?)),
                None => None,
            };
            Val::Variant(case.name.to_string(), payload)
        }
        Type::Enum(e) => {
            let names: Vec<&str> = e.names().collect();
            Val::Enum(u.choose(&names)?.to_string())
        }
        Type::Option(o) => Val::Option(if u.arbitrary()? {
            Some(Box::new(nested(u, &o.ty())?))
        } else {
            None
        }),
        Type::Result(r) => Val::Result(if u.arbitrary()? {
            Ok(r.ok().map(|t| nested(u, &t)).transpose()?.map(Box::new))
        } else {
            Err(r.err().map(|t| nested(u, &t)).transpose()?.map(Box::new))
        }),
        Type::Flags(f) => {
            let mut set = Vec::new();
            for name in f.names() {
                if u.arbitrary()? {
                    set.push(name.to_string());
                }
            }
            Val::Flags(set)
        }
        // Resources, futures and streams cannot cross hearth's links; echo has none.
        _ => return Err(arbitrary::Error::IncorrectFormat),
    })
}

/// A string, now and then one of those `greet` treats specially.
fn special_string(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(match u.int_in_range(0..=15)? {
        0 => String::new(),
        1 => "trap".into(),
        _ => u.arbitrary()?,
    })
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(setup)
}

fn setup() -> Harness {
    let callee = hearth_fuzz::guest("types_callee.wasm");
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/wit-values"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    let relay_path = dir.join("relay.wasm");
    if let Err(e) = std::fs::write(&relay_path, relay_component()) {
        panic!("cannot write {}: {e}", relay_path.display());
    }
    let manifest = format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: values\nspec:\n  components:\n    - name: relay\n      image: {}\n      limits: {{ timeoutMs: 10000 }}\n    - name: callee\n      image: {}\n      limits: {{ timeoutMs: 10000 }}\n",
        relay_path.display(),
        callee.display()
    );
    let hearth_fuzz::Deployment {
        tokio,
        runtime: rt,
        running,
        workloads,
    } = hearth_fuzz::deploy(&manifest, 16);
    let Some(relay) = running.components.iter().find(|c| c.name() == "relay") else {
        panic!("no relay component");
    };

    // The relay's functions and their types, read from its component type.
    let engine = rt.engine().engine();
    let component = match Component::from_file(engine, &relay_path) {
        Ok(c) => c,
        Err(e) => panic!("relay: {e:#}"),
    };
    let ty = component.component_type();
    let Some(ComponentItem::ComponentInstance(iface)) = ty.get_export(engine, RELAY).map(|e| e.ty)
    else {
        panic!("the relay does not export {RELAY}");
    };
    let funcs: Vec<(String, ComponentFunc)> = iface
        .exports(engine)
        .filter_map(|(name, item)| match item.ty {
            ComponentItem::ComponentFunc(f) => Some((name.to_string(), f)),
            _ => None,
        })
        .collect();
    assert!(funcs.len() >= 12, "the relay has {} functions", funcs.len());
    Harness {
        tokio,
        relay: Arc::clone(relay),
        funcs,
        _workloads: workloads,
    }
}

/// The relay component: the echo interface re-exported under another name, each function
/// forwarding its flattened arguments to the import and returning what it returned.
fn relay_component() -> Vec<u8> {
    let echo_wit = include_str!("../../guests/types-callee/wit/world.wit");
    let start = echo_wit.find("interface echo {").unwrap_or(0) + "interface echo {".len();
    let end = start + echo_wit[start..].find("\n}").unwrap_or(0);
    let body = &echo_wit[start..end];
    let relay_wit = format!(
        "package hearth:fuzz@0.1.0;\n\ninterface relay {{{body}\n}}\n\nworld relay-world {{\n  import {ECHO};\n  export relay;\n}}\n"
    );
    let mut resolve = Resolve::default();
    let pushed = resolve
        .push_source("echo.wit", echo_wit)
        .and_then(|_| resolve.push_source("relay.wit", &relay_wit));
    let pkg = match pushed {
        Ok(pkg) => pkg,
        Err(e) => panic!("relay WIT: {e:#}\n{relay_wit}"),
    };
    let world: WorldId = match resolve.select_world(&[pkg], Some("relay-world")) {
        Ok(w) => w,
        Err(e) => panic!("relay world: {e:#}"),
    };
    let iface = |name: &str| {
        resolve
            .interfaces
            .iter()
            .find(|(_, i)| i.name.as_deref() == Some(name))
            .map(|(_, i)| i)
    };
    let (Some(echo), Some(relay)) = (iface("echo"), iface("relay")) else {
        panic!("the echo and relay interfaces");
    };

    let mut imports = String::new();
    let mut exports = String::new();
    for (name, func) in &relay.functions {
        let Some(import_func) = echo.functions.get(name) else {
            panic!("echo has no {name}");
        };
        let import = resolve.wasm_signature(AbiVariant::GuestImport, import_func);
        let export = resolve.wasm_signature(AbiVariant::GuestExport, func);
        imports.push_str(&format!(
            "  (import \"{ECHO}\" \"{name}\" (func $import-{name} {}))\n",
            signature(&import)
        ));
        let mut body = String::new();
        for i in 0..export.params.len() {
            body.push_str(&format!(" local.get {i}"));
        }
        if import.retptr {
            body.push_str(&format!(" i32.const {RET_AREA}"));
        }
        body.push_str(&format!(" call $import-{name}"));
        if export.retptr {
            body.push_str(&format!(" i32.const {RET_AREA}"));
        }
        exports.push_str(&format!(
            "  (func (export \"{RELAY}#{name}\") {}{body})\n",
            signature(&export)
        ));
    }
    let wat = format!(
        r#"(module
{imports}  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const {HEAP_START}))
  ;; A bump allocator: every call gets a fresh instance, so nothing is ever freed.
  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (i32.const -1)
              (memory.grow (i32.add (i32.const 1) (i32.div_u
                (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
                (i32.const 65536)))))
          (then unreachable))))
    (if (local.get $old)
      (then (memory.copy (local.get $ptr) (local.get $old)
        (select (local.get $old_size) (local.get $size)
          (i32.lt_u (local.get $old_size) (local.get $size))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))
{exports})"#
    );
    let mut module = match wat::parse_str(&wat) {
        Ok(m) => m,
        Err(e) => panic!("relay WAT: {e}\n{wat}"),
    };
    if let Err(e) = wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    ) {
        panic!("relay metadata: {e:#}");
    }
    let encoded = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|e| e.validate(true).encode());
    match encoded {
        Ok(bytes) => bytes,
        Err(e) => panic!("relay component: {e:#}"),
    }
}

/// `(param ..) (result ..)` of a core function with this signature.
fn signature(sig: &WasmSignature) -> String {
    let ty = |t: &WasmType| match t {
        WasmType::I32 | WasmType::Pointer | WasmType::Length => "i32",
        WasmType::I64 | WasmType::PointerOrI64 => "i64",
        WasmType::F32 => "f32",
        WasmType::F64 => "f64",
    };
    let mut out = String::new();
    if !sig.params.is_empty() {
        out.push_str("(param");
        for p in &sig.params {
            out.push(' ');
            out.push_str(ty(p));
        }
        out.push_str(") ");
    }
    if !sig.results.is_empty() {
        out.push_str("(result");
        for r in &sig.results {
            out.push(' ');
            out.push_str(ty(r));
        }
        out.push_str(") ");
    }
    out
}
