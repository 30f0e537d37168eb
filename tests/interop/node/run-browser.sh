#!/usr/bin/env bash
# Runs the browser end-to-end tests inside a network namespace of their own: Chromium gathers
# no ICE candidates on loopback alone, so the namespace gets a veth pair with a TEST-NET-1
# address (192.0.2.0/24, never routed anywhere) and a default route. Nothing leaves it.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE"
if [[ -z "${KVS_IN_NETNS:-}" ]]; then
  exec unshare --net -- env KVS_IN_NETNS=1 bash "$HERE/run-browser.sh" "$@"
fi
ip link set lo up
ip link add kvs0 type veth peer name kvs1
ip addr add 192.0.2.10/24 dev kvs0
ip addr add 192.0.2.11/24 dev kvs1
ip link set kvs0 up
ip link set kvs1 up
ip route add default via 192.0.2.11 dev kvs0 2>/dev/null || ip route add default dev kvs0
export KVS_NETNS_IP=192.0.2.10
# browser.test.mjs: calls through the official SDK bundle; console.test.mjs: the web console;
# storage.test.mjs: a Chromium master recorded by JoinStorageSession; storage-viewer.test.mjs: a
# Chromium viewer joined through the storage session. Arguments: run only those.
if [[ $# -eq 0 ]]; then set -- browser.test.mjs console.test.mjs storage.test.mjs storage-viewer.test.mjs; fi
exec node --test --test-concurrency=1 --test-timeout=180000 "$@"
