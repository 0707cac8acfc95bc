//! The `redis` key-value backend (`config: {url: redis://host:port[/db]}`): one Redis hash per
//! bucket, `hearth:kv:{scope}/{bucket}`, whose fields are the keys (HGET, HSET, HDEL,
//! HEXISTS, HSCAN, HINCRBY, HMGET). `increment` is Redis's own HINCRBY, so it is atomic across
//! hosts too; its range is Redis's (`i64`).
//!
//! The connection is made and PINGed at deploy, so an unreachable server fails the deploy
//! naming `config.url`. Each thread that uses the store gets its own connection on first use
//! (see [`RedisStore`]). A [`ConnectionManager`] reconnects by itself; every
//! operation is bounded by [`OP_TIMEOUT`], so while Redis is down the guest gets
//! `error::other("redis at …: …")` quickly instead of hanging, and the first operations
//! after Redis is back succeed again. A password in the URL never appears in messages.
//! `list-keys` cursors are HSCAN cursors: a page may repeat a key, as HSCAN may.

use super::{BucketId, KeyPage, KeyValueBackend, LIST_PAGE, not_a_number, overflow};
use crate::{BackendConfig, FieldError};
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Cmd, FromRedisValue, IntoConnectionInfo};
use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// Longest a guest waits for one operation.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest one connection attempt takes (at deploy and when reconnecting).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection idle this long is PINGed before a command that is not safe to resend.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Longest the deploy waits for the server (connect and PING).
const BIND_TIMEOUT: Duration = Duration::from_secs(3);

/// Reads and checks the entry's `url` (no I/O).
pub(crate) fn settings(config: &mut BackendConfig<'_>) -> Result<String, FieldError> {
    let url = config.string("url", "a Redis URL such as `redis://127.0.0.1:6379`")?;
    if url.starts_with("rediss://") {
        return Err(config.error(
            "url",
            "`rediss://` (TLS) is not supported by this build: expected `redis://host:port`",
        ));
    }
    if !url.starts_with("redis://") {
        return Err(config.error(
            "url",
            format!(
                "expected a URL starting with `redis://`, found `{}`",
                redact(&url)
            ),
        ));
    }
    if let Err(e) = url.as_str().into_connection_info() {
        return Err(config.error(
            "url",
            format!("`{}` is not a valid Redis URL: {e}", redact(&url)),
        ));
    }
    Ok(url)
}

/// The URL with any user name and password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

pub(crate) struct RedisStore {
    client: ::redis::Client,
    config: ConnectionManagerConfig,
    /// One connection per thread that uses the store, made on first use there. hearth's HTTP
    /// workers are one current-thread runtime each, so a connection's I/O task runs on the
    /// worker whose guests use it: an operation costs no cross-thread wake-ups.
    conns: Mutex<HashMap<ThreadId, Conn>>,
    /// The URL as messages show it (redacted).
    url: String,
}

/// One thread's connection and when it was last used.
struct Conn {
    manager: ConnectionManager,
    used: Instant,
}

impl RedisStore {
    /// Connects and PINGs, within [`BIND_TIMEOUT`]; the error says why it could not.
    pub(crate) async fn connect(url: &str) -> Result<Self, String> {
        let shown = redact(url);
        let unreachable = |why: String| format!("cannot reach Redis at {shown}: {why}");
        let client = ::redis::Client::open(url).map_err(|e| unreachable(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(OP_TIMEOUT)
            .set_number_of_retries(1)
            .set_factor(50)
            .set_max_delay(500);
        let connect = async {
            let mut conn =
                ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
            ::redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await?;
            Ok::<_, ::redis::RedisError>(conn)
        };
        let conn = tokio::time::timeout(BIND_TIMEOUT, connect)
            .await
            .map_err(|_| unreachable(format!("no answer within {BIND_TIMEOUT:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self {
            client,
            config,
            conns: Mutex::new(HashMap::from([(
                std::thread::current().id(),
                Conn {
                    manager: conn,
                    used: Instant::now(),
                },
            )])),
            url: shown,
        })
    }

    /// This thread's connection (made now if it has none) and how long it had been idle.
    async fn conn(&self) -> Result<(ConnectionManager, Duration), ::redis::RedisError> {
        let thread = std::thread::current().id();
        let lock = || {
            self.conns
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let now = Instant::now();
        if let Some(conn) = lock().get_mut(&thread) {
            let idle = now.saturating_duration_since(conn.used);
            conn.used = now;
            return Ok((conn.manager.clone(), idle));
        }
        let manager =
            ConnectionManager::new_with_config(self.client.clone(), self.config.clone()).await?;
        let conn = lock()
            .entry(thread)
            .or_insert(Conn { manager, used: now })
            .manager
            .clone();
        Ok((conn, Duration::ZERO))
    }

    /// Runs one command within [`OP_TIMEOUT`]; errors are guest messages naming the server.
    ///
    /// A connection that died while idle (Redis restarted) fails its next command, and the
    /// manager then reconnects. So a command that failed without reaching Redis is sent once
    /// more, and an `idempotent` one also when it may have reached Redis. A command that is
    /// not idempotent (HINCRBY) on a connection idle for [`IDLE_CHECK`] is preceded by a
    /// PING, so that it is the PING that finds a dead connection.
    async fn run<T: FromRedisValue>(&self, cmd: &Cmd, idempotent: bool) -> Result<T, String> {
        let query = async {
            let (mut conn, idle) = self.conn().await?;
            if !idempotent && idle >= IDLE_CHECK {
                match ::redis::cmd("PING").query_async::<()>(&mut conn).await {
                    Err(e) if !retryable(&e, true) => return Err(e),
                    _ => {}
                }
            }
            match cmd.query_async::<T>(&mut conn).await {
                Err(e) if retryable(&e, idempotent) => cmd.query_async::<T>(&mut conn).await,
                result => result,
            }
        };
        match tokio::time::timeout(OP_TIMEOUT, query).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("redis at {}: {e}", self.url)),
            Err(_) => Err(format!(
                "redis at {}: no answer within {OP_TIMEOUT:?}",
                self.url
            )),
        }
    }
}

/// Whether a failed command may be sent again on a fresh connection.
fn retryable(e: &::redis::RedisError, idempotent: bool) -> bool {
    use std::io::ErrorKind;
    let io = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    match io {
        // No connection was made (the manager's last reconnect failed): never sent.
        Some(ErrorKind::ConnectionRefused) => true,
        // The connection closed: before the command was written, or after Redis ran it.
        // The multiplexed connection reports both as a broken pipe.
        Some(ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof) => {
            idempotent
        }
        _ => false,
    }
}

/// The Redis key of a bucket's hash.
fn hash(bucket: &BucketId) -> String {
    format!("hearth:kv:{bucket}")
}

fn cmd(name: &str, bucket: &BucketId) -> Cmd {
    let mut c = ::redis::cmd(name);
    c.arg(hash(bucket));
    c
}

#[async_trait::async_trait]
impl KeyValueBackend for RedisStore {
    async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.run(cmd("HGET", bucket).arg(key), true).await
    }

    async fn set(&self, bucket: &BucketId, key: &str, value: Vec<u8>) -> Result<(), String> {
        self.run::<()>(cmd("HSET", bucket).arg(key).arg(value), true)
            .await
    }

    async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), String> {
        self.run::<()>(cmd("HDEL", bucket).arg(key), true).await
    }

    async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, String> {
        self.run(cmd("HEXISTS", bucket).arg(key), true).await
    }

    async fn list_keys(&self, bucket: &BucketId, cursor: Option<u64>) -> Result<KeyPage, String> {
        let (next, flat): (u64, Vec<Vec<u8>>) = self
            .run(
                cmd("HSCAN", bucket)
                    .arg(cursor.unwrap_or(0))
                    .arg("COUNT")
                    .arg(LIST_PAGE),
                true,
            )
            .await?;
        // HSCAN answers field, value, field, value, ...
        let keys = flat
            .into_iter()
            .step_by(2)
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect();
        Ok(KeyPage {
            keys,
            cursor: (next != 0).then_some(next),
        })
    }

    async fn increment(&self, bucket: &BucketId, key: &str, delta: u64) -> Result<u64, String> {
        let by = i64::try_from(delta).map_err(|_| overflow(key, delta))?;
        match self
            .run::<i64>(cmd("HINCRBY", bucket).arg(key).arg(by), false)
            .await
        {
            Ok(sum) => u64::try_from(sum).map_err(|_| not_a_number(key)),
            Err(e) if e.contains("not an integer") => Err(not_a_number(key)),
            Err(e) if e.contains("would overflow") => Err(overflow(key, delta)),
            Err(e) => Err(e),
        }
    }

    async fn get_many(
        &self,
        bucket: &BucketId,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        self.run(cmd("HMGET", bucket).arg(&keys), true).await
    }

    /// One HSET: the whole batch is applied at once.
    async fn set_many(
        &self,
        bucket: &BucketId,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), String> {
        let mut c = cmd("HSET", bucket);
        for (key, value) in &entries {
            c.arg(key).arg(value);
        }
        self.run::<()>(&c, true).await
    }

    async fn delete_many(&self, bucket: &BucketId, keys: Vec<String>) -> Result<(), String> {
        self.run::<()>(cmd("HDEL", bucket).arg(&keys), true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("redis://user:s3cret@db:6379/2"),
            "redis://***@db:6379/2"
        );
        assert_eq!(redact("redis://:p@ss@db"), "redis://***@db");
    }
}
