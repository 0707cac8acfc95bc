//! Fuzz target `kv`: an arbitrary sequence of `wasi:keyvalue` calls (`store`, `atomics`,
//! `batch`) from two workloads against the host's `memory` backend, through the same host
//! traits a guest's imports reach (`hearth_interfaces::bindings::keyvalue`), compared after
//! every step with a model: one `BTreeMap` per bucket.
//!
//! Checks: no panic and no trap on a live handle; every answer (values, `exists`, pages of
//! `list-keys` and their cursors, `increment`'s sum or refusal, batch results, argument
//! errors) is what the model says; buckets are scoped per workload except those both list
//! in `config.shared`; at the end every bucket holds exactly the model's entries.

#![no_main]

use arbitrary::Arbitrary;
use hearth_fuzz::{ready, workload_with};
use hearth_interfaces::bindings::keyvalue::store::{Error, HostBucket};
use hearth_interfaces::bindings::keyvalue::{atomics, batch, store};
use hearth_interfaces::keyvalue::Bucket;
use hearth_interfaces::{HostInterfaces, InterfacesCtx, InterfacesView};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use wasmtime::component::{Resource, ResourceTable};

/// The bucket both workloads list in `config.shared`.
const SHARED: &str = "common";
/// Limits the host enforces (see `crates/interfaces/src/keyvalue/mod.rs`), restated.
const MAX_BUCKET_NAME: usize = 200;
const MAX_KEY: usize = 4096;
const LIST_PAGE: usize = 1000;

#[derive(Debug, Arbitrary)]
enum BucketName {
    Default,
    Shared,
    Named(u8),
    TooLong,
    Raw(String),
}

impl BucketName {
    fn text(&self) -> String {
        match self {
            BucketName::Default => String::new(),
            BucketName::Shared => SHARED.into(),
            BucketName::Named(n) => format!("b{}", n % 4),
            BucketName::TooLong => "x".repeat(MAX_BUCKET_NAME + 1),
            BucketName::Raw(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Key {
    Small(u8),
    Empty,
    TooLong,
    /// A run of digits or a number: keys that `increment` may hit with a counter.
    Counter,
    Raw(String),
}

impl Key {
    fn text(&self) -> String {
        match self {
            Key::Small(n) => format!("k{}", n % 8),
            Key::Empty => String::new(),
            Key::TooLong => "k".repeat(MAX_KEY + 1),
            Key::Counter => "n".into(),
            Key::Raw(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Value {
    Bytes(Vec<u8>),
    Number(u64),
    Max,
}

impl Value {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Bytes(b) => b.iter().copied().take(64).collect(),
            Value::Number(n) => n.to_string().into_bytes(),
            Value::Max => u64::MAX.to_string().into_bytes(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Open(bool, BucketName),
    Get(bool, u8, Key),
    Set(bool, u8, Key, Value),
    Delete(bool, u8, Key),
    Exists(bool, u8, Key),
    ListKeys(bool, u8, Option<u64>),
    Increment(bool, u8, Key, u64),
    GetMany(bool, u8, Vec<Key>),
    SetMany(bool, u8, Vec<(Key, Value)>),
    DeleteMany(bool, u8, Vec<Key>),
    Drop(bool, u8),
}

/// A bucket as the backend names it: (scope, name).
type Id = (String, String);

/// One workload's part: its store's state and the buckets it holds open.
struct Part {
    workload: &'static str,
    ctx: InterfacesCtx,
    table: ResourceTable,
    open: Vec<(Resource<Bucket>, Id)>,
}

impl Part {
    fn view(&mut self) -> InterfacesView<'_> {
        InterfacesView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }

    /// The handle at `i` (modulo how many are open), as a guest passes a `borrow<bucket>`.
    fn handle(&self, i: u8) -> Option<(Resource<Bucket>, Id)> {
        let n = self.open.len();
        (n > 0).then(|| {
            let (r, id) = &self.open[usize::from(i) % n];
            (Resource::new_borrow(r.rep()), id.clone())
        })
    }
}

/// The workloads' manifests, parsed once.
fn workloads() -> &'static [hearth_manifest::Workload; 2] {
    static W: OnceLock<[hearth_manifest::Workload; 2]> = OnceLock::new();
    W.get_or_init(|| {
        let kv = format!(
            "[{{ interface: wasi:keyvalue/store, backend: memory, config: {{ shared: [{SHARED}] }} }}]"
        );
        [workload_with("alpha", &kv), workload_with("beta", &kv)]
    })
}

fn parts() -> [Part; 2] {
    // A fresh host (and so a fresh memory store) per input: inputs stay independent.
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
            open: Vec::new(),
        }
    };
    [bind(a, "alpha"), bind(b, "beta")]
}

/// What a bucket name means for a part: the id the model keys on, or the refusal.
fn bucket_id(workload: &str, name: &str) -> Option<Id> {
    let name = if name.is_empty() { "default" } else { name };
    if name.len() > MAX_BUCKET_NAME {
        return None;
    }
    let scope = if name == SHARED { "_shared" } else { workload };
    Some((scope.to_string(), name.to_string()))
}

fn key_ok(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY
}

/// A stored counter: decimal ASCII digits (absent = 0); anything else cannot be incremented.
fn counter(value: Option<&Vec<u8>>) -> Option<u64> {
    match value {
        None => Some(0),
        Some(v) => std::str::from_utf8(v)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok()),
    }
}

/// Unwraps a host call: a trap on a live handle is a host bug.
#[track_caller]
fn no_trap<T>(r: wasmtime::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("host call trapped on a live handle: {e:?}"),
    }
}

#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, Error>, why: &str) {
    match r {
        Err(Error::Other(_)) => {}
        other => panic!("expected `error::other` ({why}), got {other:?}"),
    }
}

#[track_caller]
fn ok<T: std::fmt::Debug>(r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("expected Ok, got {e:?}"),
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut parts = parts();
    let mut model: BTreeMap<Id, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for op in ops.iter().take(256) {
        step(&mut parts, &mut model, op);
    }
    sweep(&mut parts, &model);
});

fn step(parts: &mut [Part; 2], model: &mut BTreeMap<Id, BTreeMap<String, Vec<u8>>>, op: &Op) {
    let p = |b: &bool| usize::from(*b);
    match op {
        Op::Open(part, name) => {
            let part = &mut parts[p(part)];
            let name = name.text();
            let got = no_trap(ready(store::Host::open(&mut part.view(), name.clone())));
            match bucket_id(part.workload, &name) {
                Some(id) => {
                    let handle = ok(got);
                    part.open.push((handle, id));
                }
                None => refused(got, "bucket name too long"),
            }
        }
        Op::Get(part, h, key) => {
            let part = &mut parts[p(part)];
            let Some((handle, id)) = part.handle(*h) else {
                return;
            };
            let key = key.text();
            let got = no_trap(ready(HostBucket::get(
                &mut part.view(),
                handle,
                key.clone(),
            )));
            if key_ok(&key) {
                let want = model.get(&id).and_then(|b| b.get(&key)).cloned();
                assert_eq!(ok(got), want, "get {id:?} {key:?}");
            } else {
                refused(got, "bad key");
            }
        }
        Op::Set(part, h, key, value) => {
            let part = &mut parts[p(part)];
            let Some((handle, id)) = part.handle(*h) else {
                return;
            };
            let (key, value) = (key.text(), value.bytes());
            let got = no_trap(ready(HostBucket::set(
                &mut part.view(),
                handle,
                key.clone(),
                value.clone(),
            )));
            if key_ok(&key) {
                ok(got);
                model.entry(id).or_default().insert(key, value);
            } else {
                refused(got, "bad key");
            }
        }
        Op::Delete(part, h, key) => {
            let part = &mut parts[p(part)];
            let Some((handle, id)) = part.handle(*h) else {
                return;
            };
            let key = key.text();
            let got = no_trap(ready(HostBucket::delete(
                &mut part.view(),
                handle,
                key.clone(),
            )));
            if key_ok(&key) {
                ok(got);
                if let Some(b) = model.get_mut(&id) {
                    b.remove(&key);
                }
            } else {
                refused(got, "bad key");
            }
        }
        Op::Exists(part, h, key) => {
            let part = &mut parts[p(part)];
            let Some((handle, id)) = part.handle(*h) else {
                return;
            };
            let key = key.text();
            let got = no_trap(ready(HostBucket::exists(
                &mut part.view(),
                handle,
                key.clone(),
            )));
            if key_ok(&key) {
                let want = model.get(&id).is_some_and(|b| b.contains_key(&key));
                assert_eq!(ok(got), want, "exists {id:?} {key:?}");
            } else {
                refused(got, "bad key");
            }
        }
        Op::ListKeys(part, h, cursor) => {
            let part = &mut parts[p(part)];
            let Some((handle, id)) = part.handle(*h) else {
                return;
            };
            let got = ok(no_trap(ready(HostBucket::list_keys(
                &mut part.view(),
                handle,
                *cursor,
            ))));
            let keys: Vec<&String> = model
                .get(&id)
                .map(|b| b.keys().collect())
                .unwrap_or_default();
            let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
            let want: Vec<String> = keys
                .iter()
                .skip(skip)
                .take(LIST_PAGE)
                .map(|k| (*k).clone())
                .collect();
            let next = skip.saturating_add(want.len());
            let want_cursor = (next < keys.len()).then_some(next as u64);
            assert_eq!(got.keys, want, "list-keys {id:?} at {cursor:?}");
            assert_eq!(
                got.cursor, want_cursor,
                "list-keys cursor {id:?} at {cursor:?}"
            );
        }
        Op::Increment(part, h, key, delta) => {
            let part = &mut parts[p(part)];
            let Some((handle, id)) = part.handle(*h) else {
                return;
            };
            let key = key.text();
            let got = no_trap(ready(atomics::Host::increment(
                &mut part.view(),
                handle,
                key.clone(),
                *delta,
            )));
            if !key_ok(&key) {
                return refused(got, "bad key");
            }
            let current = model.get(&id).and_then(|b| b.get(&key));
            match counter(current).and_then(|c| c.checked_add(*delta)) {
                Some(sum) => {
                    assert_eq!(ok(got), sum, "increment {id:?} {key:?} by {delta}");
                    model
                        .entry(id)
                        .or_default()
                        .insert(key, sum.to_string().into_bytes());
                }
                None => refused(got, "not a counter, or overflow"),
            }
        }
        Op::GetMany(part, h, keys) => {
            let part = &mut parts[p(part)];
            let Some((handle, id)) = part.handle(*h) else {
                return;
            };
            let keys: Vec<String> = keys.iter().take(16).map(Key::text).collect();
            let got = no_trap(ready(batch::Host::get_many(
                &mut part.view(),
                handle,
                keys.clone(),
            )));
            if keys.iter().all(|k| key_ok(k)) {
                let bucket = model.get(&id);
                let want: Vec<Option<(String, Vec<u8>)>> = keys
                    .iter()
                    .map(|k| {
                        bucket
                            .and_then(|b| b.get(k))
                            .map(|v| (k.clone(), v.clone()))
                    })
                    .collect();
                assert_eq!(ok(got), want, "get-many {id:?}");
            } else {
                refused(got, "a bad key");
            }
        }
        Op::SetMany(part, h, entries) => {
            let part = &mut parts[p(part)];
            let Some((handle, id)) = part.handle(*h) else {
                return;
            };
            let entries: Vec<(String, Vec<u8>)> = entries
                .iter()
                .take(16)
                .map(|(k, v)| (k.text(), v.bytes()))
                .collect();
            let got = no_trap(ready(batch::Host::set_many(
                &mut part.view(),
                handle,
                entries.clone(),
            )));
            if entries.iter().all(|(k, _)| key_ok(k)) {
                ok(got);
                if !entries.is_empty() {
                    model.entry(id).or_default().extend(entries);
                }
            } else {
                // Refused before anything is written.
                refused(got, "a bad key");
            }
        }
        Op::DeleteMany(part, h, keys) => {
            let part = &mut parts[p(part)];
            let Some((handle, id)) = part.handle(*h) else {
                return;
            };
            let keys: Vec<String> = keys.iter().take(16).map(Key::text).collect();
            let got = no_trap(ready(batch::Host::delete_many(
                &mut part.view(),
                handle,
                keys.clone(),
            )));
            if keys.iter().all(|k| key_ok(k)) {
                ok(got);
                if let Some(b) = model.get_mut(&id) {
                    for k in &keys {
                        b.remove(k);
                    }
                }
            } else {
                refused(got, "a bad key");
            }
        }
        Op::Drop(part, h) => {
            let part = &mut parts[p(part)];
            if part.open.is_empty() {
                return;
            }
            let i = usize::from(*h) % part.open.len();
            let (handle, _) = part.open.swap_remove(i);
            let owned = Resource::<Bucket>::new_own(handle.rep());
            no_trap(ready(HostBucket::drop(&mut part.view(), owned)));
        }
    }
    // Buckets with no keys are not kept (the backend drops them too): keep the model tidy.
    model.retain(|_, b| !b.is_empty());
}

/// Reads every bucket the model knows (and every name either part might have used) back
/// through fresh handles, page by page, and compares it with the model.
fn sweep(parts: &mut [Part; 2], model: &BTreeMap<Id, BTreeMap<String, Vec<u8>>>) {
    for part in parts.iter_mut() {
        let names: Vec<String> = ["", SHARED, "b0", "b1", "b2", "b3"]
            .iter()
            .map(|s| s.to_string())
            .chain(
                model
                    .keys()
                    .filter(|(s, _)| s == part.workload)
                    .map(|(_, n)| n.clone()),
            )
            .collect();
        for name in names {
            let Some(id) = bucket_id(part.workload, &name) else {
                continue;
            };
            let handle = ok(no_trap(ready(store::Host::open(&mut part.view(), name))));
            let mut keys = Vec::new();
            let mut cursor = None;
            for _ in 0..64 {
                let page = ok(no_trap(ready(HostBucket::list_keys(
                    &mut part.view(),
                    Resource::new_borrow(handle.rep()),
                    cursor,
                ))));
                keys.extend(page.keys);
                cursor = page.cursor;
                if cursor.is_none() {
                    break;
                }
            }
            let mut stored = BTreeMap::new();
            for key in keys {
                let value = ok(no_trap(ready(HostBucket::get(
                    &mut part.view(),
                    Resource::new_borrow(handle.rep()),
                    key.clone(),
                ))));
                let Some(value) = value else {
                    panic!("listed key {key:?} of {id:?} has no value");
                };
                stored.insert(key, value);
            }
            let want = model.get(&id).cloned().unwrap_or_default();
            assert_eq!(stored, want, "bucket {id:?} differs from the model");
            no_trap(ready(HostBucket::drop(&mut part.view(), handle)));
        }
    }
}
