//! `hearth top`: a host's live numbers in the terminal, for machines without a browser. Every
//! interval it reads `GET /v1/workloads` and shows, per component, requests per second, the
//! error ratio and instances in flight over the last interval; per service, its state and
//! restarts.

use crate::EXIT_FAILED;
use crate::admin_client::AdminArgs;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub interval: f64,
    /// Print this many frames, then exit (default: until interrupted).
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// A component's counters at one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    requests: u64,
    failed: u64,
}

pub fn main(args: &TopArgs) -> ExitCode {
    let interval = Duration::from_secs_f64(args.interval.clamp(0.1, 3600.0));
    let mut previous: Option<(Instant, HashMap<String, Counts>)> = None;
    let mut shown = 0;
    let clear = std::io::stdout().is_terminal();
    loop {
        let body = match crate::status::workloads(&args.admin) {
            Ok(b) => b,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(EXIT_FAILED);
            }
        };
        let Ok(workloads) = serde_json::from_str::<Value>(&body) else {
            eprintln!("error: the admin API answered something that is not JSON");
            return ExitCode::from(EXIT_FAILED);
        };
        let now = Instant::now();
        let counts = counts(&workloads);
        let elapsed = previous.as_ref().map(|(at, _)| now.duration_since(*at));
        let frame = render(
            &workloads,
            previous.as_ref().map(|(_, c)| c),
            &counts,
            elapsed,
        );
        let mut out = std::io::stdout().lock();
        if clear {
            let _ = write!(out, "\x1b[2J\x1b[H");
        }
        let _ = write!(out, "{frame}");
        if !clear {
            let _ = writeln!(out);
        }
        let _ = out.flush();
        shown += 1;
        if args.frames.is_some_and(|n| shown >= n) {
            return ExitCode::SUCCESS;
        }
        previous = Some((now, counts));
        std::thread::sleep(interval);
    }
}

fn counts(workloads: &Value) -> HashMap<String, Counts> {
    let mut out = HashMap::new();
    for w in workloads.as_array().into_iter().flatten() {
        for c in w["components"].as_array().into_iter().flatten() {
            let s = &c["stats"];
            let n = |k: &str| s[k].as_u64().unwrap_or(0);
            out.insert(
                key(w, c),
                Counts {
                    requests: n("requests"),
                    failed: n("failed") + n("timedOut") + n("rejected"),
                },
            );
        }
    }
    out
}

fn key(w: &Value, c: &Value) -> String {
    format!(
        "{}/{}",
        w["name"].as_str().unwrap_or("?"),
        c["name"].as_str().unwrap_or("?")
    )
}

/// One frame: per component its rate and error ratio since the previous sample (`-` on the
/// first), per service its state and restarts.
fn render(
    workloads: &Value,
    before: Option<&HashMap<String, Counts>>,
    now: &HashMap<String, Counts>,
    elapsed: Option<Duration>,
) -> String {
    let mut rows = vec![
        [
            "WORKLOAD",
            "PART",
            "REQ/S",
            "ERRORS",
            "IN FLIGHT",
            "TOTAL",
            "STATE",
            "RESTARTS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for w in workloads.as_array().into_iter().flatten() {
        let name = w["name"].as_str().unwrap_or("?");
        for c in w["components"].as_array().into_iter().flatten() {
            let k = key(w, c);
            let current = now.get(&k).copied().unwrap_or_default();
            let delta = before.and_then(|b| b.get(&k)).map(|b| Counts {
                requests: current.requests.saturating_sub(b.requests),
                failed: current.failed.saturating_sub(b.failed),
            });
            let (rate, errors) = match (delta, elapsed) {
                (Some(d), Some(e)) if !e.is_zero() => (
                    format!("{:.1}", d.requests as f64 / e.as_secs_f64()),
                    if d.requests == 0 {
                        "0%".to_string()
                    } else {
                        format!("{:.1}%", 100.0 * d.failed as f64 / d.requests as f64)
                    },
                ),
                _ => ("-".into(), "-".into()),
            };
            rows.push(vec![
                name.into(),
                c["name"].as_str().unwrap_or("?").into(),
                rate,
                errors,
                c["stats"]["inFlight"].to_string(),
                current.requests.to_string(),
                "ready".into(),
                "-".into(),
            ]);
        }
        if let Some(s) = w["service"].as_object() {
            rows.push(vec![
                name.into(),
                "service".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                s.get("state").and_then(Value::as_str).unwrap_or("?").into(),
                s.get("restarts").map_or("0".into(), Value::to_string),
            ]);
        }
    }
    crate::table::render(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rates_and_error_ratios_come_from_the_difference_between_samples() {
        let at = |requests: u64, failed: u64| {
            json!([{"name": "shop", "components": [{"name": "api", "stats": {"requests": requests, "failed": failed, "timedOut": 0, "rejected": 0, "inFlight": 1}}],
                    "service": {"state": "running", "restarts": 2}}])
        };
        let first = at(100, 0);
        let second = at(150, 5);
        let frame = render(
            &second,
            Some(&counts(&first)),
            &counts(&second),
            Some(Duration::from_secs(2)),
        );
        let api = frame.lines().find(|l| l.contains("api")).unwrap();
        let cells: Vec<&str> = api.split_whitespace().collect();
        assert_eq!(
            cells,
            ["shop", "api", "25.0", "10.0%", "1", "150", "ready", "-"]
        );
        let service = frame.lines().find(|l| l.contains("running")).unwrap();
        assert!(service.ends_with('2'), "{service}");
        let first_frame = render(&first, None, &counts(&first), None);
        assert!(
            first_frame.lines().nth(1).unwrap().contains(" - "),
            "{first_frame}"
        );
    }
}
