//! The one invocation path, shared by HTTP requests ([`http`]), WIT calls ([`call`]) and message
//! deliveries ([`message`]):
//!
//! **gate** (the component's `maxConcurrency` and queue) ▶ **fresh store** (its own WASI
//! context, memory limit, epoch callback) ▶ **deadline** ▶ **call** ▶ **classify** (one
//! [`InvokeError`] per way it can go wrong, counted once in [`ComponentStats`]).
//!
//! The deadline is enforced twice: the epoch callback interrupts guest code that runs past it
//! (and yields to the executor every tick so one busy guest cannot starve others), and a timer
//! drops the whole invocation if the guest is parked in a host call instead.
//!
//! [`ComponentStats`]: crate::ComponentStats

pub(crate) mod call;
pub(crate) mod http;
pub(crate) mod message;
pub(crate) mod warm;

use crate::gate::Permit;
use crate::metrics::Outcome;
use crate::state::{GuestLimit, InvocationState};
use crate::workload::ComponentRuntime;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

/// Why an invocation produced no result; each maps to one status code.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The component is at `maxConcurrency` and its queue is full, or the host's instance
    /// pool is exhausted (`503`).
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
    /// The component cannot serve this kind of invocation (a routing bug; `500`).
    #[error("component does not export {0}")]
    NotExported(&'static str),
    /// The request body is larger than the component's `maxRequestBytes` (`413`).
    #[error("request body over the limit of {0} bytes")]
    TooLarge(u64),
}

impl InvokeError {
    /// The HTTP status code this failure is answered with.
    pub fn status(&self) -> u16 {
        match self {
            InvokeError::Overloaded => 503,
            InvokeError::Timeout(_) => 504,
            InvokeError::Guest(_) | InvokeError::ErrorCode(_) | InvokeError::NotExported(_) => 500,
            InvokeError::TooLarge(_) => 413,
        }
    }

    /// A one-line reason a caller may see, without guest internals.
    pub fn short_reason(&self) -> String {
        match self {
            InvokeError::Overloaded => "the component is at its concurrency limit".into(),
            InvokeError::Timeout(t) => {
                format!("the component did not return within {} ms", t.as_millis())
            }
            InvokeError::Guest(e) => {
                match (e.downcast_ref::<GuestLimit>(), e.downcast_ref::<Trap>()) {
                    (Some(limit), _) => format!("the component {limit}"),
                    (None, Some(trap)) => format!("the component trapped: {trap}"),
                    (None, None) => "the component failed".into(),
                }
            }
            InvokeError::ErrorCode(_) | InvokeError::NotExported(_) => {
                "the component failed".into()
            }
            InvokeError::TooLarge(limit) => {
                format!("the request body is over the component's limit of {limit} bytes")
            }
        }
    }
}

/// How an invocation waits at the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A short bounded queue, then refused: for callers that can be told `503` (HTTP, calls).
    Bounded,
    /// As long as it takes: for deliveries that push back on their source instead.
    Patient,
}

/// One admitted invocation: its slot at the gate and its fresh store.
pub(crate) struct Invocation {
    pub store: Store<InvocationState>,
    pub deadline: Instant,
    pub timeout: Duration,
    /// Held until the guest is done (for HTTP, until its body is written too).
    pub permit: Permit,
}

impl ComponentRuntime {
    /// Gate, then a fresh store with the component's deadline.
    pub(crate) async fn admit(&self, admission: Admission) -> Result<Invocation, InvokeError> {
        let (permit, deadline, timeout) = self.enter(admission).await?;
        Ok(Invocation {
            store: self.new_store(deadline),
            deadline,
            timeout,
            permit,
        })
    }

    /// The gate alone: a slot, and the deadline that starts with it.
    pub(crate) async fn enter(
        &self,
        admission: Admission,
    ) -> Result<(Permit, Instant, Duration), InvokeError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let entered = Instant::now();
        let permit = match admission {
            Admission::Bounded => self.gate.enter().await,
            Admission::Patient => self.gate.enter_patiently().await,
        };
        self.metrics.queued(entered.elapsed());
        let Some(permit) = permit else {
            return self.record(Err(InvokeError::Overloaded), entered);
        };
        let timeout = Duration::from_millis(self.limits.timeout_ms);
        Ok((permit, Instant::now() + timeout, timeout))
    }

    /// Runs `call` (which instantiates and calls the guest in the invocation's store) within
    /// the deadline, then classifies and counts the outcome.
    pub(crate) async fn complete<R>(
        &self,
        deadline: Instant,
        timeout: Duration,
        call: impl Future<Output = wasmtime::Result<R>>,
    ) -> Result<R, InvokeError> {
        let admitted = deadline.checked_sub(timeout).unwrap_or(deadline);
        self.record(within(deadline, timeout, call).await, admitted)
    }

    /// Counts `result` in the component's stats and metrics, `since` its admission (and logs
    /// a failure): every invocation passes here exactly once.
    pub(crate) fn record<R>(
        &self,
        result: Result<R, InvokeError>,
        since: Instant,
    ) -> Result<R, InvokeError> {
        self.record_as(result, since, |_| Outcome::Ok)
    }

    /// [`ComponentRuntime::record`], with the outcome of a success read from its value (an
    /// HTTP response's status).
    pub(crate) fn record_as<R>(
        &self,
        result: Result<R, InvokeError>,
        since: Instant,
        outcome: impl FnOnce(&R) -> Outcome,
    ) -> Result<R, InvokeError> {
        let took = since.elapsed();
        match result {
            Ok(value) => {
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                self.metrics.outcome(outcome(&value), took);
                Ok(value)
            }
            Err(e) => {
                self.metrics.outcome(Outcome::of_error(&e), took);
                Err(self.record_err(e))
            }
        }
    }

    fn record_err(&self, e: InvokeError) -> InvokeError {
        let (workload, component) = (&self.workload, &self.name);
        match &e {
            InvokeError::Overloaded => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%workload, %component, "invocation refused: saturated");
            }
            InvokeError::Timeout(t) => {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%workload, %component, timeout_ms = t.as_millis() as u64, "guest interrupted at its deadline");
            }
            InvokeError::Guest(err) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let reason = crate::state::GuestLimit::reason(err);
                tracing::warn!(%workload, %component, %reason, detail = ?err, "guest failed");
            }
            InvokeError::ErrorCode(code) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%workload, %component, ?code, "guest answered with an error code");
            }
            InvokeError::NotExported(what) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%workload, %component, export = what, "invoked for an export it does not have");
            }
            InvokeError::TooLarge(limit) => {
                tracing::debug!(%workload, %component, limit, "request body over the limit");
            }
        }
        e
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
                    crate::engine::yield_tick()
                },
            )
        });
        store
    }
}

/// Runs `call` until `deadline` and classifies a failure, without counting it (the caller
/// records the outcome once it knows it).
pub(crate) async fn within<R>(
    deadline: Instant,
    timeout: Duration,
    call: impl Future<Output = wasmtime::Result<R>>,
) -> Result<R, InvokeError> {
    match tokio::time::timeout_at(deadline.into(), call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(classify(e, timeout)),
        Err(_) => Err(InvokeError::Timeout(timeout)),
    }
}

/// What a wasmtime error from instantiating or calling a guest means.
fn classify(e: wasmtime::Error, timeout: Duration) -> InvokeError {
    if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return InvokeError::Timeout(timeout);
    }
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        tracing::warn!("instance pool exhausted: raise --max-instances");
        return InvokeError::Overloaded;
    }
    InvokeError::Guest(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_is_a_timeout_and_a_full_pool_is_overload() {
        let t = Duration::from_millis(5);
        assert!(matches!(
            classify(wasmtime::Error::from(Trap::Interrupt), t),
            InvokeError::Timeout(d) if d == t
        ));
        assert!(matches!(
            classify(wasmtime::Error::from(Trap::UnreachableCodeReached), t),
            InvokeError::Guest(_)
        ));
        assert!(matches!(
            classify(wasmtime::Error::msg("boom"), t),
            InvokeError::Guest(_)
        ));
    }
}
