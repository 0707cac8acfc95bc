//! Commands to hosts: NATS request/reply, at most [`MAX_IN_FLIGHT`] at once, each answered
//! within [`COMMAND_TIMEOUT`] or failed. The NATS controller and the operator both send
//! through this.

use crate::protocol::{self, Reply, subject};
use async_nats::Client;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Commands in flight at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// How long a host has to answer a command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends commands to hosts.
#[derive(Clone)]
pub struct Commands {
    client: Client,
    in_flight: Arc<Semaphore>,
}

impl Commands {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Sends `payload` as a `verb` command to `host` and waits for its answer.
    pub async fn send(
        &self,
        host: &str,
        verb: subject::Verb,
        payload: bytes::Bytes,
    ) -> Result<Reply, String> {
        let _permit = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(COMMAND_TIMEOUT));
        let message = self
            .client
            .send_request(subject::command(host, verb), request)
            .await
            .map_err(|e| format!("no answer from host `{host}`: {e}"))?;
        protocol::decode::<Reply>(&message.payload)
    }
}
