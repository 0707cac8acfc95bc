//! Requests to a kind's objects: GET (one, or a LIST with selectors), POST, PUT, PATCH and
//! DELETE (one, or a collection with selectors), on the object and on its `/status` and
//! `/scale` subresources where the kind has them. The rules every write keeps are in
//! `writes`; deletion and garbage collection in `delete`; server-side apply in `apply`.
//!
//! `dryRun` is not honoured (a dry run writes), and `limit`/`continue` are ignored (a LIST
//! answers everything, with no continue token).

use crate::apply;
use crate::delete::{self, DeleteOptions};
use crate::kinds::Kind;
use crate::meta;
use crate::patch::PatchType;
use crate::query::Query;
use crate::respond::{Answer, Body, Failure, respond};
use crate::selectors::Filter;
use crate::store::State;
use crate::table::Form;
use crate::writes::{self, Manager, Part};
use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// Which objects a request is about.
#[derive(Debug)]
pub(crate) struct Target {
    /// Empty for cluster-scoped kinds, and for requests across namespaces.
    pub namespace: String,
    /// `None` for the collection.
    pub name: Option<String>,
    pub sub: Option<String>,
}

/// What a request to objects carries.
pub(crate) struct Call<'a> {
    pub method: &'a Method,
    pub accept: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
    pub query: &'a Query,
}

/// The part of an object a request names.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sub {
    Main,
    Status,
    Scale,
}

pub(crate) fn serve(
    st: &mut State,
    kind: &Kind,
    target: &Target,
    call: &Call<'_>,
) -> Response<Body> {
    respond(answer(st, kind, target, call))
}

fn answer(st: &mut State, kind: &Kind, target: &Target, call: &Call<'_>) -> Answer {
    let ns = target.namespace.as_str();
    let across_namespaces = kind.namespaced && ns.is_empty();
    let sub = match target.sub.as_deref() {
        None => Sub::Main,
        Some("status") if kind.status => Sub::Status,
        Some("scale") if kind.scale => Sub::Scale,
        Some(other) => return Err(Failure::no_route(&format!("{}/{other}", kind.plural))),
    };
    match (call.method, target.name.as_deref()) {
        (&Method::GET, None) if sub == Sub::Main => list(st, kind, ns, call),
        _ if across_namespaces => Err(Failure::no_route(&format!(
            "{} without a namespace",
            kind.resource()
        ))),
        (&Method::GET, Some(name)) => get(st, kind, ns, name, sub, call),
        (&Method::POST, None) if sub == Sub::Main => create(st, kind, ns, call),
        (&Method::PUT, Some(name)) => replace(st, kind, ns, name, sub, call),
        (&Method::PATCH, Some(name)) => patch(st, kind, ns, name, sub, call),
        (&Method::DELETE, Some(name)) if sub == Sub::Main => {
            let options = DeleteOptions::parse(call.query, call.body)?;
            let object = delete::delete(st, kind, ns, name, &options)?;
            Ok((StatusCode::OK, object))
        }
        (&Method::DELETE, None) if sub == Sub::Main => delete_collection(st, kind, ns, call),
        (method, _) => Err(Failure::method_not_allowed(&format!(
            "{method} {}",
            kind.resource()
        ))),
    }
}

fn list(st: &State, kind: &Kind, ns: &str, call: &Call<'_>) -> Answer {
    let filter = Filter::from_query(call.query)?;
    let items: Vec<Value> = st
        .of_kind(kind, ns)
        .into_iter()
        .filter(|o| filter.matches(o))
        .collect();
    let form = Form::of(call.accept);
    Ok((StatusCode::OK, form.list(kind, items, st.revision)))
}

fn get(st: &State, kind: &Kind, ns: &str, name: &str, sub: Sub, call: &Call<'_>) -> Answer {
    let object = st
        .stored(kind, ns, name)
        .ok_or_else(|| Failure::not_found(kind, name))?;
    if sub == Sub::Scale {
        return Ok((StatusCode::OK, scale_of(object)));
    }
    let form = Form::of(call.accept);
    Ok((StatusCode::OK, form.object(kind, object, st.revision)))
}

/// The body as JSON.
fn body_json(body: &[u8]) -> Result<Value, Failure> {
    serde_json::from_slice(body)
        .map_err(|e| Failure::bad_request(format!("the body of the request is not JSON: {e}")))
}

fn create(st: &mut State, kind: &Kind, ns: &str, call: &Call<'_>) -> Answer {
    let object = body_json(call.body)?;
    let manager = Manager::from_query(call.query, "Update");
    let created = writes::create(st, kind, ns, object, manager.as_ref())?;
    Ok((StatusCode::CREATED, created))
}

fn replace(st: &mut State, kind: &Kind, ns: &str, name: &str, sub: Sub, call: &Call<'_>) -> Answer {
    let body = body_json(call.body)?;
    if let Some(given) = meta::name(&body)
        && given != name
    {
        return Err(Failure::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    let manager = Manager::from_query(call.query, "Update");
    let manager = manager.as_ref();
    let object = match sub {
        Sub::Main => writes::update(st, kind, ns, name, Part::Main, manager, |_| Ok(body))?,
        Sub::Status => writes::update(st, kind, ns, name, Part::Status, manager, |_| Ok(body))?,
        Sub::Scale => {
            let object = writes::update(st, kind, ns, name, Part::Main, manager, |o| {
                Ok(with_replicas(o, &body))
            })?;
            scale_of(&object)
        }
    };
    Ok((StatusCode::OK, object))
}

fn patch(st: &mut State, kind: &Kind, ns: &str, name: &str, sub: Sub, call: &Call<'_>) -> Answer {
    let patch_type = PatchType::of(call.content_type, kind)?;
    if patch_type == PatchType::Apply {
        let part = match sub {
            Sub::Main => Part::Main,
            Sub::Status => Part::Status,
            Sub::Scale => return Err(Failure::unsupported_patch(call.content_type)),
        };
        return apply::apply(st, kind, ns, name, part, call.query, call.body);
    }
    let body = body_json(call.body)?;
    let patched = |target: Value| {
        patch_type
            .patch(target, &body)
            .map_err(|e| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e))
    };
    let manager = Manager::from_query(call.query, "Update");
    let manager = manager.as_ref();
    let object = match sub {
        Sub::Main => writes::update(st, kind, ns, name, Part::Main, manager, patched)?,
        Sub::Status => writes::update(st, kind, ns, name, Part::Status, manager, patched)?,
        Sub::Scale => {
            let object = writes::update(st, kind, ns, name, Part::Main, manager, |o| {
                let scale = patched(scale_of(&o))?;
                Ok(with_replicas(o, &scale))
            })?;
            scale_of(&object)
        }
    };
    Ok((StatusCode::OK, object))
}

/// Deletes every object the selectors match; answers them as a list.
fn delete_collection(st: &mut State, kind: &Kind, ns: &str, call: &Call<'_>) -> Answer {
    let filter = Filter::from_query(call.query)?;
    let options = DeleteOptions::parse(call.query, call.body)?;
    let names: Vec<String> = st
        .of_kind(kind, ns)
        .iter()
        .filter(|o| filter.matches(o))
        .filter_map(|o| meta::name(o).map(String::from))
        .collect();
    let mut items = Vec::new();
    for name in names {
        // An object the collector took with an earlier one is simply gone.
        if let Ok(object) = delete::delete(st, kind, ns, &name, &options) {
            items.push(object);
        }
    }
    Ok((StatusCode::OK, Form::Object.list(kind, items, st.revision)))
}

/// The `autoscaling/v1` `Scale` of an object with a scale subresource.
fn scale_of(object: &Value) -> Value {
    let meta = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"]},
        "status": {
            "replicas": object["status"]["replicas"].as_u64().unwrap_or(0),
            "selector": object["status"]["selector"],
        },
    })
}

/// `object` with the `spec.replicas` of `scale`.
fn with_replicas(mut object: Value, scale: &Value) -> Value {
    let replicas = scale["spec"]["replicas"].clone();
    match object.get_mut("spec").and_then(Value::as_object_mut) {
        Some(spec) => {
            spec.insert("replicas".into(), replicas);
        }
        None => object["spec"] = json!({"replicas": replicas}),
    }
    object
}
