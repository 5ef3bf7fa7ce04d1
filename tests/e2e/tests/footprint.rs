//! Footprint: every component `spin.toml` lists ships as a release `.wasm` of at most
//! 1 MiB (README.md, "Performance and footprint").

use spin_test_host::manifest::Manifest;

const LIMIT_BYTES: u64 = 1024 * 1024;

#[test]
fn every_component_wasm_is_at_most_one_mib() {
    let manifest = Manifest::load(&e2e::spin_toml()).expect("read spin.toml");
    assert!(
        !manifest.components.is_empty(),
        "spin.toml lists no component"
    );
    let mut too_big = Vec::new();
    for (id, component) in &manifest.components {
        let size = std::fs::metadata(&component.source)
            .unwrap_or_else(|e| {
                panic!(
                    "component {id}: {} ({e}); build it first with `{}`",
                    component.source.display(),
                    e2e::BUILD_WASM
                )
            })
            .len();
        if size > LIMIT_BYTES {
            too_big.push(format!("{id}: {size} bytes ({})", component.source_text));
        }
    }
    assert!(
        too_big.is_empty(),
        "components over {LIMIT_BYTES} bytes: {too_big:?}"
    );
}

/// Most initial linear memory a component may declare: the 256 KiB stack that
/// `.cargo/config.toml` sets, its data and room to spare. Rust's default stack alone is
/// 1 MiB, and a Spin host clears an instance's memory, up to 2 MiB, on every request.
const INITIAL_MEMORY_LIMIT: u64 = 8 * 64 * 1024;

#[test]
fn every_component_starts_with_at_most_half_a_mib_of_memory() {
    let manifest = Manifest::load(&e2e::spin_toml()).expect("read spin.toml");
    let mut too_big = Vec::new();
    for (id, component) in &manifest.components {
        let module = std::fs::read(&component.source)
            .unwrap_or_else(|e| panic!("component {id}: {} ({e})", component.source.display()));
        let bytes = initial_memory(&module)
            .unwrap_or_else(|| panic!("component {id}: no linear memory found"));
        if bytes > INITIAL_MEMORY_LIMIT {
            too_big.push(format!("{id}: {bytes} bytes"));
        }
    }
    assert!(
        too_big.is_empty(),
        "components starting with over {INITIAL_MEMORY_LIMIT} bytes of memory: {too_big:?}"
    );
}

/// The initial size, in bytes, of a core wasm module's first memory (`None`: no memory
/// section, or a module that does not parse).
fn initial_memory(module: &[u8]) -> Option<u64> {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::MemorySection(memories) = payload.ok()? {
            let memory = memories.into_iter().next()?.ok()?;
            let page = 1u64 << memory.page_size_log2.unwrap_or(16);
            return Some(memory.initial * page);
        }
    }
    None
}
