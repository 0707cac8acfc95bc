//! The cluster's state in NATS JetStream key-value buckets:
//! - `hearth-deployments`: one key per deployment, the applied document and its revision;
//!   written with revision checks, so two writers that race are told instead of one update
//!   silently replacing the other;
//! - `hearth-status`: one key per deployment, written by the acting controller;
//! - `hearth-control`: the controllers' leader lease (`leader`), renewed by revision, so the
//!   KV revision of the write that took it is a fencing term that only grows.
//!
//! Buckets are replicated over three NATS nodes when the cluster has that many.

use crate::protocol::{PROTOCOL, ReplicaState};
use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

pub const DEPLOYMENTS: &str = "hearth-deployments";
pub const STATUS: &str = "hearth-status";
pub const CONTROL: &str = "hearth-control";
const LEADER_KEY: &str = "leader";

/// A failure talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer changed the key after it was read.
    #[error(
        "deployment `{name}` was changed by another writer while this one ran (expected revision {expected}): read it again and retry"
    )]
    Conflict { name: String, expected: u64 },
    #[error("no deployment `{0}` in the cluster")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the cluster store (NATS JetStream) failed: {0}")]
    Nats(String),
}

fn nats(e: impl std::fmt::Display) -> StoreError {
    StoreError::Nats(e.to_string())
}

/// One deployment as applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    pub protocol: u32,
    pub name: String,
    /// 1 when created, one more per apply or scale that changed it.
    pub generation: u64,
    /// Hash of the template (`spec.template`, or a `Workload`'s `spec`): replicas of
    /// another revision are replaced by a rollout.
    pub revision: String,
    /// The document as applied, as JSON, `spec.replicas` kept current by `scale`.
    pub document: serde_json::Value,
    /// Milliseconds since the Unix epoch of the last change.
    pub changed_at_ms: u64,
}

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Configured,
    Unchanged,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// A deployment's status, written by the acting controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    pub observed_generation: u64,
    pub revision: String,
    /// Desired replicas.
    pub replicas: u32,
    pub ready_replicas: u32,
    /// Replicas at the current revision.
    pub updated_replicas: u32,
    /// Ready replicas at the current revision.
    pub available_replicas: u32,
    pub conditions: Vec<Condition>,
    pub placements: Vec<Placement>,
}

/// One condition of a deployment, in the Kubernetes shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Available`, `Progressing` or `Unschedulable`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True` or `False`.
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// One replica and where it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub replica: String,
    pub host: String,
    pub state: ReplicaState,
    pub revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The leader lease's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub holder: String,
    /// The KV revision of the write that took the lease: the holder's fencing term.
    pub term: u64,
}

/// The three buckets.
#[derive(Clone)]
pub struct Store {
    deployments: kv::Store,
    status: kv::Store,
    control: kv::Store,
}

impl Store {
    /// Opens the buckets, creating any that is missing with `replicas` copies (one per
    /// NATS node, at most three).
    pub async fn open(client: &async_nats::Client, replicas: usize) -> Result<Self, StoreError> {
        let js = jetstream::new(client.clone());
        let open = |bucket: &'static str, history: i64| {
            let js = js.clone();
            async move {
                if let Ok(store) = js.get_key_value(bucket).await {
                    return Ok(store);
                }
                let config = kv::Config {
                    bucket: bucket.to_string(),
                    history,
                    num_replicas: replicas.clamp(1, 3),
                    ..Default::default()
                };
                match js.create_key_value(config).await {
                    Ok(store) => Ok(store),
                    // Another process created it in the meantime.
                    Err(create) => js
                        .get_key_value(bucket)
                        .await
                        .map_err(|_| nats(format!("cannot create bucket `{bucket}`: {create}"))),
                }
            }
        };
        Ok(Self {
            deployments: open(DEPLOYMENTS, 5).await?,
            status: open(STATUS, 1).await?,
            control: open(CONTROL, 1).await?,
        })
    }

    /// How many copies the NATS cluster behind `client` should keep: three when it has
    /// three nodes or more, else one.
    pub fn default_replicas(client: &async_nats::Client) -> usize {
        if client.server_info().connect_urls.len() >= 3 {
            3
        } else {
            1
        }
    }

    /// The copies the deployments bucket keeps.
    pub async fn replicas(&self) -> Result<usize, StoreError> {
        let info = self.deployments.status().await.map_err(nats)?;
        Ok(info.info.config.num_replicas)
    }

    /// One deployment and its KV revision.
    pub async fn get(&self, name: &str) -> Result<Option<(DeploymentRecord, u64)>, StoreError> {
        check_key(name)?;
        let Some(entry) = self.deployments.entry(name).await.map_err(nats)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let record = decode_record(&entry.key, &entry.value)?;
        Ok(Some((record, entry.revision)))
    }

    /// Every deployment.
    pub async fn list(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        let keys: Vec<String> = match self.deployments.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(nats)?,
            Err(e) => return Err(nats(e)),
        };
        let mut records = Vec::new();
        for key in keys {
            if let Some((record, _)) = self.get(&key).await? {
                records.push(record);
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Writes `document` (already validated) as deployment `name` with template hash
    /// `revision`, unless it is what is stored. Fails with [`StoreError::Conflict`] when
    /// another writer changed it since it was read.
    pub async fn apply(
        &self,
        name: &str,
        revision: &str,
        document: serde_json::Value,
    ) -> Result<(Applied, u64), StoreError> {
        let current = self.get(name).await?;
        self.apply_over(current, name, revision, document).await
    }

    /// [`Store::apply`] over `current`, the record (and its KV revision) as read before:
    /// the write fails with [`StoreError::Conflict`] if the key changed since.
    pub async fn apply_over(
        &self,
        current: Option<(DeploymentRecord, u64)>,
        name: &str,
        revision: &str,
        document: serde_json::Value,
    ) -> Result<(Applied, u64), StoreError> {
        let (generation, applied) = match &current {
            Some((old, _)) if old.document == document => {
                return Ok((Applied::Unchanged, old.generation));
            }
            Some((old, _)) => (old.generation + 1, Applied::Configured),
            None => (1, Applied::Created),
        };
        let record = DeploymentRecord {
            protocol: PROTOCOL,
            name: name.to_string(),
            generation,
            revision: revision.to_string(),
            document,
            changed_at_ms: now_ms(),
        };
        self.write(name, &record, current.map(|(_, rev)| rev))
            .await?;
        Ok((applied, generation))
    }

    /// Sets `spec.replicas` of a deployment.
    pub async fn scale(&self, name: &str, replicas: u32) -> Result<(Applied, u64), StoreError> {
        let Some((mut record, rev)) = self.get(name).await? else {
            return Err(StoreError::NotFound(name.to_string()));
        };
        if record.document.get("kind").and_then(|k| k.as_str()) != Some("WorkloadDeployment") {
            return Err(StoreError::Invalid(format!(
                "`{name}` is a `Workload` (one replica): expected a `WorkloadDeployment` to scale"
            )));
        }
        let Some(spec) = record
            .document
            .get_mut("spec")
            .and_then(|s| s.as_object_mut())
        else {
            return Err(StoreError::Invalid(format!("`{name}` has no spec")));
        };
        if spec.get("replicas").and_then(|r| r.as_u64()) == Some(u64::from(replicas)) {
            return Ok((Applied::Unchanged, record.generation));
        }
        spec.insert("replicas".into(), replicas.into());
        record.generation += 1;
        record.changed_at_ms = now_ms();
        self.write(name, &record, Some(rev)).await?;
        Ok((Applied::Configured, record.generation))
    }

    async fn write(
        &self,
        name: &str,
        record: &DeploymentRecord,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let value = bytes::Bytes::from(serde_json::to_vec(record).map_err(nats)?);
        let conflict = || StoreError::Conflict {
            name: name.to_string(),
            expected: expected.unwrap_or(0),
        };
        match expected {
            None => match self.deployments.create(name, value).await {
                Ok(rev) => Ok(rev),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(conflict()),
                Err(e) => Err(nats(e)),
            },
            Some(rev) => match self.deployments.update(name, value, rev).await {
                Ok(rev) => Ok(rev),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Err(conflict()),
                Err(e) => Err(nats(e)),
            },
        }
    }

    /// Removes a deployment; its replicas are stopped by the controller. `false` if there
    /// was none.
    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        if self.get(name).await?.is_none() {
            return Ok(false);
        }
        self.deployments.delete(name).await.map_err(nats)?;
        Ok(true)
    }

    /// Every change to the deployments bucket, starting with what it holds now.
    pub async fn watch_deployments(&self) -> Result<kv::Watch, StoreError> {
        self.deployments.watch_all().await.map_err(nats)
    }

    /// Writes a deployment's status.
    pub async fn put_status(
        &self,
        name: &str,
        status: &DeploymentStatus,
    ) -> Result<(), StoreError> {
        let value = bytes::Bytes::from(serde_json::to_vec(status).map_err(nats)?);
        self.status.put(name, value).await.map_err(nats)?;
        Ok(())
    }

    /// Removes a deleted deployment's status.
    pub async fn delete_status(&self, name: &str) -> Result<(), StoreError> {
        self.status.delete(name).await.map_err(nats)
    }

    /// A deployment's status, if the controller wrote one.
    pub async fn status(&self, name: &str) -> Result<Option<DeploymentStatus>, StoreError> {
        check_key(name)?;
        match self.status.get(name).await.map_err(nats)? {
            Some(bytes) if !bytes.is_empty() => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| nats(format!("status of `{name}` is malformed: {e}"))),
            _ => Ok(None),
        }
    }

    /// The lease and its KV revision, if anyone holds it.
    pub async fn lease(&self) -> Result<Option<(Lease, u64)>, StoreError> {
        let Some(entry) = self.control.entry(LEADER_KEY).await.map_err(nats)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let lease = serde_json::from_slice(&entry.value).map_err(nats)?;
        Ok(Some((lease, entry.revision)))
    }

    /// Takes the lease for `holder`: when nobody holds it (`previous` is `None`), or over a
    /// holder whose lease stopped at revision `previous`. Returns the new term and the
    /// lease's revision, or `None` when someone else wrote first.
    pub async fn take_lease(
        &self,
        holder: &str,
        previous: Option<u64>,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        // The term is the revision of this very write, unknown before it; write a
        // placeholder, then confirm with a renewal that records it.
        let claim = |term| {
            serde_json::to_vec(&Lease {
                holder: holder.to_string(),
                term,
            })
            .map(bytes::Bytes::from)
            .map_err(nats)
        };
        let written = match previous {
            None => match self.control.create(LEADER_KEY, claim(0)?).await {
                Ok(rev) => rev,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(None),
                Err(e) => return Err(nats(e)),
            },
            Some(rev) => match self.control.update(LEADER_KEY, claim(0)?, rev).await {
                Ok(rev) => rev,
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => return Ok(None),
                Err(e) => return Err(nats(e)),
            },
        };
        match self
            .control
            .update(LEADER_KEY, claim(written)?, written)
            .await
        {
            Ok(revision) => Ok(Some((written, revision))),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(nats(e)),
        }
    }

    /// Renews the lease held since `term`, last written at revision `last`; the new
    /// revision, or `None` when the lease was taken over.
    pub async fn renew_lease(
        &self,
        holder: &str,
        term: u64,
        last: u64,
    ) -> Result<Option<u64>, StoreError> {
        let value = serde_json::to_vec(&Lease {
            holder: holder.to_string(),
            term,
        })
        .map_err(nats)?;
        match self.control.update(LEADER_KEY, value.into(), last).await {
            Ok(rev) => Ok(Some(rev)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(nats(e)),
        }
    }

    /// Gives the lease up (on a clean stop), so a standby need not wait for it to expire.
    pub async fn release_lease(&self, last: u64) -> Result<(), StoreError> {
        self.control
            .delete_expect_revision(LEADER_KEY, Some(last))
            .await
            .map_err(nats)
    }
}

/// Parses a stored record.
pub fn decode_record(key: &str, value: &[u8]) -> Result<DeploymentRecord, StoreError> {
    serde_json::from_slice(value).map_err(|e| nats(format!("record `{key}` is malformed: {e}")))
}

/// Whether `name` can be a key (a manifest name always can: it is a DNS label).
fn check_key(name: &str) -> Result<(), StoreError> {
    if hearth_manifest::dns_label(name).is_ok() {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "`{name}`: expected a deployment name (a DNS label)"
        )))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
