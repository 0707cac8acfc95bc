//! What hosts and controllers say to each other over NATS: subjects and message types.
//!
//! Every message is JSON and carries the protocol version it was written with; a reader
//! refuses a version it does not know rather than guessing. Field names are camelCase, like
//! the manifest's.
//!
//! - heartbeats: `hearth.v1.heartbeat.<host-id>`, published by each host every second;
//! - commands: `hearth.v1.host.<host-id>.{start,stop,status}`, request/reply, keyed by a
//!   replica id the controller assigns.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The version of the messages in this module.
pub const PROTOCOL: u32 = 1;

/// Every subject of the protocol starts with this.
pub const PREFIX: &str = "hearth.v1";

/// The label every replica's workload carries: the deployment it belongs to.
pub const DEPLOYMENT_LABEL: &str = "hearth.dev/deployment";
/// The label every replica's workload carries: the template revision it runs.
pub const REVISION_LABEL: &str = "hearth.dev/revision";

/// The request header that marks a request forwarded by another host (it is never
/// forwarded again).
pub const FORWARDED_HEADER: &str = "hearth-forwarded-by";

/// Subjects, in one place.
pub mod subject {
    use super::PREFIX;

    /// Where `host` publishes its heartbeats.
    pub fn heartbeat(host: &str) -> String {
        format!("{PREFIX}.heartbeat.{host}")
    }

    /// Every host's heartbeats.
    pub fn heartbeats() -> String {
        format!("{PREFIX}.heartbeat.*")
    }

    /// A command to `host`.
    pub fn command(host: &str, verb: Verb) -> String {
        format!("{PREFIX}.host.{host}.{}", verb.as_str())
    }

    /// Every command to `host`.
    pub fn commands(host: &str) -> String {
        format!("{PREFIX}.host.{host}.*")
    }

    /// The commands a host answers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Verb {
        Start,
        Stop,
        Status,
        /// Read-only: a deployment's recent guest lines on the host.
        Logs,
    }

    impl Verb {
        pub fn as_str(self) -> &'static str {
            match self {
                Verb::Start => "start",
                Verb::Stop => "stop",
                Verb::Status => "status",
                Verb::Logs => "logs",
            }
        }

        /// The verb at the end of a command subject.
        pub fn of_subject(subject: &str) -> Option<Self> {
            match subject.rsplit('.').next()? {
                "start" => Some(Verb::Start),
                "stop" => Some(Verb::Stop),
                "status" => Some(Verb::Status),
                "logs" => Some(Verb::Logs),
                _ => None,
            }
        }
    }
}

/// Whether `id` can be a host id: one NATS subject token, DNS-label characters only.
pub fn check_host_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 63 {
        return Err(format!(
            "expected 1 to 63 characters, found {} in `{id}`",
            id.len()
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "expected lower-case letters, digits, `-` and `_`, found `{bad}` in `{id}`"
        ));
    }
    Ok(())
}

/// A host's heartbeat: who it is, what it offers, what it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub protocol: u32,
    pub host_id: String,
    /// Increases by one per heartbeat of this host process.
    pub seq: u64,
    /// Identifies one run of the host process (a restarted host has a new one).
    pub instance: String,
    /// hearth's version.
    pub version: String,
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    /// Host interfaces and backends it can bind, as `package=backend`
    /// (`wasi:keyvalue=redis`).
    pub offers: BTreeSet<String>,
    /// Where its HTTP ingress is reached by peers and load balancers.
    pub http: Option<String>,
    /// The highest controller term it has obeyed (commands of lower terms are refused).
    pub term: u64,
    pub replicas: Vec<ReplicaReport>,
}

/// What a host has room for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub cores: u32,
    pub memory_total_bytes: u64,
    pub memory_free_bytes: u64,
    /// Instance slots of the engine's pool, and how many hold an instance now.
    pub pool_size: u32,
    pub pool_in_use: u32,
    /// How many replicas it accepts.
    pub max_replicas: u32,
}

/// One replica as its host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaReport {
    pub id: String,
    pub deployment: String,
    pub revision: String,
    pub state: ReplicaState,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The HTTP routes it serves (`host` empty for any host), so peers can forward to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteReport>,
}

/// One HTTP route of a replica.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub path: String,
}

/// Where a replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaState {
    /// The controller decided to start it; its host has not reported it yet (controller
    /// side only).
    Pending,
    /// Its host is fetching, compiling or starting it.
    Starting,
    /// It serves.
    Ready,
    /// It could not start (its host gives the message).
    Failed,
    /// It is being stopped: routing ended, requests in flight drain.
    Stopping,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Pending => "pending",
            ReplicaState::Starting => "starting",
            ReplicaState::Ready => "ready",
            ReplicaState::Failed => "failed",
            ReplicaState::Stopping => "stopping",
        }
    }
}

/// `start`: run (or update to) this workload as replica `replica`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartCommand {
    pub protocol: u32,
    /// The sender's leadership term (fencing: a host refuses terms lower than it has seen).
    pub term: u64,
    pub replica: String,
    pub deployment: String,
    pub revision: String,
    /// A `kind: Workload` document named `replica`, as JSON.
    pub workload: serde_json::Value,
}

/// `stop` or `status` of one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCommand {
    pub protocol: u32,
    pub term: u64,
    pub replica: String,
}

/// A host's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Reply {
    /// Done or under way; the replica as it is now.
    Ok { replica: ReplicaReport },
    /// No replica with that id on this host.
    NotFound,
    /// The command was not acted on: a stale term, a full host, another host's id.
    Refused { reason: String },
    /// The command was malformed.
    Invalid { reason: String },
}

/// `logs`: the recent guest lines of a deployment's replicas (or of one replica) on a host,
/// after a cursor. Served by the host's agent for `hearth logs NAME --cluster URL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsRequest {
    pub protocol: u32,
    /// A deployment's name, or one replica's id.
    pub name: String,
    /// Only this component's lines (`service` for the service's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// Only lines numbered after this (0: from the first kept).
    pub after: u64,
    /// Only lines written at or after this, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// At most this many lines (the host caps it at [`MAX_LOG_LINES`]).
    pub max: u32,
}

/// Lines a host sends in one `logs` answer.
pub const MAX_LOG_LINES: u32 = 2000;

/// One guest line, as a host keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// Numbered per host process, in the order written.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub replica: String,
    /// The component or service that wrote it.
    pub part: String,
    /// `stdout`, `stderr` or `log`.
    pub stream: String,
    pub level: String,
    pub text: String,
}

/// A host's answer to `logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum LogsReply {
    Ok {
        /// Identifies the host process: when it changes, line numbers start again.
        instance: String,
        /// In the order written.
        lines: Vec<LogEntry>,
        /// The `after` of the next request.
        cursor: u64,
        /// More lines wait beyond `max`: ask again at once.
        more: bool,
    },
    Invalid {
        reason: String,
    },
}

/// Parses a message, refusing other protocol versions with a clear reason.
pub fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    #[derive(Deserialize)]
    struct Versioned {
        protocol: Option<u32>,
    }
    if let Ok(Versioned {
        protocol: Some(found),
    }) = serde_json::from_slice::<Versioned>(payload)
        && found != PROTOCOL
    {
        return Err(format!(
            "protocol version {found}: expected {PROTOCOL} (hosts and controllers of one cluster must speak the same version)"
        ));
    }
    serde_json::from_slice(payload).map_err(|e| format!("malformed message: {e}"))
}

/// Serialises a message; these types always serialise.
pub fn encode<T: Serialize>(message: &T) -> bytes::Bytes {
    serde_json::to_vec(message)
        .map(bytes::Bytes::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_are_subject_tokens() {
        assert!(check_host_id("host-1").is_ok());
        assert!(check_host_id("").is_err());
        assert!(check_host_id("a.b").is_err());
        assert!(check_host_id("a*").is_err());
        assert!(check_host_id("Big").is_err());
    }

    #[test]
    fn other_protocol_versions_are_refused_by_name() {
        let err = decode::<ReplicaCommand>(br#"{"protocol":2,"term":1,"replica":"x"}"#)
            .err()
            .unwrap_or_default();
        assert!(err.contains("protocol version 2"), "{err}");
        let ok: ReplicaCommand = decode(br#"{"protocol":1,"term":1,"replica":"x"}"#).unwrap();
        assert_eq!(ok.replica, "x");
    }

    #[test]
    fn replies_are_tagged() {
        let text = String::from_utf8(encode(&Reply::NotFound).to_vec()).unwrap();
        assert_eq!(text, r#"{"result":"not-found"}"#);
    }

    #[test]
    fn verbs_round_trip() {
        for verb in [
            subject::Verb::Start,
            subject::Verb::Stop,
            subject::Verb::Status,
        ] {
            let s = subject::command("h1", verb);
            assert_eq!(subject::Verb::of_subject(&s), Some(verb));
        }
    }
}
