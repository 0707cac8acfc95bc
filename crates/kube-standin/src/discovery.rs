//! What clients read before they touch objects: `/version`; legacy discovery (`/api`,
//! `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`; aggregated discovery is
//! not served, so clients fall back to this); and OpenAPI v3 (kubectl downloads it before
//! `apply`: each operation says it takes `fieldValidation`, and each kind has its schema).

use crate::kinds::Kind;
use crate::respond::{Body, Failure, json_response};
use crate::store::State;
use http::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Answers a discovery request; `None` if `segments` is not one.
pub(crate) fn serve(st: &State, method: &Method, segments: &[&str]) -> Option<Response<Body>> {
    if method != Method::GET {
        return None;
    }
    let ok = |v: Value| Some(json_response(StatusCode::OK, &v));
    match segments {
        ["version"] => ok(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-hearth-standin",
            "platform": "linux/amd64",
        })),
        ["api"] => ok(json!({
            "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [],
        })),
        ["api", "v1"] => Some(resource_list(st, "", "v1")),
        ["apis"] => ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups(st)})),
        ["apis", group] => Some(match groups(st).into_iter().find(|g| g["name"] == *group) {
            Some(g) => json_response(StatusCode::OK, &g),
            None => Failure::no_route(&format!("/apis/{group}")).response(),
        }),
        ["apis", group, version] => Some(resource_list(st, group, version)),
        ["openapi", "v3"] => ok(openapi_index(st)),
        ["openapi", "v3", "api", "v1"] => ok(openapi(st, "", "v1")),
        ["openapi", "v3", "apis", group, version] => ok(openapi(st, group, version)),
        _ => None,
    }
}

/// The kinds of one group version.
fn kinds_of<'a>(st: &'a State, group: &'a str, version: &'a str) -> impl Iterator<Item = &'a Kind> {
    st.kinds
        .iter()
        .filter(move |k| k.group == group && k.version == version)
}

/// `APIGroup`s of every named group, one version each.
fn groups(st: &State) -> Vec<Value> {
    let versions: BTreeMap<&str, &str> = st
        .kinds
        .iter()
        .filter(|k| !k.group.is_empty())
        .map(|k| (k.group.as_str(), k.version.as_str()))
        .collect();
    versions
        .iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [gv], "preferredVersion": gv})
        })
        .collect()
}

/// The `APIResourceList` of a group version: each kind, and its subresources.
fn resource_list(st: &State, group: &str, version: &str) -> Response<Body> {
    let resources: Vec<Value> = kinds_of(st, group, version)
        .flat_map(resources_of)
        .collect();
    if resources.is_empty() {
        return Failure::no_route(&format!("/apis/{group}/{version}")).response();
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn resources_of(k: &Kind) -> Vec<Value> {
    let sub = |name: &str| json!({"name": format!("{}/{name}", k.plural), "singularName": "", "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]});
    let mut all = vec![json!({
        "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
        "kind": k.kind, "shortNames": k.short_names, "categories": k.categories,
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    })];
    if k.status {
        all.push(sub("status"));
    }
    if k.scale {
        let mut scale = sub("scale");
        scale["group"] = json!("autoscaling");
        scale["version"] = json!("v1");
        scale["kind"] = json!("Scale");
        all.push(scale);
    }
    all
}

/// `/openapi/v3`: where each group version's document is.
fn openapi_index(st: &State) -> Value {
    let mut paths = Map::new();
    for k in &st.kinds {
        let key = k.api_prefix().trim_start_matches('/').to_string();
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}")}),
        );
    }
    json!({"paths": paths})
}

/// The OpenAPI v3 document of a group version.
fn openapi(st: &State, group: &str, version: &str) -> Value {
    let mut schemas = Map::new();
    let mut paths = Map::new();
    for k in kinds_of(st, group, version) {
        // kubectl validates on the server (`?fieldValidation=Strict`) when the operations it
        // would call say they take that parameter.
        let gvk = json!({"group": k.group, "version": k.version, "kind": k.kind});
        let operation = json!({
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "responses": {},
        });
        let base = if k.namespaced {
            format!("{}/namespaces/{{namespace}}/{}", k.api_prefix(), k.plural)
        } else {
            format!("{}/{}", k.api_prefix(), k.plural)
        };
        paths.insert(base.clone(), json!({"post": operation}));
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"patch": operation, "put": operation}),
        );
        let mut schema = k.schema.clone();
        if schema.is_object() {
            schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        }
        schemas.insert(k.schema_name.clone(), schema);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "hearth stand-in", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
