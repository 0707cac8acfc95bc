//! A deployment's replica counts, the same for every store: the NATS controller writes them
//! to its status bucket, the operator to the `WorkloadDeployment` object.

use crate::protocol::ReplicaState;
use hearth_manifest::Strategy;

/// How a deployment's replicas stand against its current revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Replicas that exist, in any state.
    pub total: usize,
    /// Ready replicas, of any revision.
    pub ready: usize,
    /// Replicas of the current revision that are neither failed nor stopping.
    pub updated: usize,
    /// Ready replicas of the current revision.
    pub available: usize,
    /// Replicas of another revision, in any state.
    pub old: usize,
}

impl Counts {
    /// Counts `replicas` (state and revision of each) against `revision`.
    pub fn of<'a>(
        replicas: impl IntoIterator<Item = (ReplicaState, &'a str)>,
        revision: Option<&str>,
    ) -> Self {
        let mut counts = Counts::default();
        for (state, rev) in replicas {
            let current = Some(rev) == revision;
            counts.total += 1;
            counts.ready += usize::from(state == ReplicaState::Ready);
            counts.old += usize::from(!current);
            if current {
                let live = !matches!(state, ReplicaState::Failed | ReplicaState::Stopping);
                counts.updated += usize::from(live);
                counts.available += usize::from(state == ReplicaState::Ready);
            }
        }
        counts
    }

    /// Whether exactly `wanted` replicas exist, all ready at the current revision.
    pub fn done(&self, wanted: usize) -> bool {
        self.available == wanted && self.updated == wanted && self.old == 0 && self.total == wanted
    }
}

/// The ready replicas a deployment of `replicas` needs to count as available: all but
/// `maxUnavailable` (rounded down, as Kubernetes does), at least one, at most all.
/// `Recreate` needs one.
pub fn minimum_available(strategy: &Strategy, replicas: u32) -> usize {
    let wanted = replicas as usize;
    let max_unavailable = match strategy {
        Strategy::RollingUpdate { rolling_update } => rolling_update
            .max_unavailable
            .resolve(replicas, false)
            .unwrap_or(0) as usize,
        Strategy::Recreate => wanted,
    };
    wanted.saturating_sub(max_unavailable).max(1).min(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReplicaState::{Failed, Ready, Starting, Stopping};

    #[test]
    fn counts_follow_state_and_revision() {
        let replicas = [
            (Ready, "r2"),
            (Ready, "r1"),
            (Starting, "r2"),
            (Failed, "r2"),
            (Stopping, "r1"),
        ];
        let c = Counts::of(replicas, Some("r2"));
        assert_eq!(
            (c.total, c.ready, c.updated, c.available, c.old),
            (5, 2, 2, 1, 2)
        );
        assert!(!c.done(3));
        assert!(Counts::of([(Ready, "r2"), (Ready, "r2")], Some("r2")).done(2));
        assert_eq!(Counts::of([(Ready, "r2")], None).old, 1);
    }

    #[test]
    fn the_minimum_is_kubernetes_rounding_within_one_and_all() {
        assert_eq!(
            minimum_available(&Strategy::default(), 3),
            3,
            "25% of 3 rounds down to 0"
        );
        assert_eq!(minimum_available(&Strategy::default(), 8), 6);
        assert_eq!(minimum_available(&Strategy::Recreate, 4), 1);
        assert_eq!(minimum_available(&Strategy::default(), 1), 1);
    }
}
