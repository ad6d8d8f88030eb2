#!/usr/bin/env bash
# Build the fixtures (release) and the benchmark, then run it: fidius-host 0.5.9
# and libfidius side by side in one process, printing a comparison table.
#
#   bash bench/run.sh [--scale F]     (F multiplies every time budget; default 1, about 90 s of runs)
#
# The bench is its own cargo workspace (bench/Cargo.toml); it builds into
# bench/target, never into the main crate's target/ (the fixtures do, as the tests build them).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
jobs="${CARGO_BUILD_JOBS:-2}"

echo "== building libfidius.so (release; the library the bench links)" >&2
cargo build --release -j"$jobs" --quiet --lib --manifest-path "$repo/Cargo.toml"
# The binary asks for the soname (libfidius.so.MAJOR), as any C host would.
soname="$(objdump -p "$repo/target/release/libfidius.so" | awk '/SONAME/ {print $2}')"
ln -sf libfidius.so "$repo/target/release/$soname"

echo "== building the native fixture (release)" >&2
cargo build --release -j"$jobs" --quiet \
    --manifest-path "$repo/tests/fixtures/native/Cargo.toml" --target-dir "$repo/target/fixtures"

echo "== building the WASM fixture packages (release)" >&2
packages="$here/target/fixture-packages"
bash "$repo/tests/fixtures/wasm/build.sh" "$packages" >&2

echo "== building the bench (release)" >&2
cargo build --release -j"$jobs" --quiet \
    --manifest-path "$here/Cargo.toml" --target-dir "$here/target"

echo "== measuring wasmtime's own per-call floor (cargo bench --bench wasm_floor)" >&2
floor_out="$(cargo bench -j"$jobs" --quiet --bench wasm_floor --manifest-path "$repo/Cargo.toml" -- "$packages/calc/calc.wasm")"
floor="$(awk '/^wasm_floor_ns/ {print $2}' <<<"$floor_out")"

echo "== measuring interface schemas (cargo bench --bench schema_json)" >&2
schema_out="$(cargo bench -j"$jobs" --quiet --bench schema_json --manifest-path "$repo/Cargo.toml" -- \
    "$repo/target/fixtures/release/libfixture_typed.so" "$repo/tests/fixtures/native/typed/wit/typed.wit")"

echo "== building the Python fixture package (fidius-cli 0.5.9)" >&2
make -C "$repo/examples-c" --quiet build/python-plugins >&2

echo "== measuring streams and Python calls (cargo bench --bench streams)" >&2
streams_out="$(cargo bench -j"$jobs" --quiet --bench streams --manifest-path "$repo/Cargo.toml" -- \
    "$repo/target/fixtures/release/libfixture_stream.so" "$packages/stream" "$repo/examples-c/build/python-plugins")"

echo "== measuring the compile cache (cargo bench --bench compile_cache)" >&2
cache_out="$(cargo bench -j"$jobs" --quiet --bench compile_cache --manifest-path "$repo/Cargo.toml" -- "$packages")"

echo "== measuring threads (cargo bench --bench threads)" >&2
threads_out="$(cargo bench -j"$jobs" --quiet --bench threads --manifest-path "$repo/Cargo.toml" -- \
    "$repo/target/fixtures/release/libfixture_v5.so" "$packages")"

echo "== running" >&2
echo "libfidius at $(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)"
echo "wasmtime's per-call floor on libfidius's engine (bench/floor.rs):"
echo "$floor_out"
echo "interface schemas: JSON against wire calls of a native plugin, and conversion throughput (bench/schema.rs):"
echo "$schema_out"
echo "streams: items per second of a server stream against a unary call (bench/streams.rs):"
echo "$streams_out"
echo "the persistent compilation cache (bench/cache.rs):"
echo "$cache_out"
echo "threads: calls per second with 1 and 8 threads (bench/threads.rs):"
echo "$threads_out"
exec "$here/target/release/fidius-bench" \
    --native "$repo/target/fixtures/release/libfixture_v5.so" \
    --wasm-package "$packages/calc" \
    --work "$here/target/work" \
    --wasm-floor-ns "$floor" \
    "$@"
