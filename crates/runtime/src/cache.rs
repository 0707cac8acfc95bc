//! The compiled-component cache: native code on disk, keyed by the component's content hash
//! and the engine's compatibility hash, so a second start of the same component skips
//! compilation and maps the code straight from the file; and in memory, so identical
//! components used by many workloads of a host are loaded and held once (an entry lives as
//! long as some running part holds its code).

use crate::state::InvocationState;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre};

/// Where compiled components live: on disk (`None`: compile every time) and in memory.
#[derive(Debug)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    /// Loaded code by cache key, while some part holds it.
    loaded: Mutex<HashMap<Key, Weak<Code>>>,
    /// The engine's compatibility hash, computed once (one engine per cache).
    engine: OnceLock<[u8; 32]>,
}

/// A cache key: the component's content hash combined with the engine's.
type Key = [u8; 32];

/// A component's compiled code, held once per host whatever number of parts run it.
pub struct Code {
    component: Component,
    /// The code pre-instantiated against the host's own linker, made by the first part that
    /// links nothing of its workload's and shared by every later one.
    unlinked: OnceLock<InstancePre<InvocationState>>,
}

impl Code {
    /// The pre-instantiated code for a part with no links, made once by `make`.
    pub(crate) fn unlinked(
        &self,
        make: impl FnOnce(&Component) -> wasmtime::Result<InstancePre<InvocationState>>,
    ) -> wasmtime::Result<InstancePre<InvocationState>> {
        if let Some(pre) = self.unlinked.get() {
            return Ok(pre.clone());
        }
        let pre = make(&self.component)?;
        Ok(self.unlinked.get_or_init(|| pre).clone())
    }
}

impl std::ops::Deref for Code {
    type Target = Component;
    fn deref(&self) -> &Component {
        &self.component
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Code").finish_non_exhaustive()
    }
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
            engine: OnceLock::new(),
        }
    }

    /// The code of the component whose SHA-256 is `digest`, if some part of this host holds
    /// it already. Cheap: callable on any thread.
    pub fn shared(&self, engine: &Engine, digest: &[u8; 32]) -> Option<Arc<Code>> {
        let code = self.lock().get(&self.key(engine, digest))?.upgrade()?;
        crate::metrics::compile_cache(CacheOutcome::Shared);
        Some(code)
    }

    /// The code of `wasm` (whose SHA-256 is `digest`): shared if some part of this host holds
    /// it, else loaded from disk or compiled. Blocking: call on the blocking pool.
    pub fn load(
        &self,
        engine: &Engine,
        digest: &[u8; 32],
        wasm: &[u8],
    ) -> anyhow::Result<(Arc<Code>, CacheOutcome)> {
        if let Some(code) = self.shared(engine, digest) {
            return Ok((code, CacheOutcome::Shared));
        }
        let key = self.key(engine, digest);
        let (component, outcome) = self.load_or_compile(engine, &hex::encode(key), wasm)?;
        crate::metrics::compile_cache(outcome);
        let code = Arc::new(Code {
            component,
            unlinked: OnceLock::new(),
        });
        let mut loaded = self.lock();
        loaded.retain(|_, w| w.strong_count() > 0);
        loaded.insert(key, Arc::downgrade(&code));
        Ok((code, outcome))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Weak<Code>>> {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The content hash combined with everything in the engine that affects the code.
    fn key(&self, engine: &Engine, digest: &[u8; 32]) -> Key {
        let engine = self.engine.get_or_init(|| engine_hash(engine));
        let mut h = Sha256::new();
        h.update(digest);
        h.update(engine);
        h.finalize().into()
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

/// A digest of everything in the engine's configuration that affects compiled code.
fn engine_hash(engine: &Engine) -> [u8; 32] {
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
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.finalize().into()
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
