//! The `memory` messaging backend: one in-process broker per host. Delivery waits when a
//! subscriber's buffer is full, so a slow handler slows its publishers instead of losing
//! messages; a subscriber that has gone is forgotten on the next publish.

use super::{Broker, Message, SUBSCRIPTION_BUFFER, Subscription, matches};
use bytes::Bytes;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Default)]
pub(crate) struct MemoryBroker {
    subscribers: Mutex<Vec<(String, mpsc::Sender<Message>)>>,
    next_inbox: AtomicU64,
}

impl MemoryBroker {
    fn senders(&self, subject: &str) -> Vec<mpsc::Sender<Message>> {
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subscribers.retain(|(_, tx)| !tx.is_closed());
        subscribers
            .iter()
            .filter(|(pattern, _)| matches(pattern, subject))
            .map(|(_, tx)| tx.clone())
            .collect()
    }

    fn add(&self, pattern: &str, capacity: usize) -> mpsc::Receiver<Message> {
        let (tx, rx) = mpsc::channel(capacity);
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((pattern.to_string(), tx));
        rx
    }
}

#[async_trait::async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, message: Message) -> Result<(), String> {
        for tx in self.senders(&message.subject) {
            // A receiver dropped meanwhile is not the publisher's problem.
            let _ = tx.send(message.clone()).await;
        }
        Ok(())
    }

    async fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Message, String> {
        let inbox = format!(
            "_INBOX.hearth.{}",
            self.next_inbox.fetch_add(1, Ordering::Relaxed)
        );
        let mut replies = self.add(&inbox, 1);
        if self.senders(&subject).is_empty() {
            return Err(format!("no responders on `{subject}`"));
        }
        self.publish(Message {
            subject: subject.clone(),
            body,
            reply_to: Some(inbox),
        })
        .await?;
        match tokio::time::timeout(timeout, replies.recv()).await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err("the broker closed the reply subscription".into()),
            Err(_) => Err(format!(
                "no reply on `{subject}` within {} ms",
                timeout.as_millis()
            )),
        }
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, String> {
        Ok(Subscription {
            rx: self.add(pattern, SUBSCRIPTION_BUFFER),
            _keep: Box::new(()),
        })
    }
}
