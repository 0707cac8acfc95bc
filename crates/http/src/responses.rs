//! The responses hearth writes itself (no route, saturated, failed, timed out): short plain
//! text that never carries guest internals.

use bytes::Bytes;
use hearth_runtime::{InvokeError, OutgoingBody};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

/// A response with `body` of `content_type`.
fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<OutgoingBody> {
    let mut resp = Response::new(Full::new(body).map_err(Into::into).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

const TEXT: &str = "text/plain; charset=utf-8";

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<OutgoingBody> {
    with_body(status, TEXT, Bytes::from_static(body.as_bytes()))
}

/// A plain-text response with a body made at run time.
pub(crate) fn owned_text(status: StatusCode, body: String) -> Response<OutgoingBody> {
    with_body(status, TEXT, Bytes::from(body))
}

/// Metrics in the Prometheus text exposition format.
pub(crate) fn prometheus(body: String) -> Response<OutgoingBody> {
    with_body(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        Bytes::from(body),
    )
}

/// `value` as pretty JSON (a `500` if it cannot be rendered).
pub(crate) fn json_value<T: serde::Serialize>(value: &T) -> Response<OutgoingBody> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => with_body(StatusCode::OK, "application/json", Bytes::from(body)),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot render the status\n",
        ),
    }
}

/// The answer to a request framed by both `Content-Length` and `Transfer-Encoding`, which
/// two servers may read two ways (request smuggling): refused, and the connection closed.
pub(crate) fn framed_twice() -> Response<OutgoingBody> {
    let mut resp = text(
        StatusCode::BAD_REQUEST,
        "400 Bad Request: a request may not carry both Content-Length and Transfer-Encoding\n",
    );
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

pub(crate) fn not_found() -> Response<OutgoingBody> {
    text(
        StatusCode::NOT_FOUND,
        "404 Not Found: no workload serves this host and path\n",
    )
}

/// The status code and body for an invocation that produced no response.
pub(crate) fn for_error(e: &InvokeError) -> Response<OutgoingBody> {
    match e {
        InvokeError::Overloaded => {
            let mut resp = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: the component is at its concurrency limit\n",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        InvokeError::Timeout(_) => text(
            StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Timeout: the component did not answer within its deadline\n",
        ),
        InvokeError::TooLarge(_) => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "413 Content Too Large: the request body is over the component's limit\n",
        ),
        InvokeError::Guest(_) | InvokeError::ErrorCode(_) | InvokeError::NotExported(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error: the component failed; details are in the host log\n",
        ),
    }
}
