//! The driver of bench/calls: imports `hearth:bench/calls` (which hearth satisfies with
//! guests/call-bench-callee, on a fresh instance per call) and times `CALLS` calls of
//! `noop()`, of `echo` with 1 KiB and of `echo-sample` (a record of six scalars), printing one
//! `bench ...` line each, then `bench done`.

use std::time::Instant;

use hearth::bench::calls;

wit_bindgen::generate!({
    world: "caller",
    additional_derives: [PartialEq],
});

const DEFAULT_CALLS: u64 = 20_000;
const WARMUP_CALLS: u64 = 500;
const ECHO_BYTES: usize = 1024;

fn main() {
    let n = match std::env::var("CALLS") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("CALLS={v:?} is not a positive integer");
                std::process::exit(2);
            }
        },
        Err(_) => DEFAULT_CALLS,
    };
    let payload = vec![7u8; ECHO_BYTES];
    let sample = calls::Sample {
        id: 1 << 40,
        x: 1.5,
        y: -2.25,
        z: 1e10,
        mask: 0xa5a5,
        ok: true,
    };

    for _ in 0..WARMUP_CALLS {
        calls::noop();
        check(&payload, calls::echo(&payload));
        check_sample(sample, calls::echo_sample(sample));
    }

    let start = Instant::now();
    for _ in 0..n {
        calls::noop();
    }
    report("noop", n, start.elapsed().as_secs_f64());

    let start = Instant::now();
    for _ in 0..n {
        check(&payload, calls::echo(&payload));
    }
    report("echo1k", n, start.elapsed().as_secs_f64());

    let start = Instant::now();
    for _ in 0..n {
        check_sample(sample, calls::echo_sample(sample));
    }
    report("record", n, start.elapsed().as_secs_f64());

    println!("bench done");
}

/// Exits with an error if `echo` did not give back what it was sent.
fn check(sent: &[u8], got: Vec<u8>) {
    if got != sent {
        eprintln!(
            "echo returned {} bytes, not the {} sent",
            got.len(),
            sent.len()
        );
        std::process::exit(1);
    }
}

/// Exits with an error if `echo-sample` did not give back what it was sent.
fn check_sample(sent: calls::Sample, got: calls::Sample) {
    if got != sent {
        eprintln!("echo-sample returned {got:?}, not the {sent:?} sent");
        std::process::exit(1);
    }
}

fn report(name: &str, calls: u64, secs: f64) {
    let per_sec = calls as f64 / secs;
    let us_per_call = secs * 1e6 / calls as f64;
    println!(
        "bench {name} calls={calls} secs={secs:.6} per_sec={per_sec:.1} us_per_call={us_per_call:.3}"
    );
}
