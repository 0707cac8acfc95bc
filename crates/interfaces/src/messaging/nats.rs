//! The `nats` messaging backend: a real NATS server through `async-nats`.
//!
//! `config: {url: nats://host:port}`. The connection is made at deploy, so an unreachable
//! server fails the deploy naming `config.url`. Afterwards the client reconnects on its own
//! and resubscribes; while it is disconnected, `publish` and `request` fail with an error
//! string instead of queueing messages the guest believes were sent.
//!
//! Each thread that uses the broker gets a client of its own, connected on first use there
//! (see [`NatsBroker::client`]): hearth's HTTP workers are one current-thread runtime each,
//! so a publish from a guest, the socket write and the reply all stay on the worker's thread.
//! Subscriptions can be shared ([`Broker::subscribe_shared`]): one per worker, joined in a
//! queue group of their own, so NATS hands each message to one worker, whose thread then
//! reads it, delivers it and runs the handler.

use super::{Broker, Message, SUBSCRIPTION_BUFFER, Subscription};
use crate::{Declared, FieldError};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long the deploy waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a thread whose own connection failed uses the deploy's client before it tries
/// again.
const RETRY_OWN: Duration = Duration::from_secs(1);

pub(crate) struct NatsBroker {
    /// The client made at deploy, on the deploying thread; also the fallback of a thread
    /// that could not connect a client of its own.
    first: async_nats::Client,
    /// Each thread's own client (the deploying thread's is `first`), or when that thread's
    /// last attempt to connect one failed.
    own: Mutex<HashMap<ThreadId, Own>>,
    url: String,
}

enum Own {
    Client(async_nats::Client),
    Failed(Instant),
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
        let first = connect(&url).await.map_err(unreachable)?;
        let own = HashMap::from([(std::thread::current().id(), Own::Client(first.clone()))]);
        Ok(Self {
            first,
            own: Mutex::new(own),
            url,
        })
    }

    /// This thread's client, connected now if it has none: its connection task then runs
    /// on this thread's runtime. A thread that cannot connect one (the server is down) uses
    /// the deploy's client for [`RETRY_OWN`] before it tries again.
    async fn client(&self) -> async_nats::Client {
        let thread = std::thread::current().id();
        let own = || {
            self.own
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        match own().get(&thread) {
            Some(Own::Client(client)) => return client.clone(),
            Some(Own::Failed(at)) if at.elapsed() < RETRY_OWN => return self.first.clone(),
            _ => {}
        }
        match connect(&self.url).await {
            Ok(client) => {
                own().insert(thread, Own::Client(client.clone()));
                client
            }
            Err(why) => {
                tracing::debug!(url = %self.url, %why, "no NATS connection of this thread's own; using the deploy's");
                own().insert(thread, Own::Failed(Instant::now()));
                self.first.clone()
            }
        }
    }

    /// This thread's client, if it is connected.
    async fn connected(&self) -> Result<async_nats::Client, String> {
        let client = self.client().await;
        match client.connection_state() {
            async_nats::connection::State::Connected => Ok(client),
            _ => Err(format!("NATS at `{}` is not connected", self.url)),
        }
    }
}

/// A client of `url`, within [`CONNECT_TIMEOUT`]; the error says why not.
async fn connect(url: &str) -> Result<async_nats::Client, String> {
    let connect = async_nats::ConnectOptions::new()
        .name("hearth")
        .connection_timeout(CONNECT_TIMEOUT)
        .max_reconnects(None)
        .connect(url);
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())
}

#[async_trait::async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, message: Message) -> Result<(), String> {
        let client = self.connected().await?;
        let result = match message.reply_to {
            Some(reply) => {
                client
                    .publish_with_reply(message.subject, reply, message.body)
                    .await
            }
            None => client.publish(message.subject, message.body).await,
        };
        result.map_err(|e| format!("NATS publish failed: {e}"))
    }

    async fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Message, String> {
        let client = self.connected().await?;
        let request = async_nats::Request::new()
            .payload(body)
            .timeout(Some(timeout));
        let reply = client
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
        let subscriber = self
            .client()
            .await
            .subscribe(pattern.to_string())
            .await
            .map_err(|e| format!("cannot subscribe to `{pattern}` on NATS: {e}"))?;
        Ok(forward(subscriber))
    }

    fn share_group(&self) -> Option<String> {
        // An inbox name is random: no other host's subscriptions join the group.
        Some(self.first.new_inbox())
    }

    async fn subscribe_shared(&self, pattern: &str, group: &str) -> Result<Subscription, String> {
        let subscriber = self
            .client()
            .await
            .queue_subscribe(pattern.to_string(), group.to_string())
            .await
            .map_err(|e| format!("cannot subscribe to `{pattern}` on NATS: {e}"))?;
        Ok(forward(subscriber))
    }
}

/// The subscriber's messages as a [`Subscription`], forwarded by a task on this thread's
/// runtime.
fn forward(mut subscriber: async_nats::Subscriber) -> Subscription {
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
    Subscription {
        rx,
        _keep: Box::new(AbortOnDrop(forward)),
    }
}

/// Stops the forwarding task when the subscription is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
