#!/usr/bin/env bash
# Fuzzes the wire parsers with libFuzzer (docs/reliability.md, "Fuzzing"): the SigV4 header and
# presigned forms, the restJson1 request decoders and the WebSocket message parser. The targets
# in fuzz/ are laid out for `cargo fuzz`; this script needs only the nightly toolchain: it builds
# them with cargo-fuzz's instrumentation flags and runs each for a bounded time.
#
# Usage: scripts/fuzz.sh [--seconds N] [--resume] [target...]
#   --seconds N   run each target for N seconds (default 20)
#   --resume      keep the working corpus grown by earlier runs (default: start from the seeds)
#   target...     some of: sigv4_header sigv4_presigned rest_json ws_message (default: all)
# Environment: KVS_FUZZ_TARGET_DIR (build and working directory, default fuzz/target).
#
# Seeds are read from fuzz/corpus/<target>/ and never written; what the fuzzer adds goes to the
# working corpus $KVS_FUZZ_TARGET_DIR/corpus/<target>/. A crash or timeout is written to
# fuzz/artifacts/<target>/ (so is an input over libFuzzer's 2 GB memory limit), its path
# printed, and the script exits 1 after running the other targets.
# Without a nightly toolchain it prints one SKIPPED line and exits 0; it never installs one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ALL_TARGETS=(sigv4_header sigv4_presigned rest_json ws_message)
seconds=20
resume=0
targets=()
while (($#)); do
  case "$1" in
    --seconds)
      seconds=${2:?--seconds needs a number}
      shift 2
      ;;
    --seconds=*)
      seconds=${1#--seconds=}
      shift
      ;;
    --resume)
      resume=1
      shift
      ;;
    -h | --help)
      sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "unknown option $1 (see --help)" >&2
      exit 2
      ;;
    *)
      [[ " ${ALL_TARGETS[*]} " == *" $1 "* ]] || {
        echo "unknown target $1; targets: ${ALL_TARGETS[*]}" >&2
        exit 2
      }
      targets+=("$1")
      shift
      ;;
  esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || {
  echo "--seconds must be a positive whole number, not '$seconds'" >&2
  exit 2
}
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")

# Never let rustup fetch a toolchain: a missing nightly is a skip, not a download.
export RUSTUP_AUTO_INSTALL=0
if ! command -v rustup >/dev/null || ! nightly=$(rustup run nightly rustc --version 2>/dev/null); then
  echo "SKIPPED: fuzzing (no nightly toolchain)"
  exit 0
fi
host=$(rustup run nightly rustc -vV | sed -n 's/^host: //p')
TARGET_DIR=${KVS_FUZZ_TARGET_DIR:-$ROOT/fuzz/target}
mkdir -p "$TARGET_DIR"
TARGET_DIR=$(cd "$TARGET_DIR" && pwd)

# The fuzz crate is its own workspace. It builds the workspace crates with the versions pinned in
# the main Cargo.lock: a copy of it (kept out of git) is its lock, refreshed when the main one
# changes; cargo adds libfuzzer-sys to it.
if [[ ! -f fuzz/Cargo.lock || Cargo.lock -nt fuzz/Cargo.lock ]]; then
  cp Cargo.lock fuzz/Cargo.lock
fi

# cargo-fuzz's build (release with debug assertions, so overflow checks are on;
# AddressSanitizer; SanitizerCoverage for libFuzzer) with its --strip-dead-code, and without its
# single codegen unit and full debug info: the server crate's dependency tree is large, and
# linking it all in (-Clink-dead-code) gave 2 million coverage counters that libFuzzer scanned
# after every input, a tenth of the speed (docs/reliability.md). Line tables keep file:line in
# stack traces. --target keeps these flags away from build scripts and proc macros.
flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0
  -Cllvm-args=-sanitizer-coverage-stack-depth
  --cfg fuzzing
  -Zsanitizer=address
  -Cdebug-assertions
)
echo "=== fuzz: building ${targets[*]} ($nightly, $host) ==="
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
RUSTFLAGS="${flags[*]} ${RUSTFLAGS:-}" CARGO_TARGET_DIR="$TARGET_DIR" \
  cargo +nightly build --manifest-path fuzz/Cargo.toml --target "$host" --release \
  --config 'profile.release.debug="line-tables-only"' "${bins[@]}"
BIN_DIR=$TARGET_DIR/$host/release

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"
failed=()
summary=()
for t in "${targets[@]}"; do
  work=$TARGET_DIR/corpus/$t
  artifacts=$ROOT/fuzz/artifacts/$t
  log=$TARGET_DIR/logs/$t.log
  ((resume)) || rm -rf "$work"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  echo "=== fuzz: $t for ${seconds}s (seeds fuzz/corpus/$t, log $log) ==="
  rc=0
  # -timeout: an input that runs for 10 s is a hang, reported like a crash.
  "$BIN_DIR/$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  # libFuzzer's final stats; absent when an input crashed before the first report.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -Eo '(cov|ft|corp): [0-9/a-zA-Z]+' "$log" | tail -3 | tr '\n' ' ' || true)
  if ((rc != 0)); then
    # The panic (its message is on the line after "panicked at") or sanitizer report.
    awk '/^thread .* panicked at/ { print; getline; print; next }
         /^==[0-9]+== ?ERROR|^SUMMARY|Test unit written to/' "$log" | head -20
    artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
    echo "FAILED: $t (exit $rc) after ${execs:-?} executions; artifact: ${artifact:-none}; log: $log"
    echo "  reproduce: $BIN_DIR/$t ${artifact:-<artifact>}"
    failed+=("$t")
    summary+=("$t: FAILED, artifact ${artifact:-none}")
  else
    summary+=("$t: ok, ${execs:-?} executions, ${cov}")
  fi
done

echo "=== fuzz summary (${seconds}s per target) ==="
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzzing found failures in: ${failed[*]}" >&2
  exit 1
fi
