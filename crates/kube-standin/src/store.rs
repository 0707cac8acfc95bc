//! The server's state: the kinds it serves, the objects, one revision counter for every
//! `resourceVersion`, and the log of changes that watches replay.

use crate::kinds::{self, CRD_RESOURCE, Kind};
use crate::meta;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tokio::sync::Notify;

/// How many changes the log keeps for watches; a watch from before the oldest is answered
/// `410 Gone`, as from a compacted etcd.
const KEPT_CHANGES: usize = 10_000;

/// (resource as `plural.group`, namespace or `""`, name).
pub(crate) type Key = (String, String, String);

/// One change, for watches.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub revision: u64,
    pub resource: String,
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub verb: &'static str,
    pub object: Value,
    /// The object before a `MODIFIED` or `DELETED`, so a watch with a selector can tell
    /// an object that left its selection from one that was never in it.
    pub previous: Option<Value>,
}

#[derive(Default)]
pub(crate) struct State {
    /// The built-in kinds, then one per stored CRD.
    pub kinds: Vec<Kind>,
    pub objects: BTreeMap<Key, Value>,
    /// The latest `resourceVersion` given out.
    pub revision: u64,
    /// Every request as `METHOD path`, for tests to inspect.
    pub requests: Vec<String>,
    /// Recent changes, oldest first.
    pub changes: VecDeque<Change>,
    /// The newest revision no longer in `changes` (0: nothing dropped yet).
    pub compacted: u64,
    /// Woken on every change.
    pub changed: Arc<Notify>,
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            kinds: kinds::builtins(),
            ..Self::default()
        }
    }

    /// The kind served at `/apis/{group}/{version}/{plural}` (`group` empty for `/api`).
    pub(crate) fn kind(&self, group: &str, version: &str, plural: &str) -> Option<&Kind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    /// The kind whose objects are stored under `resource` (`plural.group`).
    pub(crate) fn kind_by_resource(&self, resource: &str) -> Option<Kind> {
        self.kinds
            .iter()
            .find(|k| k.resource() == resource)
            .cloned()
    }

    pub(crate) fn key(kind: &Kind, namespace: &str, name: &str) -> Key {
        (kind.resource(), namespace.into(), name.into())
    }

    pub(crate) fn stored(&self, kind: &Kind, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&Self::key(kind, namespace, name))
    }

    /// The objects of `kind` in `namespace` (every namespace when empty).
    pub(crate) fn of_kind(&self, kind: &Kind, namespace: &str) -> Vec<Value> {
        let resource = kind.resource();
        self.objects
            .iter()
            .filter(|((r, ns, _), _)| *r == resource && (namespace.is_empty() || ns == namespace))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Whether some stored object has `uid`.
    pub(crate) fn uid_exists(&self, uid: &str) -> bool {
        self.objects.values().any(|o| meta::uid(o) == Some(uid))
    }

    /// The keys of the objects an owner reference ties to `uid`.
    pub(crate) fn dependents_of(&self, uid: &str) -> Vec<Key> {
        self.objects
            .iter()
            .filter(|(_, o)| meta::owner_uids(o).iter().any(|u| u == uid))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Stores `object` (new or changed) under a new `resourceVersion` and logs the change.
    pub(crate) fn write(&mut self, kind: &Kind, namespace: &str, mut object: Value) -> Value {
        self.revision += 1;
        meta::set(
            &mut object,
            "resourceVersion",
            Some(json!(self.revision.to_string())),
        );
        let name = meta::name(&object).unwrap_or_default().to_string();
        let previous = self
            .objects
            .insert(Self::key(kind, namespace, &name), object.clone());
        let verb = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.log(kind.resource(), namespace, verb, &object, previous);
        object
    }

    /// Removes an object; `last` is what it looked like last (the stored object if `None`).
    /// Logs a `DELETED` change carrying a new `resourceVersion`, and answers that object.
    pub(crate) fn remove(&mut self, key: &Key, last: Option<Value>) -> Option<Value> {
        let stored = self.objects.remove(key)?;
        self.revision += 1;
        let mut object = last.unwrap_or_else(|| stored.clone());
        meta::set(
            &mut object,
            "resourceVersion",
            Some(json!(self.revision.to_string())),
        );
        let (resource, namespace, _) = key;
        self.log(
            resource.clone(),
            namespace,
            "DELETED",
            &object,
            Some(stored),
        );
        Some(object)
    }

    fn log(
        &mut self,
        resource: String,
        namespace: &str,
        verb: &'static str,
        object: &Value,
        previous: Option<Value>,
    ) {
        let is_crd = resource == CRD_RESOURCE;
        self.changes.push_back(Change {
            revision: self.revision,
            resource,
            namespace: namespace.into(),
            verb,
            object: object.clone(),
            previous,
        });
        while self.changes.len() > KEPT_CHANGES {
            self.drop_oldest_change();
        }
        if is_crd {
            self.refresh_kinds();
        }
        self.changed.notify_waiters();
    }

    fn drop_oldest_change(&mut self) {
        if let Some(change) = self.changes.pop_front() {
            self.compacted = change.revision;
        }
    }

    /// Forgets every change so far, as a compaction does: watches from an older
    /// `resourceVersion` are then answered `410 Gone`.
    pub(crate) fn compact(&mut self) {
        self.changes.clear();
        self.compacted = self.revision;
    }

    /// The built-in kinds, then the kinds of the stored CRDs.
    fn refresh_kinds(&mut self) {
        let mut kinds = kinds::builtins();
        for ((resource, _, _), crd) in &self.objects {
            if resource != CRD_RESOURCE {
                continue;
            }
            if let Ok(kind) = kinds::kind_of(crd)
                && !kinds.iter().any(|k| k.resource() == kind.resource())
            {
                kinds.push(kind);
            }
        }
        self.kinds = kinds;
    }
}
