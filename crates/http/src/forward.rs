//! Forwarding: in a cluster, any host answers for any workload. A request for which no
//! workload here has a route goes to a host that runs a ready replica of one that does,
//! as its heartbeats say (spread over them).
//!
//! - The forwarded request carries [`FORWARDED_BY`], and a host never forwards such a
//!   request again (no loops): without a route it answers `503` with [`NO_REPLICA`].
//! - Bodies are buffered (up to [`MAX_BUFFERED`]) so the request can go to the next
//!   candidate when one turns out to have just stopped its replica (a `503` with
//!   [`NO_REPLICA`]) or cannot be reached; at most [`MAX_TRIES`] hosts are tried.
//! - Each worker thread keeps its own pooled client, so forwarding reuses connections
//!   and stays on the worker's core.

use crate::responses;
use bytes::Bytes;
use hearth_runtime::OutgoingBody;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Set on a forwarded request to the forwarding host's id.
pub const FORWARDED_BY: &str = "hearth-forwarded-by";
/// Set on the `503` of a host that got a forwarded request it has no route for.
pub const NO_REPLICA: &str = "hearth-no-replica";
/// Largest body a forwarded request may carry.
pub const MAX_BUFFERED: usize = 8 << 20;
/// Hosts tried per request.
const MAX_TRIES: usize = 3;

/// Where requests without a local route may go.
pub trait Forward: Send + Sync {
    /// This host's id, sent in [`FORWARDED_BY`].
    fn host_id(&self) -> &str;
    /// Addresses (`ip:port`) of hosts with a ready replica serving `path` on `host`, best
    /// first; the order rotates from call to call to spread the load.
    fn candidates(&self, host: Option<&str>, path: &str) -> Vec<String>;
}

thread_local! {
    static CLIENT: Client<HttpConnector, Full<Bytes>> = {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector)
    };
}

/// Answers `req`, which no local workload serves.
pub(crate) async fn forward(
    forward: &dyn Forward,
    req: Request<Incoming>,
) -> Response<OutgoingBody> {
    if req.headers().contains_key(FORWARDED_BY) {
        let mut resp = responses::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: no replica of this route runs on this host\n",
        );
        resp.headers_mut()
            .insert(NO_REPLICA, HeaderValue::from_static("1"));
        return resp;
    }
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    let host_header = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or(authority);
    let candidates = forward.candidates(host_header.as_deref(), req.uri().path());
    if candidates.is_empty() {
        return responses::not_found();
    }
    let (mut parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BUFFERED).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                responses::owned_text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "413 Payload Too Large: a forwarded request body may be at most {MAX_BUFFERED} bytes\n"
                    ),
                )
            } else {
                responses::owned_text(
                    StatusCode::BAD_REQUEST,
                    format!("400 Bad Request: cannot read the request body: {e}\n"),
                )
            };
        }
    };
    if let Ok(me) = HeaderValue::from_str(forward.host_id()) {
        parts.headers.insert(FORWARDED_BY, me);
    }
    // Connection-level headers belong to the hop they came on.
    for name in [
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-connection",
    ] {
        parts.headers.remove(name);
    }
    if let Some(host) = &host_header
        && let Ok(value) = HeaderValue::from_str(host)
    {
        parts.headers.insert(http::header::HOST, value);
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut last_error = String::new();
    for addr in candidates.iter().take(MAX_TRIES) {
        let Ok(uri) = format!("http://{addr}{path}").parse::<Uri>() else {
            continue;
        };
        let mut attempt = Request::from_parts(parts.clone(), Full::new(body.clone()));
        *attempt.uri_mut() = uri;
        *attempt.version_mut() = http::Version::HTTP_11;
        let client = CLIENT.with(Clone::clone);
        match client.request(attempt).await {
            Ok(resp)
                if resp.status() == StatusCode::SERVICE_UNAVAILABLE
                    && resp.headers().contains_key(NO_REPLICA) =>
            {
                last_error = format!("{addr} no longer runs a replica");
            }
            Ok(resp) => {
                let (mut head, incoming) = resp.into_parts();
                for name in ["connection", "keep-alive", "transfer-encoding"] {
                    head.headers.remove(name);
                }
                let body = incoming.map_err(Into::into).boxed_unsync();
                return Response::from_parts(head, body);
            }
            Err(e) => last_error = format!("{addr}: {e}"),
        }
    }
    tracing::warn!(tried = candidates.len().min(MAX_TRIES), error = %last_error, "no host could take a forwarded request");
    let mut resp = responses::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable: no host with a replica of this route could be reached\n",
    );
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}
