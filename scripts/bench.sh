#!/usr/bin/env bash
# The benchmark of issue 7: kvs-signaling against minimal baselines, on this machine, in one run.
#
#   scripts/bench.sh           full run (under 10 minutes once built), writes docs/benchmarks.md
#                              and docs/bench-latency.png
#   scripts/bench.sh --quick   a short run proving the benchmark works (well under 2 minutes
#                              once built), writes target/bench-quick.md and its chart
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

QUICK=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  "") ;;
  *)
    echo "usage: $0 [--quick]" >&2
    exit 2
    ;;
esac

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
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import moto, flask, matplotlib' 2>/dev/null; then
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
  printf 'kvs-bench %s\n' "$*" >>"$WORK/commands.txt"
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
  printf 'kvs-signaling serve --listen 127.0.0.1:0 --data-dir DIR --embedded-turn false %s\n' "$*" >>"$WORK/commands.txt"
  start "$name" "$SERVER" serve --listen 127.0.0.1:0 --data-dir "$WORK/data-$name" \
    --embedded-turn false "$@"
}

CTL=(--clients "$CLIENTS" --duration "$DUR" --warmup "$WARM")

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
