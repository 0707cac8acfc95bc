//! The other forms a client may ask objects in (by `Accept`): a `meta.k8s.io/v1` `Table`
//! with the kind's printer columns (what `kubectl get` shows), or `PartialObjectMetadata`
//! (kube-rs's metadata-only API and watcher).

use crate::kinds::Kind;
use crate::time::age;
use serde_json::{Value, json};

/// The form an `Accept` header asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Form {
    Object,
    Table,
    Metadata,
}

impl Form {
    pub(crate) fn of(accept: &str) -> Self {
        if accept.contains("as=Table") {
            Self::Table
        } else if accept.contains("as=PartialObjectMetadata") {
            Self::Metadata
        } else {
            Self::Object
        }
    }

    /// One object in this form.
    pub(crate) fn object(self, kind: &Kind, object: &Value, revision: u64) -> Value {
        match self {
            Self::Object => object.clone(),
            Self::Table => table(kind, std::slice::from_ref(object), revision),
            Self::Metadata => metadata_only(object),
        }
    }

    /// A list in this form.
    pub(crate) fn list(self, kind: &Kind, items: Vec<Value>, revision: u64) -> Value {
        let list_meta = json!({"resourceVersion": revision.to_string()});
        match self {
            Self::Object => json!({
                "apiVersion": kind.api_version(), "kind": format!("{}List", kind.kind),
                "metadata": list_meta, "items": items,
            }),
            Self::Table => table(kind, &items, revision),
            Self::Metadata => json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                "metadata": list_meta,
                "items": items.iter().map(metadata_only).collect::<Vec<_>>(),
            }),
        }
    }
}

/// An object as `PartialObjectMetadata`.
fn metadata_only(object: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": object["metadata"]})
}

/// A `Table`: the name, then the kind's printer columns.
fn table(kind: &Kind, items: &[Value], revision: u64) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}),
    ];
    columns.extend(kind.columns.iter().map(|c| {
        json!({
            "name": c["name"], "type": c["type"],
            "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        })
    }));
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            for c in &kind.columns {
                let value = json_path(o, c["jsonPath"].as_str().unwrap_or_default());
                cells.push(if c["type"] == "date" {
                    age(&value)
                } else {
                    value
                });
            }
            json!({"cells": cells, "object": metadata_only(o)})
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "columnDefinitions": columns, "rows": rows,
    })
}

/// The simple JSONPath of printer columns: `.a.b`, and `.a[?(@.k=="v")].b`.
fn json_path(object: &Value, path: &str) -> Value {
    let mut current = object.clone();
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let (field, tail) = rest.split_at(end);
        if !field.is_empty() {
            current = current.get(field).cloned().unwrap_or(Value::Null);
        }
        rest = tail;
        if let Some(filter) = rest.strip_prefix("[?(@.") {
            let Some(close) = filter.find(")]") else {
                return Value::Null;
            };
            let (cond, tail) = filter.split_at(close);
            let (k, v) = cond.split_once("==").unwrap_or((cond, ""));
            let v = v.trim_matches('"');
            current = current
                .as_array()
                .and_then(|a| a.iter().find(|e| e[k] == v).cloned())
                .unwrap_or(Value::Null);
            rest = tail.get(2..).unwrap_or_default();
        } else if rest.starts_with('[') {
            return Value::Null; // an index or another filter: not a printer column we serve
        }
        rest = rest.trim_start_matches('.');
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_of_printer_columns() {
        let o = json!({"spec": {"n": 3}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(json_path(&o, ".spec.n"), json!(3));
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            json!("True")
        );
        assert_eq!(json_path(&o, ".status.missing"), Value::Null);
        assert_eq!(json_path(&o, ".status.conditions[0]"), Value::Null);
    }
}
