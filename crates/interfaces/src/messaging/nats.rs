//! The `nats` messaging backend: a real NATS server through `async-nats`.
//!
//! `config: {url: nats://host:port}`. The connection is made at deploy, so an unreachable
//! server fails the deploy naming `config.url`. Afterwards the client reconnects on its own
//! and resubscribes; while it is disconnected, `publish` and `request` fail with an error
//! string instead of queueing messages the guest believes were sent.

use super::{Broker, Message, SUBSCRIPTION_BUFFER, Subscription};
use crate::{Declared, FieldError};
use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the deploy waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct NatsBroker {
    client: async_nats::Client,
    url: String,
}

/// The checked settings of a `nats` entry: its URL.
pub(crate) fn settings(d: Declared<'_>) -> Result<String, FieldError> {
    let mut config = d.config();
    let url = config.string("url", "a NATS URL such as `nats://127.0.0.1:4222`")?;
    if !url.starts_with("nats://") && !url.starts_with("tls://") {
        return Err(config.error(
            "url",
            format!("expected a URL starting with `nats://` or `tls://`, found `{url}`"),
        ));
    }
    config.finish(&["url"])?;
    Ok(url)
}

impl NatsBroker {
    pub(crate) async fn connect(d: Declared<'_>) -> Result<Self, FieldError> {
        let url = settings(d)?;
        let unreachable = |why: String| {
            FieldError::new(
                format!("{}.config.url", d.at),
                format!("cannot reach the NATS server at `{url}`: {why}"),
            )
        };
        let connect = async_nats::ConnectOptions::new()
            .name("hearth")
            .connection_timeout(CONNECT_TIMEOUT)
            .max_reconnects(None)
            .connect(url.as_str());
        let client = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self { client, url })
    }

    fn connected(&self) -> Result<(), String> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err(format!("NATS at `{}` is not connected", self.url)),
        }
    }
}

#[async_trait::async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, message: Message) -> Result<(), String> {
        self.connected()?;
        let result = match message.reply_to {
            Some(reply) => {
                self.client
                    .publish_with_reply(message.subject, reply, message.body)
                    .await
            }
            None => self.client.publish(message.subject, message.body).await,
        };
        result.map_err(|e| format!("NATS publish failed: {e}"))
    }

    async fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Message, String> {
        self.connected()?;
        let request = async_nats::Request::new()
            .payload(body)
            .timeout(Some(timeout));
        let reply = self
            .client
            .send_request(subject.clone(), request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::TimedOut => {
                    format!("no reply on `{subject}` within {} ms", timeout.as_millis())
                }
                async_nats::RequestErrorKind::NoResponders => {
                    format!("no responders on `{subject}`")
                }
                _ => format!("NATS request failed: {e}"),
            })?;
        Ok(Message {
            subject: reply.subject.to_string(),
            body: reply.payload,
            reply_to: reply.reply.map(|r| r.to_string()),
        })
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, String> {
        let mut subscriber = self
            .client
            .subscribe(pattern.to_string())
            .await
            .map_err(|e| format!("cannot subscribe to `{pattern}` on NATS: {e}"))?;
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        // Forwards until the receiving side goes; dropping `subscriber` then unsubscribes.
        let forward = tokio::spawn(async move {
            while let Some(m) = subscriber.next().await {
                let message = Message {
                    subject: m.subject.to_string(),
                    body: m.payload,
                    reply_to: m.reply.map(|r| r.to_string()),
                };
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        });
        Ok(Subscription {
            rx,
            _keep: Box::new(AbortOnDrop(forward)),
        })
    }
}

/// Stops the forwarding task when the subscription is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
