//! `GET`, `PUT` and `DELETE /v1/workloads/{name}`: one workload's status, applying a manifest
//! document to the host, and deleting a workload.
//!
//! A `PUT` body is one manifest document (YAML, or JSON, which YAML reads too), parsed and
//! validated exactly as `hearth validate` does; the optional `X-Hearth-Source` header names
//! it in error messages (`hearth apply` sends the file's path). Relative image paths resolve
//! against that label's directory, or the host's working directory without one. Answers:
//! `201`/`200` with `{"name", "result", "generation"}`; `400` for a malformed document or a
//! name that does not match the path; `409` for a route another workload serves; `422` when
//! the workload cannot be fetched, planned, built or started (the old version keeps serving);
//! `413` past [`super::MAX_BODY`].

use super::status::WorkloadStatus;
use crate::responses;
use hearth_manifest::{Workload, WorkloadKind};
use hearth_runtime::{ApplyError, OutgoingBody, Workloads};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::path::{Path, PathBuf};

/// The header that names the document in error messages.
const SOURCE_HEADER: &str = "x-hearth-source";

pub(super) async fn handle(
    workloads: &Workloads,
    method: Method,
    name: &str,
    req: Request<Incoming>,
) -> Response<OutgoingBody> {
    match method {
        Method::GET => match workloads.get(name) {
            Some(w) => responses::json_value(&WorkloadStatus::of(&w)),
            None => not_found(name),
        },
        Method::DELETE => match workloads.delete(name).await {
            true => responses::json_value(&serde_json::json!({"name": name, "result": "deleted"})),
            false => not_found(name),
        },
        Method::PUT => put(workloads, name, req).await,
        _ => responses::text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n"),
    }
}

async fn put(workloads: &Workloads, name: &str, req: Request<Incoming>) -> Response<OutgoingBody> {
    let label = source_label(&req, name);
    let body = match Limited::new(req.into_body(), super::MAX_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return responses::owned_text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "413 Payload Too Large: a manifest document is at most {} MiB\n",
                    super::MAX_BODY >> 20
                ),
            );
        }
        Err(e) => return bad_request(format!("cannot read the request body: {e}")),
    };
    let workload = match parse(&label, name, &body) {
        Ok(w) => w,
        Err(message) => return bad_request(message),
    };
    match workloads.apply(workload).await {
        Ok((applied, running)) => {
            let status = match applied {
                hearth_runtime::Applied::Created => StatusCode::CREATED,
                _ => StatusCode::OK,
            };
            let mut resp = responses::json_value(&serde_json::json!({
                "name": name,
                "result": applied.as_str(),
                "generation": running.generation,
            }));
            *resp.status_mut() = status;
            resp
        }
        Err(e @ ApplyError::Conflict(_)) => {
            responses::owned_text(StatusCode::CONFLICT, format!("{e}\n"))
        }
        Err(e @ ApplyError::Failed(_)) => {
            responses::owned_text(StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n"))
        }
    }
}

/// One `kind: Workload` document named `name`, or the error text.
fn parse(label: &Path, name: &str, body: &[u8]) -> Result<Workload, String> {
    let text = std::str::from_utf8(body).map_err(|_| {
        format!(
            "{}: the body is not UTF-8 text: expected a YAML or JSON manifest",
            label.display()
        )
    })?;
    let mut workloads = hearth_manifest::parse_str(label, text).map_err(|e| e.to_string())?;
    let workload = match workloads.len() {
        1 => workloads.remove(0),
        0 => {
            return Err(format!(
                "{}: the body holds no manifest document",
                label.display()
            ));
        }
        n => {
            return Err(format!(
                "{}: the body holds {n} documents: expected one per request (`hearth apply` sends each on its own)",
                label.display()
            ));
        }
    };
    if workload.kind != WorkloadKind::Workload {
        return Err(format!(
            "{}: kind: expected `Workload` (a host runs single workloads; a `WorkloadDeployment` is placed by a cluster's controller)",
            label.display()
        ));
    }
    if workload.name != name {
        return Err(format!(
            "{}: metadata.name: `{}` does not match the request path's `{name}`: expected them equal",
            label.display(),
            workload.name
        ));
    }
    Ok(workload)
}

/// The document's label for messages: the `X-Hearth-Source` header when it is a sensible
/// path, else `NAME (request body)`.
fn source_label<B>(req: &Request<B>, name: &str) -> PathBuf {
    req.headers()
        .get(SOURCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 4096 && !v.chars().any(char::is_control))
        .map_or_else(
            || PathBuf::from(format!("{name} (request body)")),
            PathBuf::from,
        )
}

fn bad_request(message: String) -> Response<OutgoingBody> {
    responses::owned_text(StatusCode::BAD_REQUEST, format!("{message}\n"))
}

fn not_found(name: &str) -> Response<OutgoingBody> {
    responses::owned_text(
        StatusCode::NOT_FOUND,
        format!("404 Not Found: no workload `{name}` runs on this host\n"),
    )
}
