//! Helpers shared by hearth's fuzz targets (`fuzz_targets/*.rs`): running a host call that
//! must not wait, and building the workloads the host-interface targets bind.
//!
//! Nothing here decides what a target checks; each target says that at its top.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls `f` once with a waker that does nothing. For host calls that never wait (the memory
/// backends, the virtual network's non-blocking calls): `None` if the future is pending.
pub fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Runs a host call that must complete without waiting; a pending one is a bug (a memory
/// backend never waits on anything), so the harness stops there.
#[track_caller]
pub fn ready<F: Future>(f: F) -> F::Output {
    match poll_once(f) {
        Some(v) => v,
        None => panic!("a host call that never waits returned Pending"),
    }
}

/// Parses one manifest document the harness wrote itself.
pub fn workload(yaml: &str) -> hearth_manifest::Workload {
    match hearth_manifest::parse_str(Path::new("/fuzz/harness.yaml"), yaml) {
        Ok(mut w) if w.len() == 1 => w.remove(0),
        Ok(w) => panic!("the harness's manifest has {} workloads", w.len()),
        Err(e) => panic!("the harness's manifest is refused: {e}"),
    }
}

/// A workload `name` with one component and `host_interfaces` (a YAML flow list, e.g.
/// `[{ interface: wasi:keyvalue/store, backend: memory }]`) as its `spec.hostInterfaces`.
pub fn workload_with(name: &str, host_interfaces: &str) -> hearth_manifest::Workload {
    workload(&format!(
        "apiVersion: hearth.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  hostInterfaces: {host_interfaces}\n  components:\n    - name: part\n      image: part.wasm\n"
    ))
}

/// A guest the repository builds (`guests/`, by `scripts/setup`), e.g. `hello.wasm`.
pub fn guest(file: &str) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guests/target/wasm32-wasip2/release")
        .join(file);
    assert!(
        path.exists(),
        "{} is missing: build the guests first (scripts/setup)",
        path.display()
    );
    path
}

/// A workload deployed on a real host runtime, for the targets that invoke guests.
#[cfg(feature = "deploy")]
pub struct Deployment {
    /// The runtime the harness runs every input on.
    pub tokio: tokio::runtime::Runtime,
    pub runtime: std::sync::Arc<hearth_runtime::Runtime>,
    pub running: std::sync::Arc<hearth_runtime::RunningWorkload>,
    /// Keeps the workload deployed.
    pub workloads: hearth_runtime::Workloads,
}

/// Deploys the workload of `manifest` (images are local files) on a fresh runtime whose
/// pool holds `max_instances`.
#[cfg(feature = "deploy")]
pub fn deploy(manifest: &str, max_instances: u32) -> Deployment {
    use hearth_runtime::{EngineOptions, Runtime, Workloads};
    use std::sync::Arc;
    let workload = workload(manifest);
    let tokio = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio: {e}"),
    };
    let options = EngineOptions {
        max_instances,
        max_memory_mib: 64,
        ..EngineOptions::default()
    };
    let runtime = match Runtime::new(options) {
        Ok(rt) => Arc::new(rt),
        Err(e) => panic!("runtime: {e:#}"),
    };
    let fetch: hearth_runtime::Fetch =
        Arc::new(|w| Box::pin(async move { Ok(hearth_manifest::LocalImages::files_of(&w)) }));
    let workloads = Workloads::new(
        Arc::clone(&runtime),
        fetch,
        Box::new(|_, _| {}),
        std::time::Duration::from_secs(1),
    );
    let running = match tokio.block_on(workloads.apply(workload)) {
        Ok((_, running)) => running,
        Err(e) => panic!("deploying the harness's workload failed: {e}"),
    };
    Deployment {
        tokio,
        runtime,
        running,
        workloads,
    }
}
