//! Answers: JSON bodies, and failures as `meta.k8s.io/v1` `Status` objects with the reasons
//! and message shapes of the real API server, because clients branch on them (kube-rs on
//! `code` and `reason`, kubectl prints `message`).

use crate::kinds::Kind;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::convert::Infallible;

/// Every answer's body: whole, or a watch's stream of events.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What a handler answers: a status and a JSON body, or a failure.
pub(crate) type Answer = Result<(StatusCode, Value), Failure>;

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The response for an [`Answer`].
pub(crate) fn respond(answer: Answer) -> Response<Body> {
    match answer {
        Ok((status, value)) => json_response(status, &value),
        Err(failure) => failure.response(),
    }
}

/// A request the server refuses, with the `Status` the real server would send.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the `Status`: which object, if any.
    details: Value,
}

impl Failure {
    pub(crate) fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// About object `name` of `kind`: the `details` name it, as the real server's do.
    fn about(mut self, kind: &Kind, name: &str) -> Self {
        self.details = json!({"name": name, "group": kind.group, "kind": kind.plural});
        self
    }

    /// `400 BadRequest`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// `404 NotFound` for an object: `widgets.example.com "x" not found`.
    pub(crate) fn not_found(kind: &Kind, name: &str) -> Self {
        let message = format!("{} \"{name}\" not found", kind.resource());
        Self::new(StatusCode::NOT_FOUND, "NotFound", message).about(kind, name)
    }

    /// `404 NotFound` for a path the server does not serve.
    pub(crate) fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// `409 AlreadyExists`.
    pub(crate) fn already_exists(kind: &Kind, name: &str) -> Self {
        let message = format!("{} \"{name}\" already exists", kind.resource());
        Self::new(StatusCode::CONFLICT, "AlreadyExists", message).about(kind, name)
    }

    /// `409 Conflict`: `Operation cannot be fulfilled on widgets.example.com "x": {why}`.
    pub(crate) fn conflict(kind: &Kind, name: &str, why: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            kind.resource()
        );
        Self::new(StatusCode::CONFLICT, "Conflict", message).about(kind, name)
    }

    /// The `409 Conflict` of a write based on an old `resourceVersion`.
    pub(crate) fn modified(kind: &Kind, name: &str) -> Self {
        Self::conflict(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `422 Invalid`: `Widget.example.com "x" is invalid: {cause}`.
    pub(crate) fn invalid(kind: &Kind, name: &str, cause: &str) -> Self {
        let qualified = if kind.group.is_empty() {
            kind.kind.clone()
        } else {
            format!("{}.{}", kind.kind, kind.group)
        };
        let message = format!("{qualified} \"{name}\" is invalid: {cause}");
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message).about(kind, name)
    }

    /// `415 UnsupportedMediaType` for a patch type the kind does not take.
    pub(crate) fn unsupported_patch(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            ),
        )
    }

    /// `405 MethodNotAllowed`.
    pub(crate) fn method_not_allowed(what: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({what})"),
        )
    }

    /// The `Status` object.
    pub(crate) fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if !self.details.is_null() {
            status["details"] = self.details.clone();
        }
        status
    }

    pub(crate) fn response(&self) -> Response<Body> {
        json_response(self.code, &self.status())
    }
}
