//! An HTTP request on the one invoke path: admit, hand the request and a response slot to a
//! fresh instance of `wasi:http/incoming-handler`, and answer as soon as the guest sets the
//! response (its body keeps streaming from the instance, which holds its gate slot until done).

use super::{Admission, InvokeError};
use crate::metrics::Outcome;
use crate::state::InvocationState;
use crate::workload::ComponentRuntime;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// The body type of every response hearth produces.
pub type OutgoingBody = wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Marks a request that came over TLS: the guest sees the `https` scheme.
#[derive(Debug, Clone, Copy)]
pub struct Https;

impl ComponentRuntime {
    /// Serves one request on a fresh instance.
    pub async fn handle_http<B>(
        self: &Arc<Self>,
        req: hyper::Request<B>,
    ) -> Result<hyper::Response<OutgoingBody>, InvokeError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Some(proxy) = self.proxy.clone() else {
            return self.record(
                Err(InvokeError::NotExported(crate::plan::world::HTTP_HANDLER)),
                Instant::now(),
            );
        };
        let span = crate::trace::http_request(
            &req,
            &self.workload,
            &self.name,
            self.route().map(|r| r.path.as_str()),
        );
        let answer = self.serve_http(proxy, req, span.as_ref()).await;
        if let Some(span) = span {
            let status = match &answer {
                Ok(response) => response.status().as_u16(),
                Err(e) => e.status(),
            };
            span.end_http(status, false);
        }
        answer
    }

    async fn serve_http<B>(
        self: &Arc<Self>,
        proxy: ProxyPre<InvocationState>,
        req: hyper::Request<B>,
        span: Option<&crate::trace::Span>,
    ) -> Result<hyper::Response<OutgoingBody>, InvokeError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let limit = self.limits().max_request_bytes;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return self.record(Err(InvokeError::TooLarge(limit)), Instant::now());
        }
        let scheme = match req.extensions().get::<Https>() {
            Some(Https) => Scheme::Https,
            None => Scheme::Http,
        };
        // A request with no body (most) cannot overflow: no flag to allocate.
        let overflowed = (!req.body().is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let req = req.map(|body| Capped {
            body,
            left: limit,
            limit,
            overflowed: overflowed.clone(),
        });
        let (permit, deadline, timeout) = self.enter(Admission::Bounded).await?;
        let (store, warm) = match self.take_warm(deadline) {
            Some(warm) => (warm.store, Some(warm.proxy)),
            None => (self.new_store(deadline), None),
        };
        let mut invocation = super::Invocation {
            store,
            deadline,
            timeout,
            permit,
        };
        let admitted = Instant::now();
        if let Some(span) = span {
            invocation
                .store
                .data_mut()
                .set_trace_context(span.context());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let http = invocation.store.data_mut();
        let (req, out) = match (
            http.http().new_incoming_request(scheme, req),
            http.http().new_response_outparam(tx),
        ) {
            (Ok(req), Ok(out)) => (req, out),
            (Err(e), _) | (_, Err(e)) => {
                return self.record(Err(InvokeError::Guest(e)), admitted);
            }
        };

        let component = Arc::clone(self);
        let task = tokio::spawn(async move {
            let super::Invocation {
                mut store,
                deadline,
                timeout,
                permit, // held until the guest is done, body included
            } = invocation;
            let run = async {
                let ran = async {
                    let instance = match warm {
                        Some(instance) => instance,
                        None => proxy.instantiate_async(&mut store).await?,
                    };
                    instance
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, req, out)
                        .await
                }
                .await;
                ran.map_err(|e| store.data().explain(e))
            };
            let ran = super::within(deadline, timeout, run).await;
            // The connection's task, woken when the guest set the response, writes it
            // before this one pays for the instance's teardown (resetting the memory the
            // guest dirtied is most of it: 16 % of a hello request's instructions).
            tokio::task::yield_now().await;
            drop(store);
            drop(permit);
            // Then the next request's instance, while the worker may have nothing else to do.
            component.make_warm(&proxy).await;
            ran
        });

        let answer = match rx.await {
            // Whatever the guest made of a body cut short, the client sent too much.
            _ if overflowed
                .as_ref()
                .is_some_and(|o| o.load(Ordering::Relaxed)) =>
            {
                Err(InvokeError::TooLarge(limit))
            }
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(InvokeError::ErrorCode(code)),
            // The guest returned (or died) without setting a response.
            Err(_) => Err(match task.await {
                Ok(Err(e)) => e,
                Ok(Ok(())) => InvokeError::Guest(wasmtime::Error::msg("no response set")),
                Err(join) => InvokeError::Guest(wasmtime::Error::msg(format!(
                    "invocation task failed: {join}"
                ))),
            }),
        };
        self.record_as(answer, admitted, |response| {
            Outcome::of_status(response.status().as_u16())
        })
    }
}

/// A request body cut off with an error once it passes the component's limit.
struct Capped<B> {
    body: B,
    left: u64,
    limit: u64,
    /// Set when the body passes the limit; `None` for a body already at its end.
    overflowed: Option<Arc<AtomicBool>>,
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.left {
                if let Some(overflowed) = &self.overflowed {
                    overflowed.store(true, Ordering::Relaxed);
                }
                let limit = self.limit;
                return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpRequestBodySize(
                    Some(limit),
                ))));
            }
            self.left -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
