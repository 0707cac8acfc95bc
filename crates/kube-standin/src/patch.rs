//! Patch types: JSON merge patch (RFC 7386), JSON patch (RFC 6902, every operation), and
//! strategic merge patch, which the stand-in takes as a merge patch (its `$` directives
//! dropped, lists replaced) for built-in kinds only; custom kinds refuse it with `415`, as
//! on the real server. Server-side apply is in `apply`.

use crate::kinds::Kind;
use crate::respond::Failure;
use serde_json::{Value, json};

/// How a PATCH body reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type`, if `kind` takes it.
    pub(crate) fn of(content_type: &str, kind: &Kind) -> Result<Self, Failure> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            "application/strategic-merge-patch+json" if kind.builtin => Ok(Self::Strategic),
            other => Err(Failure::unsupported_patch(other)),
        }
    }

    /// Patches `target` with `patch` (any type but `Apply`).
    pub(crate) fn patch(self, target: Value, patch: &Value) -> Result<Value, String> {
        match self {
            Self::Json => json_patch(target, patch),
            Self::Strategic => {
                let mut target = target;
                merge_patch(&mut target, &without_directives(patch));
                Ok(target)
            }
            Self::Merge | Self::Apply => {
                let mut target = target;
                merge_patch(&mut target, patch);
                Ok(target)
            }
        }
    }
}

/// RFC 7386 JSON merge patch: objects merge, `null` removes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(map) = target.as_object_mut() {
        for (k, v) in fields {
            if v.is_null() {
                map.remove(k);
            } else {
                merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// A strategic merge patch less its `$patch`, `$retainKeys`, `$setElementOrder/…` and other
/// directives.
fn without_directives(patch: &Value) -> Value {
    match patch {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), without_directives(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The reference tokens of a JSON pointer: `/a/b~1c` → `a`, `b/c`.
fn pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON pointer {path:?} does not start with /"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// An array index token, at most `max`.
fn index(token: &str, max: usize) -> Result<usize, String> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    match token.parse::<usize>() {
        Ok(i) if valid && i <= max => Ok(i),
        _ => Err(format!("array index {token:?} is out of range")),
    }
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(doc, |v, t| match v {
        Value::Object(map) => map.get(t),
        Value::Array(items) => items.get(index(t, usize::MAX).ok()?),
        _ => None,
    })
}

fn get_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    tokens.iter().try_fold(doc, |v, t| match v {
        Value::Object(map) => map.get_mut(t),
        Value::Array(items) => items.get_mut(index(t, usize::MAX).ok()?),
        _ => None,
    })
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent) {
        Some(Value::Object(map)) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            let at = if last == "-" {
                items.len()
            } else {
                index(last, items.len())?
            };
            items.insert(at, value);
            Ok(())
        }
        _ => Err("the parent of the path does not exist".into()),
    }
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let Some((last, parent)) = tokens.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    let removed = match get_mut(doc, parent) {
        Some(Value::Object(map)) => map.remove(last),
        Some(Value::Array(items)) if !items.is_empty() => {
            let at = index(last, items.len() - 1)?;
            Some(items.remove(at))
        }
        _ => None,
    };
    removed.ok_or_else(|| "the path does not exist".into())
}

/// Applies one operation of a JSON patch.
fn operate(doc: &mut Value, op: &Value) -> Result<(), String> {
    let path = pointer(op["path"].as_str().ok_or("an operation without a path")?)?;
    let from = || pointer(op["from"].as_str().ok_or("an operation without from")?);
    let value = || {
        op.get("value")
            .cloned()
            .ok_or("an operation without a value")
    };
    match op["op"].as_str().unwrap_or_default() {
        "add" => add(doc, &path, value()?),
        "remove" => remove(doc, &path).map(drop),
        "replace" => {
            let target = get_mut(doc, &path).ok_or("the path to replace does not exist")?;
            *target = value()?;
            Ok(())
        }
        "move" => {
            let moved = remove(doc, &from()?)?;
            add(doc, &path, moved)
        }
        "copy" => {
            let copied = get(doc, &from()?)
                .cloned()
                .ok_or("the path to copy does not exist")?;
            add(doc, &path, copied)
        }
        "test" => {
            // A missing path tests equal to null, as the real server's library has it.
            let expected = value()?;
            if get(doc, &path).unwrap_or(&Value::Null) == &expected {
                Ok(())
            } else {
                Err(format!("testing value {} failed", op["path"]))
            }
        }
        other => Err(format!("unknown operation {other:?}")),
    }
}

/// RFC 6902: every operation in order, or none.
pub(crate) fn json_patch(mut doc: Value, ops: &Value) -> Result<Value, String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch is an array of operations")?;
    for op in ops {
        operate(&mut doc, op)?;
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patches_merge_objects_and_null_removes() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(doc, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patches_do_every_operation() {
        let doc = json!({"metadata": {"finalizers": ["x"]}, "a/b": {"~c": 1}});
        let ops = json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "x"},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "y"},
            {"op": "remove", "path": "/metadata/finalizers/0"},
            {"op": "replace", "path": "/a~1b/~0c", "value": 2},
            {"op": "copy", "from": "/a~1b", "path": "/copy"},
            {"op": "move", "from": "/copy", "path": "/moved"},
            {"op": "test", "path": "/missing", "value": null},
        ]);
        assert_eq!(
            json_patch(doc, &ops).unwrap(),
            json!({"metadata": {"finalizers": ["y"]}, "a/b": {"~c": 2}, "moved": {"~c": 2}})
        );
    }

    #[test]
    fn json_patches_fail_whole() {
        let doc = json!({"metadata": {}});
        let failing = [
            json!([{"op": "test", "path": "/metadata/finalizers", "value": ["x"]}]),
            json!([{"op": "remove", "path": "/metadata/finalizers/0"}]),
            json!([{"op": "add", "path": "/a/b", "value": 1}]),
            json!([{"op": "replace", "path": "/x", "value": 1}]),
            json!([{"op": "add", "path": "/metadata/l", "value": []}, {"op": "add", "path": "/metadata/l/01", "value": 1}]),
            json!({"op": "add"}),
        ];
        for ops in failing {
            assert!(json_patch(doc.clone(), &ops).is_err(), "{ops}");
        }
    }

    #[test]
    fn strategic_directives_are_dropped() {
        let patch = json!({"$patch": "merge", "spec": {"$retainKeys": ["a"], "a": 1}});
        assert_eq!(without_directives(&patch), json!({"spec": {"a": 1}}));
    }
}
