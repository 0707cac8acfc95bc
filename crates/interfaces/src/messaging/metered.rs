//! A message broker with its operations counted (see `crate::meter`): the decorator
//! [`super::bind`] puts around every broker it binds. A `request` that times out is an error;
//! deliveries to a subscription are not operations (the runtime counts the handler's
//! invocations).

use super::{Broker, Message, Subscription};
use crate::meter::Meter;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Metered {
    inner: Arc<dyn Broker>,
    meter: Meter,
}

impl Metered {
    pub(super) fn wrap(inner: Arc<dyn Broker>, workload: &str, backend: &str) -> Arc<dyn Broker> {
        Arc::new(Self {
            inner,
            meter: Meter::new(workload, "messaging", backend),
        })
    }
}

#[async_trait::async_trait]
impl Broker for Metered {
    async fn publish(&self, message: Message) -> Result<(), String> {
        self.meter.measure(self.inner.publish(message)).await
    }
    async fn request(
        &self,
        subject: String,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Message, String> {
        self.meter
            .measure(self.inner.request(subject, body, timeout))
            .await
    }
    async fn subscribe(&self, pattern: &str) -> Result<Subscription, String> {
        self.meter.measure(self.inner.subscribe(pattern)).await
    }
    fn share_group(&self) -> Option<String> {
        self.inner.share_group()
    }
    async fn subscribe_shared(&self, pattern: &str, group: &str) -> Result<Subscription, String> {
        self.meter
            .measure(self.inner.subscribe_shared(pattern, group))
            .await
    }
}
