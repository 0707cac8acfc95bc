//! An HTTP request on the one invoke path: admit, hand the request and a response slot to a
//! fresh instance of `wasi:http/incoming-handler`, and answer as soon as the guest sets the
//! response (its body keeps streaming from the instance, which holds its gate slot until done).

use super::{Admission, InvokeError};
use crate::metrics::Outcome;
use crate::state::InvocationState;
use crate::workload::ComponentRuntime;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// The body type of every response hearth produces.
pub type OutgoingBody = wasmtime_wasi_http::p2::body::HyperOutgoingBody;

impl ComponentRuntime {
    /// Serves one request on a fresh instance.
    pub async fn handle_http<B>(
        self: &Arc<Self>,
        req: hyper::Request<B>,
    ) -> Result<hyper::Response<OutgoingBody>, InvokeError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
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
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let mut invocation = self.admit(Admission::Bounded).await?;
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
            http.http().new_incoming_request(Scheme::Http, req),
            http.http().new_response_outparam(tx),
        ) {
            (Ok(req), Ok(out)) => (req, out),
            (Err(e), _) | (_, Err(e)) => {
                return self.record(Err(InvokeError::Guest(e)), admitted);
            }
        };

        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let super::Invocation {
                mut store,
                deadline,
                timeout,
                permit: _permit, // held until the guest is done, body included
            } = invocation;
            let run = async {
                let instance = proxy.instantiate_async(&mut store).await?;
                instance
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            super::within(deadline, timeout, run).await
        });

        let answer = match rx.await {
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
        this.record_as(answer, admitted, |response| {
            Outcome::of_status(response.status().as_u16())
        })
    }
}
