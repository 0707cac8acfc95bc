//! One HTTP invocation: gate, fresh store, instantiate from the pre-instantiated component,
//! call `wasi:http/incoming-handler.handle`, and classify whatever went wrong.
//!
//! The deadline is enforced twice: the epoch callback interrupts guest code that runs past it
//! (and yields to the executor every tick so one busy guest cannot starve others), and a
//! timer drops the whole invocation if the guest is parked in a host call instead.

use crate::deploy::ComponentRuntime;
use crate::state::InvocationState;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

/// The body type of every response hearth produces.
pub type OutgoingBody = wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Why an invocation produced no response; each maps to one status code.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The component is at `maxConcurrency` and its queue is full (`503`).
    #[error("component is saturated")]
    Overloaded,
    /// The guest ran past its deadline (`504`).
    #[error("deadline of {0:?} exceeded")]
    Timeout(Duration),
    /// The guest trapped, ran out of memory or stack, or failed to answer (`500`).
    #[error("guest failed: {0:#}")]
    Guest(wasmtime::Error),
    /// The guest answered with an HTTP error code instead of a response (`500`).
    #[error("guest returned error code {0:?}")]
    ErrorCode(ErrorCode),
    /// The component has no HTTP handler (a routing bug; `500`).
    #[error("component is not an HTTP handler")]
    NotHttp,
}

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
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if self.proxy.is_none() {
            return Err(InvokeError::NotHttp);
        }
        let Some(permit) = self.gate.enter().await else {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(InvokeError::Overloaded);
        };
        let timeout = Duration::from_millis(self.limits.timeout_ms);
        let deadline = Instant::now() + timeout;

        let mut store = self.new_store(deadline);

        let (tx, rx) = tokio::sync::oneshot::channel();
        let http = store.data_mut();
        let (req, out) = match (
            http.http().new_incoming_request(
                wasmtime_wasi_http::p2::bindings::http::types::Scheme::Http,
                req,
            ),
            http.http().new_response_outparam(tx),
        ) {
            (Ok(req), Ok(out)) => (req, out),
            (Err(e), _) | (_, Err(e)) => return Err(InvokeError::Guest(e)),
        };

        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let _permit = permit; // the slot is held until the guest is done, body included
            let proxy = this.proxy.as_ref().ok_or(InvokeError::NotHttp)?;
            let run = async {
                let instance = proxy.instantiate_async(&mut store).await?;
                instance
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            match tokio::time::timeout_at(deadline.into(), run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(this.classify(e, timeout)),
                Err(_) => Err(this.classify_timeout(timeout)),
            }
        });

        match rx.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(workload = %self.workload, component = %self.name, code = ?code, "guest answered with an error code");
                Err(InvokeError::ErrorCode(code))
            }
            // The guest returned (or died) without setting a response.
            Err(_) => match task.await {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(workload = %self.workload, component = %self.name, "guest returned without setting a response");
                    Err(InvokeError::Guest(wasmtime::Error::msg("no response set")))
                }
                Err(join) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(workload = %self.workload, component = %self.name, error = %join, "invocation task failed");
                    Err(InvokeError::Guest(wasmtime::Error::msg(
                        "invocation task failed",
                    )))
                }
            },
        }
    }

    /// A fresh store for one invocation: its own WASI context, the memory limit, and an epoch
    /// callback that yields every tick and interrupts the guest at `deadline`.
    pub(crate) fn new_store(&self, deadline: Instant) -> Store<InvocationState> {
        let mut store = Store::new(
            self.pre.engine(),
            InvocationState::new(&self.template, Some(deadline)),
        );
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            Ok(
                if ctx.data().deadline.is_some_and(|d| Instant::now() >= d) {
                    UpdateDeadline::Interrupt
                } else {
                    UpdateDeadline::Yield(1)
                },
            )
        });
        store
    }

    pub(crate) fn classify(&self, e: wasmtime::Error, timeout: Duration) -> InvokeError {
        if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return self.classify_timeout(timeout);
        }
        if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(workload = %self.workload, component = %self.name, "instance pool exhausted");
            return InvokeError::Overloaded;
        }
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            workload = %self.workload,
            component = %self.name,
            reason = %e.root_cause(),
            detail = ?e,
            "guest failed"
        );
        InvokeError::Guest(e)
    }

    pub(crate) fn classify_timeout(&self, timeout: Duration) -> InvokeError {
        self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(workload = %self.workload, component = %self.name, timeout_ms = timeout.as_millis() as u64, "guest interrupted at its deadline");
        InvokeError::Timeout(timeout)
    }
}
