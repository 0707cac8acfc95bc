//! The work the cron service schedules: exports `wasmcloud:example/cron.invoke`, prints a
//! line per call (forwarded to hearth's log, with `VERSION` when set), traps on purpose when
//! `TRAP` is set, and, when `PING_URL` is set, sends `GET $PING_URL` with `wasi:http` on each
//! call (so a trace can follow service → component → outgoing request).

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
        let version = std::env::var("VERSION")
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        println!("cron tick{version} (calls on this instance: {n})");
        match std::env::var("PING_URL") {
            Ok(url) => wstd::runtime::block_on(ping(&url)),
            Err(_) => Ok(()),
        }
    }
}

export!(Component);

/// `GET url`; any answer but a 2xx is an error.
async fn ping(url: &str) -> Result<(), String> {
    use wstd::http::{Body, Client, Request};
    let request = Request::get(url)
        .body(Body::empty())
        .map_err(|e| format!("bad PING_URL: {e}"))?;
    let response = Client::new()
        .send(request)
        .await
        .map_err(|e| format!("ping failed: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("ping answered {}", response.status()))
    }
}
