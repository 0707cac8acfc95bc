//! The work the cron service schedules: exports `wasmcloud:example/cron.invoke`, prints a
//! line per call (forwarded to hearth's log, with `VERSION` when set), and fails on purpose
//! when `FAIL` is set.

use std::sync::atomic::{AtomicU32, Ordering};

wit_bindgen::generate!({
    world: "component"
});

/// Counts calls on this instance; a fresh instance per call keeps it at 1.
static CALLS: AtomicU32 = AtomicU32::new(0);

struct Component;

impl exports::wasmcloud::example::cron::Guest for Component {
    fn invoke() -> Result<(), String> {
        let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if std::env::var("TRAP").is_ok() {
            panic!("cron component trapping on purpose");
        }
        // `VERSION` tells versions apart in the log, e.g. across a live update.
        let version = std::env::var("VERSION").map(|v| format!(" {v}")).unwrap_or_default();
        println!("cron tick{version} (calls on this instance: {n})");
        Ok(())
    }
}

export!(Component);
