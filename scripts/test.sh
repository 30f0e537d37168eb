#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs, then runs
#   1. formatting and lint gates (cargo fmt --check, clippy -D warnings),
#   2. Rust unit and integration tests (real server on port 0, aws-sdk-kinesisvideo), then a
#      short fuzzing run of each libFuzzer target (scripts/fuzz.sh; skipped without nightly),
#   3. the Python interop suite (boto3, AWS CLI), the kill -9 crash test and the multi-node
#      suite (three nodes on a real redis-server on a free loopback port), then a one-minute
#      soak of one node and of three nodes on Redis (scripts/soak.sh),
#   4. the Node suite with the official KVS WebRTC JS SDK,
#   5. browser-to-browser WebRTC calls (host and TURN relay) in Chromium,
#   6. a short run of the benchmark (scripts/bench.sh --quick) proving it works.
# Usage: scripts/test.sh            (everything)
#        KVS_SKIP_LINT=1 scripts/test.sh   (skip fmt/clippy while iterating; refused under CI=true)
#        KVS_SKIP_CLUSTER=1 ...            (leave out the multi-node suite; see
#                                           tests/interop/python/run.sh; refused under CI=true)
#        KVS_SKIP_SOAK=1 ...               (leave out the soak; refused under CI=true)
#        KVS_SKIP_FUZZ=1 ...               (leave out the fuzzing run; refused under CI=true)
#        KVS_FUZZ_SECONDS=N ...            (seconds per fuzz target, default 20)
# A skip is taken only for the value 1, says so in a "SKIPPED: ..." line, and is refused under CI
# (CI=true): a CI run is the whole suite. 0 or unset runs it; any other value is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n=== %s ===\n' "$*"; }

# skip_requested VAR WHAT: true when $VAR is exactly 1 (prints the SKIPPED line), false when it
# is unset, empty or 0; exits for any other value, and for 1 under CI=true.
skip_requested() {
  local var=$1 what=$2 val=${!1:-}
  case "$val" in
    "" | 0) return 1 ;;
    1)
      if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; then
        echo "$var=1 is refused under CI=$CI: a CI run does not skip $what" >&2
        exit 2
      fi
      echo "SKIPPED: $what ($var=1)"
      return 0
      ;;
    *)
      echo "$var must be 1 (skip $what), 0 or unset, not '$val'" >&2
      exit 2
      ;;
  esac
}

# --- what the suite needs from the system ----------------------------------------------
need_apt=()
command -v python3 >/dev/null || need_apt+=(python3 python3-venv python3-pip)
command -v cc >/dev/null || need_apt+=(build-essential)
# The multi-node suite (tests/interop/cluster) runs a real Redis; the suite starts and stops it.
command -v redis-server >/dev/null || [[ -x /usr/bin/redis-server ]] || need_apt+=(redis-server)
# ... with one node under libfaketime (clock-skew tests) and the deployment guide's nginx and
# HAProxy examples in front of the nodes (TLS certificates made with openssl).
for p in faketime nginx haproxy openssl; do
  command -v $p >/dev/null || [[ -x /usr/sbin/$p ]] || need_apt+=($p)
done
# The hostile-input suite reads listen backlogs with ss and lowers a server's open-file limit.
command -v ss >/dev/null || need_apt+=(iproute2)
command -v prlimit >/dev/null || need_apt+=(util-linux)
# The media tests make H.264 and Opus with ffmpeg and read GetMedia's Matroska with ffprobe.
command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
if ((${#need_apt[@]})); then
  step "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq python3-venv
fi

# KVS_SKIP_CLUSTER is acted on by tests/interop/python/run.sh (which prints the SKIPPED line);
# checked here as well, so a refused or misspelt value stops the run before the build.
skip_requested KVS_SKIP_CLUSTER "the multi-node suite" >/dev/null || true
skip_requested KVS_SKIP_SOAK "the soak" >/dev/null || true
skip_requested KVS_SKIP_FUZZ "fuzzing" >/dev/null || true

# --- Rust --------------------------------------------------------------------------------
if ! skip_requested KVS_SKIP_LINT "fmt/clippy"; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

step "cargo build (debug binary used by the interop suites)"
cargo build --workspace --locked

step "Rust unit and integration tests"
cargo test --workspace --locked 2>&1 | tee "$ROOT/target/rust-tests.log"
# A run that found no tests is a failure, not a pass.
if ! grep -Eq '^test result: ok\. [1-9][0-9]* passed' "$ROOT/target/rust-tests.log"; then
  echo "no Rust tests ran" >&2
  exit 1
fi

# --- Fuzzing, briefly: every target from its seeds (docs/reliability.md, "Fuzzing"); the
# script prints one SKIPPED line when no nightly toolchain is installed.
if ! skip_requested KVS_SKIP_FUZZ "fuzzing"; then
  step "fuzzing (scripts/fuzz.sh, ${KVS_FUZZ_SECONDS:-20} s per target)"
  bash scripts/fuzz.sh --seconds "${KVS_FUZZ_SECONDS:-20}"
fi

export KVS_BIN="$ROOT/target/debug/kvs-signaling"

# --- Python interop suite --------------------------------------------------------------
step "Python interop suite (boto3, AWS CLI, crash test, multi-node on Redis)"
bash tests/interop/python/run.sh

# --- Soak, briefly: steady load for a minute, then memory and fds back to the baseline ------
if ! skip_requested KVS_SKIP_SOAK "the soak"; then
  step "soak (scripts/soak.sh --minutes 1: one node on SQLite, then three nodes on Redis)"
  soak_modes=()
  # Without the multi-node suite there is no Redis part of the soak either.
  [[ "${KVS_SKIP_CLUSTER:-}" == 1 ]] && soak_modes=(--single)
  bash scripts/soak.sh --minutes 1 "${soak_modes[@]}"
fi

# --- Node suite: the official KVS WebRTC JS SDK ------------------------------------------
step "Node suite (amazon-kinesis-video-streams-webrtc, AWS SDK v3)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
(cd tests/interop/node && npm ci --no-audit --no-fund --loglevel=error && npm test)

# --- Browser end-to-end: real WebRTC calls in Debian's Chromium -----------------------
step "Browser suite (Chromium + playwright-core, inside a network namespace)"
if ! command -v chromium >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium
fi
command -v unshare >/dev/null && command -v ip >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq util-linux iproute2
}
# The aiortc viewer (a second WebRTC stack) runs from the interop venv.
tests/interop/.venv/bin/pip install -q -r tests/interop/aiortc/requirements.txt
bash tests/interop/node/run-browser.sh

# --- The benchmark, briefly: proves kvs-bench and scripts/bench.sh work (numbers meaningless
# on debug builds; the real comparison is scripts/bench.sh, docs/benchmarks.md).
step "benchmark smoke run (scripts/bench.sh --quick, debug build)"
BENCH_PROFILE=debug bash scripts/bench.sh --quick
test -s target/bench-quick.md

step "all suites passed"
