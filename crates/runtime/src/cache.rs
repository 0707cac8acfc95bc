//! The compiled-component cache: native code on disk, keyed by the component's content hash
//! and the engine's compatibility hash, so a second start of the same component skips
//! compilation and maps the code straight from the file.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components live; `None` compiles every time.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded precompiled code.
    Hit,
    /// Compiled (and stored, if the cache is enabled).
    Compiled,
}

impl CompileCache {
    /// A cache in `dir`, created on first store.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// Loads `wasm` from the cache or compiles it. Blocking: call on the blocking pool.
    pub fn load(&self, engine: &Engine, wasm: &[u8]) -> anyhow::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Compiled));
        };
        let path = dir.join(format!("{}.cwasm", key(engine, wasm)));
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
