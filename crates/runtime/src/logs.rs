//! The guests' recent log lines, kept per workload for `hearth logs`: stdout, stderr and
//! `wasi:logging` records (everything the host logs with target `guest`). Each workload keeps
//! its last [`PER_WORKLOAD`] lines; followers get new lines as they arrive, and one that
//! falls behind by more than [`FOLLOW_BACKLOG`] lines is told how many it missed.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Lines kept per workload.
pub const PER_WORKLOAD: usize = 1000;
/// Lines a follower may fall behind before it misses some.
pub const FOLLOW_BACKLOG: usize = 4096;

/// One line a guest wrote or logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// Increases by one per line on this host.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub workload: String,
    /// The component or service that wrote it.
    pub part: String,
    /// `stdout`, `stderr`, or `log` (a `wasi:logging` record).
    pub stream: String,
    /// `info`, `warn`, ... (stdout is `info`, stderr `warn`).
    pub level: String,
    pub text: String,
}

/// Every workload's recent lines, and the feed of new ones.
pub struct LogHub {
    recent: Mutex<HashMap<String, VecDeque<Arc<LogLine>>>>,
    seq: AtomicU64,
    feed: broadcast::Sender<Arc<LogLine>>,
}

/// The process's hub.
pub fn hub() -> &'static LogHub {
    static HUB: OnceLock<LogHub> = OnceLock::new();
    HUB.get_or_init(|| LogHub {
        recent: Mutex::new(HashMap::new()),
        seq: AtomicU64::new(0),
        feed: broadcast::channel(FOLLOW_BACKLOG).0,
    })
}

impl LogHub {
    /// Keeps a line (numbering and timing it) and hands it to followers.
    pub fn push(&self, workload: &str, part: &str, stream: &str, level: &str, text: &str) {
        let line = Arc::new(LogLine {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            workload: workload.to_string(),
            part: part.to_string(),
            stream: stream.to_string(),
            level: level.to_string(),
            text: text.to_string(),
        });
        {
            let mut recent = self
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let lines = recent.entry(line.workload.clone()).or_default();
            if lines.len() == PER_WORKLOAD {
                lines.pop_front();
            }
            lines.push_back(Arc::clone(&line));
        }
        // No follower is fine.
        let _ = self.feed.send(line);
    }

    /// `workload`'s kept lines at or after `since_ms`, oldest first.
    pub fn recent(&self, workload: &str, since_ms: u64) -> Vec<Arc<LogLine>> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(workload)
            .map(|lines| {
                lines
                    .iter()
                    .filter(|l| l.time_ms >= since_ms)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// New lines of every workload from now on.
    pub fn follow(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.feed.subscribe()
    }

    /// Forgets a deleted workload's lines (followers still see lines pushed later).
    pub fn forget(&self, workload: &str) {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(workload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_keeps_its_last_lines_and_followers_see_new_ones() {
        let hub = LogHub {
            recent: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            feed: broadcast::channel(8).0,
        };
        let mut follower = hub.follow();
        for i in 0..PER_WORKLOAD + 5 {
            hub.push("web", "http", "stdout", "info", &format!("line {i}"));
        }
        hub.push("other", "svc", "stderr", "warn", "elsewhere");
        let kept = hub.recent("web", 0);
        assert_eq!(kept.len(), PER_WORKLOAD);
        assert_eq!(kept[0].text, "line 5");
        assert_eq!(kept.last().unwrap().seq, (PER_WORKLOAD + 5) as u64);
        assert_eq!(hub.recent("other", 0)[0].part, "svc");
        assert!(hub.recent("web", u64::MAX).is_empty());
        // The follower fell behind (8 lines of room): it is told, then reads on.
        assert!(matches!(
            follower.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        assert!(follower.try_recv().is_ok());
    }
}
