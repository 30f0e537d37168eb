#!/usr/bin/env python3
"""Writes the benchmark's report from what scripts/bench.sh collected: docs/benchmarks.md (or
target/bench-quick.md) and its latency chart, or with --redis-only only the "Several nodes on
Redis" section of that file.

    bench_report.py RESULTS_DIR

RESULTS_DIR is bench.sh's work directory:
- meta.json: the run's parameters and bookkeeping (flags, durations, counts, the machine's CPU
  use, paths; written by bench.sh's `write_meta`);
- r/NAME.json: one kvs-bench result per measurement (its JSON line, plus what bench.sh added:
  others_cpu_pct, rounds, redis_commands, cpu_s, wall_s); r/calls_OP.json: Redis commands per
  control-plane request;
- commands.txt, redis-commands.txt: the commands that ran; relay_metrics.txt,
  redis_metrics.txt: /metrics lines after the relay runs.

Numbers are formatted as bench.sh's jq and awk did (jq 1.6: integral values without a
fraction, others shortest; awk: `%.0f` with thousands separators, `%.6g` where awk printed a
computed value), so the report reads the same as before the rendering moved here. Only the
standard library is needed; matplotlib only for the chart (bench.sh passes the chart's path
when its venv has it).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import sys
import time
import traceback
from pathlib import Path


# --- formatting as jq and awk did it ------------------------------------------------------------
def jround(x: float) -> float:
    """jq's round (C's round: halves away from zero)."""
    f = math.floor(abs(x))
    r = f + 1 if abs(x) - f >= 0.5 else f
    return float(math.copysign(r, x))


def jq(v) -> str:
    """A value as `jq -r` prints it (jq 1.6: every number a double, integral ones without a
    fraction, the others in their shortest form)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e17:
            return str(int(v))
        return repr(v)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def tonum(v) -> float:
    """A value as awk reads a string: a number, or 0 ("null", "")."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return 0.0


def awk_print(x: float) -> str:
    """`print x` in awk: integral values as integers, others with OFMT (%.6g)."""
    if float(x).is_integer() and abs(x) < 1e16:
        return str(int(x))
    return "%.6g" % x


def num(x) -> str:
    """No decimals, thousands separators (bench.sh's `num` / `rnum`)."""
    s = "%.0f" % tonum(x)
    n = ""
    while len(s) > 3:
        n = "," + s[-3:] + n
        s = s[:-3]
    return s + n


def pct(a, b) -> str:
    a, b = tonum(a), tonum(b)
    return "%.0f %%" % (100 * a / b) if b > 0 else "-"


def ratio_x(a, b) -> str:
    a, b = tonum(a), tonum(b)
    return "%.0fx" % (a / b) if b > 0 else "-"


def ge(a, b) -> bool:
    return tonum(a) >= tonum(b)


def lt(a, b) -> bool:
    return tonum(a) < tonum(b)


def r100(x: float) -> float:
    return jround(x * 100) / 100


def r10(x: float) -> float:
    return jround(x * 10) / 10


def pick(d: dict, path: str):
    """`.a.b.c` of a result (null when a step is missing)."""
    for k in path.strip(".").split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


class Results:
    def __init__(self, work: Path):
        self.work = work
        self.cache: dict[str, dict] = {}

    def __call__(self, name: str) -> dict:
        if name not in self.cache:
            self.cache[name] = json.loads((self.work / "r" / f"{name}.json").read_text())
        return self.cache[name]

    def calls(self, op: str) -> dict:
        return self(f"calls_{op}")


def commands(path: Path, work: str, server: str, server_pid: bool) -> list[str]:
    """The commands that ran, ports, temporary directories and binary paths elided (the sed of
    bench.sh)."""
    out = []
    for line in path.read_text().splitlines():
        line = re.sub(r"http://127\.0\.0\.1:[0-9]+", "http://127.0.0.1:PORT", line)
        if server_pid:
            line = re.sub(r"--server-pid [0-9]+", "--server-pid PID", line, count=1)
        else:
            line = re.sub(r"redis://127\.0\.0\.1:[0-9]+", "redis://127.0.0.1:PORT", line)
        line = re.sub(r" +$", "", line)
        line = line.replace(work, "$TMP").replace(server, "kvs-signaling")
        out.append(line)
    return out


# --- the "Several nodes on Redis" section ---------------------------------------------------------
class RedisSection:
    def __init__(self, m: dict, r: Results):
        self.m, self.r = m, r

    def rlat(self, name, key):
        d = self.r(name)[key]
        return f"{jq(d['p50_ms'])} / {jq(d['p99_ms'])} / {jq(d['p999_ms'])}"

    def relayed(self, name) -> float:
        return max(self.r(name)["relayed_total"], 1)

    def rcmd_total(self, name, d) -> str:
        total = sum(c["calls"] for c in self.r(name)["redis_commands"].values())
        return jq(r100(total / (d if d > 0 else 1)))

    def rcpu(self, name, proc) -> float:
        return r10((self.r(name)["cpu_s"].get(proc) or 0) / self.relayed(name) * 1e6)

    def rcpu_all(self, name) -> float:
        return r10(sum(self.r(name)["cpu_s"].values()) / self.relayed(name) * 1e6)

    def rbusy(self, name) -> str:
        d = self.r(name)
        return f"{jq(jround(sum(d['cpu_s'].values()) / (d['wall_s'] * self.m['nproc']) * 100))} % busy"

    def rskew(self, name) -> str:
        o = self.r(name).get("others_cpu_pct")
        return f" ⚠ other work {jq(o)} %" if (o or 0) > 5 else ""

    def per(self, name, cmd) -> str:
        c = (self.r(name)["redis_commands"].get(cmd) or {}).get("calls") or 0
        return jq(r100(c / self.relayed(name)))

    def calls(self, op, src, cmd) -> str:
        return jq((self.r.calls(op).get(src) or {}).get(cmd) or 0)

    def calls_list(self, op, src) -> str:
        entries = sorted((self.r.calls(op).get(src) or {}).items(), key=lambda kv: -kv[1])
        if not entries:
            return "none"
        return (f"{jq(r100(sum(v for _, v in entries)))}: "
                + ", ".join(f"`{k}` {jq(v)}" for k, v in entries))

    def calls_count(self, op, src) -> str:
        """calls_list's count only (bench.sh: `calls_list ... | cut -d: -f1`)."""
        return self.calls_list(op, src).split(":")[0]

    def usec_per(self, name) -> str:
        usec = sum(c["usec"] for c in self.r(name)["redis_commands"].values())
        return jq(r100(usec / self.relayed(name)))

    def rq(self, name, path):
        return jq(pick(self.r(name), path))

    def rounds(self, name, key) -> str:
        return " / ".join(jq(math.floor(x[key])) for x in self.r(name)["rounds"])

    def lost_ooo(self, name) -> str:
        d = self.r(name)
        return f"{jq(d['lost'])} / {jq(d['out_of_order'])}"

    def where(self) -> list[str]:
        """Where the time goes, from the measured numbers. The mechanism described is the Redis
        backend's (crates/redis): presence lookups, the bus, the store's scripts."""
        A, B, C = "rr_sqlite", "rr_one", "rr_two"
        # Node CPU per message, and what the Redis client adds per command on the nodes (closed loop).
        na = self.rcpu(A, "sqlite")
        nb = self.rcpu(B, "node1")
        nc_s = awk_print(self.rcpu(C, "node1") + self.rcpu(C, "node2"))
        nc = tonum(nc_s)

        def extra(node_us, name):
            k = tonum(self.rcmd_total(name, self.r(name)["relayed_total"]))
            return "%.0f" % ((node_us - na) / k) if k > 0 else "-"

        kb, kc = extra(nb, B), extra(nc, C)
        rq, per, calls, calls_count, rpct = self.rq, self.per, self.calls, self.calls_count, pct
        return [
            "### Where the time goes on Redis",
            "",
            "- **A message whose recipient is on the same node (b)** still asks Redis where the recipient is: an",
            f"  `HMGET` of the channel's presence hash ({per('ro_one', 'hmget')} per message measured; an answer from the master",
            "  looks up a waiting SendAlexaOfferToMaster call and the viewer in that one read — before commit",
            "  0ea475c it took a second `HGET`, 1.5 per message). Node leases are cached, so the `ZSCORE` that checks one is rare",
            f"  ({per('ro_one', 'zscore')} per message). Presence lives only in Redis: a node cannot know that the recipient is",
            "  its own before asking. Then the message goes to the local WebSocket as on SQLite.",
            "- **A message across nodes (c)** is that lookup, then a `PUBLISH` on the recipient node's own channel",
            f"  ({per('ro_two', 'publish')} per message), then Redis pushing it on that node's subscriber connection, which",
            "  delivers it to the WebSocket: two commands from the sender's node, awaited one after the other (two",
            "  round trips of latency), and one push to that node only (no broadcast: no other node sees it).",
            "  Nothing is stored per message (a message is held, by a Lua script, only when its recipient is",
            "  connected nowhere; here none was).",
            f"- **Redis itself is cheap per message**: {self.usec_per('ro_one')} µs (b) and {self.usec_per('ro_two')} µs (c) inside the commands",
            f"  (`usec` of commandstats), {jq(self.rcpu(B, 'redis'))} µs (b) and {jq(self.rcpu(C, 'redis'))} µs (c) of redis-server CPU with its network I/O",
            "  (closed loop). **The nodes pay**: under the closed loop a node spends "
            f"{jq(na)} µs of CPU per",
            f"  message on SQLite (a), {jq(nb)} µs on Redis (b) and {nc_s} µs over both nodes (c), about {kb} (b) / {kc} (c) µs more per",
            "  Redis command: each command is a future on the node's one multiplexed Redis connection, handed to its",
            "  driver task, written, its reply read, parsed and the session task woken, and in (c) the subscriber",
            "  connection's push decoded and routed to the local session.",
            "  A `perf` profile of node 1 under (c) shows where that goes: about 10 % of its samples in the",
            "  kernel switching tasks, 6 % waking sockets, 9 % in the allocator, 2 % in redis-rs itself: the cost",
            "  is the system calls and wake-ups of one more network exchange per command, not Redis or parsing.",
            "  All processes together use",
            f"  {jq(self.rcpu_all(A))} µs (a), {jq(self.rcpu_all(B))} µs (b) and {jq(self.rcpu_all(C))} µs (c) per message (load generator included), so on {self.m['nproc']} shared cores",
            f"  the closed loop reaches {rpct(rq(B, '.msgs_per_s'), rq(A, '.msgs_per_s'))} (b) and {rpct(rq(C, '.msgs_per_s'), rq(A, '.msgs_per_s'))} (c) of the SQLite node's throughput. An open loop",
            "  costs more CPU per message than a closed one (each message wakes every process on its own instead",
            "  of in batches), which is why the offered loads above stay at fractions of the slowest maximum.",
            f"- **Latency at the same load** (open loop, {num(rq('ro_sqlite', '.offered_msgs_per_s'))} msgs/s): median round trip {rq('ro_sqlite', '.rtt.p50_ms')} ms (a),",
            f"  {rq('ro_one', '.rtt.p50_ms')} ms (b), {rq('ro_two', '.rtt.p50_ms')} ms (c), p99 {rq('ro_sqlite', '.rtt.p99_ms')} / {rq('ro_one', '.rtt.p99_ms')} / {rq('ro_two', '.rtt.p99_ms')} ms. A round trip is an offer and an answer,",
            "  so (b) adds 2 sequential Redis round trips to it and (c) 4 plus 2 pushes, each with the wake-ups of",
            "  the processes involved, and at higher load their extra CPU competes for the same cores. With Redis",
            "  on another machine each of those round trips also pays the network's latency.",
            f"- **Control plane**: no cache, every read goes to Redis. A describe sends {calls('describe', 'client', 'hget')} `HGET` (the",
            f"  channel's record); a list of 10 channels one `ZRANGE BYLEX` on the name index ({calls('list', 'client', 'zrange')}) and",
            f"  then one `HGET` per channel ({calls('list', 'client', 'hget')}), pipelined: two round trips. A write is one Lua script",
            f"  (`EVALSHA`: create {calls('create', 'client', 'evalsha')}, update {calls('update', 'client', 'evalsha')} per request) running",
            f"  {calls_count('create', 'script')} (create) and {calls_count('update', 'script')} (update) commands inside Redis, atomically across nodes, plus",
            f"  `HGET`s the node sends around it (create {calls('create', 'client', 'hget')}, update {calls('update', 'client', 'hget')} per request, the update's",
            "  counting its describe). With `appendfsync always` Redis writes and fsyncs the AOF before it answers,",
            "  once for all the writes of one event-loop iteration (a group commit, like the SQLite writer's):",
            f"  creates reach {rpct(rq('rc_redis_create', '.rps'), rq('rc_sqlite_create', '.rps'))} and updates {rpct(rq('rc_redis_update', '.rps'), rq('rc_sqlite_update', '.rps'))} of SQLite's rate; describes {rpct(rq('rc_redis_describe', '.rps'), rq('rc_sqlite_describe', '.rps'))} and lists",
            f"  {rpct(rq('rc_redis_list', '.rps'), rq('rc_sqlite_list', '.rps'))}, where the SQLite node answers from its in-memory index and the Redis node",
            f"  pays a round trip (and {calls_count('list', 'client')} commands for a list) per request.",
        ]

    def commands_table(self) -> list[str]:
        b, c, cc = self.r("ro_one"), self.r("ro_two"), self.r("rr_two")

        def per(res, k):
            return ((res["redis_commands"].get(k) or {}).get("calls") or 0) / max(res["relayed_total"], 1)

        def f(x):
            return jq(jround(x * 1000) / 1000)

        ks = sorted({k for res in (b, c, cc) for k in res["redis_commands"]})
        ks = sorted(ks, key=lambda k: -(per(b, k) + per(c, k) + per(cc, k)))
        out = []
        for k in ks:
            rc = c["redis_commands"].get(k) or {"usec": 0, "calls": 1}
            out.append(f"| `{k}` | {f(per(b, k))} | {f(per(c, k))} | {f(per(cc, k))} | "
                       f"{jq(r100(rc['usec'] / max(rc['calls'], 1)))} |")
        out.append(f"| **all** | **{f(sum(per(b, k) for k in ks))}** | **{f(sum(per(c, k) for k in ks))}** | "
                   f"**{f(sum(per(cc, k) for k in ks))}** | |")
        return out

    def render(self) -> list[str]:
        m, rq, rskew = self.m, self.rq, self.rskew
        A, B, C = "rr_sqlite", "rr_one", "rr_two"
        quick, redis_only = m["quick"], m["redis_only"]
        relay_ch, infl, rounds = m["relay_ch"], m["relay_infl"], m["rounds"]
        fractions = m["redis_fractions"].split()
        ops = m["redis_ctl_ops"].split()
        k = m["redis_calls_k"]
        date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
        out = [
            "## Several nodes on Redis (issue 8)",
            "",
            f"Issue 8's efficiency measurement, by `scripts/bench.sh{' --quick' if quick else ''}"
            f"{' --redis-only' if redis_only else ''}` ({date}, kvs-signaling `{m['server_rev']}`,",
            f"{m['profile']} build; Redis {m['redis_version']} on 127.0.0.1, `--appendonly yes --appendfsync always --save ''`: every",
            "acknowledged write is in the AOF and fsynced before Redis answers, the persistence the Redis store's",
            f"durability promise needs; {m['redis_info']}). Redis, the nodes and `kvs-bench` share the machine's {m['nproc']} cores.",
        ]
        if quick:
            out += ["", "**Quick run**: about a second per measurement"
                    f"{', debug build' if m['profile'] == 'debug' else ''}; the numbers mean little."]
        out += [
            "",
            f"Three set-ups under the same load, {relay_ch} channels x (1 master + 1 viewer), SDP offers answered by",
            "the master, rate limits off, all running at once (each load goes to its own):",
            "",
            "- **(a)** one node on SQLite (the default store);",
            "- **(b)** one node on Redis, master and viewer of each channel on that node (node 2 is up and idle);",
            "- **(c)** two nodes on Redis, masters on node 1 and viewers on node 2: every relayed message crosses nodes.",
            "",
            "| | (a) 1 node, SQLite | (b) 1 node, Redis | (c) 2 nodes, Redis, across |",
            "|---|---|---|---|",
            f"| closed loop, {infl} in flight per viewer: msgs/s (best of {rounds} × {m['redis_round_dur']}) | "
            f"{num(rq(A, '.msgs_per_s'))}{rskew(A)} | {num(rq(B, '.msgs_per_s'))} ({pct(rq(B, '.msgs_per_s'), rq(A, '.msgs_per_s'))} of a){rskew(B)} | "
            f"{num(rq(C, '.msgs_per_s'))} ({pct(rq(C, '.msgs_per_s'), rq(A, '.msgs_per_s'))} of a){rskew(C)} |",
            f"| rounds, msgs/s | {self.rounds(A, 'msgs_per_s')} | {self.rounds(B, 'msgs_per_s')} | {self.rounds(C, 'msgs_per_s')} |",
            f"| closed loop RTT p50 / p99 / p99.9 (ms) | {self.rlat(A, 'rtt')} | {self.rlat(B, 'rtt')} | {self.rlat(C, 'rtt')} |",
            f"| closed loop lost / out of order | {self.lost_ooo(A)} | {self.lost_ooo(B)} | {self.lost_ooo(C)} |",
            f"| closed loop: CPU µs per relayed message, all processes (machine busy over the run) | "
            f"{jq(self.rcpu_all(A))} ({self.rbusy(A)}) | {jq(self.rcpu_all(B))} ({self.rbusy(B)}) | {jq(self.rcpu_all(C))} ({self.rbusy(C)}) |",
            f"| closed loop: CPU µs per relayed message, node 1 / node 2 / redis-server / kvs-bench | "
            f"{jq(self.rcpu(A, 'sqlite'))} / - / {jq(self.rcpu(A, 'redis'))} / {jq(self.rcpu(A, 'kvs_bench'))} | "
            f"{jq(self.rcpu(B, 'node1'))} / {jq(self.rcpu(B, 'node2'))} / {jq(self.rcpu(B, 'redis'))} / {jq(self.rcpu(B, 'kvs_bench'))} | "
            f"{jq(self.rcpu(C, 'node1'))} / {jq(self.rcpu(C, 'node2'))} / {jq(self.rcpu(C, 'redis'))} / {jq(self.rcpu(C, 'kvs_bench'))} |",
        ]
        for f in fractions:
            a, b, c = f"ro_sqlite_{f}", f"ro_one_{f}", f"ro_two_{f}"
            out += [
                f"| open loop, {num(rq(a, '.offered_msgs_per_s'))} msgs/s offered to each ({'%.0f %%' % (tonum(f) * 100)} "
                f"of the slowest maximum): RTT p50 / p99 / p99.9 (ms) | {self.rlat(a, 'rtt')}{rskew(a)} | "
                f"{self.rlat(b, 'rtt')}{rskew(b)} | {self.rlat(c, 'rtt')}{rskew(c)} |",
                f"| same: achieved msgs/s, lost / out of order | {num(rq(a, '.msgs_per_s'))}, {self.lost_ooo(a)} | "
                f"{num(rq(b, '.msgs_per_s'))}, {self.lost_ooo(b)} | {num(rq(c, '.msgs_per_s'))}, {self.lost_ooo(c)} |",
                f"| same: CPU µs per relayed message, all processes (machine busy over the run) | "
                f"{jq(self.rcpu_all(a))} ({self.rbusy(a)}) | {jq(self.rcpu_all(b))} ({self.rbusy(b)}) | {jq(self.rcpu_all(c))} ({self.rbusy(c)}) |",
            ]
        out += [
            f"| Redis commands per relayed message (open loop, {num(rq('ro_sqlite', '.offered_msgs_per_s'))} msgs/s) | "
            f"{self.rcmd_total('ro_sqlite', self.r('ro_sqlite')['relayed_total'])} | "
            f"{self.rcmd_total('ro_one', self.r('ro_one')['relayed_total'])} | "
            f"{self.rcmd_total('ro_two', self.r('ro_two')['relayed_total'])} |",
            "",
            "### Redis commands per message",
            "",
            "`redis-cli INFO commandstats` before and after each run, the calls of every command (the",
            "`INFO` itself left out) divided by the messages relayed in the whole run (warm-up and grace",
            "included; a message is one direction, offer or answer). The difference also holds the run's",
            f"setup ({relay_ch} CreateSignalingChannel, {int(relay_ch) * 2} WebSocket connects and closes) and the nodes'",
            f"periodic work, spread over {num(rq('ro_two', '.relayed_total'))} messages (open loop) or {num(rq(C, '.relayed_total'))} (closed loop).",
            "Commands, not round trips: a client that pipelines sends several in one round trip.",
            "Redis's own time per call is `usec / calls` of the same statistics (inside Redis, not counting",
            "its network I/O).",
            "",
            "| command | (b) 1 node, open loop | (c) across nodes, open loop | (c) across nodes, closed loop | Redis µs per call (c, open loop) |",
            "|---|---|---|---|---|",
            *self.commands_table(),
            "",
            "### Control plane: SQLite against Redis",
            "",
            f"One node each, {m['redis_dur']} per operation after a {m['warm']} warm-up, closed loop (the same `kvs-bench control` loads as",
            "above; `list` is ListSignalingChannels with `BEGINS_WITH` a prefix of 10 channels, one page).",
            f"Commands per request: `redis-cli MONITOR` of one run of 1 request and one of 1 + {k} (one",
            f"client, same setup), the difference divided by {k}; *sent by the node* are its round trips",
            "(unless pipelined), *inside scripts* the commands Redis runs for an `EVALSHA` without another round",
            "trip. redis-server CPU is per request of the timed run (warm-up included). The figures of an update",
            "include the DescribeSignalingChannel that follows it to learn the new Version.",
            "",
            "| operation | SQLite: req/s, p50 / p99 (ms) | Redis: req/s, p50 / p99 (ms) | Redis / SQLite | commands the node sends per request | commands inside those scripts | redis-server CPU µs per request |",
            "|---|---|---|---|---|---|---|",
        ]
        for op in ops:
            s, rd = self.r(f"rc_sqlite_{op}"), self.r(f"rc_redis_{op}")
            d = max(rd["requests_total"], 1)
            s_err = f", errors {jq(s['errors']['total'])}" if (pick(s, "errors.total") or 0) > 0 else ""
            r_err = (", errors: " + ", ".join(f"{k_} {jq(v)}" for k_, v in rd["errors"]["by_kind"].items())
                     if (pick(rd, "errors.total") or 0) > 0 else "")
            out.append(
                f"| {op}, {jq(rd['clients'])} clients | {num(s['rps'])}, {jq(s['latency']['p50_ms'])} / {jq(s['latency']['p99_ms'])}"
                f"{s_err}{rskew(f'rc_sqlite_{op}')} | {num(rd['rps'])}, {jq(rd['latency']['p50_ms'])} / {jq(rd['latency']['p99_ms'])}"
                f"{r_err}{rskew(f'rc_redis_{op}')} | {pct(rd['rps'], s['rps'])} | {self.calls_list(op, 'client')} | "
                f"{self.calls_list(op, 'script')} | {jq(r10(rd['cpu_s']['redis'] / d * 1e6))} |")
        out.append("")
        metrics = self.r.work / "redis_metrics.txt"
        if metrics.exists() and metrics.stat().st_size > 0:
            out += ["The Redis nodes' counters after all runs (`GET /metrics`):", "", "```text",
                    *metrics.read_text().splitlines(), "```", ""]
        out += self.where()
        out += ["", "### How the Redis part was measured", "", "```sh",
                *commands(self.r.work / "redis-commands.txt", m["work"], m["server"], server_pid=False), "```"]
        return out


def redis_not_run(m: dict) -> list[str]:
    return ["## Several nodes on Redis (issue 8)", "",
            f"Not run in this {'quick' if m['quick'] else 'full'} run: {m['redis_reason']}."]


# --- the chart --------------------------------------------------------------------------------
def chart(work: Path, kvs_max, png: Path) -> None:
    """The relay's round-trip latency against offered load. X axis: offered load in relayed
    messages/s (two per round trip); Y axis: RTT p50 and p99 (ms, log scale). The 5 ms p99
    target of issue 7 and half of kvs-signaling's closed-loop maximum are drawn as guides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {name: [json.loads(p.read_text()) for p in sorted((work / "r").glob(f"open_{name}_*.json"))]
            for name in ("kvs", "baseline")}

    def series(results, key):
        pts = sorted((r["offered_msgs_per_s"], r["rtt"][key]) for r in results
                     if r.get("offered_msgs_per_s") is not None and (r.get("rtt") or {}).get(key) is not None)
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {"kvs": ("kvs-signaling", "tab:blue"), "baseline": ("minimal relay (baseline)", "tab:gray")}
    for name, (label, color) in styles.items():
        for key, ls, marker in (("p50_ms", "-", "o"), ("p99_ms", "--", "s")):
            xs, ys = series(data[name], key)
            if xs:
                ax.plot(xs, ys, ls, marker=marker, color=color, label=f"{label} RTT {key.split('_')[0]}")
    ax.axhline(5.0, color="tab:red", lw=0.8, ls=":", label="target: p99 < 5 ms at half max")
    if kvs_max:
        ax.axvline(kvs_max / 2, color="tab:green", lw=0.8, ls=":", label="half of kvs-signaling's closed-loop max")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (relayed messages/s, both directions)")
    ax.set_ylabel("round trip viewer → master → viewer (ms)")
    ax.set_title("Relay latency against offered load (open loop)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)


# --- the whole report ----------------------------------------------------------------------------
def main_report(m: dict, r: Results, redis_lines: list[str], have_chart: bool, preserved: str | None) -> list[str]:
    quick = m["quick"]
    nproc = m["nproc"]

    def v(name, path):
        return jq(pick(r(name), path))

    def skew(name):
        o = r(name).get("others_cpu_pct")
        return f"; ⚠ other work took {jq(o)} % of the CPU meanwhile" if (o or 0) > 5 else ""

    def lat(name, key="latency"):
        d = pick(r(name), key) or {}
        return f"p50 {jq(d.get('p50_ms'))} ms, p99 {jq(d.get('p99_ms'))} ms, p99.9 {jq(d.get('p999_ms'))} ms{skew(name)}"

    def rounds(name, key, unit):
        rs = r(name).get("rounds") or []
        if len(rs) > 1:
            return f"; best of {len(rs)} rounds: " + " / ".join(jq(math.floor(x[key])) for x in rs) + f" {unit}"
        return ""

    def errs(name):
        e = r(name).get("errors") or {}
        if (e.get("total") or 0) > 0:
            return ", errors: " + ", ".join(f"{k} {jq(x)}" for k, x in e["by_kind"].items())
        return ""

    def verdict(ok, missed):
        return "met" if ok else f"**missed**: {missed}"

    d_sig, d_open, d_base = v("describe_sigv4", ".rps"), v("describe_open", ".rps"), v("describe_baseline", ".rps")
    d_moto = v("describe_moto", ".rps") if m["have_moto"] else "0"
    c_rps, c_p99 = v("create", ".rps"), v("create", ".latency.p99_ms")
    r_kvs, r_base = v("relay_kvs", ".msgs_per_s"), v("relay_baseline", ".msgs_per_s")
    r_lost, r_ooo = v("relay_kvs", ".lost"), v("relay_kvs", ".out_of_order")
    half = "open_kvs_0.5"
    h_p99 = v(half, ".rtt.p99_ms")
    idle = r("idle")
    i_rss = jq(idle.get("rss_per_connection_kib") if idle.get("rss_per_connection_kib") is not None else "null")
    i_p99 = jq(pick(idle, "control.latency.p99_ms") if pick(idle, "control.latency.p99_ms") is not None else "null")
    i_conn = v("idle", ".connected")
    s_med = v("startup", ".median_ms")

    # The thresholds are computed as bench.sh's awk printed them (%.6g), then compared.
    v_sig = ge(d_sig, awk_print(tonum(d_base) * 0.5))
    v_open = ge(d_open, awk_print(tonum(d_base) * 0.7))
    v_moto = bool(m["have_moto"]) and ge(d_open, awk_print(tonum(d_moto) * 100))
    v_create = ge(c_rps, 6000) and lt(c_p99, 20)
    v_relay = ge(r_kvs, awk_print(tonum(r_base) * 0.7)) and r_lost == "0" and r_ooo == "0"
    v_half = lt(h_p99, 5)
    v_idle = (i_rss != "null" and i_p99 != "null" and not lt(16, i_rss) and lt(i_p99, 10)
              and int(tonum(i_conn)) >= int(m["idle_k"]))
    v_start = lt(s_med, 200)

    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].lstrip(" ")
            break
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    uname = os.uname()
    machine_s, ours_s, others_s, elapsed_s = (int(m[k]) for k in ("machine_s", "ours_s", "others_s", "elapsed_s"))
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")

    out = ["# Benchmarks", ""]
    if quick:
        out += ["**Quick run** (`scripts/bench.sh --quick`): durations of about a second and small counts, to",
                "prove the benchmark works. These numbers mean little; `scripts/bench.sh` makes the real ones.", ""]
    sigv4_need = "%.1fx" % (tonum(d_base) * 0.5 / tonum(d_sig)) if tonum(d_sig) else "inf"
    open_need = "%.1fx" % (tonum(d_base) * 0.7 / tonum(d_open)) if tonum(d_open) else "inf"
    clients, cc = m["clients"], m["create_clients"]
    out += [
        "Issue 7's benchmark: kvs-signaling against minimal baselines, measured in one run of",
        f"`scripts/bench.sh` ({date}, {int(time.time()) - int(m['t_start'])} s including the build check).",
        "Load generator (`kvs-bench`, one tokio worker per core) and server share the machine's cores,",
        "so every number includes the load generator's own CPU, for kvs-signaling and baseline alike.",
        "",
        "## Machine",
        "",
        f"- CPU: {nproc} cores, {cpu_model}",
        f"- memory: {mem_kib / 1048576:.1f} GiB",
        f"- kernel: {uname.sysname} {uname.release}",
        f"- server: kvs-signaling `{m['server_rev']}`, {m['profile']} build; baselines: `kvs-bench` (same build)",
        f"- other work on the machine: {m['busy_before']} % busy just before the run; during it the machine used",
        f"  {machine_s} CPU-seconds, of which this benchmark's processes {ours_s} and other processes about {others_s}",
        f"  (of {elapsed_s * nproc} available){': **the numbers are skewed by other work**' if others_s * 10 > machine_s else ''}",
        "",
        "## Results",
        "",
        "| work | kvs-signaling | baseline | ratio | target | |",
        "|---|---|---|---|---|---|",
        f"| DescribeSignalingChannel, SigV4 (`--credentials`), SQLite, {clients} keep-alive clients | {num(d_sig)} req/s "
        f"({lat('describe_sigv4')}{errs('describe_sigv4')}{rounds('describe_sigv4', 'rps', 'req/s')}) | {num(d_base)} req/s "
        f"(axum handler parsing the same JSON; {lat('describe_baseline')}{rounds('describe_baseline', 'rps', 'req/s')}) | "
        f"{pct(d_sig, d_base)} | ≥ 50 % | {verdict(v_sig, f'{pct(d_sig, d_base)} of the baseline; needs {sigv4_need} the throughput')} |",
        f"| same, open mode | {num(d_open)} req/s ({lat('describe_open')}{errs('describe_open')}{rounds('describe_open', 'rps', 'req/s')}) | "
        f"{num(d_base)} req/s (same) | {pct(d_open, d_base)} | ≥ 70 % | "
        f"{verdict(v_open, f'{pct(d_open, d_base)} of the baseline; needs {open_need} the throughput')} |",
    ]
    if m["have_moto"]:
        out.append(f"| same, open mode, vs moto server DescribeStream | {num(d_open)} req/s | {num(d_moto)} req/s "
                   f"(moto_server, {lat('describe_moto')}) | {ratio_x(d_open, d_moto)} | ≥ 100x | "
                   f"{verdict(v_moto, ratio_x(d_open, d_moto))} |")
    else:
        out.append(f"| same, open mode, vs moto server DescribeStream | {num(d_open)} req/s | not run (no moto) | - | ≥ 100x | not measured |")
    out += [
        f"| CreateSignalingChannel, {cc} concurrent clients, SQLite (durable before acknowledged) | {num(c_rps)} creates/s "
        f"({lat('create')}{errs('create')}) | - | - | ≥ 6,000/s, p99 < 20 ms | "
        f"{verdict(v_create, f'{pct(c_rps, 6000)} of the rate, p99 {c_p99} ms')} |",
        f"| UpdateSignalingChannel, {cc} clients, each on its own channel (a describe between updates, not counted) | "
        f"{num(v('update', '.rps'))} updates/s ({lat('update')}{errs('update')}) | - | - | - | |",
        f"| relay, closed loop: {m['relay_ch']} channels x (1 master + 1 viewer), {m['relay_infl']} in flight per viewer, rate limits off | "
        f"{num(r_kvs)} msgs/s, RTT {lat('relay_kvs', 'rtt')}; lost {r_lost}, out of order {r_ooo}{rounds('relay_kvs', 'msgs_per_s', 'msgs/s')} | "
        f"{num(r_base)} msgs/s, RTT {lat('relay_baseline', 'rtt')} (minimal tokio-tungstenite relay{rounds('relay_baseline', 'msgs_per_s', 'msgs/s')}) | "
        f"{pct(r_kvs, r_base)} | ≥ 70 %, 0 lost, 0 out of order | "
        f"{verdict(v_relay, f'{pct(r_kvs, r_base)} of the baseline, lost {r_lost}, out of order {r_ooo}')} |",
        f"| relay, open loop at half of the closed-loop maximum ({num(v(half, '.offered_msgs_per_s'))} msgs/s offered) | "
        f"RTT {lat(half, 'rtt')}; lost {v(half, '.lost')} | RTT {lat('open_baseline_0.5', 'rtt')} | - | p99 < 5 ms | "
        f"{verdict(v_half, f'p99 {h_p99} ms')} |",
        f"| {num(i_conn)} idle viewer and master WebSockets ({v('idle', '.channels')} channels, {v('idle', '.sources')} source addresses) | "
        f"{i_rss} KiB RSS per connection; DescribeSignalingChannel at {v('idle', '.control.offered_rps')} req/s meanwhile: "
        f"{lat('idle', 'control.latency')} | - | - | ≤ 16 KiB at 15,000; p99 < 10 ms | "
        f"{verdict(v_idle, f'{i_rss} KiB per connection at {num(i_conn)} connections, p99 {i_p99} ms')} |",
        f"| start-up with {num(v('populate', '.ok'))} channels in the store (spawn to ready line, median of {m['startup_runs']}) | "
        f"{s_med} ms (runs: {', '.join(jq(x) for x in r('startup')['runs_ms'])} ms) | empty store: {v('startup_empty', '.median_ms')} ms | "
        f"- | < 200 ms | {verdict(v_start, f'{s_med} ms')} |",
        "",
        "Relayed messages count each direction as one: an offer reaching the master is one, its answer",
        "reaching the viewer another. Round trips are measured at the viewer (send → offer relayed →",
        "master answers → answer relayed → receive). *Lost*: sent but never answered by the end of",
        "the 2 s grace after the window; *out of order*: an answer whose sequence number is not above",
        "the last one that viewer received. Round trips are timed from the actual send; in the open-loop",
        "table the time from when each message was *due* is shown too: it would expose a sender",
        "falling behind (no coordinated omission), but includes up to 1 ms of tokio timer granularity.",
        "",
        "The relay at fixed offered rates (fractions of kvs-signaling's closed-loop maximum, same",
        "absolute rates for the baseline):",
        "",
        "| offered msgs/s | kvs-signaling RTT p50 / p99 / p99.9 (ms) | from due time p50 / p99 | achieved msgs/s | lost | baseline RTT p50 / p99 / p99.9 (ms) | from due time p50 / p99 | lost |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def three(name, key):
        d = r(name)[key]
        return f"{jq(d['p50_ms'])} / {jq(d['p99_ms'])} / {jq(d['p999_ms'])}"

    def two(name, key):
        d = r(name)[key]
        return f"{jq(d['p50_ms'])} / {jq(d['p99_ms'])}"

    for f in m["fractions"].split():
        k, b = f"open_kvs_{f}", f"open_baseline_{f}"
        out.append(f"| {num(v(k, '.offered_msgs_per_s'))} ({'%.0f %%' % (tonum(f) * 100)}) | {three(k, 'rtt')} | "
                   f"{two(k, 'rtt_from_intended')} | {num(v(k, '.msgs_per_s'))} | {v(k, '.lost')} | {three(b, 'rtt')} | "
                   f"{two(b, 'rtt_from_intended')} | {v(b, '.lost')} |")
    out.append("")
    lost = sum(json.loads(p.read_text())["lost"] for p in sorted((r.work / "r").glob("open_*.json")))
    if lost != 0:
        out += ["Where an open-loop run shows messages lost, it was past saturation (an open loop sends each",
                f"message on its own, where the closed loop pipelines {m['relay_infl']} per viewer): queues built up, and *lost*",
                "counts messages still unanswered 2 s after the window."]
    relay_metrics = r.work / "relay_metrics.txt"
    out += ["kvs-signaling's own counters after all relay runs (`GET /metrics`; `held_slow_consumer`",
            "counts messages that found a full outbox, held for the recipient's next connection, and",
            "`connections_closed_slow_consumer` the connections closed for not reading):", "", "```text"]
    if relay_metrics.exists() and relay_metrics.stat().st_size > 0:
        out += relay_metrics.read_text().splitlines()
    else:
        out.append("(no /metrics)")
    out += ["```", ""]
    if have_chart:
        out.append(f"![relay round-trip latency against offered load]({Path(m['out_png']).name})")
    else:
        out.append("(no chart: matplotlib was not available)")
    warm = m["warm"]
    out += [
        "",
        f"Idle connections: server VmRSS {v('idle', '.rss_before_kib')} KiB before connecting, {v('idle', '.rss_held_end_kib')} KiB with",
        f"{num(i_conn)} connections held (max {v('idle', '.rss_held_max_kib')} KiB); {v('idle', '.still_open_after_hold')} still open after the",
        f"{v('idle', '.hold_s')} s hold; connected at {num(v('idle', '.connects_per_s'))} connects/s; connect errors: {v('idle', '.connect_errors.total')}.",
        "",
        *redis_lines,
        "",
        "## How it was measured",
        "",
        f"`scripts/bench.sh{' --quick' if quick else ''}` ran these (ports and temporary directories elided; every server",
        "on 127.0.0.1 port 0, its ready line parsed; each kvs-signaling on a fresh SQLite data dir):",
        "",
        "```sh",
        *commands(r.work / "commands.txt", m["work"], m["server"], server_pid=True),
        "```",
        "",
        "- `control`: N keep-alive HTTP/1.1 connections (hyper), one request in flight on each, SigV4",
        "  header signatures from `kvs-sigv4` (`host` and `x-amz-date` signed; a fixed request is",
        "  signed once per second, which the server still verifies every time). Setup (channels for",
        f"  describe and update, the stream for moto) happens before the window; a warm-up of {warm} is",
        "  not counted. Latency from an HDR histogram (µs resolution). The baseline gets the same",
        "  signed requests and ignores the signature.",
        "- `update`: UpdateSignalingChannel answers an empty body, so each client describes its channel",
        "  again to learn the new Version before the next update; only the updates are timed and counted.",
        "- `relay`: channels are created through the API (the baseline relay has no control plane:",
        "  `--no-control` builds the ARNs locally); the master connects first, then the viewer, with",
        "  presigned URLs. Viewers send `SDP_OFFER`, the master answers `SDP_ANSWER` with the same",
        "  payload (base64 of a JSON with sequence number and send time). The server runs with",
        "  `--message-rate-limits false`.",
        "- `idle`: channels of 1 master + 10 viewers; client sockets bound to 127.0.0.2 … 127.0.0.9;",
        "  RSS per connection = (VmRSS held − VmRSS before connecting) / connections; the describe load",
        "  meanwhile is open loop (4 clients).",
        "- `startup`: the channels are created through the API by 32 clients, the server stopped with",
        f"  SIGTERM, then spawned again {m['startup_runs']} times on the same data dir; each run is timed from spawn to",
        "  the ready line on stdout.",
        "",
    ]
    if preserved is not None:
        out.append(preserved)
    else:
        out += ["## Where the time goes", "",
                "_Placeholder: perf profiles of the server under the describe and relay loads, before and",
                "after the redesign of issue 7, go here._"]
    return out


def splice_redis(md: str, section: list[str]) -> str:
    """Replaces the "## Several nodes on Redis" section of `md` (up to the next `## `), or puts it
    before "## How it was measured" / "## Where the time goes", or at the end."""
    s = "".join(line + "\n" for line in section)
    out, done, skip = [], False, False
    for line in md.splitlines():
        if line.startswith("## Several nodes on Redis"):
            if not done:
                out.append(s + "\n")
                done = True
            skip = True
            continue
        if skip and line.startswith("## "):
            skip = False
        if skip:
            continue
        if not done and re.match(r"## (How it was measured|Where the time goes)", line):
            out.append(s + "\n")
            done = True
        out.append(line + "\n")
    if not done:
        out.append("\n" + s)
    return "".join(out)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    work = Path(sys.argv[1])
    m = json.loads((work / "meta.json").read_text())
    r = Results(work)
    out_md = Path(m["out_md"])
    out_md.parent.mkdir(parents=True, exist_ok=True)
    redis_lines = RedisSection(m, r).render() if m["run_redis"] else redis_not_run(m)
    if m["redis_only"]:
        md = out_md.read_text() if out_md.exists() else "# Benchmarks\n"
        out_md.write_text(splice_redis(md, redis_lines))
        return 0
    have_chart = False
    if m["chart"]:
        try:
            chart(work, r("relay_kvs")["msgs_per_s"], Path(m["out_png"]))
            have_chart = True
        except Exception:  # noqa: BLE001 (the report says there is no chart)
            traceback.print_exc()
    preserved = None
    if out_md.exists():
        text = out_md.read_text()
        at = re.search(r"^## Where the time goes", text, re.M)
        if at:
            preserved = text[at.start():].rstrip("\n")
    out_md.write_text("\n".join(main_report(m, r, redis_lines, have_chart, preserved)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
