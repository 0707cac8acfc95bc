//! The service supervisor: runs a workload's `wasi:cli/run` component for the workload's
//! lifetime, restarts it in a fresh store after a crash with exponential backoff (the way
//! Kubernetes handles CrashLoopBackOff), publishes its ports on the host, and reports its state.
//!
//! Everything an incarnation holds lives in its store, so dropping the store releases it: its
//! listening ports (the next incarnation can bind them at once), its connections (peers see
//! EOF), its memory. A service runs on an HTTP worker, its home (`placement.rs`), yielding at
//! the fine epoch tick so that a long turn cannot hold the worker; or, with
//! `--service-threads`, on a thread of its own. Published host ports belong to the workload
//! (`publish.rs`), not to the service, so they outlive a service replaced by an update.

use crate::publish::PublishedPort;
use crate::state::{GuestLimit, InvocationState, StateTemplate};
use hearth_manifest::{RestartPolicy, RestartSpec};
use hearth_net::Network;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use wasmtime::Store;
use wasmtime_wasi::p2::bindings::CommandPre;

/// First restart delay; doubles per consecutive crash.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest restart delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// An incarnation that ran this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Lifecycle states, as reported by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    /// Being instantiated.
    Starting,
    /// `run` is executing.
    Running,
    /// Waiting before the next restart.
    Backoff,
    /// Exited cleanly and will not be restarted.
    Completed,
    /// Crashed and will not be restarted (policy `never`, or `maxRestarts` reached).
    Failed,
    /// Stopped by the host.
    Stopped,
}

/// A service's state as reported by the admin API.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Where it is in its lifecycle.
    pub state: ServiceState,
    /// How many times it has been restarted.
    pub restarts: u32,
    /// Why the last incarnation ended, in words.
    pub last_exit: Option<String>,
    /// How the last incarnation ended, as a class: `clean`, `crashed` or `stopped`.
    pub last_exit_kind: Option<ExitKind>,
    /// Seconds the current incarnation has been running (while `running`).
    pub uptime_seconds: Option<f64>,
    /// Ports it listens on in the workload's network now.
    pub listening: Vec<u16>,
    /// Host ports spliced into its ports.
    pub published: Vec<PublishedPort>,
    /// The HTTP worker it runs on (its workload's connections are served there too), or
    /// `None` for a thread of its own.
    pub worker: Option<usize>,
}

/// How an incarnation ended, as a class (a metric label; the words are in `last_exit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitKind {
    /// Returned, or exited with status 0.
    Clean,
    /// Trapped, failed to start, or exited with another status.
    Crashed,
    /// Stopped by the host.
    Stopped,
}

/// What the supervisor knows of its service now.
struct Supervised {
    state: ServiceState,
    restarts: u32,
    last_exit: Option<(ExitKind, String)>,
    running_since: Option<Instant>,
}

/// How one incarnation ended.
enum Exit {
    Clean(String),
    Crashed(String),
}

/// A deployed service: what is needed to start incarnations, and its supervisor.
pub struct ServiceRuntime {
    pub(crate) pre: CommandPre<InvocationState>,
    pub(crate) template: StateTemplate,
    pub(crate) restart: RestartSpec,
    pub(crate) network: Arc<Network>,
    /// Its code, held so the compile cache shares it while it runs.
    _code: Arc<crate::cache::Code>,
    status: Mutex<Supervised>,
    /// The worker it runs on, if any; counted there until the service is dropped.
    home: std::sync::OnceLock<crate::placement::Home>,
    /// When its current turn began, while it shares a worker.
    turn: crate::engine::TurnStart,
    stop: watch::Sender<bool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl ServiceRuntime {
    pub(crate) fn new(
        pre: CommandPre<InvocationState>,
        template: StateTemplate,
        restart: RestartSpec,
        network: Arc<Network>,
        code: Arc<crate::cache::Code>,
    ) -> Self {
        Self {
            pre,
            template,
            restart,
            network,
            _code: code,
            status: Mutex::new(Supervised {
                state: ServiceState::Starting,
                restarts: 0,
                last_exit: None,
                running_since: None,
            }),
            home: std::sync::OnceLock::new(),
            turn: crate::engine::TurnStart::default(),
            stop: watch::channel(false).0,
            thread: Mutex::new(None),
            done: Mutex::new(None),
        }
    }

    /// The current status, with the host ports published for it.
    pub fn status(&self, published: Vec<PublishedPort>) -> ServiceStatus {
        let status = lock(&self.status);
        let (last_exit_kind, last_exit) = match &status.last_exit {
            Some((kind, words)) => (Some(*kind), Some(words.clone())),
            None => (None, None),
        };
        ServiceStatus {
            state: status.state,
            restarts: status.restarts,
            last_exit,
            last_exit_kind,
            uptime_seconds: status.running_since.map(|t| t.elapsed().as_secs_f64()),
            listening: self.network.listening_ports(),
            published,
            worker: self.worker(),
        }
    }

    /// The HTTP worker it runs on, if it has one.
    pub fn worker(&self) -> Option<usize> {
        self.home.get().map(|h| h.worker)
    }

    /// Starts the supervisor (once): on its `home` worker when given, else on a thread of
    /// its own.
    pub(crate) fn start(
        self: &Arc<Self>,
        home: Option<crate::placement::Home>,
    ) -> std::io::Result<()> {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        *lock(&self.done) = Some(done_rx);
        let this = Arc::clone(self);
        let supervise = async move {
            this.supervise().await;
            let _ = done_tx.send(());
        };
        if let Some(home) = home {
            // Sharing a thread with HTTP requests: a long turn makes the epoch fine.
            let handle = home.handle.clone();
            let _ = self.home.set(home);
            handle.spawn(crate::engine::Turns::new(supervise, self.turn.clone()));
            return Ok(());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let name = format!("hearth-svc-{}", self.template.workload);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || rt.block_on(supervise))?;
        *lock(&self.thread) = Some(thread);
        Ok(())
    }

    /// Stops the service: its current incarnation is dropped (WASI 0.2 has no way to ask a
    /// guest to exit, so the grace period is the time to reach the next await point) and the
    /// supervisor thread joined.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(done) = lock(&self.done).take() {
            // Returns at once if the supervisor (or the runtime it lived on) is gone.
            let _ = done.recv_timeout(Duration::from_secs(10));
        }
        if let Some(handle) = lock(&self.thread).take() {
            let _ = handle.join();
        }
    }

    fn set(&self, state: ServiceState, last_exit: Option<(ExitKind, String)>) {
        let mut status = lock(&self.status);
        status.state = state;
        status.running_since = (state == ServiceState::Running).then(Instant::now);
        if last_exit.is_some() {
            status.last_exit = last_exit;
        }
    }

    async fn supervise(&self) {
        let workload = self.template.workload.clone();
        let mut stop = self.stop.subscribe();
        let mut backoff = BACKOFF_START;
        loop {
            self.set(ServiceState::Starting, None);
            let started = Instant::now();
            let exit = tokio::select! {
                exit = self.run_once() => exit,
                _ = stop.wait_for(|s| *s) => {
                    self.set(
                        ServiceState::Stopped,
                        Some((ExitKind::Stopped, "stopped by the host".into())),
                    );
                    tracing::info!(workload = %workload, "service stopped");
                    return;
                }
            };
            let ran = started.elapsed();
            let (clean, reason) = match exit {
                Exit::Clean(r) => (true, r),
                Exit::Crashed(r) => (false, r),
            };
            let kind = if clean {
                ExitKind::Clean
            } else {
                ExitKind::Crashed
            };
            let restarts = lock(&self.status).restarts;
            let restart = match self.restart.policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !clean,
                RestartPolicy::Never => false,
            };
            let exhausted = self.restart.max_restarts.is_some_and(|max| restarts >= max);
            if !restart || exhausted {
                let state = if clean {
                    ServiceState::Completed
                } else {
                    ServiceState::Failed
                };
                tracing::warn!(workload = %workload, reason = %reason, restarts, state = ?state, "service ended");
                self.set(state, Some((kind, reason)));
                return;
            }
            if ran >= HEALTHY_AFTER {
                backoff = BACKOFF_START;
            }
            tracing::warn!(
                workload = %workload,
                reason = %reason,
                restarts,
                backoff_ms = backoff.as_millis() as u64,
                "service exited; restarting after backoff"
            );
            self.set(ServiceState::Backoff, Some((kind, reason)));
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => {
                    self.set(ServiceState::Stopped, None);
                    tracing::info!(workload = %workload, "service stopped");
                    return;
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            lock(&self.status).restarts += 1;
        }
    }

    /// One incarnation, in a store of its own that is dropped (releasing everything it held)
    /// before this returns.
    async fn run_once(&self) -> Exit {
        let mut store = Store::new(
            self.pre.engine(),
            InvocationState::new(&self.template, None),
        );
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        // No deadline for a service, but yield to the executor every tick so its published
        // ports and pipes, and the requests sharing its thread, keep moving while it computes.
        if self.home.get().is_some() {
            let turn = self.turn.clone();
            store.epoch_deadline_callback(move |_| Ok(turn.at_tick()));
        } else {
            store.epoch_deadline_callback(|_| Ok(crate::engine::yield_tick()));
        }
        let command = match self.pre.instantiate_async(&mut store).await {
            Ok(c) => c,
            Err(e) => {
                let e = store.data().explain(e);
                let reason = GuestLimit::reason(&e);
                return Exit::Crashed(format!("could not start: {reason}"));
            }
        };
        self.set(ServiceState::Running, None);
        tracing::info!(workload = %self.template.workload, "service running");
        let result = command.wasi_cli_run().call_run(&mut store).await;
        let result = result.map_err(|e| store.data().explain(e));
        drop(store);
        match result {
            Ok(Ok(())) => Exit::Clean("exited with status 0".into()),
            Ok(Err(())) => Exit::Crashed("run returned an error".into()),
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(wasmtime_wasi::I32Exit(0)) => Exit::Clean("exited with status 0".into()),
                Some(wasmtime_wasi::I32Exit(code)) => {
                    Exit::Crashed(format!("exited with status {code}"))
                }
                None => match e.downcast_ref::<GuestLimit>() {
                    Some(limit) => Exit::Crashed(limit.to_string()),
                    None => Exit::Crashed(format!("trapped: {}", e.root_cause())),
                },
            },
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
