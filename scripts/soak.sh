#!/usr/bin/env bash
# Bounded soak (issue 13): steady WebSocket connects and disconnects, relayed SDP and ICE,
# held messages expiring and control-plane traffic against one node on SQLite, then three
# nodes on a real redis-server; checks that every node's memory and open files come back to
# their baseline afterwards. What it does and checks: tests/soak/soak.py; the last long run:
# docs/reliability.md "Soak".
#
#   scripts/soak.sh [--minutes N] [--single|--cluster] [--warmup S] [--markdown FILE] [--json FILE]
#
# --minutes: load per mode (default 2; the documented run uses 10). Both modes unless
# --single or --cluster. Binary: $KVS_BIN, else `cargo build --release -p kvs-signaling`
# (SOAK_PROFILE=debug builds and uses the debug binary instead; CARGO_TARGET_DIR is honoured).
# The binary is copied first, so a rebuild meanwhile does not change what is soaked.
# Python: the interop suite's venv, tests/interop/.venv (created as tests/interop/python/run.sh
# does). Needs redis-server for --cluster (Debian package redis-server, or $KVS_REDIS_SERVER).
# Loopback only; every load stops by itself (--minutes plus bounded settle times).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MINUTES=2 MODE=both PASS=()
while (($#)); do
  case "$1" in
    --minutes) MINUTES=${2:?--minutes needs a value}; shift 2 ;;
    --single) MODE=single; shift ;;
    --cluster) MODE=cluster; shift ;;
    --warmup | --markdown | --json | --workers | --seed) PASS+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    *)
      echo "usage: $0 [--minutes N] [--single|--cluster] [--warmup S] [--workers N] [--seed N] [--markdown FILE] [--json FILE]" >&2
      exit 2
      ;;
  esac
done

BIN=${KVS_BIN:-}
if [[ -z "$BIN" ]]; then
  PROFILE=${SOAK_PROFILE:-release}
  case "$PROFILE" in
    release) cargo build --release --locked -p kvs-signaling ;;
    debug) cargo build --locked -p kvs-signaling ;;
    *) echo "SOAK_PROFILE must be release or debug" >&2; exit 2 ;;
  esac
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/kvs-signaling
fi
[[ -x "$BIN" ]] || { echo "no kvs-signaling binary at $BIN" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvs-soak.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cp "$BIN" "$WORK/kvs-signaling"

VENV=$ROOT/tests/interop/.venv
REQ=$ROOT/tests/interop/python/requirements.txt
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
STAMP=$VENV/.requirements.sha256
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
  echo "$want" >"$STAMP"
fi

# Client and nodes stay far below it (a few dozen sockets each); the bound of every process here.
ulimit -n "$(( $(ulimit -Hn) < 20000 ? $(ulimit -Hn) : 20000 ))" 2>/dev/null || true

echo "soak: $MINUTES min per mode ($MODE), binary $BIN ($(git describe --always --dirty 2>/dev/null || echo unknown))"
KVS_BIN=$WORK/kvs-signaling "$VENV/bin/python" tests/soak/soak.py --minutes "$MINUTES" --mode "$MODE" "${PASS[@]}"
