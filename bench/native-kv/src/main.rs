//! Native ceiling for the key-value benchmark: `N` tasks, each with its own Redis connection,
//! send `HINCRBY` (the command hearth's `redis` backend uses for `increment`) back to back
//! for `T` seconds on one current-thread tokio runtime, after `W` seconds of warm-up. Prints
//! one JSON line: `{"connections":N,"secs":..,"ops":..,"ops_per_sec":..,"p50_us":..,"p99_us":..}`.
//!
//! Usage: `native-kv redis://127.0.0.1:PORT CONNECTIONS SECONDS [WARMUP_SECONDS]`

use redis::aio::MultiplexedConnection;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const HASH: &str = "hearth:kv:native-bench/counter";

struct Args {
    url: String,
    connections: usize,
    duration: Duration,
    warmup: Duration,
}

fn parse_args() -> Result<Args, String> {
    let usage = "usage: native-kv redis://HOST:PORT CONNECTIONS SECONDS [WARMUP_SECONDS]";
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let secs = |s: &str| {
        s.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("`{s}` is not a number of seconds; {usage}"))
    };
    match argv.as_slice() {
        [url, conns, duration, rest @ ..] if rest.len() <= 1 => Ok(Args {
            url: url.clone(),
            connections: conns
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{conns}` is not a positive count; {usage}"))?,
            duration: secs(duration)?,
            warmup: match rest.first() {
                Some(w) => secs(w)?,
                None => Duration::from_secs(1),
            },
        }),
        _ => Err(usage.to_string()),
    }
}

/// HINCRBYs until `until`; the latency of each, in µs.
async fn hammer(
    conn: &mut MultiplexedConnection,
    field: &str,
    until: Instant,
) -> redis::RedisResult<Vec<u32>> {
    let mut cmd = redis::cmd("HINCRBY");
    cmd.arg(HASH).arg(field).arg(1);
    let mut latencies = Vec::with_capacity(1 << 16);
    loop {
        let start = Instant::now();
        if start >= until {
            return Ok(latencies);
        }
        let _: i64 = cmd.query_async(conn).await?;
        let us = start.elapsed().as_micros();
        latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
    }
}

async fn run(args: Args) -> Result<String, String> {
    let client = redis::Client::open(args.url.as_str()).map_err(|e| e.to_string())?;
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        conns.push(
            client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", args.url))?,
        );
    }
    let warm_until = Instant::now() + args.warmup;
    let start = warm_until;
    let until = start + args.duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            tokio::spawn(async move {
                let field = format!("c{}", i % 16);
                hammer(&mut conn, &field, warm_until).await?;
                hammer(&mut conn, &field, until).await
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        let latencies = t
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        all.extend(latencies);
    }
    let secs = start
        .elapsed()
        .as_secs_f64()
        .min(args.duration.as_secs_f64());
    all.sort_unstable();
    let pct = |p: f64| -> u32 {
        if all.is_empty() {
            return 0;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        all.get(i).copied().unwrap_or(0)
    };
    let ops = all.len();
    Ok(format!(
        "{{\"connections\":{},\"secs\":{secs:.3},\"ops\":{ops},\"ops_per_sec\":{:.1},\"p50_us\":{},\"p99_us\":{}}}",
        args.connections,
        ops as f64 / secs,
        pct(0.50),
        pct(0.99),
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("native-kv: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("native-kv: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("native-kv: {e}");
            ExitCode::FAILURE
        }
    }
}
