//! The wasmtime engine: configuration, the pooling allocator with its fallback, and the
//! single epoch ticker that drives every deadline.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, UpdateDeadline,
};

/// How often the engine's epoch advances; deadlines are checked (and long-running guests
/// yield to the executor) at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The epoch's period while a service that shares a worker with HTTP requests takes long
/// turns: it then holds the worker at most about this long at a time. Not always: each tick
/// wakes the ticker and makes every running guest yield once, which cost about 3 µs of CPU per
/// hello request at 1 ms (6 %; BENCHMARKS.md).
pub const FINE_EPOCH_TICK: Duration = Duration::from_millis(1);

/// A service turn (one poll of its task) running this long is a long one: the epoch turns
/// fine for [`FINE_FOR`].
const LONG_TURN: Duration = Duration::from_millis(2);

/// How long the epoch stays fine after a long turn.
const FINE_FOR: Duration = Duration::from_secs(1);

/// Until when the epoch is fine, in microseconds on [`clock`].
static FINE_UNTIL_US: AtomicU64 = AtomicU64::new(0);

/// Microseconds since the first call: the clock of service turns and of [`FINE_UNTIL_US`].
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// When the current turn of a service sharing a worker began (see [`Turns`]).
#[derive(Clone, Default)]
pub(crate) struct TurnStart(Arc<AtomicU64>);

impl TurnStart {
    /// What a shared service's store does at an epoch tick: if the turn it is in has run
    /// [`LONG_TURN`] already, the epoch turns fine (so this turn and the next ones are cut
    /// into fine slices); then it yields, like any guest.
    pub(crate) fn at_tick(&self) -> UpdateDeadline {
        let now = clock();
        if now.saturating_sub(self.0.load(Ordering::Relaxed)) >= LONG_TURN.as_micros() as u64 {
            FINE_UNTIL_US.fetch_max(now + FINE_FOR.as_micros() as u64, Ordering::Relaxed);
        }
        yield_tick()
    }
}

/// A service's task, recording when each of its turns (polls) begins.
pub(crate) struct Turns<F> {
    task: Pin<Box<F>>,
    start: TurnStart,
}

impl<F: Future> Turns<F> {
    pub(crate) fn new(task: F, start: TurnStart) -> Self {
        Self {
            task: Box::pin(task),
            start,
        }
    }
}

impl<F: Future> Future for Turns<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.start.0.store(clock(), Ordering::Relaxed);
        self.task.as_mut().poll(cx)
    }
}

fn epoch_tick() -> Duration {
    if clock() < FINE_UNTIL_US.load(Ordering::Relaxed) {
        FINE_EPOCH_TICK
    } else {
        EPOCH_TICK
    }
}

/// Engine settings that the CLI exposes.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling instance allocator (falls back to on-demand if it cannot reserve its
    /// address space).
    pub pooling: bool,
    /// Instances the pool holds at once: every running request, WIT call and message
    /// delivery, plus one per running service. Default: [`default_max_instances`].
    pub max_instances: u32,
    /// Largest linear memory any instance may have, in MiB.
    pub max_memory_mib: u32,
    /// The host address published service ports listen on.
    pub publish_ip: std::net::IpAddr,
    /// HTTP instances made ahead of their requests, at most one per component, host-wide;
    /// 0 makes every instance on its request's path.
    pub warm_instances: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            pooling: true,
            max_instances: default_max_instances(),
            max_memory_mib: 4096,
            publish_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            warm_instances: crate::invoke::warm::DEFAULT_WARM_INSTANCES,
        }
    }
}

/// The engine plus what keeps its epoch moving.
pub struct HostEngine {
    engine: Engine,
    pooling: bool,
    max_instances: u32,
}

impl HostEngine {
    /// Builds the engine with the pooling allocator (unless disabled). A pool that cannot be
    /// reserved is an error that says how to size it, not a silent fallback.
    pub fn new(options: &EngineOptions) -> anyhow::Result<Self> {
        let engine = if options.pooling {
            Engine::new(&config(Some(options))).map_err(|e| {
                let n = u64::from(options.max_instances);
                let tib = (n * 2 * (u64::from(options.max_memory_mib) << 20)) as f64 / (1u64 << 40) as f64;
                anyhow::anyhow!(
                    "cannot reserve the instance pool for --max-instances {n} (about {tib:.1} TiB of address space for their linear memories): {e:#}; lower --max-instances, or run with --no-pooling to allocate instances on demand"
                )
            })?
        } else {
            Engine::new(&config(None))?
        };
        start_epoch_ticker(&engine);
        Ok(Self {
            engine,
            pooling: options.pooling,
            max_instances: options.max_instances,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// How many instances may exist at once.
    pub fn max_instances(&self) -> u32 {
        self.max_instances
    }
}

/// The pool size for this machine: one instance per 16 MiB of physical memory, at least
/// 1,000 and at most 8,192. Reserving the pool costs start-up time in proportion to its size
/// (about 3.5 ms per 1,000 instances here, `BENCHMARKS.md`), so the default leaves room for a
/// thousand services plus requests without paying for a pool the memory could never fill.
pub fn default_max_instances() -> u32 {
    let mib = physical_memory_mib().unwrap_or(16 << 10);
    u32::try_from(mib / 16)
        .unwrap_or(u32::MAX)
        .clamp(1_000, 8_192)
}

/// `MemTotal` from `/proc/meminfo`, in MiB.
fn physical_memory_mib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn config(pooling: Option<&EngineOptions>) -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    cfg.memory_init_cow(true);
    cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);
    cfg.max_wasm_stack(1 << 20);
    cfg.async_stack_size(2 << 20);
    if let Some(opts) = pooling {
        let mut pool = PoolingAllocationConfig::default();
        let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
        let n = opts.max_instances;
        pool.total_component_instances(n)
            // A Rust wasip2 component has a handful of core instances (its module plus the
            // adapter's shims); leave room for more.
            .total_core_instances(n.saturating_mul(4))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size((opts.max_memory_mib as usize) << 20)
            // Reset memory by rewriting only the pages the last instance dirtied (found with the
            // PAGEMAP_SCAN ioctl where the kernel has it, Linux 6.7+) instead of unmapping them:
            // the next instance then takes no page faults. Without the ioctl only the low
            // `keep_resident` bytes are memset, the rest madvised away.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(if pagemap { 8 << 20 } else { 128 << 10 })
            .table_keep_resident(if pagemap { 1 << 20 } else { 16 << 10 })
            .async_stack_keep_resident(if pagemap { 512 << 10 } else { 64 << 10 });
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    cfg
}

/// What a guest still running at an epoch tick does: yields, and runs on at the next tick.
/// Through tokio's `yield_now`, which wakes the task only after the runtime has polled for
/// I/O: with a plain yield (woken at once) a guest that computes without pause is polled
/// again and again while the sockets of the requests sharing its thread wait for tokio's
/// periodic I/O poll (every 61 polls: about 300 ms of 5 ms slices).
pub(crate) fn yield_tick() -> UpdateDeadline {
    UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
}

/// One thread per engine advances the epoch; it stops when the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("hearth-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(epoch_tick());
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the epoch ticker; deadlines will not fire");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_long_service_turn_makes_the_epoch_fine() {
        let turn = TurnStart::default();
        turn.0.store(clock(), Ordering::Relaxed);
        let _ = turn.at_tick();
        assert_eq!(epoch_tick(), EPOCH_TICK, "a turn just begun");
        std::thread::sleep(LONG_TURN);
        let _ = turn.at_tick();
        assert_eq!(epoch_tick(), FINE_EPOCH_TICK, "a turn of {LONG_TURN:?}");
    }
}
