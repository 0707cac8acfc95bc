//! Outgoing `wasi:http` requests. A request to the workload's loopback (the one rule,
//! [`hearth_net::is_loopback_host`]: `localhost`, `*.localhost`, `127.0.0.1`, `[::1]`, the same
//! names `wasi:sockets` treats as loopback) is carried over the virtual network to its service
//! (which may be an HTTP server); any other destination must be allowed by the caller's
//! `allowedHosts`, and then goes out through wasmtime-wasi-http's default client.

use crate::trace::{self, StoreTrace};
use bytes::Bytes;
use hearth_net::{EgressPolicy, Network};
use http_body_util::BodyExt;
use std::future::Future;
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiHttpHooks};

type WasiBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Error>;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

/// The `wasi:http` hooks of one store.
pub(crate) struct HttpHooks {
    pub network: Arc<Network>,
    pub policy: Arc<EgressPolicy>,
    /// The store's trace, when tracing is on: each request gets a span and a `traceparent`.
    pub trace: Option<StoreTrace>,
}

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> SendFuture {
        drop(fut);
        let Some(in_flight) = self.network.begin_outgoing_http() else {
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        };
        let network = Arc::clone(&self.network);
        let policy = Arc::clone(&self.policy);
        let span = self
            .trace
            .as_ref()
            .and_then(|t| trace::outgoing(t, &mut request));
        Box::new(async move {
            // The request counts against its workload until its connection is done.
            let sent = send(&network, &policy, request, options)
                .await
                .map(|(response, io)| {
                    let io: IoFuture = Box::new(async move {
                        let _in_flight = in_flight;
                        Box::into_pin(io).await
                    });
                    (response, io)
                });
            if let Some(span) = span {
                match &sent {
                    Ok((response, _)) => span.end_http(response.status().as_u16(), true),
                    Err(e) => span.end(Some(e.to_string())),
                }
            }
            sent
        })
    }
}

/// To the workload's service over the virtual network, or out if `policy` allows.
async fn send(
    network: &Network,
    policy: &EgressPolicy,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let uri = request.uri();
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    if hearth_net::is_loopback_host(host) {
        if https {
            // The virtual network carries plain bytes; TLS to one's own service is moot.
            return Err(Error::HttpProtocolError);
        }
        return to_service(network, port, request).await;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let allowed = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => policy.allows_ip(ip, port),
        Err(_) => policy.allows_name(host, Some(port)),
    };
    if !allowed {
        tracing::debug!(host, port, "outgoing HTTP denied by allowedHosts");
        return Err(Error::HttpRequestDenied);
    }
    let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
    Ok((
        response.map(BodyExt::boxed_unsync),
        Box::new(io) as IoFuture,
    ))
}

/// HTTP/1.1 over an in-memory connection to the service's port.
async fn to_service(
    network: &Network,
    port: u16,
    request: http::Request<WasiBody>,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let mut request = settle_bodiless(request).await;
    let stream = network
        .connect(port)
        .map_err(|_| Error::ConnectionRefused)?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(Error::Hyper)?;
    // The request line carries only the path; the Host header keeps the authority.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
    let mut io = Box::pin(async move { conn.await.map_err(Error::Hyper) });
    let response = tokio::select! {
        r = sender.send_request(request) => r.map_err(Error::Hyper)?,
        r = &mut io => {
            r?;
            return Err(Error::ConnectionTerminated);
        }
    };
    Ok((
        response.map(|body| body.map_err(Error::Hyper).boxed_unsync()),
        // The connection keeps running while the guest reads the body; wasi:http drives it.
        Box::new(io) as IoFuture,
    ))
}

/// How long a request whose method carries no body may wait for its guest to finish that
/// (empty) body before it is sent as it stands.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(250);

/// A `GET` (or another method without a body) whose guest has not yet finished its empty
/// body when `handle` is called is sent as a bodiless request once it has, rather than with a
/// chunked body that many small servers refuse (the guest learns of the refusal as a reset
/// while it finishes the body). The guest finishes it a moment later; if it takes longer than
/// [`SETTLE`], or writes bytes, the request goes as it stands.
async fn settle_bodiless(request: http::Request<WasiBody>) -> http::Request<WasiBody> {
    use http::Method;
    use hyper::body::Body;
    let bodiless = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    if !bodiless
        || request.body().is_end_stream()
        || request.headers().contains_key(http::header::CONTENT_LENGTH)
    {
        return request;
    }
    let (parts, mut body) = request.into_parts();
    let first = tokio::time::timeout(SETTLE, async {
        loop {
            match body.frame().await {
                Some(Ok(frame)) if frame.data_ref().is_some_and(Bytes::is_empty) => continue,
                other => break other,
            }
        }
    })
    .await;
    let body = match first {
        // Finished empty: no body at all.
        Ok(None) => http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
        // Bytes, trailers or an error after all: put the frame back in front of the rest.
        Ok(Some(frame)) => {
            let front = futures::stream::once(std::future::ready(frame));
            let rest = http_body_util::BodyStream::new(body);
            http_body_util::StreamBody::new(futures::StreamExt::chain(front, rest)).boxed_unsync()
        }
        Err(_) => body,
    };
    http::Request::from_parts(parts, body)
}
