#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Builds every component and the test probe as release wasm first, then runs the
# native unit tests and the end-to-end tests (which load those .wasm files: tests never
# run cargo themselves, a nested cargo would wait forever on the target-dir lock),
# and finally fuzzes the served OpenAPI document.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh machine has rustup and a stable toolchain but not the wasm target: rustup does
# not add the target rust-toolchain.toml names to a toolchain installed before it.
echo "==> toolchain"
rustup target add wasm32-wasip1
rustup component add rustfmt clippy

# Crates that run natively (the test host, the tests, the benchmark); everything else is wasm.
NATIVE=(--exclude spin-test-host --exclude e2e --exclude bench)

echo "==> format and lints"
cargo fmt --all -- --check
cargo clippy --target wasm32-wasip1 --workspace "${NATIVE[@]}" -- -D warnings
cargo clippy --all-targets -p tsuru-core -p spin-test-host -p e2e -p bench -- -D warnings

echo "==> wasm components (release)"
cargo build --target wasm32-wasip1 --release --workspace "${NATIVE[@]}"

echo "==> unit and end-to-end tests"
cargo test -p tsuru-core -p spin-test-host -p e2e

# A few seconds on the debug build above, so the benchmark cannot rot: it fails on an
# error or a non-2xx answer, never on a missed performance target.
echo "==> benchmark (smoke mode)"
cargo run -p bench -- --smoke

echo "==> fuzzing the OpenAPI document (schemathesis)"
cargo build -p spin-test-host
bash tests/fuzz.sh
