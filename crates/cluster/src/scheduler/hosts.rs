//! Which live hosts can take a new replica of a deployment (filter), which of them is best
//! (score), and why none can (the `unschedulable` reason).

use super::{Backoff, Desired, HostView, Replica};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// The deployment being placed, and what rules hosts out for it besides the hosts
/// themselves.
pub(super) struct Demand<'a> {
    pub desired: &'a Desired,
    pub backoffs: &'a [Backoff],
    pub now_ms: u64,
}

impl Demand<'_> {
    /// A recent failure of this deployment on `host` keeps it off that host for a while.
    fn backing_off(&self, host: &str) -> bool {
        self.backoffs.iter().any(|backoff| {
            backoff.deployment == self.desired.name
                && backoff.host == host
                && backoff.until_ms > self.now_ms
        })
    }
}

/// One reason a host cannot take a replica.
enum Exclusion<'a> {
    MissingLabel {
        key: &'a str,
        want: &'a str,
        has: Option<&'a str>,
    },
    MissingOffer(&'a str),
    Full {
        used: u32,
        max: u32,
    },
    MemoryShort,
    BackingOff,
}

impl fmt::Display for Exclusion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::MissingLabel {
                key,
                want,
                has: None,
            } => write!(f, "missing label {key}={want}"),
            Exclusion::MissingLabel {
                key,
                want,
                has: Some(has),
            } => write!(f, "missing label {key}={want} (has {key}={has})"),
            Exclusion::MissingOffer(need) => write!(f, "does not offer {need}"),
            Exclusion::Full { used, max } => write!(f, "full ({used}/{max} replicas)"),
            Exclusion::MemoryShort => f.write_str("short of memory"),
            Exclusion::BackingOff => f.write_str("backing off after a failure"),
        }
    }
}

/// The live hosts, by id, with the slots in use on each (this plan's starts included).
pub(super) struct Hosts<'a> {
    by_id: BTreeMap<&'a str, &'a HostView>,
    used: BTreeMap<&'a str, u32>,
}

impl<'a> Hosts<'a> {
    /// Every replica on a live host holds a slot, whatever its deployment or state: a
    /// stopping one still runs, a failed one still has to be cleaned up.
    pub fn new(hosts: &'a [HostView], current: &[Replica]) -> Self {
        let mut by_id = BTreeMap::new();
        for host in hosts {
            by_id.entry(host.id.as_str()).or_insert(host);
        }
        let mut used: BTreeMap<&'a str, u32> = by_id.keys().map(|id| (*id, 0)).collect();
        for replica in current {
            if let Some(count) = used.get_mut(replica.host.as_str()) {
                *count += 1;
            }
        }
        Self { by_id, used }
    }

    pub fn is_live(&self, host: &str) -> bool {
        self.by_id.contains_key(host)
    }

    fn used(&self, host: &str) -> u32 {
        self.used.get(host).copied().unwrap_or(0)
    }

    /// Every reason `host` cannot take a replica of `demand` now (empty: it can).
    fn exclusions<'x>(&self, host: &'x HostView, demand: &'x Demand<'_>) -> Vec<Exclusion<'x>> {
        let desired = demand.desired;
        let mut why = Vec::new();
        for (key, want) in &desired.host_selector {
            let has = host.labels.get(key).map(String::as_str);
            if has != Some(want.as_str()) {
                why.push(Exclusion::MissingLabel { key, want, has });
            }
        }
        for need in &desired.needs {
            if !host.offers.contains(need) {
                why.push(Exclusion::MissingOffer(need));
            }
        }
        let used = self.used(&host.id);
        if used >= host.max_replicas {
            why.push(Exclusion::Full {
                used,
                max: host.max_replicas,
            });
        }
        if host.memory_short {
            why.push(Exclusion::MemoryShort);
        }
        if demand.backing_off(&host.id) {
            why.push(Exclusion::BackingOff);
        }
        why
    }

    /// The best eligible host for one more replica, given how many of the deployment's
    /// replicas each host has (`spread`), or `None` when no host is eligible.
    pub fn pick(&self, demand: &Demand<'_>, spread: &BTreeMap<&str, u32>) -> Option<&'a str> {
        self.by_id
            .values()
            .copied()
            .filter(|host| self.exclusions(host, demand).is_empty())
            .min_by(|a, b| self.rank(a, b, spread))
            .map(|host| host.id.as_str())
    }

    /// Spread first, then the lower share of slots in use, then the id.
    fn rank(&self, a: &HostView, b: &HostView, spread: &BTreeMap<&str, u32>) -> Ordering {
        let own = |host: &HostView| spread.get(host.id.as_str()).copied().unwrap_or(0);
        // used_a / max_a against used_b / max_b without floats; eligible hosts have a
        // non-zero maximum, and the products of two u32 fit a u64.
        let share_a = u64::from(self.used(&a.id)) * u64::from(b.max_replicas);
        let share_b = u64::from(self.used(&b.id)) * u64::from(a.max_replicas);
        own(a)
            .cmp(&own(b))
            .then(share_a.cmp(&share_b))
            .then_with(|| a.id.cmp(&b.id))
    }

    /// Takes a slot on `host` for a start this plan issues.
    pub fn reserve(&mut self, host: &'a str) {
        *self.used.entry(host).or_insert(0) += 1;
    }

    /// Why the replicas after the first `placed` of `wanted` found no host: every live
    /// host, each with every reason it was ruled out.
    pub fn explain(&self, demand: &Demand<'_>, placed: usize, wanted: usize) -> String {
        if self.by_id.is_empty() {
            return "no live hosts".into();
        }
        let hosts: Vec<String> = self
            .by_id
            .values()
            .map(|host| {
                let why: Vec<String> = self
                    .exclusions(host, demand)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                format!("{}: {}", host.id, why.join(", "))
            })
            .collect();
        let total = self.by_id.len();
        let head = if placed == 0 {
            format!("0/{total} hosts can run it")
        } else {
            format!("placed {placed} of {wanted} replicas; 0/{total} hosts can run more")
        };
        format!("{head}: {}", hosts.join("; "))
    }
}
