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
# Defined here, run after the other parts (or alone with --redis-only). Writes $WORK/redis.md,
# the "## Several nodes on Redis (issue 8)" section of the report.
REDIS_MD=$WORK/redis.md
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
  {
    echo "## Several nodes on Redis (issue 8)"
    echo
    echo "Not run in this $( ((QUICK)) && echo quick || echo full) run: $1."
  } >"$REDIS_MD"
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
  redis_report >"$REDIS_MD"
}

# --- the section's text ------------------------------------------------------------------------
rq() { # rq NAME [JQ-ARGS...] FILTER
  local name=$1
  shift
  jq -r "${@:1:$#-1}" "${@: -1}" "$WORK/r/$name.json"
}
rnum() { awk -v x="$1" 'BEGIN { s = sprintf("%.0f", x); n = ""; while (length(s) > 3) { n = "," substr(s, length(s) - 2) n; s = substr(s, 1, length(s) - 3) }; print s n }'; }
rpct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f %%", 100 * a / b; else print "-" }'; }
rlat() { rq "$1" "\"\\(.$2.p50_ms) / \\(.$2.p99_ms) / \\(.$2.p999_ms)\""; }
# Redis commands per message (or per request): all commands of the run / DIVISOR.
rcmd_total() { rq "$1" --argjson d "$2" '[.redis_commands[].calls] | add // 0 | . / (if $d > 0 then $d else 1 end) | . * 100 | round / 100'; }
rcmd_list() { # the commands, most frequent first: "evalsha 1.00, hget 0.01"
  rq "$1" --argjson d "$2" '.redis_commands | to_entries | sort_by(-.value.calls)
    | map(select(.value.calls / $d >= 0.005) | "`\(.key)` \(.value.calls / $d * 100 | round / 100)") | join(", ") | if . == "" then "none" else . end'
}
# CPU µs per message of one process (or "-" when it was not part of the run).
rcpu() { rq "$1" --arg p "$2" '(.cpu_s[$p] // 0) / ([.relayed_total, 1] | max) * 1e6 | . * 10 | round / 10'; }
rcpu_all() { rq "$1" '([.relayed_total, 1] | max) as $n | [.cpu_s[]] | add / $n * 1e6 | . * 10 | round / 10'; }
# rbusy NAME: CPU of all processes of the part / (wall time of the run x cores).
rbusy() { rq "$1" --argjson n "$(nproc)" '(.wall_s * $n) as $w | [.cpu_s[]] | add / $w * 100 | round | "\(.) % busy"'; }
rskew() { rq "$1" 'if (.others_cpu_pct // 0) > 5 then " ⚠ other work \(.others_cpu_pct) %" else "" end'; }

# per NAME COMMAND: calls of COMMAND per relayed message in run NAME.
per() { rq "$1" --arg k "$2" '(.redis_commands[$k].calls // 0) / ([.relayed_total, 1] | max) | . * 100 | round / 100'; }
# ctl_per OP COMMAND: calls of COMMAND per request of the Redis control run OP.
ctl_per() { rq "rc_redis_$1" --arg k "$2" '(.redis_commands[$k].calls // 0) / ([.requests_total, 1] | max) | . * 100 | round / 100'; }
# calls OP SRC COMMAND: COMMAND per request of OP, sent by the node (client) or inside scripts.
calls() { jq -r --arg s "$2" --arg c "$3" '.[$s][$c] // 0' "$WORK/r/calls_$1.json"; }
calls_list() { # calls_list OP SRC: "total: `hget` 1, `evalsha` 1"
  jq -r --arg s "$2" '(.[$s] // {}) | to_entries | sort_by(-.value) as $e
    | if ($e | length) == 0 then "none" else "\([$e[].value] | add | . * 100 | round / 100): " + ($e | map("`\(.key)` \(.value)") | join(", ")) end' \
    "$WORK/r/calls_$1.json"
}
# usec_per NAME: Redis's own time (commandstats usec) per relayed message.
usec_per() { rq "$1" '([.relayed_total, 1] | max) as $n | [.redis_commands[].usec] | add // 0 | . / $n | . * 100 | round / 100'; }

# redis_where: where the time goes, from the measured numbers. The mechanism described is the
# Redis backend's (crates/redis): presence lookups, the bus, the store's scripts.
redis_where() {
  local A=rr_sqlite B=rr_one C=rr_two
  # Node CPU per message, and what the Redis client adds per command on the nodes (closed loop).
  local na nb nc kb kc
  na=$(rcpu $A sqlite)
  nb=$(rcpu $B node1)
  nc=$(awk -v x="$(rcpu $C node1)" -v y="$(rcpu $C node2)" 'BEGIN { print x + y }')
  kb=$(awk -v a="$na" -v b="$nb" -v k="$(rcmd_total $B "$(rq $B .relayed_total)")" 'BEGIN { if (k > 0) printf "%.0f", (b - a) / k; else print "-" }')
  kc=$(awk -v a="$na" -v c="$nc" -v k="$(rcmd_total $C "$(rq $C .relayed_total)")" 'BEGIN { if (k > 0) printf "%.0f", (c - a) / k; else print "-" }')
  echo "### Where the time goes on Redis"
  echo
  echo "- **A message whose recipient is on the same node (b)** still asks Redis where the recipient is: an"
  echo "  \`HMGET\` of the channel's presence hash ($(per ro_one hmget) per message measured; an answer from the master"
  echo "  looks up a waiting SendAlexaOfferToMaster call and the viewer in that one read — before commit"
  echo "  0ea475c it took a second \`HGET\`, 1.5 per message). Node leases are cached, so the \`ZSCORE\` that checks one is rare"
  echo "  ($(per ro_one zscore) per message). Presence lives only in Redis: a node cannot know that the recipient is"
  echo "  its own before asking. Then the message goes to the local WebSocket as on SQLite."
  echo "- **A message across nodes (c)** is that lookup, then a \`PUBLISH\` on the recipient node's own channel"
  echo "  ($(per ro_two publish) per message), then Redis pushing it on that node's subscriber connection, which"
  echo "  delivers it to the WebSocket: two commands from the sender's node, awaited one after the other (two"
  echo "  round trips of latency), and one push to that node only (no broadcast: no other node sees it)."
  echo "  Nothing is stored per message (a message is held, by a Lua script, only when its recipient is"
  echo "  connected nowhere; here none was)."
  echo "- **Redis itself is cheap per message**: $(usec_per ro_one) µs (b) and $(usec_per ro_two) µs (c) inside the commands"
  echo "  (\`usec\` of commandstats), $(rcpu $B redis) µs (b) and $(rcpu $C redis) µs (c) of redis-server CPU with its network I/O"
  echo "  (closed loop). **The nodes pay**: under the closed loop a node spends $na µs of CPU per"
  echo "  message on SQLite (a), $nb µs on Redis (b) and $nc µs over both nodes (c), about $kb (b) / $kc (c) µs more per"
  echo "  Redis command: each command is a future on the node's one multiplexed Redis connection, handed to its"
  echo "  driver task, written, its reply read, parsed and the session task woken, and in (c) the subscriber"
  echo "  connection's push decoded and routed to the local session."
  echo "  A \`perf\` profile of node 1 under (c) shows where that goes: about 10 % of its samples in the"
  echo "  kernel switching tasks, 6 % waking sockets, 9 % in the allocator, 2 % in redis-rs itself: the cost"
  echo "  is the system calls and wake-ups of one more network exchange per command, not Redis or parsing."
  echo "  All processes together use"
  echo "  $(rcpu_all $A) µs (a), $(rcpu_all $B) µs (b) and $(rcpu_all $C) µs (c) per message (load generator included), so on $(nproc) shared cores"
  echo "  the closed loop reaches $(rpct "$(rq $B .msgs_per_s)" "$(rq $A .msgs_per_s)") (b) and $(rpct "$(rq $C .msgs_per_s)" "$(rq $A .msgs_per_s)") (c) of the SQLite node's throughput. An open loop"
  echo "  costs more CPU per message than a closed one (each message wakes every process on its own instead"
  echo "  of in batches), which is why the offered loads above stay at fractions of the slowest maximum."
  echo "- **Latency at the same load** (open loop, $(rnum "$(rq ro_sqlite .offered_msgs_per_s)") msgs/s): median round trip $(rq ro_sqlite .rtt.p50_ms) ms (a),"
  echo "  $(rq ro_one .rtt.p50_ms) ms (b), $(rq ro_two .rtt.p50_ms) ms (c), p99 $(rq ro_sqlite .rtt.p99_ms) / $(rq ro_one .rtt.p99_ms) / $(rq ro_two .rtt.p99_ms) ms. A round trip is an offer and an answer,"
  echo "  so (b) adds 2 sequential Redis round trips to it and (c) 4 plus 2 pushes, each with the wake-ups of"
  echo "  the processes involved, and at higher load their extra CPU competes for the same cores. With Redis"
  echo "  on another machine each of those round trips also pays the network's latency."
  echo "- **Control plane**: no cache, every read goes to Redis. A describe sends $(calls describe client hget) \`HGET\` (the"
  echo "  channel's record); a list of 10 channels one \`ZRANGE BYLEX\` on the name index ($(calls list client zrange)) and"
  echo "  then one \`HGET\` per channel ($(calls list client hget)), pipelined: two round trips. A write is one Lua script"
  echo "  (\`EVALSHA\`: create $(calls create client evalsha), update $(calls update client evalsha) per request) running"
  echo "  $(calls_list create script | cut -d: -f1) (create) and $(calls_list update script | cut -d: -f1) (update) commands inside Redis, atomically across nodes, plus"
  echo "  \`HGET\`s the node sends around it (create $(calls create client hget), update $(calls update client hget) per request, the update's"
  echo "  counting its describe). With \`appendfsync always\` Redis writes and fsyncs the AOF before it answers,"
  echo "  once for all the writes of one event-loop iteration (a group commit, like the SQLite writer's):"
  echo "  creates reach $(rpct "$(rq rc_redis_create .rps)" "$(rq rc_sqlite_create .rps)") and updates $(rpct "$(rq rc_redis_update .rps)" "$(rq rc_sqlite_update .rps)") of SQLite's rate; describes $(rpct "$(rq rc_redis_describe .rps)" "$(rq rc_sqlite_describe .rps)") and lists"
  echo "  $(rpct "$(rq rc_redis_list .rps)" "$(rq rc_sqlite_list .rps)"), where the SQLite node answers from its in-memory index and the Redis node"
  echo "  pays a round trip (and $(calls_list list client | cut -d: -f1) commands for a list) per request."
}

redis_report() {
  local n cfg op d
  local A=rr_sqlite B=rr_one C=rr_two
  echo "## Several nodes on Redis (issue 8)"
  echo
  echo "Issue 8's efficiency measurement, by \`scripts/bench.sh$( ((QUICK)) && echo ' --quick')$( ((REDIS_ONLY)) && echo ' --redis-only')\` ($(date -u +%Y-%m-%d), kvs-signaling \`$SERVER_REV\`,"
  echo "$PROFILE build; Redis $REDIS_VERSION on 127.0.0.1, \`--appendonly yes --appendfsync always --save ''\`: every"
  echo "acknowledged write is in the AOF and fsynced before Redis answers, the persistence the Redis store's"
  echo "durability promise needs; $REDIS_INFO). Redis, the nodes and \`kvs-bench\` share the machine's $(nproc) cores."
  if ((QUICK)); then
    echo
    echo "**Quick run**: about a second per measurement$([[ $PROFILE == debug ]] && echo ', debug build'); the numbers mean little."
  fi
  echo
  echo "Three set-ups under the same load, $RELAY_CH channels x (1 master + 1 viewer), SDP offers answered by"
  echo "the master, rate limits off, all running at once (each load goes to its own):"
  echo
  echo "- **(a)** one node on SQLite (the default store);"
  echo "- **(b)** one node on Redis, master and viewer of each channel on that node (node 2 is up and idle);"
  echo "- **(c)** two nodes on Redis, masters on node 1 and viewers on node 2: every relayed message crosses nodes."
  echo
  echo "| | (a) 1 node, SQLite | (b) 1 node, Redis | (c) 2 nodes, Redis, across |"
  echo "|---|---|---|---|"
  echo "| closed loop, $RELAY_INFL in flight per viewer: msgs/s (best of $ROUNDS × $REDIS_ROUND_DUR) | $(rnum "$(rq $A .msgs_per_s)")$(rskew $A) | $(rnum "$(rq $B .msgs_per_s)") ($(rpct "$(rq $B .msgs_per_s)" "$(rq $A .msgs_per_s)") of a)$(rskew $B) | $(rnum "$(rq $C .msgs_per_s)") ($(rpct "$(rq $C .msgs_per_s)" "$(rq $A .msgs_per_s)") of a)$(rskew $C) |"
  echo "| rounds, msgs/s | $(rq $A '.rounds | map(.msgs_per_s | floor | tostring) | join(" / ")') | $(rq $B '.rounds | map(.msgs_per_s | floor | tostring) | join(" / ")') | $(rq $C '.rounds | map(.msgs_per_s | floor | tostring) | join(" / ")') |"
  echo "| closed loop RTT p50 / p99 / p99.9 (ms) | $(rlat $A rtt) | $(rlat $B rtt) | $(rlat $C rtt) |"
  echo "| closed loop lost / out of order | $(rq $A '"\(.lost) / \(.out_of_order)"') | $(rq $B '"\(.lost) / \(.out_of_order)"') | $(rq $C '"\(.lost) / \(.out_of_order)"') |"
  echo "| closed loop: CPU µs per relayed message, all processes (machine busy over the run) | $(rcpu_all $A) ($(rbusy $A)) | $(rcpu_all $B) ($(rbusy $B)) | $(rcpu_all $C) ($(rbusy $C)) |"
  echo "| closed loop: CPU µs per relayed message, node 1 / node 2 / redis-server / kvs-bench | $(rcpu $A sqlite) / - / $(rcpu $A redis) / $(rcpu $A kvs_bench) | $(rcpu $B node1) / $(rcpu $B node2) / $(rcpu $B redis) / $(rcpu $B kvs_bench) | $(rcpu $C node1) / $(rcpu $C node2) / $(rcpu $C redis) / $(rcpu $C kvs_bench) |"
  for f in $REDIS_FRACTIONS; do
    local a=ro_sqlite_$f b=ro_one_$f c=ro_two_$f
    echo "| open loop, $(rnum "$(rq $a .offered_msgs_per_s)") msgs/s offered to each ($(awk -v f="$f" 'BEGIN { printf "%.0f %%", f * 100 }') of the slowest maximum): RTT p50 / p99 / p99.9 (ms) | $(rlat $a rtt)$(rskew $a) | $(rlat $b rtt)$(rskew $b) | $(rlat $c rtt)$(rskew $c) |"
    echo "| same: achieved msgs/s, lost / out of order | $(rnum "$(rq $a .msgs_per_s)"), $(rq $a '"\(.lost) / \(.out_of_order)"') | $(rnum "$(rq $b .msgs_per_s)"), $(rq $b '"\(.lost) / \(.out_of_order)"') | $(rnum "$(rq $c .msgs_per_s)"), $(rq $c '"\(.lost) / \(.out_of_order)"') |"
    echo "| same: CPU µs per relayed message, all processes (machine busy over the run) | $(rcpu_all $a) ($(rbusy $a)) | $(rcpu_all $b) ($(rbusy $b)) | $(rcpu_all $c) ($(rbusy $c)) |"
  done
  echo "| Redis commands per relayed message (open loop, $(rnum "$(rq ro_sqlite .offered_msgs_per_s)") msgs/s) | $(rcmd_total ro_sqlite "$(rq ro_sqlite .relayed_total)") | $(rcmd_total ro_one "$(rq ro_one .relayed_total)") | $(rcmd_total ro_two "$(rq ro_two .relayed_total)") |"
  echo
  echo "### Redis commands per message"
  echo
  echo "\`redis-cli INFO commandstats\` before and after each run, the calls of every command (the"
  echo "\`INFO\` itself left out) divided by the messages relayed in the whole run (warm-up and grace"
  echo "included; a message is one direction, offer or answer). The difference also holds the run's"
  echo "setup ($RELAY_CH CreateSignalingChannel, $((RELAY_CH * 2)) WebSocket connects and closes) and the nodes'"
  echo "periodic work, spread over $(rnum "$(rq ro_two .relayed_total)") messages (open loop) or $(rnum "$(rq $C .relayed_total)") (closed loop)."
  echo "Commands, not round trips: a client that pipelines sends several in one round trip."
  echo "Redis's own time per call is \`usec / calls\` of the same statistics (inside Redis, not counting"
  echo "its network I/O)."
  echo
  echo "| command | (b) 1 node, open loop | (c) across nodes, open loop | (c) across nodes, closed loop | Redis µs per call (c, open loop) |"
  echo "|---|---|---|---|---|"
  jq -r -n --slurpfile b "$WORK/r/ro_one.json" --slurpfile c "$WORK/r/ro_two.json" --slurpfile cc "$WORK/r/$C.json" '
    def per($r; $k): (($r.redis_commands[$k].calls // 0) / ([$r.relayed_total, 1] | max));
    def f: . * 1000 | round / 1000;
    ($b[0]) as $b | ($c[0]) as $c | ($cc[0]) as $cc
    | ([$b, $c, $cc] | map(.redis_commands | keys[]) | unique) as $ks
    | ($ks | map({k: ., s: (per($b; .) + per($c; .) + per($cc; .))}) | sort_by(-.s) | map(.k)) as $ks
    | ($ks[] | . as $k
        | "| `\($k)` | \(per($b; $k) | f) | \(per($c; $k) | f) | \(per($cc; $k) | f) | \(($c.redis_commands[$k] // {usec: 0, calls: 1}) | .usec / ([.calls, 1] | max) | . * 100 | round / 100) |"),
      "| **all** | **\($ks | map(per($b; .)) | add // 0 | f)** | **\($ks | map(per($c; .)) | add // 0 | f)** | **\($ks | map(per($cc; .)) | add // 0 | f)** | |"'
  echo
  echo "### Control plane: SQLite against Redis"
  echo
  echo "One node each, $REDIS_DUR per operation after a $WARM warm-up, closed loop (the same \`kvs-bench control\` loads as"
  echo "above; \`list\` is ListSignalingChannels with \`BEGINS_WITH\` a prefix of 10 channels, one page)."
  echo "Commands per request: \`redis-cli MONITOR\` of one run of 1 request and one of 1 + $REDIS_CALLS_K (one"
  echo "client, same setup), the difference divided by $REDIS_CALLS_K; *sent by the node* are its round trips"
  echo "(unless pipelined), *inside scripts* the commands Redis runs for an \`EVALSHA\` without another round"
  echo "trip. redis-server CPU is per request of the timed run (warm-up included). The figures of an update"
  echo "include the DescribeSignalingChannel that follows it to learn the new Version."
  echo
  echo "| operation | SQLite: req/s, p50 / p99 (ms) | Redis: req/s, p50 / p99 (ms) | Redis / SQLite | commands the node sends per request | commands inside those scripts | redis-server CPU µs per request |"
  echo "|---|---|---|---|---|---|---|"
  for op in $REDIS_CTL_OPS; do
    d=$(rq "rc_redis_$op" '[.requests_total, 1] | max')
    echo "| $op, $(rq "rc_redis_$op" .clients) clients | $(rnum "$(rq "rc_sqlite_$op" .rps)"), $(rq "rc_sqlite_$op" '"\(.latency.p50_ms) / \(.latency.p99_ms)"')$(rq "rc_sqlite_$op" 'if .errors.total > 0 then ", errors \(.errors.total)" else "" end')$(rskew "rc_sqlite_$op") | $(rnum "$(rq "rc_redis_$op" .rps)"), $(rq "rc_redis_$op" '"\(.latency.p50_ms) / \(.latency.p99_ms)"')$(rq "rc_redis_$op" 'if .errors.total > 0 then ", errors: " + (.errors.by_kind | to_entries | map("\(.key) \(.value)") | join(", ")) else "" end')$(rskew "rc_redis_$op") | $(rpct "$(rq "rc_redis_$op" .rps)" "$(rq "rc_sqlite_$op" .rps)") | $(calls_list "$op" client) | $(calls_list "$op" script) | $(rq "rc_redis_$op" --argjson d "$d" '.cpu_s.redis / $d * 1e6 | . * 10 | round / 10') |"
  done
  echo
  if [[ -s "$WORK/redis_metrics.txt" ]]; then
    echo "The Redis nodes' counters after all runs (\`GET /metrics\`):"
    echo
    echo '```text'
    cat "$WORK/redis_metrics.txt"
    echo '```'
    echo
  fi
  redis_where
  echo
  echo "### How the Redis part was measured"
  echo
  echo '```sh'
  sed -E 's#http://127\.0\.0\.1:[0-9]+#http://127.0.0.1:PORT#g; s#redis://127\.0\.0\.1:[0-9]+#redis://127.0.0.1:PORT#g; s# +$##; s#'"$WORK"'#$TMP#g; s#'"$SERVER"'#kvs-signaling#g' "$WORK/redis-commands.txt"
  echo '```'
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
  mkdir -p "$(dirname "$OUT_MD")"
  [[ -f "$OUT_MD" ]] || printf '# Benchmarks\n' >"$OUT_MD"
  awk -v sec="$REDIS_MD" '
    BEGIN { while ((getline l < sec) > 0) s = s l "\n" }
    /^## Several nodes on Redis/ { if (!done) { printf "%s\n", s; done = 1 }; skip = 1; next }
    skip && /^## / { skip = 0 }
    skip { next }
    !done && /^## (How it was measured|Where the time goes)/ { printf "%s\n", s; done = 1 }
    { print }
    END { if (!done) printf "\n%s", s }' "$OUT_MD" >"$WORK/out.md"
  cp "$WORK/out.md" "$OUT_MD"
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
curl -s "$KVS_EP/metrics" | grep -E '^kvs_signaling_messages_[a-z_]+ ' >"$WORK/relay_metrics.txt" || true
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

# --- chart -----------------------------------------------------------------------------------
HAVE_CHART=0
if ((HAVE_PY)); then
  jq -s '{kvs: ., kvs_max: null}' "$WORK"/r/open_kvs_*.json >"$WORK/kvs.json"
  jq -s '.' "$WORK"/r/open_baseline_*.json >"$WORK/base.json"
  jq -n --slurpfile k "$WORK/kvs.json" --slurpfile b "$WORK/base.json" --argjson m "$KVS_MAX" \
    '{kvs: $k[0].kvs, baseline: $b[0], kvs_max: $m}' >"$WORK/chart.json"
  mkdir -p "$(dirname "$OUT_PNG")"
  "$VENV/bin/python" scripts/bench_chart.py "$WORK/chart.json" "$OUT_PNG" && HAVE_CHART=1
fi

# --- report ----------------------------------------------------------------------------------
step "writing $OUT_MD"
# CPU the whole machine used since the first measurement, and what this script's children
# (servers, kvs-bench, moto) used: the rest was other work competing for the cores.
TICKS1=$(cpu_busy_ticks)
MACHINE_S=$(awk -v d=$((TICKS1 - TICKS0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", d / hz }')
times >"$WORK/times.txt"
OURS_S=$(($(children_s "$WORK/times.txt") - OURS0))
OTHERS_S=$((MACHINE_S > OURS_S ? MACHINE_S - OURS_S : 0))
ELAPSED_S=$(($(date +%s) - T_START))
r() { # r NAME [JQ-ARGS...] FILTER
  local name=$1
  shift
  jq -r "${@:1:$#-1}" "${@: -1}" "$WORK/r/$name.json"
}
num() { # thousands separators, no decimals
  awk -v x="$1" 'BEGIN { s = sprintf("%.0f", x); n = ""; while (length(s) > 3) { n = "," substr(s, length(s) - 2) n; s = substr(s, 1, length(s) - 3) }; print s n }'
}
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f %%", 100 * a / b; else print "-" }'; }
ratio_x() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0fx", a / b; else print "-" }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
lat() { printf '%s%s' "$(r "$1" "\"p50 \\(.${2:-latency}.p50_ms) ms, p99 \\(.${2:-latency}.p99_ms) ms, p99.9 \\(.${2:-latency}.p999_ms) ms\"")" "$(skew "$1")"; }
# skew NAME: a warning when other processes took more than 5 % of the CPU during that run.
skew() { r "$1" 'if (.others_cpu_pct // 0) > 5 then "; ⚠ other work took \(.others_cpu_pct) % of the CPU meanwhile" else "" end'; }
# rounds NAME KEY UNIT: the rounds behind a best-of-N figure.
rounds() { r "$1" --arg k "$2" --arg u "$3" 'if (.rounds | length) > 1 then "; best of \(.rounds | length) rounds: " + (.rounds | map(.[$k] | floor | tostring) | join(" / ")) + " \($u)" else "" end'; }
errs() { r "$1" 'if .errors.total > 0 then ", errors: " + (.errors.by_kind | to_entries | map("\(.key) \(.value)") | join(", ")) else "" end'; }

D_SIG=$(r describe_sigv4 .rps) D_OPEN=$(r describe_open .rps) D_BASE=$(r describe_baseline .rps)
D_MOTO=0
((HAVE_MOTO)) && D_MOTO=$(r describe_moto .rps)
C_RPS=$(r create .rps) C_P99=$(r create .latency.p99_ms)
R_KVS=$(r relay_kvs .msgs_per_s) R_BASE=$(r relay_baseline .msgs_per_s)
R_LOST=$(r relay_kvs .lost) R_OOO=$(r relay_kvs .out_of_order)
HALF=open_kvs_0.5
H_P99=$(r $HALF .rtt.p99_ms)
I_RSS=$(r idle '.rss_per_connection_kib // "null"') I_P99=$(r idle '.control.latency.p99_ms // "null"')
I_CONN=$(r idle .connected)
S_MED=$(r startup .median_ms)

verdict() { # verdict OK? TEXT-IF-MISSED
  if [[ $1 == yes ]]; then echo "met"; else echo "**missed**: $2"; fi
}
v_sig=$(ge "$D_SIG" "$(awk -v b="$D_BASE" 'BEGIN{print b*0.5}')" && echo yes || echo no)
v_open=$(ge "$D_OPEN" "$(awk -v b="$D_BASE" 'BEGIN{print b*0.7}')" && echo yes || echo no)
v_moto=no
((HAVE_MOTO)) && ge "$D_OPEN" "$(awk -v b="$D_MOTO" 'BEGIN{print b*100}')" && v_moto=yes
v_create=$({ ge "$C_RPS" 6000 && lt "$C_P99" 20; } && echo yes || echo no)
v_relay=$({ ge "$R_KVS" "$(awk -v b="$R_BASE" 'BEGIN{print b*0.7}')" && [[ $R_LOST == 0 && $R_OOO == 0 ]]; } && echo yes || echo no)
v_half=$(lt "$H_P99" 5 && echo yes || echo no)
v_idle=$({ [[ $I_RSS != null && $I_P99 != null ]] && ! lt 16 "$I_RSS" && lt "$I_P99" 10 && [[ $I_CONN -ge $IDLE_K ]]; } && echo yes || echo no)
v_start=$(lt "$S_MED" 200 && echo yes || echo no)

PRESERVED=""
if [[ -f "$OUT_MD" ]] && grep -q '^## Where the time goes' "$OUT_MD"; then
  PRESERVED=$(sed -n '/^## Where the time goes/,$p' "$OUT_MD")
fi

mkdir -p "$(dirname "$OUT_MD")"
{
  echo "# Benchmarks"
  echo
  if ((QUICK)); then
    echo "**Quick run** (\`scripts/bench.sh --quick\`): durations of about a second and small counts, to"
    echo "prove the benchmark works. These numbers mean little; \`scripts/bench.sh\` makes the real ones."
    echo
  fi
  echo "Issue 7's benchmark: kvs-signaling against minimal baselines, measured in one run of"
  echo "\`scripts/bench.sh\` ($(date -u +%Y-%m-%d), $(($(date +%s) - T_START)) s including the build check)."
  echo "Load generator (\`kvs-bench\`, one tokio worker per core) and server share the machine's cores,"
  echo "so every number includes the load generator's own CPU, for kvs-signaling and baseline alike."
  echo
  echo "## Machine"
  echo
  echo "- CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "- memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "- kernel: $(uname -sr)"
  echo "- server: kvs-signaling \`$SERVER_REV\`, $PROFILE build; baselines: \`kvs-bench\` (same build)"
  echo "- other work on the machine: $BUSY_BEFORE % busy just before the run; during it the machine used"
  echo "  $MACHINE_S CPU-seconds, of which this benchmark's processes $OURS_S and other processes about $OTHERS_S"
  echo "  (of $((ELAPSED_S * $(nproc))) available)$(((OTHERS_S * 10 > MACHINE_S)) && echo ': **the numbers are skewed by other work**')"
  echo
  echo "## Results"
  echo
  echo "| work | kvs-signaling | baseline | ratio | target | |"
  echo "|---|---|---|---|---|---|"
  echo "| DescribeSignalingChannel, SigV4 (\`--credentials\`), SQLite, $CLIENTS keep-alive clients | $(num "$D_SIG") req/s ($(lat describe_sigv4)$(errs describe_sigv4)$(rounds describe_sigv4 rps req/s)) | $(num "$D_BASE") req/s (axum handler parsing the same JSON; $(lat describe_baseline)$(rounds describe_baseline rps req/s)) | $(pct "$D_SIG" "$D_BASE") | ≥ 50 % | $(verdict "$v_sig" "$(pct "$D_SIG" "$D_BASE") of the baseline; needs $(awk -v a="$D_SIG" -v b="$D_BASE" 'BEGIN{printf "%.1fx", b*0.5/a}') the throughput") |"
  echo "| same, open mode | $(num "$D_OPEN") req/s ($(lat describe_open)$(errs describe_open)$(rounds describe_open rps req/s)) | $(num "$D_BASE") req/s (same) | $(pct "$D_OPEN" "$D_BASE") | ≥ 70 % | $(verdict "$v_open" "$(pct "$D_OPEN" "$D_BASE") of the baseline; needs $(awk -v a="$D_OPEN" -v b="$D_BASE" 'BEGIN{printf "%.1fx", b*0.7/a}') the throughput") |"
  if ((HAVE_MOTO)); then
    echo "| same, open mode, vs moto server DescribeStream | $(num "$D_OPEN") req/s | $(num "$D_MOTO") req/s (moto_server, $(lat describe_moto)) | $(ratio_x "$D_OPEN" "$D_MOTO") | ≥ 100x | $(verdict "$v_moto" "$(ratio_x "$D_OPEN" "$D_MOTO")") |"
  else
    echo "| same, open mode, vs moto server DescribeStream | $(num "$D_OPEN") req/s | not run (no moto) | - | ≥ 100x | not measured |"
  fi
  echo "| CreateSignalingChannel, $CREATE_CLIENTS concurrent clients, SQLite (durable before acknowledged) | $(num "$C_RPS") creates/s ($(lat create)$(errs create)) | - | - | ≥ 6,000/s, p99 < 20 ms | $(verdict "$v_create" "$(pct "$C_RPS" 6000) of the rate, p99 $C_P99 ms") |"
  echo "| UpdateSignalingChannel, $CREATE_CLIENTS clients, each on its own channel (a describe between updates, not counted) | $(num "$(r update .rps)") updates/s ($(lat update)$(errs update)) | - | - | - | |"
  echo "| relay, closed loop: $RELAY_CH channels x (1 master + 1 viewer), $RELAY_INFL in flight per viewer, rate limits off | $(num "$R_KVS") msgs/s, RTT $(lat relay_kvs rtt); lost $R_LOST, out of order $R_OOO$(rounds relay_kvs msgs_per_s msgs/s) | $(num "$R_BASE") msgs/s, RTT $(lat relay_baseline rtt) (minimal tokio-tungstenite relay$(rounds relay_baseline msgs_per_s msgs/s)) | $(pct "$R_KVS" "$R_BASE") | ≥ 70 %, 0 lost, 0 out of order | $(verdict "$v_relay" "$(pct "$R_KVS" "$R_BASE") of the baseline, lost $R_LOST, out of order $R_OOO") |"
  echo "| relay, open loop at half of the closed-loop maximum ($(num "$(r $HALF .offered_msgs_per_s)") msgs/s offered) | RTT $(lat $HALF rtt); lost $(r $HALF .lost) | RTT $(lat open_baseline_0.5 rtt) | - | p99 < 5 ms | $(verdict "$v_half" "p99 $H_P99 ms") |"
  echo "| $(num "$I_CONN") idle viewer and master WebSockets ($(r idle .channels) channels, $(r idle .sources) source addresses) | $I_RSS KiB RSS per connection; DescribeSignalingChannel at $(r idle .control.offered_rps) req/s meanwhile: $(lat idle control.latency) | - | - | ≤ 16 KiB at 15,000; p99 < 10 ms | $(verdict "$v_idle" "$I_RSS KiB per connection at $(num "$I_CONN") connections, p99 $I_P99 ms") |"
  echo "| start-up with $(num "$(r populate .ok)") channels in the store (spawn to ready line, median of $STARTUP_RUNS) | $S_MED ms (runs: $(r startup '.runs_ms | map(tostring) | join(", ")') ms) | empty store: $(r startup_empty .median_ms) ms | - | < 200 ms | $(verdict "$v_start" "$S_MED ms") |"
  echo
  echo "Relayed messages count each direction as one: an offer reaching the master is one, its answer"
  echo "reaching the viewer another. Round trips are measured at the viewer (send → offer relayed →"
  echo "master answers → answer relayed → receive). *Lost*: sent but never answered by the end of"
  echo "the 2 s grace after the window; *out of order*: an answer whose sequence number is not above"
  echo "the last one that viewer received. Round trips are timed from the actual send; in the open-loop"
  echo "table the time from when each message was *due* is shown too: it would expose a sender"
  echo "falling behind (no coordinated omission), but includes up to 1 ms of tokio timer granularity."
  echo
  echo "The relay at fixed offered rates (fractions of kvs-signaling's closed-loop maximum, same"
  echo "absolute rates for the baseline):"
  echo
  echo "| offered msgs/s | kvs-signaling RTT p50 / p99 / p99.9 (ms) | from due time p50 / p99 | achieved msgs/s | lost | baseline RTT p50 / p99 / p99.9 (ms) | from due time p50 / p99 | lost |"
  echo "|---|---|---|---|---|---|---|---|"
  for f in $FRACTIONS; do
    echo "| $(num "$(r "open_kvs_$f" .offered_msgs_per_s)") ($(awk -v f="$f" 'BEGIN{printf "%.0f %%", f*100}')) | $(r "open_kvs_$f" '"\(.rtt.p50_ms) / \(.rtt.p99_ms) / \(.rtt.p999_ms)"') | $(r "open_kvs_$f" '"\(.rtt_from_intended.p50_ms) / \(.rtt_from_intended.p99_ms)"') | $(num "$(r "open_kvs_$f" .msgs_per_s)") | $(r "open_kvs_$f" .lost) | $(r "open_baseline_$f" '"\(.rtt.p50_ms) / \(.rtt.p99_ms) / \(.rtt.p999_ms)"') | $(r "open_baseline_$f" '"\(.rtt_from_intended.p50_ms) / \(.rtt_from_intended.p99_ms)"') | $(r "open_baseline_$f" .lost) |"
  done
  echo
  if [[ $(jq -s 'map(.lost) | add' "$WORK"/r/open_*.json) != 0 ]]; then
    echo "Where an open-loop run shows messages lost, it was past saturation (an open loop sends each"
    echo "message on its own, where the closed loop pipelines $RELAY_INFL per viewer): queues built up, and *lost*"
    echo "counts messages still unanswered 2 s after the window."
  fi
  echo "kvs-signaling's own counters after all relay runs (\`GET /metrics\`; \`dropped_slow_consumer\`"
  echo "counts messages its bounded outboxes dropped):"
  echo
  echo '```text'
  if [[ -s "$WORK/relay_metrics.txt" ]]; then cat "$WORK/relay_metrics.txt"; else echo "(no /metrics)"; fi
  echo '```'
  echo
  if ((HAVE_CHART)); then
    echo "![relay round-trip latency against offered load]($(basename "$OUT_PNG"))"
  else
    echo "(no chart: matplotlib was not available)"
  fi
  echo
  echo "Idle connections: server VmRSS $(r idle .rss_before_kib) KiB before connecting, $(r idle .rss_held_end_kib) KiB with"
  echo "$(num "$I_CONN") connections held (max $(r idle .rss_held_max_kib) KiB); $(r idle .still_open_after_hold) still open after the"
  echo "$(r idle .hold_s) s hold; connected at $(num "$(r idle .connects_per_s)") connects/s; connect errors: $(r idle .connect_errors.total)."
  echo
  cat "$REDIS_MD"
  echo
  echo "## How it was measured"
  echo
  echo "\`scripts/bench.sh$( ((QUICK)) && echo ' --quick')\` ran these (ports and temporary directories elided; every server"
  echo "on 127.0.0.1 port 0, its ready line parsed; each kvs-signaling on a fresh SQLite data dir):"
  echo
  echo '```sh'
  sed -E 's#http://127\.0\.0\.1:[0-9]+#http://127.0.0.1:PORT#g; s#--server-pid [0-9]+#--server-pid PID#; s# +$##; s#'"$WORK"'#$TMP#g; s#'"$SERVER"'#kvs-signaling#g' "$WORK/commands.txt"
  echo '```'
  echo
  echo "- \`control\`: N keep-alive HTTP/1.1 connections (hyper), one request in flight on each, SigV4"
  echo "  header signatures from \`kvs-sigv4\` (\`host\` and \`x-amz-date\` signed; a fixed request is"
  echo "  signed once per second, which the server still verifies every time). Setup (channels for"
  echo "  describe and update, the stream for moto) happens before the window; a warm-up of $WARM is"
  echo "  not counted. Latency from an HDR histogram (µs resolution). The baseline gets the same"
  echo "  signed requests and ignores the signature."
  echo "- \`update\`: UpdateSignalingChannel answers an empty body, so each client describes its channel"
  echo "  again to learn the new Version before the next update; only the updates are timed and counted."
  echo "- \`relay\`: channels are created through the API (the baseline relay has no control plane:"
  echo "  \`--no-control\` builds the ARNs locally); the master connects first, then the viewer, with"
  echo "  presigned URLs. Viewers send \`SDP_OFFER\`, the master answers \`SDP_ANSWER\` with the same"
  echo "  payload (base64 of a JSON with sequence number and send time). The server runs with"
  echo "  \`--message-rate-limits false\`."
  echo "- \`idle\`: channels of 1 master + 10 viewers; client sockets bound to 127.0.0.2 … 127.0.0.9;"
  echo "  RSS per connection = (VmRSS held − VmRSS before connecting) / connections; the describe load"
  echo "  meanwhile is open loop (4 clients)."
  echo "- \`startup\`: the channels are created through the API by 32 clients, the server stopped with"
  echo "  SIGTERM, then spawned again $STARTUP_RUNS times on the same data dir; each run is timed from spawn to"
  echo "  the ready line on stdout."
  echo
  if [[ -n "$PRESERVED" ]]; then
    printf '%s\n' "$PRESERVED"
  else
    echo "## Where the time goes"
    echo
    echo "_Placeholder: perf profiles of the server under the describe and relay loads, before and"
    echo "after the redesign of issue 7, go here._"
  fi
} >"$OUT_MD"
RAW=$ROOT/target/bench-results
((QUICK)) && RAW=$RAW-quick
rm -rf "$RAW" && mkdir -p "$RAW" && cp "$WORK/r"/*.json "$RAW/"
echo "raw results: $RAW" >&2
echo "wrote $OUT_MD ($(($(date +%s) - T_START)) s)" >&2
