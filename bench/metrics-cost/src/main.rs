//! What recording one invocation's metrics costs, in nanoseconds, measured rather than
//! guessed from `bench/http` (whose run-to-run spread on a shared VM is wider than the
//! cost). It touches what hearth's runtime touches per invocation: the outcome counter
//! and three histograms (duration, queue wait, instance memory), through handles
//! registered once, with the same Prometheus recorder and buckets the CLI installs. The
//! same loop with no recorder installed is the baseline (the handles are no-ops then, as
//! with `--no-metrics`). An upkeep every 5 s of samples is included, as the CLI's thread
//! runs it.
//!
//! Usage: `metrics-cost [ITERATIONS]` (default 5,000,000); pin it with `taskset -c 1`.

use metrics::{Counter, Histogram, counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::hint::black_box;
use std::time::Instant;

const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BYTES: &[f64] = &[
    65_536.0,
    1_048_576.0,
    16_777_216.0,
    268_435_456.0,
    4_294_967_296.0,
];

struct Handles {
    outcome: Counter,
    duration: Histogram,
    queue_wait: Histogram,
    memory: Histogram,
}

fn handles() -> Handles {
    let labels = [("workload", "bench"), ("component", "hello")];
    Handles {
        outcome: counter!("hearth_component_invocations_total", "workload" => "bench", "component" => "hello", "outcome" => "ok"),
        duration: histogram!("hearth_component_duration_seconds", &labels),
        queue_wait: histogram!("hearth_component_queue_wait_seconds", &labels),
        memory: histogram!("hearth_component_instance_memory_bytes", &labels),
    }
}

/// Nanoseconds per invocation over `n`, calling `upkeep` as often as 10,000 invocations a
/// second would with a 5 s period.
fn per_invocation(n: u64, upkeep: &dyn Fn()) -> f64 {
    let h = handles();
    let start = Instant::now();
    for i in 0..n {
        h.outcome.increment(1);
        h.queue_wait.record(black_box(0.000_002));
        h.duration
            .record(black_box(0.000_09 + (i % 7) as f64 * 1e-6));
        h.memory.record(black_box(1_179_648.0));
        if i % 50_000 == 49_999 {
            upkeep();
        }
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() -> std::process::ExitCode {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    // Without a recorder: the handles are no-ops.
    let off = per_invocation(n, &|| {});
    let handle = PrometheusBuilder::new()
        .set_buckets(SECONDS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("hearth_component_instance_memory_bytes".into()),
                BYTES,
            )
        })
        .and_then(|b| b.install_recorder());
    let handle = match handle {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: the Prometheus recorder did not install: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let on = per_invocation(n, &|| handle.run_upkeep());
    let scrape = handle.render();
    let counted = format!(
        "hearth_component_invocations_total{{workload=\"bench\",component=\"hello\",outcome=\"ok\"}} {n}"
    );
    if !scrape.contains(&counted) {
        eprintln!("error: the recorder did not count every invocation:\n{scrape}");
        return std::process::ExitCode::FAILURE;
    }
    println!("iterations           {n}");
    println!("no recorder          {off:.1} ns per invocation");
    println!("prometheus recorder  {on:.1} ns per invocation");
    println!("cost                 {:.1} ns per invocation", on - off);
    std::process::ExitCode::SUCCESS
}
