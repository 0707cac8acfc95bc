//! Leader election on a `coordination.k8s.io/v1` Lease: of several operators, the one
//! holding the Lease acts; the others watch it and take over when it stops being renewed.
//!
//! Expiry is judged by *this* process's clock: a standby takes over once the Lease's
//! `resourceVersion` has not moved for a whole `leaseDurationSeconds`, so skew between the
//! machines' clocks does not matter. Every write names the `resourceVersion` it read, so of
//! two standbys racing for an expired Lease one wins and the other gets a conflict.
//!
//! The Lease's `leaseTransitions` (plus one) is the leader's *term*, sent with every command
//! to the hosts; a host refuses commands of a lower term than one it has obeyed, so an
//! operator that lost the Lease while paused cannot act on the hosts when it wakes.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which Lease, who we are, and how long a Lease lasts without renewal.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This operator's name in `holderIdentity` (the pod's name in a cluster).
    pub identity: String,
    /// `leaseDurationSeconds`: a standby takes over after this long without a renewal.
    pub duration: Duration,
}

/// This operator's standing.
#[derive(Debug, Default)]
struct Standing {
    /// The term while leading.
    term: Option<u64>,
    /// When we last renewed (leading).
    renewed: Option<Instant>,
    /// The Lease's `resourceVersion` as last seen, and when it last changed (standing by).
    seen: Option<(String, Instant)>,
}

/// One operator's side of the election.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    standing: Mutex<Standing>,
}

/// What a step changed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    /// We took the Lease (a free one, or from `previous`).
    Took {
        term: u64,
        previous: Option<String>,
    },
    /// Another operator holds the Lease now.
    Lost {
        holder: Option<String>,
    },
}

impl Elector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            standing: Mutex::new(Standing::default()),
        }
    }

    /// How often to call [`Elector::step`]: a third of the Lease, so two renewals can fail
    /// before a standby may take over.
    pub fn period(&self) -> Duration {
        self.config.duration / 3
    }

    /// The term to act with: `Some` only while leading *and* renewed within two thirds of
    /// the Lease, so this operator stops acting well before a standby may take over.
    pub fn acting_term(&self) -> Option<u64> {
        let standing = self.lock();
        let fresh = standing
            .renewed
            .is_some_and(|at| at.elapsed() < self.config.duration * 2 / 3);
        standing.term.filter(|_| fresh)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Standing> {
        self.standing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the Lease once and renews, takes or watches it.
    pub async fn step(&self) -> Result<Change, kube::Error> {
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            return self.create().await;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        if holder.as_deref() == Some(self.config.identity.as_str()) {
            return self.renew(lease).await;
        }
        let was_leading = self.lock().term.take().is_some();
        if was_leading {
            self.lock().renewed = None;
            return Ok(Change::Lost { holder });
        }
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let expired = {
            let mut standing = self.lock();
            match &standing.seen {
                Some((seen, since)) if *seen == version => {
                    holder.is_none() || since.elapsed() > self.config.duration
                }
                _ => {
                    standing.seen = Some((version, Instant::now()));
                    holder.is_none()
                }
            }
        };
        if !expired {
            return Ok(Change::None);
        }
        self.take(lease, holder).await
    }

    async fn create(&self) -> Result<Change, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(self.lead(0, None)),
            // Another operator created it first: the next step reads it.
            Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(Change::None),
            Err(e) => Err(e),
        }
    }

    async fn renew(&self, mut lease: Lease) -> Result<Change, kube::Error> {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        spec.lease_duration_seconds = Some(self.duration_seconds());
        let transitions = spec.lease_transitions.unwrap_or(0);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                let was_leading = self.lock().term.is_some();
                let change = self.lead(transitions, None);
                Ok(if was_leading { Change::None } else { change })
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                // Someone wrote it since we read it; we may have lost it. Stop acting
                // until a read says otherwise.
                let mut standing = self.lock();
                standing.term = None;
                standing.renewed = None;
                Ok(Change::Lost { holder: None })
            }
            Err(e) => Err(e),
        }
    }

    async fn take(
        &self,
        mut lease: Lease,
        previous: Option<String>,
    ) -> Result<Change, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let transitions = spec.lease_transitions.unwrap_or(0) + 1;
        spec.holder_identity = Some(self.config.identity.clone());
        spec.lease_duration_seconds = Some(self.duration_seconds());
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        spec.lease_transitions = Some(transitions);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(self.lead(transitions, previous)),
            // Another standby took it first.
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(Change::None),
            Err(e) => Err(e),
        }
    }

    fn lead(&self, transitions: i32, previous: Option<String>) -> Change {
        let term = u64::try_from(transitions).unwrap_or(0) + 1;
        let mut standing = self.lock();
        standing.term = Some(term);
        standing.renewed = Some(Instant::now());
        standing.seen = None;
        Change::Took { term, previous }
    }

    /// Gives the Lease up (on shutdown), so a standby takes over at once instead of
    /// waiting for it to expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        if self.lock().term.take().is_none() {
            return Ok(());
        }
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}
