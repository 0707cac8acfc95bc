//! Deletion, finalizers and the garbage collector, done at once inside the request that
//! triggers them (the real server's collector runs a moment later; tests see the same end
//! state, with no waiting).
//!
//! - An object with finalizers gets `deletionTimestamp` (and `deletionGracePeriodSeconds:
//!   0`) and stays until an update empties `metadata.finalizers`; one without goes away, with a
//!   `DELETED` change carrying a new `resourceVersion`.
//! - When an object goes away, each object whose `ownerReferences` name its uid goes too
//!   (deleted the same way, so its own finalizers hold it), unless another owner it names
//!   still exists: then only the reference to the gone owner is dropped. Transitively.
//! - `propagationPolicy: Orphan` drops the references to the object from its dependents
//!   first; `Foreground` gives an object with dependents the `foregroundDeletion` finalizer,
//!   deletes the dependents, and drops the finalizer once none is left (every dependent
//!   blocks, whatever its `blockOwnerDeletion`).
//! - A removed `Namespace` takes the objects in it along; a removed CRD takes its objects
//!   (at once, finalizers or not) and its kind.
//!
//! Dependents whose owners never existed are left alone (the real collector deletes them).

use crate::kinds::{self, CRD_RESOURCE, Kind, NAMESPACE_RESOURCE};
use crate::meta;
use crate::query::Query;
use crate::respond::Failure;
use crate::store::{Key, State};
use crate::time::now_rfc3339;
use crate::writes::{self, Part};
use serde_json::{Value, json};

/// The finalizer of a foreground deletion.
const FOREGROUND: &str = "foregroundDeletion";

/// What happens to the dependents of a deleted object.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) enum Propagation {
    /// They are deleted after it (the default for every kind the stand-in serves).
    #[default]
    Background,
    /// They are deleted before it.
    Foreground,
    /// They lose their reference to it and stay.
    Orphan,
}

/// A `DeleteOptions`, from the body and the query.
#[derive(Debug, Default)]
pub(crate) struct DeleteOptions {
    pub propagation: Propagation,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    pub(crate) fn parse(query: &Query, body: &[u8]) -> Result<Self, Failure> {
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .map_err(|e| Failure::bad_request(format!("DeleteOptions: {e}")))?
        };
        let policy = body["propagationPolicy"]
            .as_str()
            .or_else(|| query.get("propagationPolicy"));
        let orphan = body["orphanDependents"]
            .as_bool()
            .or_else(|| query.get("orphanDependents").map(|v| v == "true"));
        let propagation = match (policy, orphan) {
            (Some("Background"), _) | (None, Some(false) | None) => Propagation::Background,
            (Some("Foreground"), _) => Propagation::Foreground,
            (Some("Orphan"), _) | (None, Some(true)) => Propagation::Orphan,
            (Some(other), _) => {
                return Err(Failure::bad_request(format!(
                    "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        };
        let precondition = |field: &str| {
            body["preconditions"][field]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        Ok(Self {
            propagation,
            uid: precondition("uid"),
            resource_version: precondition("resourceVersion"),
        })
    }
}

/// Deletes object `name`; answers it as it is after (with `deletionTimestamp` if it waits for
/// finalizers; with the `resourceVersion` of its removal if it is gone).
pub(crate) fn delete(
    st: &mut State,
    kind: &Kind,
    namespace: &str,
    name: &str,
    options: &DeleteOptions,
) -> Result<Value, Failure> {
    let key = State::key(kind, namespace, name);
    let stored = st
        .objects
        .get(&key)
        .ok_or_else(|| Failure::not_found(kind, name))?;
    check_preconditions(kind, name, stored, options)?;
    let uid = meta::uid(stored).unwrap_or_default().to_string();
    if options.propagation == Propagation::Orphan {
        orphan_dependents(st, &uid);
    }
    let Some(stored) = st.objects.get(&key).cloned() else {
        return Err(Failure::not_found(kind, name));
    };
    let mut finalizers = meta::finalizers(&stored);
    let foreground =
        options.propagation == Propagation::Foreground && !st.dependents_of(&uid).is_empty();
    if foreground && !finalizers.iter().any(|f| f == FOREGROUND) {
        finalizers.push(FOREGROUND.into());
    }
    if finalizers.is_empty() {
        return Ok(remove(st, &key, None).unwrap_or(stored));
    }
    let marked = mark_deleting(st, kind, namespace, stored, &finalizers);
    if foreground {
        collect_dependents(st, &uid);
        release_foreground_owners(st);
    }
    Ok(st.objects.get(&key).cloned().unwrap_or(marked))
}

fn check_preconditions(
    kind: &Kind,
    name: &str,
    stored: &Value,
    options: &DeleteOptions,
) -> Result<(), Failure> {
    let checks = [
        ("UID", &options.uid, meta::uid(stored)),
        (
            "ResourceVersion",
            &options.resource_version,
            meta::resource_version(stored),
        ),
    ];
    for (what, wanted, actual) in checks {
        if let Some(wanted) = wanted
            && Some(wanted.as_str()) != actual
        {
            return Err(Failure::conflict(
                kind,
                name,
                &format!(
                    "Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {}",
                    actual.unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// Gives `stored` a `deletionTimestamp` (once) and `finalizers`; answers it as stored.
fn mark_deleting(
    st: &mut State,
    kind: &Kind,
    namespace: &str,
    stored: Value,
    finalizers: &[String],
) -> Value {
    if meta::is_deleting(&stored) && meta::finalizers(&stored) == finalizers {
        return stored;
    }
    let mut next = stored.clone();
    if !meta::is_deleting(&stored) {
        meta::set(&mut next, "deletionTimestamp", Some(json!(now_rfc3339())));
        meta::set(&mut next, "deletionGracePeriodSeconds", Some(json!(0)));
        if kind.generation {
            let generation = stored["metadata"]["generation"].as_i64().unwrap_or(0);
            meta::set(&mut next, "generation", Some(json!(generation + 1)));
        }
    }
    meta::set_finalizers(&mut next, finalizers);
    st.write(kind, namespace, next)
}

/// Removes the object at `key` (`last` is how it looked last, if not as stored), then
/// collects what depended on it. Answers the removed object.
pub(crate) fn remove(st: &mut State, key: &Key, last: Option<Value>) -> Option<Value> {
    let object = st.remove(key, last)?;
    if let Some(uid) = meta::uid(&object) {
        collect_dependents(st, uid);
    }
    remove_contents(st, key, &object);
    release_foreground_owners(st);
    Some(object)
}

/// Deletes (or, if another owner is alive, unties) the dependents of `owner`.
fn collect_dependents(st: &mut State, owner: &str) {
    for key in st.dependents_of(owner) {
        let Some(object) = st.objects.get(&key) else {
            continue; // gone with an earlier dependent
        };
        let other_owner_alive = meta::owner_uids(object)
            .iter()
            .any(|u| u != owner && st.uid_exists(u));
        let deleting = meta::is_deleting(object);
        let Some(kind) = st.kind_by_resource(&key.0) else {
            st.remove(&key, None);
            continue;
        };
        let (_, namespace, name) = &key;
        // A refusal leaves the dependent as it is, as a failed collector pass would.
        if other_owner_alive {
            let _ = writes::update(st, &kind, namespace, name, Part::Main, None, |mut o| {
                meta::remove_owner(&mut o, owner);
                Ok(o)
            });
        } else if !deleting {
            let _ = delete(st, &kind, namespace, name, &DeleteOptions::default());
        }
    }
}

/// Drops every owner reference to `owner`.
fn orphan_dependents(st: &mut State, owner: &str) {
    for (resource, namespace, name) in st.dependents_of(owner) {
        if let Some(kind) = st.kind_by_resource(&resource) {
            let _ = writes::update(st, &kind, &namespace, &name, Part::Main, None, |mut o| {
                meta::remove_owner(&mut o, owner);
                Ok(o)
            });
        }
    }
}

/// Drops `foregroundDeletion` from the objects being deleted whose dependents are all gone
/// (which may remove them in turn).
fn release_foreground_owners(st: &mut State) {
    loop {
        let ready = st.objects.iter().find(|(_, o)| {
            meta::is_deleting(o)
                && meta::finalizers(o).iter().any(|f| f == FOREGROUND)
                && st
                    .dependents_of(meta::uid(o).unwrap_or_default())
                    .is_empty()
        });
        let Some(((resource, namespace, name), _)) = ready else {
            return;
        };
        let (resource, namespace, name) = (resource.clone(), namespace.clone(), name.clone());
        let Some(kind) = st.kind_by_resource(&resource) else {
            return;
        };
        let released = writes::update(st, &kind, &namespace, &name, Part::Main, None, |mut o| {
            let rest: Vec<String> = meta::finalizers(&o)
                .into_iter()
                .filter(|f| f != FOREGROUND)
                .collect();
            meta::set_finalizers(&mut o, &rest);
            Ok(o)
        });
        if released.is_err() {
            return;
        }
    }
}

/// What goes with a removed object: a namespace's objects, a CRD's objects.
fn remove_contents(st: &mut State, key: &Key, object: &Value) {
    let (resource, _, name) = key;
    if resource == NAMESPACE_RESOURCE {
        let inside: Vec<Key> = st
            .objects
            .keys()
            .filter(|(_, ns, _)| ns == name)
            .cloned()
            .collect();
        for (resource, namespace, name) in inside {
            match st.kind_by_resource(&resource) {
                Some(kind) => {
                    let _ = delete(st, &kind, &namespace, &name, &DeleteOptions::default());
                }
                None => {
                    st.remove(&(resource, namespace, name), None);
                }
            }
        }
    } else if resource == CRD_RESOURCE
        && let Ok(kind) = kinds::kind_of(object)
    {
        let instances: Vec<Key> = st
            .objects
            .keys()
            .filter(|(r, _, _)| *r == kind.resource())
            .cloned()
            .collect();
        for key in instances {
            st.remove(&key, None);
        }
    }
}
