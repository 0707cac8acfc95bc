//! `wasmcloud:messaging`: publish and request through `consumer`, and deliveries on a
//! component's `subscriptions` (the runtime calls its `handler` export for each).
//!
//! Backends implement [`Broker`]: `memory` (one in-process broker for the whole host, so
//! workloads on one host can talk as they would through NATS) and `nats` (a real server;
//! `config: {url}`). Subjects follow NATS rules: dot-separated tokens, `*` matches one token
//! and `>` the rest. A broker that is down gives the guest an `Err` string; the client
//! reconnects by itself and resubscribes.

mod memory;
mod metered;
mod nats;

use crate::bindings::messaging::consumer;
use crate::bindings::messaging::types::{self, BrokerMessage};
use crate::{Declared, FieldError, InterfacesView, PartInterfaces};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub(crate) const PACKAGE: &str = "wasmcloud:messaging";
pub(crate) const BACKENDS: &[&str] = &["memory", "nats"];

/// Longest a guest may wait in `request`, whatever it asks for.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Messages a subscription buffers before the broker is slowed (memory) or drops (NATS).
pub(crate) const SUBSCRIPTION_BUFFER: usize = 1024;

/// One message, as brokers carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub body: Bytes,
    pub reply_to: Option<String>,
}

/// The messages of one subscription; dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::Receiver<Message>,
    /// Whatever keeps the subscription alive in the broker.
    _keep: Box<dyn Send + Sync>,
}

impl Subscription {
    /// The next message; `None` once the broker has gone for good.
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

/// A message broker backend.
#[async_trait::async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Sends a message; `Err` when the broker cannot take it now.
    async fn publish(&self, message: Message) -> Result<(), String>;
    /// Sends `body` to `subject` with a fresh reply subject and waits for the first reply.
    async fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Message, String>;
    /// Starts receiving the messages whose subject matches `pattern`.
    async fn subscribe(&self, pattern: &str) -> Result<Subscription, String>;
    /// A fresh name for subscriptions that share their messages, each message going to one
    /// of them ([`Broker::subscribe_shared`]); `None` from a broker that cannot share.
    fn share_group(&self) -> Option<String> {
        None
    }
    /// [`Broker::subscribe`], as one member of `group` (a name from
    /// [`Broker::share_group`]).
    async fn subscribe_shared(&self, pattern: &str, group: &str) -> Result<Subscription, String> {
        let _ = (pattern, group);
        Err("this broker cannot share a subscription".into())
    }
}

/// Host-wide messaging state: the one in-memory broker.
#[derive(Default)]
pub(crate) struct Shared {
    memory: Arc<memory::MemoryBroker>,
}

/// The broker one part uses.
#[derive(Clone)]
pub(crate) struct Binding {
    broker: Arc<dyn Broker>,
}

pub(crate) fn check(d: Declared<'_>) -> Result<(), FieldError> {
    match d.spec.backend.as_str() {
        "memory" => d.config().finish(&[]),
        "nats" => nats::settings(d).map(drop),
        _ => Err(d.unknown_backend(BACKENDS)),
    }
}

pub(crate) async fn bind(
    shared: &Shared,
    workload: &Arc<str>,
    decl: Option<Declared<'_>>,
) -> Result<Binding, FieldError> {
    let (broker, backend): (Arc<dyn Broker>, &str) = match decl {
        None => (shared.memory.clone(), "memory"),
        Some(d) => match d.spec.backend.as_str() {
            "memory" => (shared.memory.clone(), "memory"),
            "nats" => (Arc::new(nats::NatsBroker::connect(d).await?), "nats"),
            _ => return Err(d.unknown_backend(BACKENDS)),
        },
    };
    Ok(Binding {
        broker: metered::Metered::wrap(broker, workload, backend),
    })
}

/// Subscribes `part`'s broker to `pattern`, for the runtime to deliver to its handler.
pub async fn subscribe(part: &PartInterfaces, pattern: &str) -> Result<Subscription, String> {
    part.messaging.broker.subscribe(pattern).await
}

/// A fresh group name for subscriptions of `part`'s broker that share their messages, if
/// it can share them (NATS queue groups; the memory broker cannot).
pub fn share_group(part: &PartInterfaces) -> Option<String> {
    part.messaging.broker.share_group()
}

/// Subscribes `part`'s broker to `pattern` as one member of `group`: each message goes to
/// one member. Made on the thread that will deliver, whose connection then carries it.
pub async fn subscribe_shared(
    part: &PartInterfaces,
    pattern: &str,
    group: &str,
) -> Result<Subscription, String> {
    part.messaging.broker.subscribe_shared(pattern, group).await
}

/// Whether `subject` matches `pattern` under NATS rules.
pub(crate) fn matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether `subject` is one a message may be published to: no wildcards, no empty tokens.
fn publishable(subject: &str) -> Result<(), String> {
    if subject
        .split('.')
        .any(|t| t.is_empty() || t == "*" || t == ">" || t.contains(char::is_whitespace))
    {
        return Err(format!(
            "invalid subject `{subject}`: expected dot-separated tokens without spaces or wildcards"
        ));
    }
    Ok(())
}

impl From<Message> for BrokerMessage {
    fn from(m: Message) -> Self {
        Self {
            subject: m.subject,
            body: m.body.into(),
            reply_to: m.reply_to,
        }
    }
}

impl types::Host for InterfacesView<'_> {}

impl consumer::Host for InterfacesView<'_> {
    async fn request(
        &mut self,
        subject: String,
        body: Vec<u8>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<BrokerMessage, String>> {
        if let Err(e) = publishable(&subject) {
            return Ok(Err(e));
        }
        let timeout = Duration::from_millis(timeout_ms.into()).min(MAX_REQUEST_TIMEOUT);
        let broker = Arc::clone(&self.ctx.part.messaging.broker);
        Ok(broker
            .request(subject, body.into(), timeout)
            .await
            .map(BrokerMessage::from))
    }

    async fn publish(&mut self, msg: BrokerMessage) -> wasmtime::Result<Result<(), String>> {
        if let Err(e) = publishable(&msg.subject) {
            return Ok(Err(e));
        }
        let broker = Arc::clone(&self.ctx.part.messaging.broker);
        Ok(broker
            .publish(Message {
                subject: msg.subject,
                body: msg.body.into(),
                reply_to: msg.reply_to,
            })
            .await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_like_nats() {
        assert!(matches("orders.created", "orders.created"));
        assert!(!matches("orders.created", "orders.deleted"));
        assert!(matches("orders.*", "orders.created"));
        assert!(!matches("orders.*", "orders.created.eu"));
        assert!(matches("orders.>", "orders.created.eu"));
        assert!(!matches("orders.>", "orders"));
        assert!(matches("*.created", "orders.created"));
        assert!(!matches("orders", "orders.created"));
        assert!(publishable("a.b").is_ok());
        assert!(publishable("a.*").is_err());
        assert!(publishable("a..b").is_err());
    }
}
