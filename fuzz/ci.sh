#!/usr/bin/env bash
# `make test-fuzz`: build every fuzz target (the pinned nightly of
# rust-toolchain.toml, cargo-fuzz, libfidius without wasmtime), then per
# target replay every committed corpus input under ASan and LSan and fuzz it
# live for FUZZ_SECONDS (default 15). A crash, leak, hang (10 s) or memory
# blow-up (2.5 GiB) fails the run. New inputs go to target/fuzz/ci/, never
# into the committed corpus.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-15}
command -v cargo-fuzz >/dev/null || {
  echo "cargo-fuzz not found: .ci/run installs it (cargo install cargo-fuzz --locked --version 0.13.2)"
  exit 1
}
# capi_sequence loads the native fixture plugins from target/fixtures/debug.
ls ../target/fixtures/debug/libfixture_v5.so >/dev/null || { echo "build the fixture plugins first: make -C examples-c fixtures"; exit 1; }
CARGO_BUILD_JOBS=2 cargo fuzz build --target-dir ../target/fuzz
bin=../target/fuzz/x86_64-unknown-linux-gnu/release
out=../target/fuzz/ci
rm -rf "$out"
mkdir -p "$out"
for t in $(cargo fuzz list); do
  mkdir -p "$out/$t"
  log="$out/$t.log"
  if ! "$bin/$t" "$out/$t" "corpus/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 \
      -artifact_prefix="$out/$t-" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz $t: FAILED (log: target/fuzz/ci/$t.log; the input is in target/fuzz/ci/$t-*)"
    exit 1
  fi
  echo "fuzz $t: replayed $(ls "corpus/$t" | wc -l) corpus inputs: $(grep -m1 -o 'INITED.*' "$log")"
  echo "fuzz $t: ${seconds} s live: $(grep -m1 -o 'DONE.*' "$log")"
done
echo "all fuzz targets ran clean"
