//! Label and field selectors of LIST, WATCH and collection DELETE.
//!
//! Labels: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`, joined by commas,
//! as the real server reads them. Fields: `path=value`, `path==value`, `path!=value`, where
//! the stand-in accepts any dotted path (the real server accepts `metadata.name`,
//! `metadata.namespace` and a few per kind, and refuses others).

use crate::query::Query;
use crate::respond::Failure;
use serde_json::Value;

/// What one label requirement asks of a label's value.
#[derive(Debug, PartialEq)]
enum LabelTest {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    Absent,
}

/// The selectors of a request; an empty one matches everything.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    labels: Vec<(String, LabelTest)>,
    /// (dotted path, whether it must equal, value).
    fields: Vec<(String, bool, String)>,
}

impl Filter {
    /// The `labelSelector` and `fieldSelector` of a request.
    pub(crate) fn from_query(query: &Query) -> Result<Self, Failure> {
        let labels = parse_labels(query.get("labelSelector").unwrap_or_default())
            .map_err(|e| Failure::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = parse_fields(query.get("fieldSelector").unwrap_or_default())
            .map_err(|e| Failure::bad_request(format!("invalid field selector: {e}")))?;
        Ok(Self { labels, fields })
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.labels
            .iter()
            .all(|(key, test)| label_matches(labels[key].as_str(), test))
            && self
                .fields
                .iter()
                .all(|(path, equal, value)| (field_value(object, path) == *value) == *equal)
    }
}

fn label_matches(value: Option<&str>, test: &LabelTest) -> bool {
    match (test, value) {
        (LabelTest::Exists, v) => v.is_some(),
        (LabelTest::Absent, v) => v.is_none(),
        (LabelTest::Equals(want), Some(v)) => v == want,
        (LabelTest::In(set), Some(v)) => set.iter().any(|s| s == v),
        (LabelTest::Equals(_) | LabelTest::In(_), None) => false,
        (LabelTest::NotEquals(want), v) => v != Some(want.as_str()),
        (LabelTest::NotIn(set), v) => v.is_none_or(|v| set.iter().all(|s| s != v)),
    }
}

/// The value at a dotted path as text (`""` when missing), as field selectors compare it.
fn field_value(object: &Value, path: &str) -> String {
    let value = path.split('.').fold(object, |v, field| &v[field]);
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Splits at commas outside parentheses: `a in (x,y),b` → `a in (x,y)`, `b`.
fn split_requirements(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_labels(text: &str) -> Result<Vec<(String, LabelTest)>, String> {
    split_requirements(text)
        .into_iter()
        .map(parse_label)
        .collect()
}

fn parse_label(part: &str) -> Result<(String, LabelTest), String> {
    let key = |k: &str| -> Result<String, String> {
        let k = k.trim();
        if k.is_empty() || k.contains(char::is_whitespace) {
            Err(format!("invalid label key {k:?} in {part:?}"))
        } else {
            Ok(k.to_string())
        }
    };
    if let Some((k, v)) = part.split_once("!=") {
        return Ok((key(k)?, LabelTest::NotEquals(v.trim().into())));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok((key(k)?, LabelTest::Equals(v.trim().into())));
    }
    if let Some((k, set)) = split_set(part, " notin ") {
        return Ok((key(k)?, LabelTest::NotIn(set?)));
    }
    if let Some((k, set)) = split_set(part, " in ") {
        return Ok((key(k)?, LabelTest::In(set?)));
    }
    match part.strip_prefix('!') {
        Some(k) => Ok((key(k)?, LabelTest::Absent)),
        None => Ok((key(part)?, LabelTest::Exists)),
    }
}

/// `key OP (a,b)` split into the key and the set.
fn split_set<'a>(part: &'a str, op: &str) -> Option<(&'a str, Result<Vec<String>, String>)> {
    let (k, rest) = part.split_once(op)?;
    let set = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .map(|inner| inner.split(',').map(|s| s.trim().to_string()).collect())
        .ok_or_else(|| format!("expected a parenthesised set in {part:?}"));
    Some((k, set))
}

fn parse_fields(text: &str) -> Result<Vec<(String, bool, String)>, String> {
    split_requirements(text)
        .into_iter()
        .map(|part| {
            let (path, equal, value) = if let Some((p, v)) = part.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (p, true, v)
            } else {
                return Err(format!("{part:?} is not path=value"));
            };
            Ok((path.trim().to_string(), equal, value.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(labels: &str, fields: &str) -> Filter {
        let raw = format!("labelSelector={labels}&fieldSelector={fields}");
        Filter::from_query(&Query::parse(&raw.replace(' ', "+"))).unwrap()
    }

    #[test]
    fn label_selectors_match_like_the_real_server() {
        let web = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "front"}}});
        let bare = json!({"metadata": {"name": "b"}});
        let cases = [
            ("app=web", true, false),
            ("app==web,tier", true, false),
            ("app!=web", false, true),
            ("!tier", false, true),
            ("tier in (back, front)", true, false),
            ("tier notin (front)", false, true),
            ("app=web,tier!=front", false, false),
            ("", true, true),
        ];
        for (selector, on_web, on_bare) in cases {
            let f = filter(selector, "");
            assert_eq!(
                (f.matches(&web), f.matches(&bare)),
                (on_web, on_bare),
                "{selector}"
            );
        }
    }

    #[test]
    fn field_selectors_compare_dotted_paths() {
        let o = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"n": 3}});
        assert!(filter("", "metadata.name=a").matches(&o));
        assert!(filter("", "metadata.name!=b,metadata.namespace==ns").matches(&o));
        assert!(filter("", "spec.n=3").matches(&o));
        assert!(!filter("", "metadata.name=b").matches(&o));
        assert!(Filter::from_query(&Query::parse("fieldSelector=name")).is_err());
        assert!(Filter::from_query(&Query::parse("labelSelector=a+in+x")).is_err());
    }
}
