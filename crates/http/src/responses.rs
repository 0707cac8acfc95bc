//! The responses hearth writes itself (no route, saturated, failed, timed out): short plain
//! text that never carries guest internals.

use bytes::Bytes;
use hearth_runtime::{InvokeError, OutgoingBody};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<OutgoingBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(Into::into)
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A plain-text response with a body made at run time.
pub(crate) fn owned_text(status: StatusCode, body: String) -> Response<OutgoingBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(Into::into)
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `value` as pretty JSON (a `500` if it cannot be rendered).
pub(crate) fn json_value<T: serde::Serialize>(value: &T) -> Response<OutgoingBody> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => json(body),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot render the status\n",
        ),
    }
}

/// A JSON response.
pub(crate) fn json(body: Vec<u8>) -> Response<OutgoingBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(Into::into)
            .boxed_unsync(),
    );
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
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
        InvokeError::Guest(_) | InvokeError::ErrorCode(_) | InvokeError::NotExported(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error: the component failed; details are in the host log\n",
        ),
    }
}
