//! Fuzz target `blobstore`: an arbitrary sequence of `wasi:blobstore` calls (containers,
//! objects, outgoing values written through their body stream, `write-data` and `finish`,
//! ranged reads, listings, copy and move) from two workloads against the host's `memory`
//! backend, through the host traits a guest's imports reach
//! (`hearth_interfaces::bindings::blobstore`), compared at every step with a model (a
//! `BTreeMap` of containers, each a `BTreeMap` of objects).
//!
//! Checks: no panic and no trap on a live handle; every answer (existence, bytes of a ranged
//! read, sizes, listings read in pages, errors for missing containers and objects and bad
//! ranges) is what the model says; containers are scoped per workload except the one both
//! list in `config.shared`; at the end every container holds exactly the model's objects.

#![no_main]

use arbitrary::Arbitrary;
use hearth_fuzz::{ready, workload_with};
use hearth_interfaces::bindings::blobstore::blobstore as store;
use hearth_interfaces::bindings::blobstore::container::{HostContainer, HostStreamObjectNames};
use hearth_interfaces::bindings::blobstore::types::{
    HostIncomingValue, HostOutgoingValue, ObjectId,
};
use hearth_interfaces::blobstore::{Container, IncomingValue, OutgoingValue};
use hearth_interfaces::{HostInterfaces, InterfacesCtx, InterfacesView};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

/// The container both workloads list in `config.shared`.
const SHARED: &str = "common";

#[derive(Debug, Arbitrary)]
enum Name {
    Small(u8),
    Empty,
    Shared,
    Raw(String),
}

impl Name {
    fn text(&self, prefix: &str) -> String {
        match self {
            Name::Small(n) => format!("{prefix}{}", n % 4),
            Name::Empty => String::new(),
            Name::Shared => SHARED.into(),
            Name::Raw(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    CreateContainer(bool, Name),
    GetContainer(bool, Name),
    DeleteContainer(bool, Name),
    ContainerExists(bool, Name),
    DropContainer(bool, u8),
    ContainerInfo(bool, u8),
    NewValue(bool),
    /// Takes the value's body stream (once) and writes the bytes through it.
    WriteBody(bool, u8, Vec<u8>),
    WriteData(bool, u8, Name, u8),
    Finish(bool, u8),
    DropValue(bool, u8),
    GetData(bool, u8, Name, u64, u64, bool),
    ListObjects(bool, u8, Vec<u8>),
    DeleteObject(bool, u8, Name),
    DeleteObjects(bool, u8, Vec<Name>),
    HasObject(bool, u8, Name),
    ObjectInfo(bool, u8, Name),
    Clear(bool, u8),
    Copy(bool, (Name, Name), (Name, Name)),
    Move(bool, (Name, Name), (Name, Name)),
}

/// A container as the backend names it: (scope, name).
type Id = (String, String);
type Model = BTreeMap<Id, BTreeMap<String, Vec<u8>>>;

/// An outgoing value the harness holds, with what the model expects of it.
struct Value {
    handle: Resource<OutgoingValue>,
    stream: Option<Resource<DynOutputStream>>,
    bytes: Vec<u8>,
    /// Where `write-data` stored it and how many bytes each got (the host's `written_to`).
    written_to: Vec<(Id, String, usize)>,
}

struct Part {
    workload: &'static str,
    ctx: InterfacesCtx,
    table: ResourceTable,
    containers: Vec<(Resource<Container>, Id)>,
    values: Vec<Value>,
}

impl Part {
    fn view(&mut self) -> InterfacesView<'_> {
        InterfacesView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }

    fn container(&self, i: u8) -> Option<(Resource<Container>, Id)> {
        let n = self.containers.len();
        (n > 0).then(|| {
            let (r, id) = &self.containers[usize::from(i) % n];
            (Resource::new_borrow(r.rep()), id.clone())
        })
    }

    fn value(&mut self, i: u8) -> Option<&mut Value> {
        let n = self.values.len();
        if n == 0 {
            return None;
        }
        self.values.get_mut(usize::from(i) % n)
    }

    /// The id a container name means for this part, or `None` where it is refused.
    fn id(&self, name: &str) -> Option<Id> {
        if name.is_empty() {
            return None;
        }
        let scope = if name == SHARED {
            "_shared"
        } else {
            self.workload
        };
        Some((scope.to_string(), name.to_string()))
    }
}

fn workloads() -> &'static [hearth_manifest::Workload; 2] {
    static W: OnceLock<[hearth_manifest::Workload; 2]> = OnceLock::new();
    W.get_or_init(|| {
        let blobs = format!(
            "[{{ interface: wasi:blobstore/blobstore, backend: memory, config: {{ shared: [{SHARED}] }} }}]"
        );
        [
            workload_with("alpha", &blobs),
            workload_with("beta", &blobs),
        ]
    })
}

fn parts() -> [Part; 2] {
    let host = HostInterfaces::new();
    let [a, b] = workloads();
    let bind = |w: &hearth_manifest::Workload, name: &'static str| {
        let bound = match ready(host.configure(w)) {
            Ok(bound) => bound,
            Err(e) => panic!("binding the memory backend failed: {e}"),
        };
        Part {
            workload: name,
            ctx: InterfacesCtx::new(&bound.components[0]),
            table: ResourceTable::new(),
            containers: Vec::new(),
            values: Vec::new(),
        }
    };
    [bind(a, "alpha"), bind(b, "beta")]
}

#[track_caller]
fn no_trap<T>(r: wasmtime::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("host call trapped on a live handle: {e:?}"),
    }
}

/// Compares a host answer with the model's: both `Ok` and equal, or both `Err`.
#[track_caller]
fn same<T: PartialEq + std::fmt::Debug>(got: Result<T, String>, want: Option<T>, what: &str) {
    match (got, want) {
        (Ok(g), Some(w)) => assert_eq!(g, w, "{what}"),
        (Err(_), None) => {}
        (got, want) => panic!("{what}: host says {got:?}, model says {want:?}"),
    }
}

/// The model's inclusive range read (`start..=end`, clamped to the object).
fn range(data: &[u8], start: u64, end: u64) -> Option<Vec<u8>> {
    let size = data.len() as u64;
    if start > end {
        return None;
    }
    if size == 0 && start == 0 {
        return Some(Vec::new());
    }
    if start >= size {
        return None;
    }
    let last = end.min(size - 1);
    Some(data[start as usize..=last as usize].to_vec())
}

fuzz_target!(|ops: Vec<Op>| {
    let mut parts = parts();
    let mut model = Model::new();
    for op in ops.iter().take(256) {
        step(&mut parts, &mut model, op);
    }
    sweep(&mut parts, &model);
});

fn step(parts: &mut [Part; 2], model: &mut Model, op: &Op) {
    let p = |b: &bool| usize::from(*b);
    match op {
        Op::CreateContainer(part, name) => {
            let part = &mut parts[p(part)];
            let name = name.text("c");
            let got = no_trap(ready(store::Host::create_container(
                &mut part.view(),
                name.clone(),
            )));
            match part.id(&name).filter(|id| !model.contains_key(id)) {
                Some(id) => {
                    let Ok(handle) = got else {
                        panic!("create-container {id:?} refused: {got:?}", got = got.err());
                    };
                    model.insert(id.clone(), BTreeMap::new());
                    part.containers.push((handle, id));
                }
                None => assert!(got.is_err(), "create-container {name:?} should fail"),
            }
        }
        Op::GetContainer(part, name) => {
            let part = &mut parts[p(part)];
            let name = name.text("c");
            let got = no_trap(ready(store::Host::get_container(
                &mut part.view(),
                name.clone(),
            )));
            match part.id(&name).filter(|id| model.contains_key(id)) {
                Some(id) => {
                    let Ok(handle) = got else {
                        panic!("get-container {id:?} refused");
                    };
                    part.containers.push((handle, id));
                }
                None => assert!(got.is_err(), "get-container {name:?} should fail"),
            }
        }
        Op::DeleteContainer(part, name) => {
            let part = &mut parts[p(part)];
            let name = name.text("c");
            let got = no_trap(ready(store::Host::delete_container(
                &mut part.view(),
                name.clone(),
            )));
            let want = part.id(&name).and_then(|id| model.remove(&id)).map(drop);
            same(got, want, &format!("delete-container {name:?}"));
        }
        Op::ContainerExists(part, name) => {
            let part = &mut parts[p(part)];
            let name = name.text("c");
            let got = no_trap(ready(store::Host::container_exists(
                &mut part.view(),
                name.clone(),
            )));
            let want = part.id(&name).map(|id| model.contains_key(&id));
            same(got, want, &format!("container-exists {name:?}"));
        }
        Op::DropContainer(part, i) => {
            let part = &mut parts[p(part)];
            if part.containers.is_empty() {
                return;
            }
            let at = usize::from(*i) % part.containers.len();
            let (handle, _) = part.containers.swap_remove(at);
            no_trap(ready(HostContainer::drop(&mut part.view(), handle)));
        }
        Op::ContainerInfo(part, i) => {
            let part = &mut parts[p(part)];
            let Some((handle, id)) = part.container(*i) else {
                return;
            };
            let got = no_trap(ready(HostContainer::info(&mut part.view(), handle)));
            let got = got.map(|meta| meta.name);
            let want = model.contains_key(&id).then(|| id.1.clone());
            same(got, want, &format!("info {id:?}"));
        }
        Op::NewValue(part) => {
            let part = &mut parts[p(part)];
            let handle = no_trap(ready(HostOutgoingValue::new_outgoing_value(
                &mut part.view(),
            )));
            part.values.push(Value {
                handle,
                stream: None,
                bytes: Vec::new(),
                written_to: Vec::new(),
            });
        }
        Op::WriteBody(part, i, bytes) => {
            let part = &mut parts[p(part)];
            let Some(value) = part.value(*i) else {
                return;
            };
            let handle = Resource::<OutgoingValue>::new_borrow(value.handle.rep());
            let had_stream = value.stream.is_some();
            if !had_stream {
                let got = no_trap(ready(HostOutgoingValue::outgoing_value_write_body(
                    &mut part.view(),
                    handle,
                )));
                let Ok(stream) = got else {
                    panic!("the first write-body was refused");
                };
                if let Some(value) = part.value(*i) {
                    value.stream = Some(stream);
                }
            } else {
                // The body stream is handed out once.
                let got = no_trap(ready(HostOutgoingValue::outgoing_value_write_body(
                    &mut part.view(),
                    handle,
                )));
                assert!(got.is_err(), "a second write-body was granted");
            }
            let Some(value) = part.value(*i) else {
                return;
            };
            let Some(stream) = &value.stream else {
                return;
            };
            let stream = Resource::<DynOutputStream>::new_borrow(stream.rep());
            let out = no_trap(part.table.get_mut(&stream).map_err(wasmtime::Error::from));
            let room = match out.check_write() {
                Ok(room) => room,
                Err(e) => panic!("check-write on a value's body failed: {e:?}"),
            };
            assert!(room >= bytes.len(), "a small value has room");
            if let Err(e) = out.write(bytes::Bytes::copy_from_slice(bytes)) {
                panic!("writing a value's body failed: {e:?}");
            }
            if let Some(value) = part.value(*i) {
                value.bytes.extend_from_slice(bytes);
            }
        }
        Op::WriteData(part, c, name, v) => {
            let part = &mut parts[p(part)];
            let Some((container, id)) = part.container(*c) else {
                return;
            };
            let Some(value) = part.value(*v) else {
                return;
            };
            let value_handle = Resource::<OutgoingValue>::new_borrow(value.handle.rep());
            let bytes = value.bytes.clone();
            let name = name.text("o");
            let got = no_trap(ready(HostContainer::write_data(
                &mut part.view(),
                container,
                name.clone(),
                value_handle,
            )));
            let stored = !name.is_empty() && model.contains_key(&id);
            same(
                got,
                stored.then_some(()),
                &format!("write-data {id:?} {name:?}"),
            );
            if stored {
                if let Some(objects) = model.get_mut(&id) {
                    objects.insert(name.clone(), bytes.clone());
                }
                if let Some(value) = part.value(*v) {
                    value
                        .written_to
                        .retain(|(k, n, _)| !(*k == id && *n == name));
                    value.written_to.push((id, name, bytes.len()));
                }
            }
        }
        Op::Finish(part, i) => {
            let part = &mut parts[p(part)];
            if part.values.is_empty() {
                return;
            }
            let at = usize::from(*i) % part.values.len();
            let value = part.values.swap_remove(at);
            if let Some(stream) = value.stream {
                // The body stream is a child of the value: dropped first, as a guest must.
                let dropped = part.table.delete(stream);
                assert!(dropped.is_ok(), "dropping a body stream failed");
            }
            let got = no_trap(ready(HostOutgoingValue::finish(
                &mut part.view(),
                value.handle,
            )));
            // `finish` stores the value again where bytes came after `write-data`, stopping
            // at the first container that is gone.
            let mut want = Some(());
            for (id, name, stored) in &value.written_to {
                if *stored == value.bytes.len() {
                    continue;
                }
                match model.get_mut(id) {
                    Some(objects) => {
                        objects.insert(name.clone(), value.bytes.clone());
                    }
                    None => {
                        want = None;
                        break;
                    }
                }
            }
            same(got, want, "finish");
        }
        Op::DropValue(part, i) => {
            let part = &mut parts[p(part)];
            if part.values.is_empty() {
                return;
            }
            let at = usize::from(*i) % part.values.len();
            let value = part.values.swap_remove(at);
            if let Some(stream) = value.stream {
                let dropped = part.table.delete(stream);
                assert!(dropped.is_ok(), "dropping a body stream failed");
            }
            no_trap(ready(HostOutgoingValue::drop(
                &mut part.view(),
                value.handle,
            )));
        }
        Op::GetData(part, c, name, start, end, streamed) => {
            let part = &mut parts[p(part)];
            let Some((container, id)) = part.container(*c) else {
                return;
            };
            // Small offsets mostly, so ranges land inside objects.
            let (start, end) = (start % 80, if *end > 1 << 40 { *end } else { end % 80 });
            let name = name.text("o");
            let got = no_trap(ready(HostContainer::get_data(
                &mut part.view(),
                container,
                name.clone(),
                start,
                end,
            )));
            let want = model
                .get(&id)
                .and_then(|objects| objects.get(&name))
                .and_then(|data| range(data, start, end));
            let what = format!("get-data {id:?} {name:?} {start}..={end}");
            let got = match got {
                Ok(incoming) => Ok(read_incoming(part, incoming, *streamed)),
                Err(e) => Err(e),
            };
            same(got, want, &what);
        }
        Op::ListObjects(part, c, pages) => {
            let part = &mut parts[p(part)];
            let Some((container, id)) = part.container(*c) else {
                return;
            };
            let got = no_trap(ready(HostContainer::list_objects(
                &mut part.view(),
                container,
            )));
            let Some(objects) = model.get(&id) else {
                assert!(got.is_err(), "list-objects of gone {id:?}");
                return;
            };
            let Ok(listing) = got else {
                panic!("list-objects {id:?} refused");
            };
            let want: Vec<String> = objects.keys().cloned().collect();
            let mut seen = Vec::new();
            let mut done = false;
            // Read in pages of the sizes the input asks, skipping on odd sizes.
            for (n, size) in pages.iter().take(8).enumerate() {
                let len = u64::from(*size % 4);
                let names = Resource::<hearth_interfaces::blobstore::StreamObjectNames>::new_borrow(
                    listing.rep(),
                );
                if n % 2 == 1 {
                    let (skipped, end) =
                        no_trap(ready(HostStreamObjectNames::skip_stream_object_names(
                            &mut part.view(),
                            names,
                            len,
                        )))
                        .unwrap_or_else(|e| panic!("skip failed: {e}"));
                    let skipped = usize::try_from(skipped).unwrap_or(usize::MAX);
                    let left = want.len() - seen.len();
                    assert_eq!(skipped, (len as usize).min(left), "skip count");
                    seen.extend(want[seen.len()..seen.len() + skipped].iter().cloned());
                    done = end;
                } else {
                    let (page, end) =
                        no_trap(ready(HostStreamObjectNames::read_stream_object_names(
                            &mut part.view(),
                            names,
                            len,
                        )))
                        .unwrap_or_else(|e| panic!("read failed: {e}"));
                    let from = seen.len();
                    let to = (from + len as usize).min(want.len());
                    assert_eq!(page, want[from..to].to_vec(), "listing page of {id:?}");
                    seen.extend(page);
                    done = end;
                }
                assert_eq!(done, seen.len() == want.len(), "end of listing of {id:?}");
            }
            let _ = done;
            no_trap(ready(HostStreamObjectNames::drop(
                &mut part.view(),
                listing,
            )));
        }
        Op::DeleteObject(part, c, name) => {
            let part = &mut parts[p(part)];
            let Some((container, id)) = part.container(*c) else {
                return;
            };
            let name = name.text("o");
            let got = no_trap(ready(HostContainer::delete_object(
                &mut part.view(),
                container,
                name.clone(),
            )));
            let want = model.get_mut(&id).map(|objects| {
                objects.remove(&name);
            });
            same(got, want, &format!("delete-object {id:?} {name:?}"));
        }
        Op::DeleteObjects(part, c, names) => {
            let part = &mut parts[p(part)];
            let Some((container, id)) = part.container(*c) else {
                return;
            };
            let names: Vec<String> = names.iter().take(8).map(|n| n.text("o")).collect();
            let got = no_trap(ready(HostContainer::delete_objects(
                &mut part.view(),
                container,
                names.clone(),
            )));
            let want = model.get_mut(&id).map(|objects| {
                for n in &names {
                    objects.remove(n);
                }
            });
            same(got, want, &format!("delete-objects {id:?}"));
        }
        Op::HasObject(part, c, name) => {
            let part = &mut parts[p(part)];
            let Some((container, id)) = part.container(*c) else {
                return;
            };
            let name = name.text("o");
            let got = no_trap(ready(HostContainer::has_object(
                &mut part.view(),
                container,
                name.clone(),
            )));
            let want = model.get(&id).map(|objects| objects.contains_key(&name));
            same(got, want, &format!("has-object {id:?} {name:?}"));
        }
        Op::ObjectInfo(part, c, name) => {
            let part = &mut parts[p(part)];
            let Some((container, id)) = part.container(*c) else {
                return;
            };
            let name = name.text("o");
            let got = no_trap(ready(HostContainer::object_info(
                &mut part.view(),
                container,
                name.clone(),
            )));
            let got = got.map(|m| (m.name, m.container, m.size));
            let want = model
                .get(&id)
                .and_then(|objects| objects.get(&name))
                .map(|data| (name.clone(), id.1.clone(), data.len() as u64));
            same(got, want, &format!("object-info {id:?} {name:?}"));
        }
        Op::Clear(part, c) => {
            let part = &mut parts[p(part)];
            let Some((container, id)) = part.container(*c) else {
                return;
            };
            let got = no_trap(ready(HostContainer::clear(&mut part.view(), container)));
            let want = model.get_mut(&id).map(BTreeMap::clear);
            same(got, want, &format!("clear {id:?}"));
        }
        Op::Copy(part, (sc, so), (dc, d_o)) | Op::Move(part, (sc, so), (dc, d_o)) => {
            let moving = matches!(op, Op::Move(..));
            let part = &mut parts[p(part)];
            let src = ObjectId {
                container: sc.text("c"),
                object: so.text("o"),
            };
            let dest = ObjectId {
                container: dc.text("c"),
                object: d_o.text("o"),
            };
            let what = format!(
                "{} {src:?} -> {dest:?}",
                if moving { "move" } else { "copy" }
            );
            let (s, d) = (src.clone(), dest.clone());
            let got = if moving {
                no_trap(ready(store::Host::move_object(&mut part.view(), s, d)))
            } else {
                no_trap(ready(store::Host::copy_object(&mut part.view(), s, d)))
            };
            let ids = if src.object.is_empty() || dest.object.is_empty() {
                None
            } else {
                part.id(&src.container).zip(part.id(&dest.container))
            };
            let data = ids.as_ref().and_then(|(sid, did)| {
                let data = model.get(sid)?.get(&src.object)?.clone();
                model.contains_key(did).then_some(data)
            });
            match (ids, data) {
                (Some((sid, did)), Some(data)) => {
                    if moving && !(sid == did && src.object == dest.object) {
                        if let Some(objects) = model.get_mut(&sid) {
                            objects.remove(&src.object);
                        }
                    }
                    if let Some(objects) = model.get_mut(&did) {
                        objects.insert(dest.object.clone(), data);
                    }
                    same(got, Some(()), &what);
                }
                _ => same(got, None, &what),
            }
        }
    }
}

/// Reads an incoming value whole, synchronously or through its stream.
fn read_incoming(part: &mut Part, incoming: Resource<IncomingValue>, streamed: bool) -> Vec<u8> {
    let size = no_trap(ready(HostIncomingValue::size(
        &mut part.view(),
        Resource::new_borrow(incoming.rep()),
    )));
    let data = if streamed {
        let stream = no_trap(ready(HostIncomingValue::incoming_value_consume_async(
            &mut part.view(),
            incoming,
        )))
        .unwrap_or_else(|e| panic!("consume-async failed: {e}"));
        let mut data = Vec::new();
        for _ in 0..1024 {
            let input: &mut DynInputStream = no_trap(
                part.table
                    .get_mut(&Resource::<DynInputStream>::new_borrow(stream.rep()))
                    .map_err(wasmtime::Error::from),
            );
            match input.read(7) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(_) => break,
            }
        }
        let dropped = part.table.delete(stream);
        assert!(dropped.is_ok(), "dropping a value's stream failed");
        data
    } else {
        no_trap(ready(HostIncomingValue::incoming_value_consume_sync(
            &mut part.view(),
            incoming,
        )))
        .unwrap_or_else(|e| panic!("consume-sync failed: {e}"))
    };
    assert_eq!(size, data.len() as u64, "size() and the bytes read agree");
    data
}

/// Reads every container the model knows back through fresh handles and compares.
fn sweep(parts: &mut [Part; 2], model: &Model) {
    for part in parts.iter_mut() {
        // Drop the values first: a value's stream is a child the table must lose first.
        for value in std::mem::take(&mut part.values) {
            if let Some(stream) = value.stream {
                let dropped = part.table.delete(stream);
                assert!(dropped.is_ok(), "dropping a body stream failed");
            }
            no_trap(ready(HostOutgoingValue::drop(
                &mut part.view(),
                value.handle,
            )));
        }
        let workload = part.workload;
        let mine = model
            .iter()
            .filter(|((scope, _), _)| scope == workload || scope == "_shared");
        for (id, objects) in mine {
            let got = no_trap(ready(store::Host::get_container(
                &mut part.view(),
                id.1.clone(),
            )));
            let Ok(container) = got else {
                panic!("container {id:?} of the model is gone");
            };
            for (name, data) in objects {
                let got = no_trap(ready(HostContainer::get_data(
                    &mut part.view(),
                    Resource::new_borrow(container.rep()),
                    name.clone(),
                    0,
                    u64::MAX,
                )))
                .unwrap_or_else(|e| panic!("object {name:?} of {id:?} unreadable: {e}"));
                let stored = read_incoming(part, got, false);
                assert_eq!(
                    &stored, data,
                    "object {name:?} of {id:?} differs from the model"
                );
            }
            no_trap(ready(HostContainer::drop(&mut part.view(), container)));
        }
    }
}
