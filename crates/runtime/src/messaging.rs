//! Delivering messages to subscribed components: one task per subscription receives from the
//! component's broker and calls its `wasmcloud:messaging/handler` export on a fresh instance,
//! within the component's `maxConcurrency`, deadline and memory limit, like an HTTP request.
//!
//! A saturated component is not a reason to drop a message: the delivery task waits for a
//! slot, and the subscription's buffer (then the broker) absorbs the burst. A handler that
//! traps, times out or returns `Err` is counted and logged; the message is not redelivered
//! (the interface promises at-most-once, as NATS core does).

use crate::deploy::ComponentRuntime;
use crate::state::InvocationState;
use hearth_interfaces::bindings::handler::MessagingHandlerPre;
use hearth_interfaces::bindings::handler::exports::wasmcloud::messaging::handler::BrokerMessage;
use hearth_interfaces::messaging::{Message, Subscription};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::task::AbortHandle;

/// Starts delivering `subscription`'s messages to `component`, on `place`.
pub(crate) fn deliver(
    component: &Arc<ComponentRuntime>,
    handler: MessagingHandlerPre<InvocationState>,
    pattern: String,
    mut subscription: Subscription,
    place: &tokio::runtime::Handle,
) -> AbortHandle {
    let component = Arc::clone(component);
    let handler = Arc::new(handler);
    let inner = place.clone();
    place
        .spawn(async move {
            tracing::info!(workload = %component.workload, component = %component.name, subject = %pattern, "subscribed");
            while let Some(message) = subscription.next().await {
                let Some(permit) = component.gate.enter_patiently().await else {
                    break;
                };
                let component = Arc::clone(&component);
                let handler = Arc::clone(&handler);
                inner.spawn(async move {
                    let _permit = permit;
                    component.handle_message(&handler, message).await;
                });
            }
        })
        .abort_handle()
}

impl ComponentRuntime {
    /// Calls the handler export on a fresh instance with one message.
    async fn handle_message(&self, handler: &MessagingHandlerPre<InvocationState>, m: Message) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let subject = m.subject.clone();
        let message = BrokerMessage {
            subject: m.subject,
            body: m.body.into(),
            reply_to: m.reply_to,
        };
        let timeout = Duration::from_millis(self.limits.timeout_ms);
        let deadline = Instant::now() + timeout;
        let mut store = self.new_store(deadline);
        let run = async {
            let instance = handler.instantiate_async(&mut store).await?;
            instance
                .wasmcloud_messaging_handler()
                .call_handle_message(&mut store, &message)
                .await
        };
        match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(reason))) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(workload = %self.workload, component = %self.name, %subject, %reason, "message handler returned an error");
            }
            Ok(Err(e)) => {
                drop(self.classify(e, timeout));
            }
            Err(_) => {
                drop(self.classify_timeout(timeout));
            }
        }
    }
}
