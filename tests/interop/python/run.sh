#!/usr/bin/env bash
# Runs the Python interop suite (boto3, AWS CLI) and the crash test in a venv of their own.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/../.venv"
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
cd "$HERE"
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$HERE" "$HERE/../crash" "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit $rc
