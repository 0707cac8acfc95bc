//! The compiled-component cache: native code on disk, keyed by the component's content hash
//! and the engine's compatibility hash, so a second start of the same component skips
//! compilation and maps the code straight from the file; and in memory, so identical
//! components used by many workloads of a host are loaded and held once (an entry lives as
//! long as some running part holds its code).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components live: on disk (`None`: compile every time) and in memory.
#[derive(Debug)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    loaded: Mutex<HashMap<String, Weak<Component>>>,
}

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Already loaded for another part of this host.
    Shared,
    /// Loaded precompiled code.
    Hit,
    /// Compiled (and stored, if the cache is enabled).
    Compiled,
}

impl CompileCache {
    /// A cache in `dir`, created on first store.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The code of `wasm`: shared if some part of this host holds it, else loaded from disk
    /// or compiled. Blocking: call on the blocking pool.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> anyhow::Result<(Arc<Component>, CacheOutcome)> {
        let key = key(engine, wasm);
        if let Some(code) = self.lock().get(&key).and_then(Weak::upgrade) {
            crate::metrics::compile_cache(CacheOutcome::Shared);
            return Ok((code, CacheOutcome::Shared));
        }
        let (component, outcome) = self.load_or_compile(engine, &key, wasm)?;
        crate::metrics::compile_cache(outcome);
        let code = Arc::new(component);
        let mut loaded = self.lock();
        loaded.retain(|_, w| w.strong_count() > 0);
        loaded.insert(key, Arc::downgrade(&code));
        Ok((code, outcome))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Component>>> {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn load_or_compile(
        &self,
        engine: &Engine,
        key: &str,
        wasm: &[u8],
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Compiled));
        };
        let path = dir.join(format!("{key}.cwasm"));
        if path.exists() {
            match load_precompiled(engine, &path) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = store(dir, &path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the compile cache");
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

/// Content hash of the component plus everything in the engine that affects its code.
fn key(engine: &Engine, wasm: &[u8]) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0 // only `write` is used; the digest is read from the inner state
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = ShaHasher(Sha256::new());
    h.write(wasm);
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(h.0.finalize())
}

#[allow(unsafe_code)]
fn load_precompiled(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: the file was written by `store` below from `Component::serialize` of this same
    // engine configuration (the compatibility hash is part of its name), via write-to-temp
    // then rename, so it is never observed half-written. wasmtime checks the header and
    // engine settings again on load. The cache directory is the user's own.
    Ok(unsafe { Component::deserialize_file(engine, path) }?)
}

fn store(dir: &Path, path: &Path, component: &Component) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The threads that plan, compile and load components: a pool of their own whose threads run
/// at the lowest priority (`nice` 19), so a large compile gets the CPU that serving leaves
/// over instead of taking it from requests in flight. wasmtime's parallel compilation runs on
/// this pool too (it uses the rayon pool it is called from).
pub(crate) struct CompilePool {
    pool: rayon::ThreadPool,
}

impl CompilePool {
    /// One thread per core this process may run on.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("hearth-compile-{i}"))
            .start_handler(|_| lower_this_threads_priority())
            .build()?;
        Ok(Self { pool })
    }

    /// Runs `work` on the pool and waits for it without blocking the caller's thread.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let _ = tx.send(work());
        });
        rx.await.ok()
    }
}

/// Sets the calling thread's nice value to 19 (Linux schedules threads, so this is per
/// thread). Not `SCHED_IDLE`: an idle-class thread preempted while it holds the process's
/// memory-map lock stalls every serving thread that faults a page until it runs again, which
/// measured worse (`bench/lifecycle`).
#[allow(unsafe_code)]
fn lower_this_threads_priority() {
    // SAFETY: `setpriority` only reads its integer arguments; `PRIO_PROCESS` with who = 0
    // means the calling thread on Linux. A failure leaves the default priority, which only
    // yields less, so it is logged and otherwise ignored.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the compile thread's priority");
    }
}
