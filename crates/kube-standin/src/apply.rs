//! Server-side apply (`PATCH` with `application/apply-patch+yaml`), simplified.
//!
//! The applied configuration must be JSON (kube-rs and kubectl send JSON under that content
//! type; YAML is refused with `400`). It creates the object if it is absent (`201`), or else
//! merges into it: maps merge recursively, `null` removes, lists are replaced, except lists
//! the schema marks `x-kubernetes-list-type: map` (merged item by item on their
//! `x-kubernetes-list-map-keys`, e.g. `status.conditions` by `type`) or `set` (united), and
//! `metadata.finalizers` (a set) and `metadata.ownerReferences` (a map keyed by `uid`), as on
//! the real server. The manager goes into `metadata.managedFields` as an `Apply` entry.
//!
//! The stand-in does not compute field ownership: no apply conflict is ever reported
//! (`force` changes nothing), and fields a manager applied before and omits now are NOT
//! removed.

use crate::kinds::Kind;
use crate::meta;
use crate::query::Query;
use crate::respond::{Answer, Failure};
use crate::store::State;
use crate::writes::{self, Manager, Part};
use http::StatusCode;
use serde_json::{Value, json};

/// Applies `body` to object `name` (or its status).
pub(crate) fn apply(
    st: &mut State,
    kind: &Kind,
    namespace: &str,
    name: &str,
    part: Part,
    query: &Query,
    body: &[u8],
) -> Answer {
    let manager = Manager::from_query(query, "Apply").ok_or_else(|| {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply requests",
        )
    })?;
    let mut applied = applied_configuration(name, body)?;
    meta::set(&mut applied, "managedFields", None);
    meta::set(&mut applied, "name", Some(json!(name)));
    if st.stored(kind, namespace, name).is_none() {
        if part == Part::Status {
            return Err(Failure::not_found(kind, name));
        }
        let created = writes::create(st, kind, namespace, applied, Some(&manager))?;
        return Ok((StatusCode::CREATED, created));
    }
    let updated = writes::update(st, kind, namespace, name, part, Some(&manager), |mut o| {
        apply_object(&mut o, &applied, &kind.schema);
        Ok(o)
    })?;
    Ok((StatusCode::OK, updated))
}

/// The applied configuration: a JSON object of `kind`, named `name` if named at all.
fn applied_configuration(name: &str, body: &[u8]) -> Result<Value, Failure> {
    let applied: Value = serde_json::from_slice(body).map_err(|e| {
        Failure::bad_request(format!(
            "the stand-in takes apply patches as JSON only (not YAML): {e}"
        ))
    })?;
    if !applied.is_object() {
        return Err(Failure::bad_request(
            "the applied configuration is not an object",
        ));
    }
    if applied["kind"].as_str().unwrap_or_default().is_empty()
        || applied["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    {
        return Err(Failure::bad_request(format!(
            "invalid object type: {}, Kind={}",
            applied["apiVersion"].as_str().unwrap_or_default(),
            applied["kind"].as_str().unwrap_or_default()
        )));
    }
    if meta::name(&applied).is_some_and(|n| n != name) {
        return Err(Failure::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta::name(&applied).unwrap_or_default()
        )));
    }
    Ok(applied)
}

/// How `metadata` merges on apply.
fn metadata_schema() -> Value {
    json!({"properties": {
        "finalizers": {"x-kubernetes-list-type": "set"},
        "ownerReferences": {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]},
    }})
}

/// Merges a whole applied object into `target`; `schema` is the kind's.
fn apply_object(target: &mut Value, applied: &Value, schema: &Value) {
    let Some(fields) = applied.as_object() else {
        return;
    };
    for (field, value) in fields {
        if field == "metadata" {
            apply_into(&mut target[field], value, &metadata_schema());
        } else {
            apply_into(&mut target[field], value, child(schema, field));
        }
    }
}

/// The schema of `field` of an object with `schema`.
fn child<'a>(schema: &'a Value, field: &str) -> &'a Value {
    schema["properties"]
        .get(field)
        .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()))
        .unwrap_or(&Value::Null)
}

/// Merges `applied` into `target`, as its `schema` says lists merge.
fn apply_into(target: &mut Value, applied: &Value, schema: &Value) {
    match applied {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(map) = target.as_object_mut() {
                for (field, value) in fields {
                    if value.is_null() {
                        map.remove(field);
                    } else {
                        let slot = map.entry(field.clone()).or_insert(Value::Null);
                        apply_into(slot, value, child(schema, field));
                    }
                }
            }
        }
        Value::Array(items) => match schema["x-kubernetes-list-type"].as_str() {
            Some("map") => merge_map_list(target, items, schema),
            Some("set") => unite(target, items),
            _ => *target = applied.clone(),
        },
        _ => *target = applied.clone(),
    }
}

/// The items of a list (an empty list if it is none).
fn list_mut(target: &mut Value) -> &mut Vec<Value> {
    if !target.is_array() {
        *target = json!([]);
    }
    match target {
        Value::Array(items) => items,
        _ => unreachable!("target was just made an array"),
    }
}

/// Merges items with the same map keys, appends the others.
fn merge_map_list(target: &mut Value, items: &[Value], schema: &Value) {
    let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
        .as_array()
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let list = list_mut(target);
    for item in items {
        let same = |t: &&mut Value| keys.iter().all(|k| t[*k] == item[*k]);
        match list.iter_mut().find(same) {
            Some(existing) => apply_into(existing, item, &schema["items"]),
            None => list.push(item.clone()),
        }
    }
}

/// Adds the items not in the list yet.
fn unite(target: &mut Value, items: &[Value]) {
    let list = list_mut(target);
    for item in items {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions_schema() -> Value {
        json!({"properties": {"status": {"properties": {"conditions": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object"},
        }}}}})
    }

    #[test]
    fn maps_merge_and_plain_lists_are_replaced() {
        let mut o = json!({"spec": {"a": 1, "b": [1, 2]}, "metadata": {"labels": {"x": "1"}}});
        let applied = json!({"spec": {"b": [3], "c": 2}, "metadata": {"labels": {"y": "2"}}});
        apply_object(&mut o, &applied, &json!({}));
        assert_eq!(
            o,
            json!({"spec": {"a": 1, "b": [3], "c": 2}, "metadata": {"labels": {"x": "1", "y": "2"}}})
        );
    }

    #[test]
    fn map_lists_merge_by_key_and_finalizers_unite() {
        let mut o = json!({
            "metadata": {"finalizers": ["a"]},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "x"}, {"type": "Other", "status": "True"}]},
        });
        let applied = json!({
            "metadata": {"finalizers": ["b", "a"]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "New", "status": "True"}]},
        });
        apply_object(&mut o, &applied, &conditions_schema());
        assert_eq!(o["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            o["status"]["conditions"],
            json!([
                {"type": "Ready", "status": "True", "reason": "x"},
                {"type": "Other", "status": "True"},
                {"type": "New", "status": "True"},
            ])
        );
    }
}
