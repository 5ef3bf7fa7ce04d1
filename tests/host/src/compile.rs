//! Turning `wasm32-wasip1` modules into compiled components, with two caches.
//!
//! Spin adapts a core module to a component with the WASI preview1 "reactor" adapter
//! (a cdylib has no `_start`); the same adapter is taken from crates.io here.
//! Compiling with Cranelift takes seconds per component, so:
//! - within a process, each (path, content) is compiled once and shared;
//! - on disk, the serialized artifact is kept under the cache directory, named by the
//!   content hash and the engine's compatibility hash, so the next test binary (or the
//!   next run) only deserializes it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The process-wide engine: compiled components are tied to the engine that made
/// them, so every host in the process shares this one.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Keep the native stack of guest code well below tokio's 2 MiB worker stacks.
        config.max_wasm_stack(512 * 1024);
        if pooling_fits() {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(spin_pool()));
            // The pool is reserved when the engine is made; a system that passed the probe
            // and still refuses it gets plain allocation, as where the probe fails.
            match Engine::new(&config) {
                Ok(pooled) => return pooled,
                Err(e) => eprintln!("instance pool refused ({e}); allocating per instance"),
            }
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        }
        Engine::new(&config).unwrap_or_else(|e| panic!("cannot create wasmtime engine: {e}"))
    })
}

/// Instances live at once in Spin's default pool (`SPIN_MAX_INSTANCE_COUNT`).
const POOL_INSTANCES: u32 = 1_000;
const MB: usize = 1 << 20;

/// Spin 4's default instance pool (its `spin-core` `Config::default`): every request's
/// instance takes a slot whose memory is reset, not mapped and unmapped (`munmap` and
/// `mprotect` were 7% of the test host's CPU under load without it). Without it the test
/// host would pay per request what Spin does not, and the benchmark would count it.
fn spin_pool() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        .total_memories(POOL_INSTANCES)
        .total_tables(2 * POOL_INSTANCES)
        .total_stacks(POOL_INSTANCES)
        .total_core_instances(4 * POOL_INSTANCES)
        .table_elements(100_000)
        .max_component_instance_size(10 * MB)
        .max_core_instance_size(10 * MB)
        .max_core_instances_per_component(200)
        .max_tables_per_component(64)
        .max_memories_per_component(32)
        .max_tables_per_module(2)
        .max_memories_per_module(2)
        .max_memory_size(4 * 1024 * MB)
        .linear_memory_keep_resident(2 * MB)
        .table_keep_resident(MB / 2);
    pool
}

/// Whether the pool's address space can be reserved, as Spin decides: it tries a 42-bit
/// reservation and falls back to plain allocation where the system refuses (some 39-bit
/// machines). `SPIN_WASMTIME_POOLING=0|1` overrides, as it does for Spin.
fn pooling_fits() -> bool {
    match std::env::var("SPIN_WASMTIME_POOLING").as_deref() {
        Ok("1") => return true,
        Ok("0") => return false,
        _ => {}
    }
    const BITS: u32 = 42;
    let mut probe = Config::new();
    probe.wasm_memory64(true).memory_reservation(1 << BITS);
    let Ok(engine) = Engine::new(&probe) else {
        return false;
    };
    let mut store = wasmtime::Store::new(&engine, ());
    let ty = wasmtime::MemoryType::new64(0, Some(1 << (BITS - 16)));
    wasmtime::Memory::new(&mut store, ty).is_ok()
}

/// One cache entry: filled by whichever host compiles the component first.
type Slot = Arc<Mutex<Option<Component>>>;
/// (wasm path, sha256 of its bytes) -> compiled component.
type MemoryCache = Mutex<HashMap<(PathBuf, [u8; 32]), Slot>>;

fn memory_cache() -> &'static MemoryCache {
    static CACHE: OnceLock<MemoryCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Identifies the engine build and settings; part of every disk-cache file name.
fn engine_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine().precompile_compatibility_hash().hash(&mut h);
        // The adapter is baked into every artifact, so its bytes count too.
        WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER.hash(&mut h);
        format!("{:016x}", h.finish())
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_core_module(bytes: &[u8]) -> bool {
    // A core module's header is "\0asm" then version 1; components use another layer.
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// Adapts a core module into a component as `spin up` does; components pass through.
pub fn componentize(bytes: &[u8]) -> Result<Vec<u8>> {
    if !is_core_module(bytes) {
        return Ok(bytes.to_vec());
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(bytes)
        .context("module is not a valid wasm32-wasip1 module")?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .context("cannot attach the WASI preview1 adapter")?
        .encode()
        .context("cannot encode the component")
}

/// Loads `path` as a compiled component, using both caches.
pub fn load_component(path: &Path, cache_dir: Option<&Path>) -> Result<Component> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let key = (path.to_path_buf(), digest);

    let slot = {
        let mut cache = memory_cache().lock().unwrap_or_else(|p| p.into_inner());
        cache.entry(key).or_default().clone()
    };
    // Holding the slot's lock while compiling makes concurrent hosts wait for the
    // first compilation instead of repeating it.
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = slot.as_ref() {
        return Ok(c.clone());
    }
    let component = compile_with_disk_cache(&bytes, &digest, cache_dir)
        .with_context(|| format!("cannot compile {}", path.display()))?;
    *slot = Some(component.clone());
    Ok(component)
}

fn compile_with_disk_cache(
    bytes: &[u8],
    digest: &[u8; 32],
    cache_dir: Option<&Path>,
) -> Result<Component> {
    let engine = engine();
    let file = cache_dir.map(|d| d.join(format!("{}-{}.cwasm", hex(digest), engine_tag())));
    if let Some(file) = &file {
        if file.exists() {
            // SAFETY: the file was written by `Component::serialize` below, for an engine
            // with the same compatibility hash (part of its name), into a directory only
            // this tool writes. wasmtime still checks the header and refuses a mismatch.
            match unsafe { Component::deserialize_file(engine, file) } {
                Ok(c) => {
                    // Mark as recently used so pruning keeps it.
                    if let Ok(f) = std::fs::File::options().append(true).open(file) {
                        let _ = f.set_modified(std::time::SystemTime::now());
                    }
                    return Ok(c);
                }
                Err(e) => eprintln!(
                    "spin-test-host: ignoring unusable cache file {}: {e}",
                    file.display()
                ),
            }
        }
    }
    let component_bytes = componentize(bytes)?;
    let component = Component::new(engine, &component_bytes)?;
    if let Some(file) = &file {
        if let Err(e) = store_artifact(file, &component) {
            eprintln!(
                "spin-test-host: could not write cache file {}: {e:#}",
                file.display()
            );
        }
    }
    Ok(component)
}

fn store_artifact(file: &Path, component: &Component) -> Result<()> {
    let dir = file.parent().context("cache file has no directory")?;
    std::fs::create_dir_all(dir)?;
    let data = component.serialize()?;
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("artifact"),
        std::process::id()
    ));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, file)?;
    prune(dir);
    Ok(())
}

/// Every rebuild of a component adds an artifact; drop those unused for two days so
/// the cache does not grow without bound.
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let max_age = std::time::Duration::from_secs(2 * 24 * 3600);
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            if stale {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_modules() {
        assert!(is_core_module(b"\0asm\x01\0\0\0"));
        assert!(!is_core_module(b"\0asm\x0d\0\x01\0"));
        assert!(!is_core_module(b"nope"));
    }
}
