//! The per-component invocation gate: at most `maxConcurrency` instances at once, then a short
//! bounded wait queue, then a refusal the caller turns into `503`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Held for the lifetime of one instance.
pub type Permit = OwnedSemaphorePermit;

/// Concurrency limit plus wait queue for one component.
#[derive(Debug)]
pub struct Gate {
    slots: Arc<Semaphore>,
    waiting: AtomicU32,
    max_waiting: u32,
    max_wait: Duration,
}

impl Gate {
    /// `max_concurrency` running, as many again waiting, each waiting at most `max_wait`.
    pub fn new(max_concurrency: u32, max_wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrency as usize)),
            waiting: AtomicU32::new(0),
            max_waiting: max_concurrency,
            max_wait,
        }
    }

    /// A permit, or `None` when the component is saturated and its queue full or too slow.
    pub async fn enter(&self) -> Option<Permit> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let permit =
            tokio::time::timeout(self.max_wait, Arc::clone(&self.slots).acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match permit {
            Ok(Ok(permit)) => Some(permit),
            _ => None,
        }
    }

    /// A permit, waiting as long as it takes: for deliveries that apply backpressure to their
    /// source instead of being refused. `None` only if the gate is closed.
    pub async fn enter_patiently(&self) -> Option<Permit> {
        Arc::clone(&self.slots).acquire_owned().await.ok()
    }

    /// Instances running right now.
    pub fn in_use(&self, max_concurrency: u32) -> u32 {
        max_concurrency.saturating_sub(self.slots.available_permits() as u32)
    }
}
