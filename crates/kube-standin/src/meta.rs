//! Reading and writing `metadata` of objects held as JSON.

use serde_json::{Map, Value};

/// `metadata`, made an object if it is not one (nor the object itself).
pub(crate) fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    if !object["metadata"].is_object() {
        object["metadata"] = Value::Object(Map::new());
    }
    match &mut object["metadata"] {
        Value::Object(map) => map,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// Sets `metadata.{field}`, or removes it when `value` is `None` or `null`.
pub(crate) fn set(object: &mut Value, field: &str, value: Option<Value>) {
    let meta = metadata_mut(object);
    match value {
        Some(v) if !v.is_null() => {
            meta.insert(field.to_string(), v);
        }
        _ => {
            meta.remove(field);
        }
    }
}

/// `metadata.{field}` as text.
pub(crate) fn text<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object["metadata"][field].as_str().filter(|s| !s.is_empty())
}

pub(crate) fn name(object: &Value) -> Option<&str> {
    text(object, "name")
}

pub(crate) fn uid(object: &Value) -> Option<&str> {
    text(object, "uid")
}

pub(crate) fn resource_version(object: &Value) -> Option<&str> {
    text(object, "resourceVersion")
}

/// Whether it has a `deletionTimestamp`: deleted, waiting for its finalizers.
pub(crate) fn is_deleting(object: &Value) -> bool {
    text(object, "deletionTimestamp").is_some()
}

/// `metadata.finalizers`.
pub(crate) fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `metadata.finalizers`, dropping the field when there are none.
pub(crate) fn set_finalizers(object: &mut Value, finalizers: &[String]) {
    let value = (!finalizers.is_empty()).then(|| Value::from(finalizers.to_vec()));
    set(object, "finalizers", value);
}

/// The uids its `metadata.ownerReferences` name.
pub(crate) fn owner_uids(object: &Value) -> Vec<String> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Drops the owner reference to `owner`; drops `ownerReferences` when none are left.
pub(crate) fn remove_owner(object: &mut Value, owner: &str) {
    let refs: Vec<Value> = object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter(|r| r["uid"] != owner).cloned().collect())
        .unwrap_or_default();
    set(
        object,
        "ownerReferences",
        (!refs.is_empty()).then_some(Value::Array(refs)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_is_made_when_missing_or_malformed() {
        let mut o = json!({"metadata": "oops"});
        set(&mut o, "name", Some(json!("a")));
        assert_eq!(name(&o), Some("a"));
        let mut o = json!(3);
        set(&mut o, "uid", Some(json!("u")));
        assert_eq!(uid(&o), Some("u"));
    }

    #[test]
    fn finalizers_and_owners_are_edited_in_place() {
        let mut o = json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "x"}, {"uid": "y"}]}});
        assert_eq!(owner_uids(&o), ["x", "y"]);
        remove_owner(&mut o, "x");
        assert_eq!(owner_uids(&o), ["y"]);
        remove_owner(&mut o, "y");
        assert!(o["metadata"].get("ownerReferences").is_none());
        set_finalizers(&mut o, &[]);
        assert!(finalizers(&o).is_empty() && o["metadata"].get("finalizers").is_none());
    }
}
