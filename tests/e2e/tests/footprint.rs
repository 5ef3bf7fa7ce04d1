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
