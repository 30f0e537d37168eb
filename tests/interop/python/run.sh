#!/usr/bin/env bash
# Runs the Python interop suite (boto3, AWS CLI), the kill -9 crash test and the multi-node
# suite (tests/interop/cluster: three nodes on one real redis-server) against the real
# kvs-signaling binary, in a venv of their own at tests/interop/.venv.
#
#   tests/interop/python/run.sh [pytest args...]
#
# Binary: $KVS_BIN, else target/release/kvs-signaling, else target/debug/kvs-signaling.
# The cluster suite needs redis-server (Debian package redis-server; scripts/test.sh installs it)
# or $KVS_REDIS_SERVER; KVS_SKIP_CLUSTER=1 leaves it out and says so ("SKIPPED: ..."), refused
# under CI=true; 0 or unset runs it, any other value is an error.
# pytest's exit code 5 (no test collected) is a failure unless KVS_ALLOW_NO_TESTS=1.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
INTEROP="$(dirname "$HERE")"
VENV="$INTEROP/.venv"

if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
# Reinstall only when requirements.txt changed since the last successful install.
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$want" >"$STAMP"
fi

suites=("$HERE" "$INTEROP/crash")
skip_cluster=0
case "${KVS_SKIP_CLUSTER:-}" in
  "" | 0) ;;
  1)
    if [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; then
      echo "KVS_SKIP_CLUSTER=1 is refused under CI=$CI: a CI run does not skip the multi-node suite" >&2
      exit 2
    fi
    skip_cluster=1
    echo "SKIPPED: the multi-node suite, tests/interop/cluster (KVS_SKIP_CLUSTER=1)"
    ;;
  *)
    echo "KVS_SKIP_CLUSTER must be 1 (skip the multi-node suite), 0 or unset, not '$KVS_SKIP_CLUSTER'" >&2
    exit 2
    ;;
esac
if ((!skip_cluster)); then
  if [[ -z "${KVS_REDIS_SERVER:-}" ]] && ! command -v redis-server >/dev/null && [[ ! -x /usr/bin/redis-server ]]; then
    echo "redis-server is missing (apt-get install redis-server, or KVS_REDIS_SERVER=PATH);" \
      "KVS_SKIP_CLUSTER=1 skips the multi-node suite" >&2
    exit 1
  fi
  suites+=("$INTEROP/cluster")
fi

cd "$HERE"
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider --timeout=300 \
  "${suites[@]}" "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  if [[ "${KVS_ALLOW_NO_TESTS:-}" == "1" ]]; then
    echo "pytest collected no tests (allowed by KVS_ALLOW_NO_TESTS=1)" >&2
    exit 0
  fi
  echo "pytest collected no tests: that is a failure (set KVS_ALLOW_NO_TESTS=1 to allow it)" >&2
  exit 1
fi
exit $rc
