//! JSON schemas for the Kubernetes CRDs (feature `crd`): the manifest types derive
//! `schemars::JsonSchema`, and the few shapes a derive cannot express in a Kubernetes
//! *structural* schema are written here.

use crate::types::{IntOrPercent, RollingUpdate, Strategy};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::borrow::Cow;

/// A map whose values are any YAML (a backend's own settings): Kubernetes keeps whatever
/// is there instead of pruning it.
pub(crate) fn free_form_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// `1` or `"25%"`: Kubernetes' own int-or-string marker.
impl JsonSchema for IntOrPercent {
    fn schema_name() -> Cow<'static, str> {
        "IntOrPercent".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "x-kubernetes-int-or-string": true })
    }
}

/// `{type: RollingUpdate, rollingUpdate: {...}}` or `{type: Recreate}`: one object with a
/// discriminating `type`, as Kubernetes' own `DeploymentStrategy` (a structural schema has
/// no `oneOf` of differently shaped objects).
impl JsonSchema for Strategy {
    fn schema_name() -> Cow<'static, str> {
        "Strategy".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let rolling = generator.subschema_for::<RollingUpdate>();
        json_schema!({
            "description": "How replicas move to a new template.",
            "type": "object",
            "properties": {
                "type": {
                    "description": "`RollingUpdate` (default): new replicas start next to old ones within maxSurge and maxUnavailable. `Recreate`: every old replica stops before new ones start.",
                    "type": "string",
                    "enum": ["RollingUpdate", "Recreate"],
                },
                "rollingUpdate": rolling,
            },
            "required": ["type"],
        })
    }
}
