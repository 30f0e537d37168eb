#!/usr/bin/env bash
# The benchmark of issue 7: kvs-signaling against minimal baselines, on this machine, in one run.
#
#   scripts/bench.sh           full run (under 10 minutes once built), writes docs/benchmarks.md
#                              and docs/bench-latency.png
#   scripts/bench.sh --quick   a short run proving the benchmark works (well under 2 minutes
#                              once built), writes target/bench-quick.md and its chart
#   scripts/bench.sh --redis-only [--quick]
#                              only the "Several nodes on Redis" part (issue 8): replaces that
#                              section of docs/benchmarks.md (target/bench-quick.md), the rest
#                              of the file stays as it is
#
# The Redis part starts a real redis-server (Debian package, installed with apt-get when
# missing) on a free loopback port in a temporary directory, with `--save '' --appendonly yes
# --appendfsync always` (the persistence the Redis store's durability promise needs), and
# kvs-signaling nodes with `--store redis://127.0.0.1:PORT`. BENCH_REDIS=0 skips it (and says
# so); without redis-server, or with a server binary that does not start with a Redis store,
# the run fails, the quick run included.
#
# Builds `cargo build --release -p kvs-signaling -p kvs-bench` (CARGO_TARGET_DIR is honoured,
# default target/). KVS_SIGNALING_BIN=/path/to/kvs-signaling benchmarks that binary instead of
# building the server (e.g. one built from another worktree); KVS_SIGNALING_REV names it in
# the report. BENCH_VENV chooses the Python venv (moto[server], matplotlib); default: an
# existing tests/interop/.venv, else target/bench-venv (created and filled with pip).
#
# Every server this starts listens on 127.0.0.1 port 0 and is stopped on exit (trap); every
# load is bounded in time and count. Load generator and servers share the machine's cores.
#
# This script runs the loads and collects their results in a work directory (kvs-bench's JSON
# per measurement in r/, the commands run, /metrics snapshots, meta.json); the report, its
# tables and verdicts and the chart are written from there by scripts/bench_report.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0 REDIS_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --redis-only) REDIS_ONLY=1 ;;
    *)
      echo "usage: $0 [--quick] [--redis-only]" >&2
      exit 2
      ;;
  esac
done
RUN_REDIS=${BENCH_REDIS:-1}
if ((REDIS_ONLY && !RUN_REDIS)); then
  echo "--redis-only with BENCH_REDIS=0: nothing to do" >&2
  exit 2
fi

# ROUNDS: the describe and closed-loop relay comparisons run this many times, kvs-signaling and
# baseline alternating, each for ROUND_DUR; the best round of each is reported (other work on
# the machine can only slow a round down), all rounds are listed.
if ((QUICK)); then
  ROUNDS=1 ROUND_DUR=1s
  DUR=1s WARM=0s CLIENTS=8
  RELAY_CH=10 RELAY_INFL=4 RATE_DUR=1s FRACTIONS="0.25 0.5 1.0"
  IDLE_K=300 IDLE_HOLD=2s STARTUP_CH=500 STARTUP_RUNS=2 MOTO_DUR=1s
  OUT_MD=$ROOT/target/bench-quick.md OUT_PNG=$ROOT/target/bench-quick-latency.png
else
  ROUNDS=3 ROUND_DUR=5s
  DUR=10s WARM=1s CLIENTS=32
  RELAY_CH=50 RELAY_INFL=16 RATE_DUR=5s FRACTIONS="0.1 0.25 0.5 0.75 1.0"
  IDLE_K=15000 IDLE_HOLD=20s STARTUP_CH=10000 STARTUP_RUNS=5 MOTO_DUR=5s
  OUT_MD=$ROOT/docs/benchmarks.md OUT_PNG=$ROOT/docs/bench-latency.png
fi
CREATE_CLIENTS=32

step() { printf '\n=== %s ===\n' "$*" >&2; }
T_START=$(date +%s)

# --- build ---------------------------------------------------------------------------------
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# BENCH_PROFILE=debug (for the test suite's --quick run, which already built debug binaries)
# proves the benchmark works without a release build; its numbers mean nothing.
PROFILE=${BENCH_PROFILE:-release}
case "$PROFILE" in
  release) PFLAG=(--release) ;;
  debug) PFLAG=() ;;
  *) echo "BENCH_PROFILE must be release or debug" >&2; exit 2 ;;
esac
if [[ -n "${KVS_SIGNALING_BIN:-}" ]]; then
  step "cargo build ($PROFILE) -p kvs-bench (server: $KVS_SIGNALING_BIN)"
  cargo build "${PFLAG[@]}" -p kvs-bench
  SERVER=$KVS_SIGNALING_BIN
else
  step "cargo build ($PROFILE) -p kvs-signaling -p kvs-bench"
  cargo build "${PFLAG[@]}" -p kvs-signaling -p kvs-bench
  SERVER=$TARGET/$PROFILE/kvs-signaling
fi
BENCH=$TARGET/$PROFILE/kvs-bench
SERVER_REV=${KVS_SIGNALING_REV:-$(git describe --always --dirty 2>/dev/null || echo unknown)}

# --- Python: moto (baseline) and matplotlib (chart) ----------------------------------------
VENV=${BENCH_VENV:-}
if [[ -z "$VENV" ]]; then
  if [[ -x tests/interop/.venv/bin/python ]]; then VENV=$ROOT/tests/interop/.venv; else VENV=$ROOT/target/bench-venv; fi
fi
HAVE_PY=0
if ((REDIS_ONLY)); then
  : # neither moto nor the chart
elif [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import moto, flask, matplotlib' 2>/dev/null; then
  HAVE_PY=1
else
  step "installing moto[server] and matplotlib into $VENV"
  if { [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"; } &&
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check 'moto[server]' matplotlib; then
    HAVE_PY=1
  elif ((QUICK)); then
    echo "pip install failed: the quick run goes on without moto and the chart" >&2
  else
    echo "pip install of moto[server] and matplotlib failed" >&2
    exit 1
  fi
fi

# --- is the machine quiet? -----------------------------------------------------------------
# Server and load generator need every core: other work (a build, a test suite) skews the
# numbers. Wait a little for the machine to calm down, and account for what others used.
cpu_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
busy_pct() { # CPU busy over one second, in % of all cores
  local a b
  a=$(cpu_busy_ticks)
  sleep 1
  b=$(cpu_busy_ticks)
  awk -v d=$((b - a)) -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" 'BEGIN { printf "%.0f", 100 * d / hz / n }'
}
QUIET_WAIT=$( ((QUICK)) && echo 0 || echo 90)
for ((i = 0; i < QUIET_WAIT; i += 5)); do
  b=$(busy_pct)
  ((b < 15)) && break
  echo "machine is ${b} % busy with other work; waiting for it to calm down ($i s)" >&2
  sleep 4
done
BUSY_BEFORE=$(busy_pct)
# `times`' second line: user and system CPU of this shell's finished children (the build too).
children_s() { # children_s FILE [DECIMALS]
  awk -v d="${2:-0}" 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); t += p[1] * 60 + p[2] } printf "%.*f", d, t }' "$1"
}
TICKS0=$(cpu_busy_ticks)
times >"${TMPDIR:-/tmp}/kvs-bench-times.$$"
OURS0=$(children_s "${TMPDIR:-/tmp}/kvs-bench-times.$$")
rm -f "${TMPDIR:-/tmp}/kvs-bench-times.$$"

# --- processes -------------------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true # the idle test holds ~15,000 sockets in the server and in kvs-bench
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvs-bench.XXXXXX")
mkdir -p "$WORK/r"
# Where bench and serve note the commands they run (the report lists them).
CMDS=$WORK/commands.txt
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD in the background and waits for its ready line
# (`listening on http://HOST:PORT`, on stdout or stderr); sets EP and SPID.
start() {
  local name=$1 i
  shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SPID=$!
  PIDS+=("$SPID")
  EP=
  for ((i = 0; i < 600; i++)); do
    EP=$(grep -aho -m1 -E '(listening on|Running on) http://[0-9.]+:[0-9]+' "$WORK/$name.out" "$WORK/$name.err" 2>/dev/null |
      head -1 | grep -o 'http://.*' || true)
    [[ -n "$EP" ]] && return 0
    if ! kill -0 "$SPID" 2>/dev/null; then
      echo "$name exited before it was ready:" >&2
      tail -20 "$WORK/$name.err" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "$name: no ready line within 30 s" >&2
  return 1
}

# stop PID: SIGTERM, then SIGKILL after 15 s.
stop() {
  local i
  kill -TERM "$1" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# CPU ticks (user + system) of the servers this script is running.
servers_ticks() {
  local p t=0 v
  for p in "${PIDS[@]}"; do
    v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# quiet: before a measurement, wait (full run: up to 30 s) for other work to leave the cores.
quiet() {
  local i b
  ((QUICK)) && return 0
  for ((i = 0; i < 30; i += 2)); do
    b=$(busy_pct)
    ((b < 15)) && return 0
    echo "machine ${b} % busy with other work; waiting" >&2
    sleep 1
  done
}

# bench NAME ARGS...: runs kvs-bench, keeps its JSON line as r/NAME.json (with
# `others_cpu_pct`: the share of the machine's CPU that processes other than this benchmark's
# used meanwhile) and the command line.
bench() {
  local name=$1 m0 m1 s0 s1 c0 c1 t0 t1
  shift
  printf 'kvs-bench %s\n' "$*" >>"$CMDS"
  echo "kvs-bench $*" >&2
  quiet
  times >"$WORK/t0"
  m0=$(cpu_busy_ticks) s0=$(servers_ticks) t0=$(date +%s%N)
  "$BENCH" "$@" >"$WORK/r/$name.raw"
  m1=$(cpu_busy_ticks) s1=$(servers_ticks) t1=$(date +%s%N)
  times >"$WORK/t1"
  c0=$(children_s "$WORK/t0" 3) c1=$(children_s "$WORK/t1" 3)
  jq -c --argjson o "$(awk -v m=$((m1 - m0)) -v s=$((s1 - s0)) -v c0="$c0" -v c1="$c1" \
    -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" -v dt=$((t1 - t0)) \
    'BEGIN { o = (m - s) / hz - (c1 - c0); if (o < 0) o = 0; printf "%.1f", 100 * o / (dt / 1e9 * n) }')" \
    '. + {others_cpu_pct: $o}' "$WORK/r/$name.raw" >"$WORK/r/$name.json"
  rm -f "$WORK/r/$name.raw"
  cat "$WORK/r/$name.json" >&2
}

# best NAME KEY: r/NAME.json := the round r/NAME_<i>.json with the highest KEY, plus all rounds.
best() {
  jq -s --arg k "$2" 'max_by(.[$k]) + {rounds: map({($k): .[$k], others_cpu_pct})}' \
    "$WORK"/r/"$1"_[0-9]*.json >"$WORK/r/$1.json"
}

serve() { # serve NAME EXTRA-ARGS...: kvs-signaling on a fresh data dir
  local name=$1
  shift
  mkdir -p "$WORK/data-$name"
  printf 'kvs-signaling serve --listen 127.0.0.1:0 --data-dir DIR --embedded-turn false %s\n' "$*" >>"$CMDS"
  start "$name" "$SERVER" serve --listen 127.0.0.1:0 --data-dir "$WORK/data-$name" \
    --embedded-turn false "$@"
}

CTL=(--clients "$CLIENTS" --duration "$DUR" --warmup "$WARM")

# --- several nodes on Redis (issue 8) --------------------------------------------------------
# Defined here, run after the other parts (or alone with --redis-only). Its results go to
# $WORK/r like the others; scripts/bench_report.py writes the "## Several nodes on Redis
# (issue 8)" section from them.
REDIS_REASON=
REDIS_CLI=(redis-cli -h 127.0.0.1)
pticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# redis_start: redis-server on a free loopback port (random ports tried until one binds and
# answers as this process); sets RPORT and RPID. Its data (the AOF) lives in $WORK/redis.
redis_start() {
  local i j port
  mkdir -p "$WORK/redis"
  for ((i = 0; i < 20; i++)); do
    port=$((20000 + RANDOM % 40000))
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes --dir "$WORK/redis" \
      --save '' --appendonly yes --appendfsync always --daemonize no \
      --logfile "$WORK/redis.log" >/dev/null 2>&1 &
    RPID=$!
    PIDS+=("$RPID")
    for ((j = 0; j < 100; j++)); do
      kill -0 "$RPID" 2>/dev/null || break
      # Answering, and as this process (not another Redis that already had the port).
      if "${REDIS_CLI[@]}" -p "$port" INFO server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$RPID"; then
        RPORT=$port
        printf "redis-server --port PORT --bind 127.0.0.1 --dir \$TMP/redis --save '' --appendonly yes --appendfsync always\n" >>"$CMDS"
        return 0
      fi
      sleep 0.05
    done
    stop "$RPID"
  done
  echo "redis-server did not start (log: $(tail -3 "$WORK/redis.log" 2>/dev/null))" >&2
  return 1
}

# redis_cmdstats: the server's INFO commandstats as JSON {command: {calls, usec}}.
redis_cmdstats() {
  "${REDIS_CLI[@]}" -p "$RPORT" INFO commandstats | tr -d '\r' |
    jq -R -n '[inputs | capture("^cmdstat_(?<c>[^:]+):calls=(?<n>[0-9]+),usec=(?<u>[0-9]+)")
      | {key: .c, value: {calls: (.n | tonumber), usec: (.u | tonumber)}}] | from_entries'
}

# rbench NAME ARGS...: bench, and around it the Redis server's command counts and the CPU of
# each process of this part: r/NAME.json gets .redis_commands {command: {calls, usec}} (the
# INFO that reads them left out), .cpu_s {sqlite, node1, node2, redis, kvs_bench} and .wall_s
# (the whole kvs-bench run: setup, warm-up, window, grace).
declare -A RPROC=()
rbench() {
  local name=$1 p c0 c1 cpu w0 w1
  shift
  declare -A t0=()
  redis_cmdstats >"$WORK/cs0.json"
  for p in "${!RPROC[@]}"; do t0[$p]=$(pticks "${RPROC[$p]}"); done
  times >"$WORK/rt0"
  w0=$(date +%s%N)
  bench "$name" "$@"
  w1=$(date +%s%N)
  times >"$WORK/rt1"
  cpu=$(for p in "${!RPROC[@]}"; do echo "$p $(($(pticks "${RPROC[$p]}") - ${t0[$p]}))"; done |
    jq -R -n --argjson hz "$(getconf CLK_TCK)" \
      '[inputs | split(" ") | {key: .[0], value: ([(.[1] | tonumber), 0] | max / $hz)}] | from_entries')
  c0=$(children_s "$WORK/rt0" 3) c1=$(children_s "$WORK/rt1" 3)
  redis_cmdstats >"$WORK/cs1.json"
  jq --slurpfile a "$WORK/cs0.json" --slurpfile b "$WORK/cs1.json" --argjson cpu "$cpu" \
    --argjson kb "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", b - a }')" \
    --argjson wall "$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')" \
    '. + {redis_commands: ($b[0] | del(.info) | with_entries(.key as $k
        | .value = {calls: (.value.calls - ($a[0][$k].calls // 0)), usec: (.value.usec - ($a[0][$k].usec // 0))})
        | with_entries(select(.value.calls > 0))),
      cpu_s: ($cpu + {kvs_bench: $kb}), wall_s: $wall}' "$WORK/r/$name.json" >"$WORK/r/$name.tmp"
  mv "$WORK/r/$name.tmp" "$WORK/r/$name.json"
}

# redis_monitor NAME COUNT KVS-BENCH-ARGS...: runs kvs-bench for COUNT requests while
# `redis-cli MONITOR` records every command Redis runs; writes r/mon_NAME.txt, lines
# "client|script COMMAND CALLS" (script: run inside a Lua script, no round trip of its own).
redis_monitor() {
  local name=$1 n=$2 mpid i
  shift 2
  "${REDIS_CLI[@]}" -p "$RPORT" MONITOR >"$WORK/mon-$name.log" 2>/dev/null &
  mpid=$!
  PIDS+=("$mpid")
  for ((i = 0; i < 200; i++)); do
    grep -q '^OK' "$WORK/mon-$name.log" 2>/dev/null && break
    sleep 0.02
  done
  "$BENCH" "$@" --count "$n" >/dev/null
  sleep 0.2
  kill "$mpid" 2>/dev/null || true
  wait "$mpid" 2>/dev/null || true
  # 1701475200.123456 [0 127.0.0.1:54321] "HGET" "key" "rec"  /  ... [0 lua] "HSET" ...
  awk '$2 ~ /^\[/ && $4 ~ /^"/ { src = ($3 == "lua]") ? "script" : "client"; c = tolower($4); gsub(/"/, "", c); n[src " " c]++ }
    END { for (k in n) print k, n[k] }' "$WORK/mon-$name.log" >"$WORK/r/mon_$name.txt"
  rm -f "$WORK/mon-$name.log"
}

# redis_calls OP K: Redis commands per control-plane request of OP, split into the node's own
# (round trips, unless pipelined) and those inside scripts: a MONITOR of a run of 1 request
# and one of 1 + K (same setup), the difference / K. Writes r/calls_OP.json.
redis_calls() {
  local op=$1 k=$2
  redis_monitor "${op}_1" 1 control --endpoint "$N1_EP" --op "$op" --clients 1 --duration 120s
  redis_monitor "${op}_k" $((k + 1)) control --endpoint "$N1_EP" --op "$op" --clients 1 --duration 120s
  jq -n -R --argjson k "$k" '
    [inputs | split(" ") | {f: .[0], src: .[1], cmd: .[2], n: (.[3] | tonumber)}]
    | reduce .[] as $x ({}; .[$x.src][$x.cmd] += (if $x.f == "k" then $x.n else - $x.n end))
    | map_values(map_values(. / $k | . * 100 | round / 100) | with_entries(select(.value > 0)))' \
    < <(sed 's/^/1 /' "$WORK/r/mon_${op}_1.txt"; sed 's/^/k /' "$WORK/r/mon_${op}_k.txt") >"$WORK/r/calls_$op.json"
  printf 'kvs-bench control --endpoint NODE1 --op %s --clients 1 --count 1, then --count %s, each under redis-cli MONITOR\n' "$op" $((k + 1)) >>"$CMDS"
}

# redis_not_run REASON: the section says why there are no numbers.
redis_not_run() {
  REDIS_REASON=$1
  echo "Redis part not run: $1" >&2
}

redis_part() {
  local i op c rate f
  CMDS=$WORK/redis-commands.txt
  step "several nodes on Redis (issue 8)"
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    step "installing Debian package: redis-server"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq redis-server; } >&2 || true
  fi
  # The quick run proves the benchmark works, the Redis part included: a part that could not
  # run is a failure there too (it used to be noted and the run reported success). Only an
  # explicit BENCH_REDIS=0 skips it.
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "redis-server is needed (apt-get install redis-server failed); BENCH_REDIS=0 skips this part" >&2
    exit 1
  fi
  REDIS_VERSION=$(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2)
  redis_start
  RPROC=([redis]=$RPID)
  local store=redis://127.0.0.1:$RPORT
  echo "# node 1" >>"$CMDS"
  local node_args=(--message-rate-limits false --max-channels 10000000)
  if ! serve redis_node1 --store "$store" "${node_args[@]}"; then
    echo "kvs-signaling did not start with --store $store: the Redis part cannot run;" \
      "BENCH_REDIS=0 skips this part" >&2
    exit 1
  fi
  N1_EP=$EP RPROC[node1]=$SPID
  echo "# node 2, same Redis" >>"$CMDS"
  serve redis_node2 --store "$store" "${node_args[@]}"
  N2_EP=$EP RPROC[node2]=$SPID
  echo "# the SQLite node" >>"$CMDS"
  serve redis_sqlite "${node_args[@]}"
  S_EP=$EP RPROC[sqlite]=$SPID

  step "relay on Redis, closed loop: $RELAY_CH channels x (1 master + 1 viewer), $RELAY_INFL in flight; $ROUNDS rounds of $REDIS_ROUND_DUR"
  local rel=(--channels "$RELAY_CH" --viewers 1)
  echo "# relay, rounds of (a) SQLite node, (b) node 1, (c) masters on node 1, viewers on node 2; then open loop" >>"$CMDS"
  for ((i = 1; i <= ROUNDS; i++)); do
    rbench "rr_sqlite_$i" relay --endpoint "$S_EP" "${rel[@]}" --inflight "$RELAY_INFL" --duration "$REDIS_ROUND_DUR" --warmup "$WARM"
    rbench "rr_one_$i" relay --endpoint "$N1_EP" "${rel[@]}" --inflight "$RELAY_INFL" --duration "$REDIS_ROUND_DUR" --warmup "$WARM"
    rbench "rr_two_$i" relay --endpoint "$N1_EP" --viewer-endpoint "$N2_EP" "${rel[@]}" --inflight "$RELAY_INFL" --duration "$REDIS_ROUND_DUR" --warmup "$WARM"
  done
  best rr_sqlite msgs_per_s
  best rr_one msgs_per_s
  best rr_two msgs_per_s

  # The same offered loads for all three: fractions of the slowest one's closed-loop maximum.
  # An open loop costs more CPU per message than the closed loop (nothing to batch), so these
  # stay well below half of it. The last fraction's runs are also r/ro_{sqlite,one,two}.json.
  REDIS_SLOWEST=$(jq -s 'map(.msgs_per_s) | min' "$WORK"/r/rr_sqlite.json "$WORK"/r/rr_one.json "$WORK"/r/rr_two.json)
  for f in $REDIS_FRACTIONS; do
    rate=$(awk -v m="$REDIS_SLOWEST" -v f="$f" 'BEGIN { r = m * f / 2; if (r < 1) r = 1; printf "%.0f", r }')
    step "relay on Redis, open loop: $((rate * 2)) msgs/s offered to each ($f of the slowest maximum)"
    rbench "ro_sqlite_$f" relay --endpoint "$S_EP" "${rel[@]}" --rate "$rate" --duration "$REDIS_RATE_DUR" --warmup "$WARM"
    rbench "ro_one_$f" relay --endpoint "$N1_EP" "${rel[@]}" --rate "$rate" --duration "$REDIS_RATE_DUR" --warmup "$WARM"
    rbench "ro_two_$f" relay --endpoint "$N1_EP" --viewer-endpoint "$N2_EP" "${rel[@]}" --rate "$rate" --duration "$REDIS_RATE_DUR" --warmup "$WARM"
  done
  for c in sqlite one two; do cp "$WORK/r/ro_${c}_$f.json" "$WORK/r/ro_$c.json"; done

  step "control plane: SQLite node against Redis node"
  echo "# control plane: SQLite node, then Redis node 1, per operation" >>"$CMDS"
  for op in $REDIS_CTL_OPS; do
    c=$CLIENTS
    [[ $op == create || $op == update ]] && c=$CREATE_CLIENTS
    rbench "rc_sqlite_$op" control --endpoint "$S_EP" --op "$op" --clients "$c" --duration "$REDIS_DUR" --warmup "$WARM"
    rbench "rc_redis_$op" control --endpoint "$N1_EP" --op "$op" --clients "$c" --duration "$REDIS_DUR" --warmup "$WARM"
  done
  step "control plane on Redis: commands per request (redis-cli MONITOR of $REDIS_CALLS_K requests per operation)"
  for op in $REDIS_CTL_OPS; do
    redis_calls "$op" "$REDIS_CALLS_K"
  done
  for f in "node1 $N1_EP" "node2 $N2_EP"; do
    curl -s "${f#* }/metrics" | grep -E '^kvs_signaling_[a-z_]+ ' | grep -E 'messages|redis|bus|remote' |
      sed "s/^/${f%% *}: /" || true
  done >"$WORK/redis_metrics.txt"
  stop "${RPROC[node1]}"
  stop "${RPROC[node2]}"
  stop "${RPROC[sqlite]}"
  REDIS_INFO=$("${REDIS_CLI[@]}" -p "$RPORT" INFO persistence | tr -d '\r' | grep -E '^(aof_enabled|aof_last_write_status):' | paste -sd " " -)
  stop "$RPID"
  RPROC=()
  CMDS=$WORK/commands.txt
}

# --- the report ------------------------------------------------------------------------------
# write_meta: $WORK/meta.json, what scripts/bench_report.py needs beside the results in $WORK/r
# (the run's flags and parameters, the machine's CPU use, paths).
write_meta() {
  jq -n --argjson quick "$QUICK" --argjson redis_only "$REDIS_ONLY" --argjson run_redis "$( ((RUN_REDIS)) && echo 1 || echo 0)" \
    --argjson chart "$HAVE_PY" --argjson have_moto "${HAVE_MOTO:-0}" --argjson nproc "$(nproc)" \
    --argjson t_start "$T_START" --arg redis_reason "$REDIS_REASON" --arg profile "$PROFILE" \
    --arg server_rev "$SERVER_REV" --arg server "$SERVER" --arg work "$WORK" --arg out_md "$OUT_MD" \
    --arg out_png "$OUT_PNG" --arg clients "$CLIENTS" --arg create_clients "$CREATE_CLIENTS" \
    --arg relay_ch "$RELAY_CH" --arg relay_infl "$RELAY_INFL" --arg rounds "$ROUNDS" --arg warm "$WARM" \
    --arg fractions "$FRACTIONS" --arg idle_k "$IDLE_K" --arg startup_runs "$STARTUP_RUNS" \
    --arg busy_before "$BUSY_BEFORE" --arg machine_s "${MACHINE_S:-0}" --arg ours_s "${OURS_S:-0}" \
    --arg others_s "${OTHERS_S:-0}" --arg elapsed_s "${ELAPSED_S:-0}" --arg redis_version "${REDIS_VERSION:-}" \
    --arg redis_info "${REDIS_INFO:-}" --arg redis_round_dur "$REDIS_ROUND_DUR" --arg redis_dur "$REDIS_DUR" \
    --arg redis_fractions "$REDIS_FRACTIONS" --arg redis_ctl_ops "$REDIS_CTL_OPS" \
    --arg redis_calls_k "$REDIS_CALLS_K" '$ARGS.named' >"$WORK/meta.json"
}

# report: scripts/bench_report.py writes $OUT_MD (and the chart when the venv has matplotlib)
# from $WORK; only the standard library is needed for the text.
report() {
  local py=python3
  [[ -x "$VENV/bin/python" ]] && py=$VENV/bin/python
  write_meta
  mkdir -p "$(dirname "$OUT_MD")"
  "$py" scripts/bench_report.py "$WORK"
}

REDIS_CTL_OPS="describe list update create"
# The Redis part's quick run is shorter still: the test suite's smoke run should gain < 30 s.
if ((QUICK)); then
  REDIS_CALLS_K=20 REDIS_ROUND_DUR=500ms REDIS_DUR=500ms REDIS_RATE_DUR=500ms
else
  REDIS_CALLS_K=500 REDIS_ROUND_DUR=$ROUND_DUR REDIS_DUR=$DUR REDIS_RATE_DUR=$RATE_DUR
fi
REDIS_FRACTIONS=$( ((QUICK)) && echo 0.3 || echo "0.1 0.3")
if ((REDIS_ONLY)); then
  redis_part
  # Replace the section in place (or put it before "## How it was measured"); the rest of the
  # file stays as it is.
  report
  RAW=$ROOT/target/bench-results-redis
  ((QUICK)) && RAW=$RAW-quick
  rm -rf "$RAW" && mkdir -p "$RAW" && cp "$WORK/r"/*.json "$RAW/"
  echo "raw results: $RAW" >&2
  echo "wrote the Redis section of $OUT_MD ($(($(date +%s) - T_START)) s)" >&2
  exit 0
fi

# --- control plane ---------------------------------------------------------------------------
step "describe, SigV4 (--credentials), SQLite"
cat >"$WORK/credentials.toml" <<'EOF'
[[credentials]]
access_key_id = "AKIDBENCH"
secret_access_key = "bench-secret"
account_id = "111122223333"
EOF
serve sigv4 --credentials "$WORK/credentials.toml"
SIG_EP=$EP SIG_PID=$SPID
step "describe, open mode, SQLite; minimal HTTP server; $ROUNDS rounds of $ROUND_DUR, alternating"
serve open --max-channels 10000000
OPEN_EP=$EP OPEN_PID=$SPID
printf 'kvs-bench baseline-http --listen 127.0.0.1:0\n' >>"$WORK/commands.txt"
start baseline_http "$BENCH" baseline-http --listen 127.0.0.1:0
BH_EP=$EP BH_PID=$SPID
RCTL=(--clients "$CLIENTS" --duration "$ROUND_DUR" --warmup "$WARM")
for ((i = 1; i <= ROUNDS; i++)); do
  bench "describe_baseline_$i" control --endpoint "$BH_EP" --op describe "${RCTL[@]}"
  bench "describe_open_$i" control --endpoint "$OPEN_EP" --op describe "${RCTL[@]}"
  bench "describe_sigv4_$i" control --endpoint "$SIG_EP" --op describe "${RCTL[@]}" \
    --access-key AKIDBENCH --secret-key bench-secret
done
best describe_baseline rps
best describe_open rps
best describe_sigv4 rps
stop "$BH_PID"
stop "$SIG_PID"

step "updates, creates: open mode, SQLite"
bench update control --endpoint "$OPEN_EP" --op update --clients "$CREATE_CLIENTS" --duration "$DUR" --warmup "$WARM"
bench create control --endpoint "$OPEN_EP" --op create --clients "$CREATE_CLIENTS" --duration "$DUR" --warmup "$WARM"
stop "$OPEN_PID"

HAVE_MOTO=0
if ((HAVE_PY)); then
  step "baseline: moto server, DescribeStream"
  MOTO_PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'moto_server -H 127.0.0.1 -p PORT\n' >>"$WORK/commands.txt"
  if start moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"; then
    bench describe_moto control --endpoint "$EP" --op describe-stream --clients "$CLIENTS" \
      --duration "$MOTO_DUR" --warmup "$WARM" --timeout 10s
    HAVE_MOTO=1
    stop "$SPID"
  fi
fi

# --- relay -----------------------------------------------------------------------------------
step "relay, closed loop: $RELAY_CH channels x (1 master + 1 viewer), $RELAY_INFL in flight"
RELAY=(--channels "$RELAY_CH" --viewers 1)
serve relay --message-rate-limits false
KVS_EP=$EP KVS_PID=$SPID
printf 'kvs-bench baseline-relay --listen 127.0.0.1:0\n' >>"$WORK/commands.txt"
start baseline_relay "$BENCH" baseline-relay --listen 127.0.0.1:0
BASE_EP=$EP BASE_PID=$SPID
for ((i = 1; i <= ROUNDS; i++)); do
  bench "relay_kvs_$i" relay --endpoint "$KVS_EP" "${RELAY[@]}" --inflight "$RELAY_INFL" --duration "$ROUND_DUR" --warmup "$WARM"
  bench "relay_baseline_$i" relay --endpoint "$BASE_EP" --no-control "${RELAY[@]}" --inflight "$RELAY_INFL" --duration "$ROUND_DUR" --warmup "$WARM"
done
best relay_kvs msgs_per_s
best relay_baseline msgs_per_s

step "relay, open loop at fractions of kvs-signaling's closed-loop maximum"
KVS_MAX=$(jq -r '.msgs_per_s' "$WORK/r/relay_kvs.json")
for f in $FRACTIONS; do
  rate=$(awk -v m="$KVS_MAX" -v f="$f" 'BEGIN { r = m * f / 2; if (r < 1) r = 1; printf "%.0f", r }')
  bench "open_kvs_$f" relay --endpoint "$KVS_EP" "${RELAY[@]}" --rate "$rate" --duration "$RATE_DUR" --warmup "$WARM"
  bench "open_baseline_$f" relay --endpoint "$BASE_EP" --no-control "${RELAY[@]}" --rate "$rate" --duration "$RATE_DUR" --warmup "$WARM"
done
curl -s "$KVS_EP/metrics" | grep -E '^kvs_signaling_(messages_[a-z_]+|connections_closed_slow_consumer_total) ' >"$WORK/relay_metrics.txt" || true
stop "$KVS_PID"
stop "$BASE_PID"

# --- idle connections ------------------------------------------------------------------------
step "idle WebSockets: $IDLE_K connections"
serve idle
bench idle idle --endpoint "$EP" --connections "$IDLE_K" --hold "$IDLE_HOLD" --server-pid "$SPID"
stop "$SPID"

# --- start-up --------------------------------------------------------------------------------
step "start-up with $STARTUP_CH channels in the store"
mkdir -p "$WORK/data-startup" "$WORK/data-empty"
start populate "$SERVER" serve --listen 127.0.0.1:0 --data-dir "$WORK/data-startup" \
  --embedded-turn false --max-channels 1000000
bench populate control --endpoint "$EP" --op create --clients 32 --count "$STARTUP_CH" \
  --duration 300s --prefix startup
stop "$SPID"
bench startup startup --runs "$STARTUP_RUNS" -- "$SERVER" serve --listen 127.0.0.1:0 \
  --data-dir "$WORK/data-startup" --embedded-turn false --max-channels 1000000
bench startup_empty startup --runs "$STARTUP_RUNS" -- "$SERVER" serve --listen 127.0.0.1:0 \
  --data-dir "$WORK/data-empty" --embedded-turn false

if ((RUN_REDIS)); then
  redis_part
else
  redis_not_run "BENCH_REDIS=0"
  echo "SKIPPED: the Redis part of the benchmark (BENCH_REDIS=0)" >&2
fi

# --- report and chart --------------------------------------------------------------------------
step "writing $OUT_MD"
# CPU the whole machine used since the first measurement, and what this script's children
# (servers, kvs-bench, moto) used: the rest was other work competing for the cores.
TICKS1=$(cpu_busy_ticks)
MACHINE_S=$(awk -v d=$((TICKS1 - TICKS0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", d / hz }')
times >"$WORK/times.txt"
OURS_S=$(($(children_s "$WORK/times.txt") - OURS0))
OTHERS_S=$((MACHINE_S > OURS_S ? MACHINE_S - OURS_S : 0))
ELAPSED_S=$(($(date +%s) - T_START))
report
RAW=$ROOT/target/bench-results
((QUICK)) && RAW=$RAW-quick
rm -rf "$RAW" && mkdir -p "$RAW" && cp "$WORK/r"/*.json "$RAW/"
echo "raw results: $RAW" >&2
echo "wrote $OUT_MD ($(($(date +%s) - T_START)) s)" >&2
