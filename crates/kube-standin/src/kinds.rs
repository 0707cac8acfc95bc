//! The resource types the server knows: a few built-in ones an operator needs (`Namespace`,
//! both `Event` APIs, `Lease`, `CustomResourceDefinition`) and one per stored
//! `CustomResourceDefinition`, read from the CRD as the real server reads it.

use serde_json::{Value, json};

/// The resource name of `CustomResourceDefinition`s, whose objects define more kinds.
pub(crate) const CRD_RESOURCE: &str = "customresourcedefinitions.apiextensions.k8s.io";

/// The resource name of `Namespace`s, whose removal takes their contents along.
pub(crate) const NAMESPACE_RESOURCE: &str = "namespaces";

/// A resource type the server serves.
#[derive(Clone, Debug)]
pub(crate) struct Kind {
    /// The API group; empty for the core group (`/api/v1`).
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// The OpenAPI v3 schema of an object (kubectl downloads it before `apply`).
    pub schema: Value,
    /// The name of the schema in the OpenAPI document.
    pub schema_name: String,
    /// Printer columns as in a CRD's `additionalPrinterColumns`, for `kubectl get`.
    pub columns: Vec<Value>,
    /// Whether it has a scale subresource (`spec.replicas` ↔ `status.replicas`).
    pub scale: bool,
    /// Whether it has a status subresource: writes to the object then keep `status`, and
    /// writes to `/status` change nothing else.
    pub status: bool,
    /// Whether the server keeps `metadata.generation` for it.
    pub generation: bool,
    /// Whether it is built in (not from a CRD): only those take strategic merge patches.
    pub builtin: bool,
}

impl Kind {
    /// `group/version`, or `v1` for the core group.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or `plural` in the core group), as messages and kubectl name it.
    pub(crate) fn resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The path prefix of its API: `/api/v1` or `/apis/{group}/{version}`.
    pub(crate) fn api_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// Whether `name` names it: its plural, or `plural.group`.
    pub(crate) fn is_called(&self, name: &str) -> bool {
        name == self.plural || name == self.resource()
    }
}

/// The schema of the built-in kinds: any object (the stand-in does not validate them).
fn any_object() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A printer column.
fn column(name: &str, kind: &str, json_path: &str) -> Value {
    json!({"name": name, "type": kind, "jsonPath": json_path})
}

/// The `AGE` column every kind without its own columns gets, as on a real server.
fn age_column() -> Value {
    column("Age", "date", ".metadata.creationTimestamp")
}

/// A built-in kind with the common defaults: namespaced, no subresources, no generation.
fn builtin(group: &str, kind: &str, plural: &str, schema_name: &str) -> Kind {
    Kind {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced: true,
        short_names: Vec::new(),
        categories: Vec::new(),
        schema: any_object(),
        schema_name: schema_name.into(),
        columns: vec![age_column()],
        scale: false,
        status: false,
        generation: false,
        builtin: true,
    }
}

/// The kinds every stand-in serves, whatever CRDs it has.
pub(crate) fn builtins() -> Vec<Kind> {
    let namespace = Kind {
        namespaced: false,
        short_names: vec!["ns".into()],
        columns: vec![column("Status", "string", ".status.phase"), age_column()],
        status: true,
        ..builtin(
            "",
            "Namespace",
            "namespaces",
            "io.k8s.api.core.v1.Namespace",
        )
    };
    let core_event = Kind {
        short_names: vec!["ev".into()],
        columns: vec![
            column("Type", "string", ".type"),
            column("Reason", "string", ".reason"),
            column("Object", "string", ".involvedObject.name"),
            column("Message", "string", ".message"),
            age_column(),
        ],
        ..builtin("", "Event", "events", "io.k8s.api.core.v1.Event")
    };
    let event = Kind {
        short_names: vec!["ev".into()],
        columns: vec![
            column("Type", "string", ".type"),
            column("Reason", "string", ".reason"),
            column("Object", "string", ".regarding.name"),
            column("Note", "string", ".note"),
            age_column(),
        ],
        ..builtin(
            "events.k8s.io",
            "Event",
            "events",
            "io.k8s.api.events.v1.Event",
        )
    };
    let lease = Kind {
        columns: vec![
            column("Holder", "string", ".spec.holderIdentity"),
            age_column(),
        ],
        ..builtin(
            "coordination.k8s.io",
            "Lease",
            "leases",
            "io.k8s.api.coordination.v1.Lease",
        )
    };
    let crd = Kind {
        namespaced: false,
        short_names: vec!["crd".into(), "crds".into()],
        columns: vec![column("Created At", "date", ".metadata.creationTimestamp")],
        status: true,
        generation: true,
        ..builtin(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
        )
    };
    vec![namespace, core_event, event, lease, crd]
}

/// The strings of a JSON array of strings.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The kind a `CustomResourceDefinition` defines (from its first version), or why it
/// defines none.
pub(crate) fn kind_of(crd: &Value) -> Result<Kind, String> {
    let spec = &crd["spec"];
    let version = &spec["versions"][0];
    let text = |v: &Value, field: &str| -> Result<String, String> {
        v.as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| format!("{field}: Required value"))
    };
    let group = text(&spec["group"], "spec.group")?;
    let plural = text(&spec["names"]["plural"], "spec.names.plural")?;
    let kind = text(&spec["names"]["kind"], "spec.names.kind")?;
    let version_name = text(&version["name"], "spec.versions[0].name")?;
    let expected = format!("{plural}.{group}");
    if crd["metadata"]["name"] != expected.as_str() {
        return Err(format!(
            "metadata.name: Invalid value: {}: must be spec.names.plural+\".\"+spec.group",
            crd["metadata"]["name"]
        ));
    }
    let mut columns = version["additionalPrinterColumns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if columns.is_empty() {
        columns.push(age_column());
    }
    let reversed: Vec<&str> = group.split('.').rev().collect();
    Ok(Kind {
        schema_name: format!("{}.{version_name}.{kind}", reversed.join(".")),
        singular: spec["names"]["singular"]
            .as_str()
            .map_or_else(|| kind.to_lowercase(), String::from),
        namespaced: spec["scope"] == "Namespaced",
        short_names: strings(&spec["names"]["shortNames"]),
        categories: strings(&spec["names"]["categories"]),
        schema: version["schema"]["openAPIV3Schema"].clone(),
        columns,
        scale: version["subresources"]["scale"].is_object(),
        status: version["subresources"]["status"].is_object(),
        generation: true,
        builtin: false,
        group,
        version: version_name,
        kind,
        plural,
    })
}

/// The `status` the real server gives a CRD it serves: its names accepted, established.
pub(crate) fn crd_status(crd: &Value, now: &str) -> Value {
    let condition = |kind: &str, reason: &str, message: &str| json!({"type": kind, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    json!({
        "acceptedNames": crd["spec"]["names"],
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": [crd["spec"]["versions"][0]["name"]],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str) -> Value {
        json!({
            "metadata": {"name": name},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wg"]},
                "versions": [{"name": "v1", "subresources": {"status": {}}}]},
        })
    }

    #[test]
    fn a_crd_defines_its_kind() {
        let kind = kind_of(&crd("widgets.example.com")).unwrap();
        assert_eq!(kind.resource(), "widgets.example.com");
        assert_eq!(kind.api_version(), "example.com/v1");
        assert_eq!(kind.singular, "widget");
        assert_eq!(kind.schema_name, "com.example.v1.Widget");
        assert!(kind.status && !kind.scale && kind.namespaced);
        assert_eq!(kind.columns, vec![age_column()]);
    }

    #[test]
    fn a_crd_must_be_named_plural_dot_group() {
        assert!(
            kind_of(&crd("widgets"))
                .unwrap_err()
                .contains("metadata.name")
        );
        assert!(kind_of(&json!({})).is_err());
    }

    #[test]
    fn builtins_are_named_like_the_real_ones() {
        let names: Vec<String> = builtins().iter().map(Kind::resource).collect();
        assert_eq!(
            names,
            [
                "namespaces",
                "events",
                "events.events.k8s.io",
                "leases.coordination.k8s.io",
                CRD_RESOURCE
            ]
        );
    }
}
