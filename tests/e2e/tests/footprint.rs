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

/// The initial size, in bytes, of a core wasm module's first memory (its memory section).
fn initial_memory(module: &[u8]) -> Option<u64> {
    fn leb(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let byte = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
            shift += 7;
        }
    }
    const MEMORY_SECTION: u8 = 5;
    let mut at = 8; // magic and version
    while at < module.len() {
        let id = module[at];
        at += 1;
        let size = leb(module, &mut at)? as usize;
        if id == MEMORY_SECTION {
            let mut entry = at;
            leb(module, &mut entry)?; // the number of memories
            entry += 1; // limits flags
            return Some(leb(module, &mut entry)? * 64 * 1024);
        }
        at += size;
    }
    None
}
