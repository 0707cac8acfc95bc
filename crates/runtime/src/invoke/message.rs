//! A message delivery on the one invoke path: one task per subscription receives from the
//! component's broker and calls its `wasmcloud:messaging/handler` export on a fresh instance,
//! within the component's `maxConcurrency`, deadline and memory limit, like an HTTP request.
//!
//! A saturated component is not a reason to drop a message: the delivery task waits for a
//! slot ([`Admission::Patient`]), and the subscription's buffer (then the broker) absorbs the
//! burst. A handler that traps, times out or returns `Err` is counted and logged; the message
//! is not redelivered (the interface promises at-most-once, as NATS core does).

use super::{Admission, Invocation, InvokeError};
use crate::workload::ComponentRuntime;
use hearth_interfaces::bindings::handler::exports::wasmcloud::messaging::handler::BrokerMessage;
use hearth_interfaces::messaging::{Message, Subscription};
use std::sync::Arc;
use tokio::task::AbortHandle;

/// Starts delivering `subscription`'s messages to `component`, on `place`.
pub(crate) fn deliver(
    component: &Arc<ComponentRuntime>,
    pattern: String,
    mut subscription: Subscription,
    place: &tokio::runtime::Handle,
) -> AbortHandle {
    let component = Arc::clone(component);
    let inner = place.clone();
    place
        .spawn(async move {
            tracing::info!(workload = %component.workload, component = %component.name, subject = %pattern, "subscribed");
            while let Some(message) = subscription.next().await {
                let Ok(invocation) = component.admit(Admission::Patient).await else {
                    break;
                };
                let component = Arc::clone(&component);
                inner.spawn(async move {
                    let subject = message.subject.clone();
                    if let Err(e) = component.handle_message(invocation, message).await {
                        tracing::debug!(%subject, error = %e, "message not handled");
                    }
                });
            }
        })
        .abort_handle()
}

impl ComponentRuntime {
    /// Calls the handler export on the admitted invocation's fresh instance with one message.
    async fn handle_message(&self, invocation: Invocation, m: Message) -> Result<(), InvokeError> {
        let Invocation {
            mut store,
            deadline,
            timeout,
            permit: _permit,
        } = invocation;
        let Some(handler) = &self.handler else {
            return self.record(
                Err(InvokeError::NotExported(
                    crate::plan::world::MESSAGE_HANDLER,
                )),
                std::time::Instant::now(),
            );
        };
        let span = crate::trace::invocation(
            None,
            &self.workload,
            &self.name,
            format!("deliver {}", self.name),
            opentelemetry::trace::SpanKind::Consumer,
        );
        if let Some(span) = &span {
            span.set("messaging.destination.name", m.subject.clone());
            store.data_mut().set_trace_context(span.context());
        }
        let message = BrokerMessage {
            subject: m.subject,
            body: m.body.into(),
            reply_to: m.reply_to,
        };
        let call = async {
            let called = async {
                let instance = handler.instantiate_async(&mut store).await?;
                instance
                    .wasmcloud_messaging_handler()
                    .call_handle_message(&mut store, &message)
                    .await?
                    // The handler's own `Err` is a failed delivery, like a trap.
                    .map_err(|reason| {
                        wasmtime::Error::msg(format!("the handler returned an error: {reason}"))
                    })
            }
            .await;
            called.map_err(|e| store.data().explain(e))
        };
        let handled = self.complete(deadline, timeout, call).await;
        if let Some(span) = span {
            span.end(handled.as_ref().err().map(InvokeError::short_reason));
        }
        handled
    }
}
