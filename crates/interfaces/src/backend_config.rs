//! Reading a backend's `config` map from the manifest: typed getters that name the field they
//! read, and a final check that no key was left unread (unknown keys are errors).

use crate::FieldError;
use std::collections::BTreeMap;

/// The `config` of one `hostInterfaces[]` entry, consumed key by key.
pub struct BackendConfig<'a> {
    /// Field path of the map, e.g. `hostInterfaces[0].config`.
    at: String,
    entries: BTreeMap<&'a str, &'a serde_yaml::Value>,
}

impl<'a> BackendConfig<'a> {
    pub(crate) fn new(at: String, map: &'a BTreeMap<String, serde_yaml::Value>) -> Self {
        Self {
            at,
            entries: map.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        }
    }

    /// The field path of `key`.
    pub fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.at)
    }

    /// An error about `key`.
    pub fn error(&self, key: &str, message: impl Into<String>) -> FieldError {
        FieldError::new(self.field(key), message)
    }

    /// A required string.
    pub fn string(&mut self, key: &str, expected: &str) -> Result<String, FieldError> {
        self.optional_string(key, expected)?
            .ok_or_else(|| self.error(key, format!("missing: expected {expected}")))
    }

    /// An optional string.
    pub fn optional_string(
        &mut self,
        key: &str,
        expected: &str,
    ) -> Result<Option<String>, FieldError> {
        match self.entries.remove(key) {
            None => Ok(None),
            Some(serde_yaml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(other) => Err(self.error(
                key,
                format!("expected {expected}, found {}", describe(other)),
            )),
        }
    }

    /// An optional list of strings (absent = empty).
    pub fn strings(&mut self, key: &str, expected: &str) -> Result<Vec<String>, FieldError> {
        let Some(value) = self.entries.remove(key) else {
            return Ok(Vec::new());
        };
        let serde_yaml::Value::Sequence(items) = value else {
            return Err(self.error(
                key,
                format!("expected a list of {expected}, found {}", describe(value)),
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                serde_yaml::Value::String(s) if !s.is_empty() => Ok(s.clone()),
                other => Err(self.error(
                    &format!("{key}[{i}]"),
                    format!("expected {expected}, found {}", describe(other)),
                )),
            })
            .collect()
    }

    /// Fails on the first key no getter asked for; `known` lists the keys the backend takes.
    pub fn finish(self, known: &[&str]) -> Result<(), FieldError> {
        match self.entries.keys().next() {
            None => Ok(()),
            Some(key) => Err(self.error(
                key,
                if known.is_empty() {
                    "unknown key: this backend takes no settings".to_string()
                } else {
                    format!("unknown key: expected one of {}", known.join(", "))
                },
            )),
        }
    }
}

fn describe(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::Null => "nothing".into(),
        serde_yaml::Value::Bool(b) => format!("`{b}`"),
        serde_yaml::Value::Number(n) => format!("the number {n}"),
        serde_yaml::Value::String(s) if s.trim().is_empty() => "an empty string".into(),
        serde_yaml::Value::String(s) => format!("`{s}`"),
        serde_yaml::Value::Sequence(_) => "a list".into(),
        serde_yaml::Value::Mapping(_) => "a map".into(),
        serde_yaml::Value::Tagged(_) => "a tagged value".into(),
    }
}
