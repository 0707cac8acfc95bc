//! A **stand-in** Kubernetes API server for the tests. No real API server can run on this
//! machine (Debian ships only the client, and no registry here ships the server), so the
//! tests talk to this one, in memory, over real HTTP, with the real `kubectl`.
//!
//! It implements what kubectl and the operator use, and nothing more: `/version`; discovery
//! (`/api`, `/apis`, the groups' resource lists, legacy form); OpenAPI v3 for the hearth group
//! (kubectl downloads it before `apply`); and GET, LIST (JSON, or a `Table` with the CRD's
//! printer columns for `kubectl get`), create and merge patch of hearth objects and of their
//! `/status` and `/scale` subresources, with `resourceVersion`, `uid`, `creationTimestamp`,
//! and a `generation` that counts spec changes only; and WATCH from a `resourceVersion`, one
//! JSON event per line. What it does not do yet (server-side apply, finalizers, garbage
//! collection) answers `405`, so a test that needs it fails loudly instead of passing by
//! accident.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Every answer's body: whole, or a watch's stream of events.
type Body = UnsyncBoxBody<Bytes, Infallible>;
use std::time::{SystemTime, UNIX_EPOCH};

/// A resource type the server knows, from its CRD.
#[derive(Clone)]
struct Kind {
    group: String,
    version: String,
    kind: String,
    plural: String,
    singular: String,
    namespaced: bool,
    short_names: Vec<String>,
    categories: Vec<String>,
    schema: Value,
    columns: Vec<Value>,
    /// Whether it has a scale subresource (`spec.replicas` ↔ `status.replicas`).
    scale: bool,
}

#[derive(Default)]
struct State {
    kinds: Vec<Kind>,
    /// (plural, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    revision: u64,
    /// Every request as `METHOD path`, for tests to inspect.
    requests: Vec<String>,
    /// Every change, for watches: (resourceVersion, plural, namespace, type, object).
    events: Vec<(u64, String, String, &'static str, Value)>,
    /// Woken on every change.
    changed: Arc<Notify>,
}

/// The running stand-in.
pub struct ApiServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl ApiServer {
    /// Starts serving `crds` (CustomResourceDefinition objects as JSON) on a free port.
    pub fn start(crds: &[Value]) -> Self {
        let kinds = crds.iter().map(kind_of).collect();
        let state = Arc::new(Mutex::new(State {
            kinds,
            ..State::default()
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::clone(&state);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            _runtime: runtime,
        }
    }

    /// A kubeconfig file for this server, in `dir`.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: standin, cluster: {{server: \"http://{}\"}}}}]\ncontexts: [{{name: standin, context: {{cluster: standin, user: test, namespace: default}}}}]\nusers: [{{name: test, user: {{token: standin}}}}]\ncurrent-context: standin\n",
                self.addr
            ),
        )
        .unwrap();
        path
    }

    /// An object, if stored.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        state
            .objects
            .get(&(plural.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// The requests served so far, as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn kind_of(crd: &Value) -> Kind {
    let spec = &crd["spec"];
    let version = &spec["versions"][0];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Kind {
        group: spec["group"].as_str().unwrap_or_default().into(),
        version: version["name"].as_str().unwrap_or_default().into(),
        kind: spec["names"]["kind"].as_str().unwrap_or_default().into(),
        plural: spec["names"]["plural"].as_str().unwrap_or_default().into(),
        singular: spec["names"]["singular"]
            .as_str()
            .unwrap_or_default()
            .into(),
        namespaced: spec["scope"] == "Namespaced",
        short_names: strings(&spec["names"]["shortNames"]),
        categories: strings(&spec["names"]["categories"]),
        schema: version["schema"]["openAPIV3Schema"].clone(),
        columns: version["additionalPrinterColumns"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        scale: version["subresources"]["scale"].is_object(),
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A `Status` failure, as the real server writes them.
fn failure(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    json_response(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
        }),
    )
}

fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Civil-from-days (Howard Hinnant's algorithm), UTC.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn handle(state: &Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let accept = header(http::header::ACCEPT);
    let content_type = header(http::header::CONTENT_TYPE);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut st = state.lock().unwrap();
    st.requests.push(format!("{method} {path}"));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["version"]) => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-hearth-standin", "platform": "linux/amd64"}),
        ),
        (&Method::GET, ["api"]) => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        ),
        (&Method::GET, ["api", "v1"]) => json_response(
            StatusCode::OK,
            &json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": []}),
        ),
        (&Method::GET, ["apis"]) => {
            let mut groups: BTreeMap<String, String> = BTreeMap::new();
            for k in &st.kinds {
                groups.insert(k.group.clone(), k.version.clone());
            }
            let groups: Vec<Value> = groups
                .iter()
                .map(|(g, v)| {
                    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
                    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        (&Method::GET, ["apis", group, version]) => {
            let resources: Vec<Value> = st
                .kinds
                .iter()
                .filter(|k| k.group == *group && k.version == *version)
                .flat_map(|k| {
                    let main = json!({
                        "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
                        "kind": k.kind, "shortNames": k.short_names, "categories": k.categories,
                        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                    });
                    let status = json!({"name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]});
                    let mut all = vec![main, status];
                    if k.scale {
                        all.push(json!({"name": format!("{}/scale", k.plural), "singularName": "", "namespaced": k.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
                    }
                    all
                })
                .collect();
            if resources.is_empty() {
                return failure(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("no group version {group}/{version}"),
                );
            }
            json_response(
                StatusCode::OK,
                &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"), "resources": resources}),
            )
        }
        (&Method::GET, ["openapi", "v3"]) => {
            let mut paths = serde_json::Map::new();
            for k in &st.kinds {
                let key = format!("apis/{}/{}", k.group, k.version);
                paths.insert(
                    key.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{key}")}),
                );
            }
            json_response(StatusCode::OK, &json!({"paths": paths}))
        }
        (&Method::GET, ["openapi", "v3", "apis", group, version]) => {
            let mut schemas = serde_json::Map::new();
            let mut paths = serde_json::Map::new();
            for k in st
                .kinds
                .iter()
                .filter(|k| k.group == *group && k.version == *version)
            {
                // kubectl validates on the server (`?fieldValidation=Strict`) when the
                // operations it would call say they take that parameter.
                let gvk = json!({"group": k.group, "version": k.version, "kind": k.kind});
                let operation = json!({
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                    "responses": {},
                });
                let base = if k.namespaced {
                    format!(
                        "/apis/{}/{}/namespaces/{{namespace}}/{}",
                        k.group, k.version, k.plural
                    )
                } else {
                    format!("/apis/{}/{}/{}", k.group, k.version, k.plural)
                };
                paths.insert(base.clone(), json!({"post": operation.clone()}));
                paths.insert(
                    format!("{base}/{{name}}"),
                    json!({"patch": operation.clone(), "put": operation}),
                );
                let reversed: Vec<&str> = k.group.split('.').rev().collect();
                let mut schema = k.schema.clone();
                schema["x-kubernetes-group-version-kind"] =
                    json!([{"group": k.group, "version": k.version, "kind": k.kind}]);
                schemas.insert(
                    format!("{}.{}.{}", reversed.join("."), k.version, k.kind),
                    schema,
                );
            }
            json_response(
                StatusCode::OK,
                &json!({"openapi": "3.0.0", "info": {"title": "hearth stand-in", "version": version}, "paths": paths, "components": {"schemas": schemas}}),
            )
        }
        (_, ["apis", group, version, rest @ ..]) => {
            let (namespace, rest) = match rest {
                ["namespaces", ns, rest @ ..] => (ns.to_string(), rest),
                _ => (String::new(), rest),
            };
            let Some(kind) = st
                .kinds
                .iter()
                .find(|k| {
                    k.group == *group
                        && k.version == *version
                        && rest.first() == Some(&k.plural.as_str())
                })
                .cloned()
            else {
                return failure(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("the server could not find the requested resource: {path}"),
                );
            };
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .map(String::from)
            };
            if method == Method::GET
                && rest.len() == 1
                && matches!(param("watch").as_deref(), Some("1" | "true"))
            {
                let since = param("resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let timeout = param("timeoutSeconds")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(30u64);
                let changed = Arc::clone(&st.changed);
                drop(st);
                return watch(
                    Arc::clone(state),
                    changed,
                    kind,
                    namespace,
                    since,
                    timeout.min(60),
                );
            }
            let call = Call {
                method: &method,
                accept: &accept,
                content_type: &content_type,
                body: &body,
            };
            objects(&mut st, &kind, &namespace, &rest[1..], &call)
        }
        _ => failure(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource: {path}"),
        ),
    }
}

/// What a request to an object or collection carries.
struct Call<'a> {
    method: &'a Method,
    accept: &'a str,
    content_type: &'a str,
    body: &'a [u8],
}

/// Collection and object requests of one kind.
fn objects(
    st: &mut State,
    kind: &Kind,
    namespace: &str,
    rest: &[&str],
    call: &Call<'_>,
) -> Response<Body> {
    let (method, accept, body) = (call.method, call.accept, call.body);
    let key = |name: &str| (kind.plural.clone(), namespace.to_string(), name.to_string());
    match (method, rest) {
        (&Method::GET, []) => {
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|((p, ns, _), _)| {
                    *p == kind.plural && (namespace.is_empty() || ns == namespace)
                })
                .map(|(_, o)| o.clone())
                .collect();
            if accept.contains("as=Table") {
                return json_response(StatusCode::OK, &table(kind, &items, st.revision));
            }
            json_response(
                StatusCode::OK,
                &json!({"apiVersion": format!("{}/{}", kind.group, kind.version), "kind": format!("{}List", kind.kind), "metadata": {"resourceVersion": st.revision.to_string()}, "items": items}),
            )
        }
        (&Method::GET, [name]) => match st.objects.get(&key(name)) {
            Some(o) if accept.contains("as=Table") => json_response(
                StatusCode::OK,
                &table(kind, std::slice::from_ref(o), st.revision),
            ),
            Some(o) => json_response(StatusCode::OK, o),
            None => failure(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{}.{} \"{name}\" not found", kind.plural, kind.group),
            ),
        },
        (&Method::POST, []) => {
            let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the body is not JSON".into(),
                );
            };
            let Some(name) = object["metadata"]["name"].as_str().map(String::from) else {
                return failure(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.name: Required value".into(),
                );
            };
            if st.objects.contains_key(&key(&name)) {
                return failure(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{}.{} \"{name}\" already exists", kind.plural, kind.group),
                );
            }
            st.revision += 1;
            let meta = &mut object["metadata"];
            if kind.namespaced {
                meta["namespace"] = json!(namespace);
            }
            meta["uid"] = json!(format!("standin-{}", st.revision));
            meta["resourceVersion"] = json!(st.revision.to_string());
            meta["generation"] = json!(1);
            meta["creationTimestamp"] = json!(now_rfc3339());
            st.objects.insert(key(&name), object.clone());
            record(st, kind, namespace, "ADDED", &object);
            json_response(StatusCode::CREATED, &object)
        }
        (&Method::GET, [name, "scale"]) if kind.scale => match st.objects.get(&key(name)) {
            Some(o) => json_response(StatusCode::OK, &scale_of(o)),
            None => not_found(kind, name),
        },
        (&Method::PATCH, [name, sub @ ..]) => {
            if !call
                .content_type
                .starts_with("application/merge-patch+json")
            {
                return failure(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    format!(
                        "the stand-in takes merge patches only, not {}",
                        call.content_type
                    ),
                );
            }
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the patch is not JSON".into(),
                );
            };
            let revision = st.revision + 1;
            let Some(object) = st.objects.get_mut(&key(name)) else {
                return not_found(kind, name);
            };
            let before = object["spec"].clone();
            match sub {
                [] => merge_patch(object, &patch),
                ["status"] => merge_patch(&mut object["status"], &patch["status"]),
                ["scale"] if kind.scale => {
                    let mut scale = scale_of(object);
                    merge_patch(&mut scale, &patch);
                    object["spec"]["replicas"] = scale["spec"]["replicas"].clone();
                }
                _ => return not_found(kind, name),
            }
            // The generation counts spec changes only (status and metadata do not move it).
            if object["spec"] != before {
                let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
                object["metadata"]["generation"] = json!(generation + 1);
            }
            object["metadata"]["resourceVersion"] = json!(revision.to_string());
            let answer = if sub == ["scale"] {
                scale_of(object)
            } else {
                object.clone()
            };
            let changed = object.clone();
            st.revision = revision;
            record(st, kind, namespace, "MODIFIED", &changed);
            json_response(StatusCode::OK, &answer)
        }
        _ => failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the stand-in API server does not implement {method} here yet"),
        ),
    }
}

fn not_found(kind: &Kind, name: &str) -> Response<Body> {
    failure(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{}.{} \"{name}\" not found", kind.plural, kind.group),
    )
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

/// RFC 7386 JSON merge patch: objects merge, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (k, v) in fields {
        if v.is_null() {
            if let Some(map) = target.as_object_mut() {
                map.remove(k);
            }
        } else {
            merge_patch(&mut target[k], v);
        }
    }
}

/// A `meta.k8s.io/v1` `Table`: the name, then the CRD's printer columns.
fn table(kind: &Kind, items: &[Value], revision: u64) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}),
    ];
    columns.extend(kind.columns.iter().map(|c| {
        json!({"name": c["name"], "type": c["type"], "format": c.get("format").cloned().unwrap_or(json!("")), "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0))})
    }));
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            for c in &kind.columns {
                let value = json_path(o, c["jsonPath"].as_str().unwrap_or_default());
                cells.push(if c["type"] == "date" { age(&value) } else { value });
            }
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": revision.to_string()}, "columnDefinitions": columns, "rows": rows})
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
            rest = &tail[2..];
        }
        rest = rest.trim_start_matches('.');
    }
    current
}

/// `5s`, `3m`, `2h`, `4d` since an RFC 3339 time (`YYYY-MM-DDTHH:MM:SSZ`), as kubectl shows
/// ages.
fn age(value: &Value) -> Value {
    let Some(then) = value.as_str().and_then(epoch_seconds) else {
        return Value::Null;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let secs = (now - then).max(0);
    json!(match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    })
}

/// Seconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SSZ`.
fn epoch_seconds(text: &str) -> Option<i64> {
    let n = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3_600 + mm * 60 + ss)
}

/// Logs a change for watches and wakes them.
fn record(st: &mut State, kind: &Kind, namespace: &str, change: &'static str, object: &Value) {
    st.events.push((
        st.revision,
        kind.plural.clone(),
        namespace.to_string(),
        change,
        object.clone(),
    ));
    st.changed.notify_waiters();
}

/// A watch: every change after `since` (all current objects as `ADDED` when `since` is 0),
/// one JSON event per line, until `timeout` seconds pass or the client goes away.
fn watch(
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    kind: Kind,
    namespace: String,
    since: u64,
    timeout: u64,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
        let mut seen = since;
        let mut first = since == 0;
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let batch: Vec<Value> = {
                let st = state.lock().unwrap();
                let mine = |plural: &str, ns: &str| {
                    plural == kind.plural && (namespace.is_empty() || ns == namespace)
                };
                let batch = if first {
                    st.objects
                        .iter()
                        .filter(|((p, ns, _), _)| mine(p, ns))
                        .map(|(_, o)| json!({"type": "ADDED", "object": o}))
                        .collect()
                } else {
                    st.events
                        .iter()
                        .filter(|(rv, p, ns, _, _)| *rv > seen && mine(p, ns))
                        .map(|(_, _, _, t, o)| json!({"type": t, "object": o}))
                        .collect()
                };
                seen = st.revision;
                batch
            };
            first = false;
            for event in batch {
                if tx.send(Bytes::from(format!("{event}\n"))).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
