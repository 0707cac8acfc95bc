//! Where a workload's long-lived work runs: its service, the tasks that splice published
//! host ports into it, and its message deliveries.
//!
//! By default a service runs on one of the HTTP workers, the one running the fewest services
//! at the time (its *home*), and the ingress hands the workload's connections to that worker
//! (`hearth-http`'s steering). A component's connection to its service then has both ends on
//! one thread: no cross-thread wake-ups per request at any worker count. While any service
//! shares a worker, guests yield at the fine epoch tick (`engine.rs`), so a long service turn
//! holds its worker at most about a millisecond at a time.
//!
//! The cost: one worker serves all of a homed workload's HTTP requests. `--service-threads`
//! gives each service a thread of its own instead; its workload's requests are then served
//! on every worker, and each connection to the service crosses threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::Handle;

/// Where services run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServicePlacement {
    /// Each on an HTTP worker (the least busy), with its workload's requests steered there.
    OnWorkers,
    /// Each on a thread of its own (and always, before any workers are given).
    #[default]
    OwnThreads,
}

/// The HTTP workers' runtimes and how many services each runs now.
#[derive(Default)]
pub(crate) struct Workers {
    handles: Vec<Handle>,
    services: Arc<[AtomicUsize]>,
    placement: ServicePlacement,
}

/// A service's place on a worker; the worker counts it until this is dropped.
pub(crate) struct Home {
    pub(crate) worker: usize,
    pub(crate) handle: Handle,
    services: Arc<[AtomicUsize]>,
}

impl Drop for Home {
    fn drop(&mut self) {
        self.services[self.worker].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    pub(crate) fn new(handles: Vec<Handle>, placement: ServicePlacement) -> Self {
        Self {
            services: handles.iter().map(|_| AtomicUsize::new(0)).collect(),
            handles,
            placement,
        }
    }

    pub(crate) fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// A home for a new service: `prefer` (the worker its workload's previous service ran
    /// on, so connections already steered there stay right) when given, else the worker
    /// running the fewest services. `None` when services get threads of their own (or no
    /// workers were given).
    pub(crate) fn home(&self, prefer: Option<usize>) -> Option<Home> {
        if self.placement != ServicePlacement::OnWorkers || self.handles.is_empty() {
            return None;
        }
        let worker = prefer
            .filter(|&w| w < self.handles.len())
            .unwrap_or_else(|| {
                (0..self.handles.len())
                    .min_by_key(|&w| self.services[w].load(Ordering::Relaxed))
                    .unwrap_or(0)
            });
        self.services[worker].fetch_add(1, Ordering::Relaxed);
        Some(Home {
            worker,
            handle: self.handles[worker].clone(),
            services: Arc::clone(&self.services),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_go_to_the_least_busy_worker_and_leave_it_when_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let handles = vec![rt.handle().clone(); 3];
        let workers = Workers::new(handles.clone(), ServicePlacement::OnWorkers);
        let a = workers.home(None).unwrap();
        let b = workers.home(None).unwrap();
        let c = workers.home(None).unwrap();
        assert_eq!((a.worker, b.worker, c.worker), (0, 1, 2));
        drop(b);
        assert_eq!(workers.home(None).unwrap().worker, 1);
        // A preferred worker is taken even when busier.
        let again = workers.home(Some(0)).unwrap();
        assert_eq!(again.worker, 0);
        assert_eq!(workers.services[0].load(Ordering::Relaxed), 2);

        let apart = Workers::new(handles, ServicePlacement::OwnThreads);
        assert!(apart.home(None).is_none());
        assert!(Workers::default().home(None).is_none());
    }
}
