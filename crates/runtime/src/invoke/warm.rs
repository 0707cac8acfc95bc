//! Instances made ahead of requests. After an HTTP request is answered, its task makes the
//! component's next instance, so that the next request starts at the guest's handler
//! instead of at instantiation (a third of a hello request's instructions). Each instance
//! still serves one request only: this moves instantiation off the request's path, it does
//! not reuse anything a guest has touched.
//!
//! A component holds at most one such instance, and only once it has served a request. The
//! host holds at most [`WarmBudget`]'s limit of them: each keeps a slot of the instance pool
//! and the memory its instantiation touched.

use crate::state::InvocationState;
use crate::workload::ComponentRuntime;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

/// How many instances a host keeps made ahead by default.
pub const DEFAULT_WARM_INSTANCES: usize = 64;

/// The host-wide count of instances made ahead, and its limit.
#[derive(Debug)]
pub(crate) struct WarmBudget {
    limit: usize,
    held: AtomicUsize,
}

impl WarmBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: AtomicUsize::new(0),
        })
    }

    /// One more instance made ahead, if the budget allows.
    fn reserve(self: &Arc<Self>) -> Option<Held> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()?;
        Some(Held(Arc::clone(self)))
    }
}

/// A place in the budget, given back when the instance goes.
struct Held(Arc<WarmBudget>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A fresh instance of a component's `wasi:http` handler in its own store, not yet called.
pub(crate) struct Warm {
    pub store: Store<InvocationState>,
    pub proxy: Proxy,
    /// Where its memory is recorded once it has served: an instance dropped unused (its
    /// component replaced) is not one of the component's instances.
    memory_at_exit: Option<metrics::Histogram>,
    _held: Held,
}

/// A component's instance made ahead.
#[derive(Default)]
pub(crate) enum WarmSlot {
    #[default]
    Empty,
    /// Being made, by the task of the request before.
    Making,
    Ready(Warm),
}

impl ComponentRuntime {
    /// The instance made ahead, if one is ready, given the request's `deadline`.
    pub(crate) fn take_warm(&self, deadline: Instant) -> Option<Warm> {
        let mut slot = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        let mut warm = match std::mem::take(&mut *slot) {
            WarmSlot::Ready(warm) => warm,
            // Empty, or being made: left as it was.
            other => {
                *slot = other;
                return None;
            }
        };
        let state = warm.store.data_mut();
        state.deadline = Some(deadline);
        state.memory_at_exit = warm.memory_at_exit.take();
        warm.store.set_epoch_deadline(1);
        Some(warm)
    }

    /// Makes the next instance unless the component has one (or one on the way) or the
    /// host's budget is spent. Bounded by the component's timeout, like a request; a failure
    /// is left for the next request to meet (and report) on its own instantiation.
    pub(crate) async fn make_warm(&self, proxy: &ProxyPre<InvocationState>) {
        {
            let mut slot = self.warm.lock().unwrap_or_else(|e| e.into_inner());
            if !matches!(*slot, WarmSlot::Empty) {
                return;
            }
            *slot = WarmSlot::Making;
        }
        let made = match self.warm_budget.reserve() {
            Some(held) => {
                let timeout = Duration::from_millis(self.limits.timeout_ms);
                let deadline = Instant::now() + timeout;
                let mut store = self.new_store(deadline);
                let memory_at_exit = store.data_mut().memory_at_exit.take();
                match super::within(deadline, timeout, proxy.instantiate_async(&mut store)).await {
                    Ok(proxy) => WarmSlot::Ready(Warm {
                        store,
                        proxy,
                        memory_at_exit,
                        _held: held,
                    }),
                    Err(e) => {
                        let (workload, component) = (&self.workload, &self.name);
                        tracing::debug!(%workload, %component, error = %e, "no instance made ahead");
                        WarmSlot::Empty
                    }
                }
            }
            None => WarmSlot::Empty,
        };
        *self.warm.lock().unwrap_or_else(|e| e.into_inner()) = made;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_at_most_its_limit_and_gets_places_back() {
        let budget = WarmBudget::new(2);
        let a = budget.reserve().expect("first");
        let _b = budget.reserve().expect("second");
        assert!(budget.reserve().is_none(), "over the limit");
        drop(a);
        assert!(budget.reserve().is_some(), "a place given back");
        assert!(WarmBudget::new(0).reserve().is_none(), "0 turns it off");
    }
}
