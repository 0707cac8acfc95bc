//! A deployment's status in the store: counts, placements and the conditions
//! `Available`, `Progressing`, `ReplicaFailure` and `Unschedulable`.

use super::DesiredEntry;
use crate::counts::{Counts, minimum_available};
use crate::observed::Failure;
use crate::scheduler::Replica;
use crate::store::{Condition, DeploymentStatus, Placement};
use std::collections::HashMap;

/// What hosts said about a deployment's replicas beyond their states.
pub(super) struct Seen<'a> {
    pub(super) messages: &'a HashMap<String, String>,
    /// The deployment's last failed replica: id, host, message.
    pub(super) last_failure: Option<&'a Failure>,
}

/// A deployment's status from the replicas on live hosts.
pub(super) fn status_of(
    entry: &DesiredEntry,
    replicas: &[&Replica],
    unschedulable: Option<&String>,
    seen: &Seen<'_>,
) -> DeploymentStatus {
    let record = &entry.record;
    let counts = Counts::of(
        replicas.iter().map(|r| (r.state, r.revision.as_str())),
        Some(&record.revision),
    );
    let Counts {
        ready,
        updated,
        available,
        old,
        ..
    } = counts;
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut status = DeploymentStatus {
        observed_generation: record.generation,
        revision: record.revision.clone(),
        ready_replicas: count(ready),
        updated_replicas: count(updated),
        available_replicas: count(available),
        placements: replicas
            .iter()
            .map(|r| Placement {
                replica: r.id.clone(),
                host: r.host.clone(),
                state: r.state,
                revision: r.revision.clone(),
                message: seen.messages.get(&r.id).cloned(),
            })
            .collect(),
        ..Default::default()
    };
    let desired = match &entry.desired {
        Ok(d) => d,
        Err(message) => {
            status.conditions.push(condition(
                "Available",
                false,
                "InvalidSpec",
                message.clone(),
            ));
            return status;
        }
    };
    status.replicas = desired.replicas;
    let wanted = desired.replicas as usize;
    let minimum = minimum_available(&desired.strategy, desired.replicas);
    status.conditions.push(if ready >= minimum {
        condition(
            "Available",
            true,
            "MinimumReplicasAvailable",
            format!("{ready} of {wanted} replicas ready"),
        )
    } else {
        condition(
            "Available",
            false,
            "MinimumReplicasUnavailable",
            format!("{ready} of {wanted} replicas ready; at least {minimum} wanted"),
        )
    });
    let done = counts.done(wanted);
    status.conditions.push(match (done, unschedulable) {
        (true, _) => condition(
            "Progressing",
            true,
            "NewReplicasAvailable",
            format!("{wanted} replicas ready at revision {}", record.revision),
        ),
        (false, Some(_)) => condition(
            "Progressing",
            false,
            "Unschedulable",
            format!(
                "{updated} of {wanted} replicas placed at revision {}; see Unschedulable",
                record.revision
            ),
        ),
        (false, None) => condition(
            "Progressing",
            true,
            "ReplicasUpdating",
            format!(
                "{updated} of {wanted} replicas at revision {}, {available} ready, {old} old",
                record.revision
            ),
        ),
    });
    // The last failure stays visible until every wanted replica is up to date and ready.
    status.conditions.push(match seen.last_failure {
        Some(Failure {
            replica,
            host,
            message,
        }) if !done => condition(
            "ReplicaFailure",
            true,
            "FailedStart",
            format!("replica {replica} failed on host {host}: {message}"),
        ),
        _ => condition(
            "ReplicaFailure",
            false,
            "NoFailure",
            "no replica is failing".into(),
        ),
    });
    status.conditions.push(match unschedulable {
        Some(reason) => condition("Unschedulable", true, "NoEligibleHost", reason.clone()),
        None => condition(
            "Unschedulable",
            false,
            "Placed",
            "every wanted replica has a host".into(),
        ),
    });
    status
}

fn condition(kind: &str, ok: bool, reason: &str, message: String) -> Condition {
    Condition {
        kind: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
    }
}
