//! The write path every create and update takes (POST, PUT, every patch type, server-side
//! apply, and the updates deletion and garbage collection make), so they all keep the same
//! rules: the server owns `uid`, `creationTimestamp`, `resourceVersion`, `generation` and the
//! deletion fields; a stale `resourceVersion` is a `409 Conflict`; a write to an object only
//! keeps its status when the kind has a status subresource, and a write to `/status` changes
//! nothing else; a write that changes nothing is not stored; an object being deleted cannot
//! gain finalizers and goes away when its last finalizer does.

use crate::delete;
use crate::kinds::{self, Kind};
use crate::meta;
use crate::query::Query;
use crate::respond::Failure;
use crate::store::State;
use crate::time::now_rfc3339;
use serde_json::{Value, json};

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Part {
    /// The object, less its status if the kind has a status subresource.
    Main,
    /// The `/status` subresource: `status` only.
    Status,
}

/// Who writes, for `metadata.managedFields`.
#[derive(Debug)]
pub(crate) struct Manager {
    pub name: String,
    /// `Apply` or `Update`.
    pub operation: &'static str,
}

impl Manager {
    /// The `fieldManager` of a request, if it names one.
    pub(crate) fn from_query(query: &Query, operation: &'static str) -> Option<Self> {
        query
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .map(|name| Self {
                name: name.into(),
                operation,
            })
    }
}

/// Creates an object of `kind` in `namespace`; answers it as stored.
pub(crate) fn create(
    st: &mut State,
    kind: &Kind,
    namespace: &str,
    mut object: Value,
    manager: Option<&Manager>,
) -> Result<Value, Failure> {
    check_shape(kind, &object)?;
    let name = name_for(st, kind, namespace, &object)?;
    if kind.namespaced && meta::text(&object, "namespace").is_some_and(|ns| ns != namespace) {
        return Err(Failure::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if st.stored(kind, namespace, &name).is_some() {
        return Err(Failure::already_exists(kind, &name));
    }
    set_type(kind, &mut object);
    let now = now_rfc3339();
    let fields = [
        ("name", Some(json!(name))),
        ("namespace", kind.namespaced.then(|| json!(namespace))),
        ("uid", Some(json!(new_uid(st.revision + 1)))),
        ("creationTimestamp", Some(json!(now))),
        ("generation", kind.generation.then(|| json!(1))),
        ("resourceVersion", None),
        ("deletionTimestamp", None),
        ("deletionGracePeriodSeconds", None),
    ];
    for (field, value) in fields {
        meta::set(&mut object, field, value);
    }
    if kind.status
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    server_defaults(kind, &name, &mut object, &now)?;
    if let Some(manager) = manager {
        stamp(&mut object, manager, kind, Part::Main);
    }
    Ok(st.write(kind, namespace, object))
}

/// Changes object `name` with `change` (given the stored object, it returns the proposed
/// one), within the rules above; answers the object as stored (or as last seen, if the
/// write removed it).
pub(crate) fn update(
    st: &mut State,
    kind: &Kind,
    namespace: &str,
    name: &str,
    part: Part,
    manager: Option<&Manager>,
    change: impl FnOnce(Value) -> Result<Value, Failure>,
) -> Result<Value, Failure> {
    let key = State::key(kind, namespace, name);
    let stored = st
        .objects
        .get(&key)
        .cloned()
        .ok_or_else(|| Failure::not_found(kind, name))?;
    let proposed = change(stored.clone())?;
    check_shape(kind, &proposed)?;
    if meta::resource_version(&proposed).is_some_and(|v| Some(v) != meta::resource_version(&stored))
    {
        return Err(Failure::modified(kind, name));
    }
    let mut next = match part {
        Part::Main => with_status_of(kind, &stored, proposed),
        Part::Status => with_status_only(&stored, &proposed),
    };
    keep_server_fields(kind, &stored, &mut next);
    check_finalizers(kind, name, &stored, &next)?;
    if next == stored && manager.is_none_or(|m| has_entry(&stored, m, part)) {
        return Ok(stored);
    }
    if kind.generation && content(kind, &next) != content(kind, &stored) {
        let generation = stored["metadata"]["generation"].as_i64().unwrap_or(0);
        meta::set(&mut next, "generation", Some(json!(generation + 1)));
    }
    if let Some(manager) = manager {
        stamp(&mut next, manager, kind, part);
    }
    if meta::is_deleting(&next) && meta::finalizers(&next).is_empty() {
        return Ok(delete::remove(st, &key, Some(next.clone())).unwrap_or(next));
    }
    Ok(st.write(kind, namespace, next))
}

/// A uid shaped like the real server's (a version 4 UUID), unique per revision.
fn new_uid(revision: u64) -> String {
    format!("5ca1ab1e-0000-4000-8000-{revision:012x}")
}

/// `metadata.name`, or one made from `metadata.generateName`.
fn name_for(st: &State, kind: &Kind, namespace: &str, object: &Value) -> Result<String, Failure> {
    if let Some(name) = meta::name(object) {
        return Ok(name.to_string());
    }
    let Some(prefix) = meta::text(object, "generateName") else {
        return Err(Failure::invalid(
            kind,
            "",
            "metadata.name: Required value: name or generateName is required",
        ));
    };
    let mut seed = st
        .revision
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    loop {
        let suffix: String = (0..5)
            .map(|i| {
                let digit = (seed >> (i * 5)) % 36;
                char::from_digit(u32::try_from(digit).unwrap_or(0), 36).unwrap_or('x')
            })
            .collect();
        let name = format!("{prefix}{suffix}");
        if st.stored(kind, namespace, &name).is_none() {
            return Ok(name);
        }
        seed = seed.wrapping_mul(31).wrapping_add(7);
    }
}

/// Refuses what no server would decode as an object of `kind`.
fn check_shape(kind: &Kind, object: &Value) -> Result<(), Failure> {
    if !object.is_object() {
        return Err(Failure::bad_request("the object is not a JSON object"));
    }
    if !(object["metadata"].is_object() || object["metadata"].is_null()) {
        return Err(Failure::bad_request("metadata is not an object"));
    }
    let api_version = kind.api_version();
    match object["apiVersion"].as_str() {
        Some(v) if !v.is_empty() && v != api_version => {
            return Err(Failure::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        _ => {}
    }
    match object["kind"].as_str() {
        Some(k) if !k.is_empty() && k != kind.kind => Err(Failure::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            kind.kind
        ))),
        _ => Ok(()),
    }
}

fn set_type(kind: &Kind, object: &mut Value) {
    object["apiVersion"] = json!(kind.api_version());
    object["kind"] = json!(kind.kind);
}

/// What the real server sets on creation for some kinds: a `Namespace` is `Active`, a CRD
/// (checked first) is accepted and established.
fn server_defaults(kind: &Kind, name: &str, object: &mut Value, now: &str) -> Result<(), Failure> {
    match kind.resource().as_str() {
        kinds::NAMESPACE_RESOURCE => object["status"] = json!({"phase": "Active"}),
        kinds::CRD_RESOURCE => {
            kinds::kind_of(object).map_err(|cause| Failure::invalid(kind, name, &cause))?;
            object["status"] = kinds::crd_status(object, now);
        }
        _ => {}
    }
    Ok(())
}

/// `proposed`, with the stored status if the kind has a status subresource.
fn with_status_of(kind: &Kind, stored: &Value, mut proposed: Value) -> Value {
    if kind.status {
        set_field(&mut proposed, "status", stored.get("status").cloned());
    }
    proposed
}

/// `stored`, with the proposed status.
fn with_status_only(stored: &Value, proposed: &Value) -> Value {
    let mut next = stored.clone();
    set_field(&mut next, "status", proposed.get("status").cloned());
    next
}

/// Sets a top-level field, or removes it for `None` or `null`.
fn set_field(object: &mut Value, field: &str, value: Option<Value>) {
    if let Some(map) = object.as_object_mut() {
        match value {
            Some(v) if !v.is_null() => {
                map.insert(field.into(), v);
            }
            _ => {
                map.remove(field);
            }
        }
    }
}

/// Puts back what only the server may set.
fn keep_server_fields(kind: &Kind, stored: &Value, next: &mut Value) {
    set_type(kind, next);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "resourceVersion",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        meta::set(next, field, stored["metadata"].get(field).cloned());
    }
}

/// An object being deleted may lose finalizers, not gain them.
fn check_finalizers(kind: &Kind, name: &str, stored: &Value, next: &Value) -> Result<(), Failure> {
    if !meta::is_deleting(stored) {
        return Ok(());
    }
    let before = meta::finalizers(stored);
    let added: Vec<String> = meta::finalizers(next)
        .into_iter()
        .filter(|f| !before.contains(f))
        .map(|f| format!("{f:?}"))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    Err(Failure::invalid(
        kind,
        name,
        &format!(
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
            added.join(", ")
        ),
    ))
}

/// What `metadata.generation` counts changes of: all but metadata (and status, if the kind
/// has a status subresource).
fn content(kind: &Kind, object: &Value) -> Value {
    let mut content = object.clone();
    if let Some(map) = content.as_object_mut() {
        map.remove("metadata");
        if kind.status {
            map.remove("status");
        }
    }
    content
}

/// The `subresource` of a managed-fields entry for a write to `part`.
fn subresource(part: Part) -> Option<&'static str> {
    (part == Part::Status).then_some("status")
}

/// Whether `entry` is `manager`'s for `part`.
fn is_entry_of(entry: &Value, manager: &Manager, part: Part) -> bool {
    entry["manager"] == manager.name.as_str()
        && entry["operation"] == manager.operation
        && entry["subresource"].as_str() == subresource(part)
}

/// Whether `object` records `manager` for `part` already.
fn has_entry(object: &Value, manager: &Manager, part: Part) -> bool {
    object["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|entries| entries.iter().any(|e| is_entry_of(e, manager, part)))
}

/// Records `manager` in `metadata.managedFields`, replacing its earlier entry for the same
/// operation and subresource. Its field set is empty: the stand-in does not track field
/// ownership.
fn stamp(object: &mut Value, manager: &Manager, kind: &Kind, part: Part) {
    let mut entries: Vec<Value> = object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    entries.retain(|e| !is_entry_of(e, manager, part));
    // An empty field set: kubectl reads `fieldsV1` of every entry (and crashes without it).
    let mut entry = json!({
        "manager": manager.name, "operation": manager.operation,
        "apiVersion": kind.api_version(), "time": now_rfc3339(),
        "fieldsType": "FieldsV1", "fieldsV1": {},
    });
    if let Some(sub) = subresource(part) {
        entry["subresource"] = json!(sub);
    }
    entries.push(entry);
    meta::set(object, "managedFields", Some(Value::Array(entries)));
}
