//! hearth-net's sockets replace wasmtime-wasi's in a `Linker`, guests built against
//! `wasi:sockets@0.2.0` link against them, and a guest's listener lands in the workload's
//! virtual port table (not on a real socket) and is gone when the store is dropped.

use crate::guest;
use hearth_net::{EgressPolicy, NetCtx, NetCtxView, NetView, Network, Role};
use std::sync::Arc;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

struct Host {
    wasi: WasiCtx,
    net: NetCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl NetView for Host {
    fn net(&mut self) -> NetCtxView<'_> {
        NetCtxView {
            ctx: &mut self.net,
            table: &mut self.table,
        }
    }
}

fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true);
    Engine::new(&config).unwrap()
}

/// Links exactly as hearth does: wasmtime-wasi's p2 set, then ours shadowing its sockets.
fn linker(engine: &Engine) -> Linker<Host> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    linker.allow_shadowing(true);
    hearth_net::add_to_linker(&mut linker).unwrap();
    linker
}

fn store(engine: &Engine, network: &Arc<Network>, role: Role) -> Store<Host> {
    Store::new(
        engine,
        Host {
            wasi: WasiCtx::builder().build(),
            net: NetCtx::new(network.clone(), role),
            table: ResourceTable::new(),
        },
    )
}

#[test]
fn all_sockets_interfaces_link_at_0_2_0_and_0_2_12() {
    let engine = engine();
    let linker = linker(&engine);
    for version in ["0.2.0", "0.2.3", "0.2.12"] {
        let wasm = guest::dummy(
            version,
            &format!("package test:all; world all {{ include wasi:sockets/imports@{version}; }}"),
        );
        let component = Component::new(&engine, &wasm).unwrap();
        linker
            .instantiate_pre(&component)
            .unwrap_or_else(|e| panic!("wasi:sockets@{version} does not link: {e:?}"));
    }
}

#[test]
fn ours_without_wasmtime_wasi_still_needs_wasi_io() {
    // hearth-net serves only wasi:sockets; wasi:io comes from wasmtime-wasi.
    let engine = engine();
    let mut linker: Linker<Host> = Linker::new(&engine);
    hearth_net::add_to_linker(&mut linker).unwrap();
    let wasm = guest::dummy(
        "0.2.0",
        "package test:all; world all { include wasi:sockets/imports@0.2.0; }",
    );
    let component = Component::new(&engine, &wasm).unwrap();
    let err = linker.instantiate_pre(&component).err().unwrap();
    assert!(format!("{err:?}").contains("wasi:io"), "{err:?}");
}

/// A guest that binds 127.0.0.1:`port`, listens, and keeps the socket. Returns 0, or
/// `step * 256 + error-code + 1` for the first step that failed.
const LISTEN_WORLD: &str = "package test:listen;
world listen {
  import wasi:sockets/instance-network@0.2.0;
  import wasi:sockets/tcp-create-socket@0.2.0;
  import wasi:sockets/tcp@0.2.0;
  export listen: func(port: u16) -> u32;
}";

const LISTEN_WAT: &str = r#"(module
  (import "wasi:sockets/instance-network@0.2.0" "instance-network" (func $instance-network (result i32)))
  (import "wasi:sockets/tcp-create-socket@0.2.0" "create-tcp-socket" (func $create (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.start-bind"
    (func $start-bind (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.finish-bind" (func $finish-bind (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.start-listen" (func $start-listen (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.finish-listen" (func $finish-listen (param i32 i32)))
  (memory (export "memory") 1)

  ;; `result<_, error-code>` at 16: tag byte at 16, code byte at 17.
  (func $failed (param $step i32) (result i32)
    (if (result i32) (i32.load8_u (i32.const 16))
      (then (i32.add (i32.mul (local.get $step) (i32.const 256))
                     (i32.add (i32.load8_u (i32.const 17)) (i32.const 1))))
      (else (i32.const 0))))

  (func (export "listen") (param $port i32) (result i32)
    (local $net i32) (local $sock i32) (local $err i32)
    (local.set $net (call $instance-network))
    ;; create-tcp-socket(ipv4): `result<tcp-socket, error-code>`, payload at 20.
    (call $create (i32.const 0) (i32.const 16))
    (if (i32.load8_u (i32.const 16))
      (then (return (i32.add (i32.const 257) (i32.load8_u (i32.const 20))))))
    (local.set $sock (i32.load (i32.const 20)))
    ;; start-bind(sock, net, ipv4 { port, 127.0.0.1 }), six unused ipv6 payload slots.
    (call $start-bind (local.get $sock) (local.get $net)
      (i32.const 0) (local.get $port) (i32.const 127) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 16))
    (local.set $err (call $failed (i32.const 2)))
    (if (local.get $err) (then (return (local.get $err))))
    (call $finish-bind (local.get $sock) (i32.const 16))
    (local.set $err (call $failed (i32.const 3)))
    (if (local.get $err) (then (return (local.get $err))))
    (call $start-listen (local.get $sock) (i32.const 16))
    (local.set $err (call $failed (i32.const 4)))
    (if (local.get $err) (then (return (local.get $err))))
    (call $finish-listen (local.get $sock) (i32.const 16))
    (call $failed (i32.const 5)))
)"#;

async fn run_listen(
    engine: &Engine,
    linker: &Linker<Host>,
    component: &Component,
    network: &Arc<Network>,
    role: Role,
    port: u16,
) -> (Store<Host>, u32) {
    let mut store = store(engine, network, role);
    let instance = linker
        .instantiate_async(&mut store, component)
        .await
        .unwrap();
    let listen = instance
        .get_typed_func::<(u16,), (u32,)>(&mut store, "listen")
        .unwrap();
    let (result,) = listen.call_async(&mut store, (port,)).await.unwrap();
    (store, result)
}

#[tokio::test]
async fn guest_listener_is_virtual_and_released_with_the_store() {
    let engine = engine();
    let linker = linker(&engine);
    let wasm = guest::from_wat("0.2.0", LISTEN_WORLD, LISTEN_WAT);
    let component = Component::new(&engine, &wasm).unwrap();

    let network = Network::new("echo", EgressPolicy::deny_all());
    let other = Network::new("other", EgressPolicy::deny_all());

    let (service, result) =
        run_listen(&engine, &linker, &component, &network, Role::Service, 7070).await;
    assert_eq!(result, 0, "bind + listen failed with code {result}");
    assert_eq!(network.listening_ports(), vec![7070]);
    // Virtual: the host's real 127.0.0.1:7070 is untouched, and other workloads are isolated.
    std::net::TcpListener::bind("127.0.0.1:7070")
        .map(drop)
        .unwrap_or_else(|e| eprintln!("(real port 7070 busy on this machine: {e})"));
    assert!(other.listening_ports().is_empty());
    let (_other_service, result) =
        run_listen(&engine, &linker, &component, &other, Role::Service, 7070).await;
    assert_eq!(result, 0);
    assert_eq!(other.listening_ports(), vec![7070]);

    // The host reaches the guest's listener through the network.
    let _conn = network.connect(7070).unwrap();

    // A second listener on the same port in the same workload: address-in-use (code 12).
    let (_second, result) =
        run_listen(&engine, &linker, &component, &network, Role::Service, 7070).await;
    assert_eq!(result, 2 * 256 + 12 + 1);

    // Dropping the store (a crashed service) frees the port at once.
    drop(service);
    assert!(network.listening_ports().is_empty());
    assert_eq!(
        network.connect(7070).unwrap_err(),
        hearth_net::ConnectError::Refused
    );

    // Components may not listen: access-denied (code 1) at start-bind.
    let (_component, result) = run_listen(
        &engine,
        &linker,
        &component,
        &network,
        Role::Component,
        7070,
    )
    .await;
    assert_eq!(result, 2 * 256 + 1 + 1);
    assert!(network.listening_ports().is_empty());
}
