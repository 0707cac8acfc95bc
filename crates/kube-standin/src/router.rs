//! One request, from HTTP to a handler: recorded, then routed to discovery, a watch, or the
//! objects of a kind.

use crate::discovery;
use crate::kinds::Kind;
use crate::lock;
use crate::objects::{self, Call, Target};
use crate::query::Query;
use crate::respond::{Body, Failure};
use crate::store::State;
use crate::watch::{self, Watch};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::{Arc, Mutex};

pub(crate) async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query().unwrap_or_default());
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let accept = header(http::header::ACCEPT);
    let content_type = header(http::header::CONTENT_TYPE);
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Failure::bad_request(format!("reading the body: {e}")).response(),
    };
    let mut st = lock(&state);
    st.requests.push(format!("{method} {path}"));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let Some(resp) = discovery::serve(&st, &method, &segments) {
        return resp;
    }
    let Some((kind, target)) = resolve(&st, &segments) else {
        return Failure::no_route(&path).response();
    };
    if method == Method::GET && target.name.is_none() && query.flag("watch") {
        drop(st);
        return match Watch::parse(kind, &target.namespace, &query, &accept) {
            Ok(w) => watch::start(state, w),
            Err(failure) => failure.response(),
        };
    }
    if !body.is_empty() && !is_json_family(&content_type) {
        return Failure::new(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the stand-in takes JSON bodies only, not {content_type}"),
        )
        .response();
    }
    let call = Call {
        method: &method,
        accept: &accept,
        content_type: &content_type,
        body: &body,
        query: &query,
    };
    objects::serve(&mut st, &kind, &target, &call)
}

/// The kind and objects a path names: `/api/v1/…` or `/apis/{group}/{version}/…`, then
/// `namespaces/{ns}/{plural}[/{name}[/{sub}]]` for a namespaced kind or
/// `{plural}[/{name}[/{sub}]]` (a cluster-scoped kind, or a namespaced one across
/// namespaces). `/api/v1/namespaces/{name}` is the `Namespace` itself.
fn resolve(st: &State, segments: &[&str]) -> Option<(Kind, Target)> {
    let (group, version, rest) = match segments {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if let ["namespaces", ns, plural, tail @ ..] = rest
        && let Some(kind) = st.kind(group, version, plural).filter(|k| k.namespaced)
    {
        return target(kind, ns, tail);
    }
    let [plural, tail @ ..] = rest else {
        return None;
    };
    target(st.kind(group, version, plural)?, "", tail)
}

fn target(kind: &Kind, namespace: &str, tail: &[&str]) -> Option<(Kind, Target)> {
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some(*name), None),
        [name, sub] => (Some(*name), Some(*sub)),
        _ => return None,
    };
    Some((
        kind.clone(),
        Target {
            namespace: namespace.into(),
            name: name.map(String::from),
            sub: sub.map(String::from),
        },
    ))
}

/// Whether a body of this `Content-Type` is JSON (plain, a patch, or an apply; protobuf and
/// CBOR, which kubectl's typed commands send for built-in kinds, are not served).
fn is_json_family(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    media.is_empty() || media.ends_with("json") || media == "application/apply-patch+yaml"
}
