#!/usr/bin/env python3
"""Bounded soak (issue 13): steady signaling and control-plane traffic against one node on
SQLite, then three nodes on a real redis-server, checking that each node's memory and open
files come back to where they were before the load.

Usage (scripts/soak.sh sets up the binary and the venv):
    soak.py [--minutes N] [--mode single|cluster|both] [--warmup S] [--markdown FILE] [--seed N]

For each mode:
1. start the node(s): `kvs-signaling serve --store sqlite` on a fresh data dir, or three nodes
   on `--store redis://...` (tests/interop/cluster/cluster_harness.py: redis-server on a free
   loopback port, AOF on);
2. warm-up: the same load as the soak for `--warmup` seconds, then idle until every held
   message has expired and the connection gauges are 0 (polled), then the baseline: each
   node's VmRSS (/proc/PID/status) and open file descriptors (/proc/PID/fd), and its /metrics;
3. the soak, for `--minutes`: signaling workers each run sessions one after the other on a
   rotating set of channels of their own (MessageTtlSeconds 5, the minimum): a master and 1-2
   viewers connect (on different nodes in the cluster, so every message crosses nodes), SDP
   offers, answers and ICE candidates are relayed and checked frame by frame, the master sends
   two messages to a viewer that never connects (held, then expired), everyone closes, and every
   fourth session a second master takes over (the first must be closed with 1000). A control
   worker cycles create (with a tag) / describe / list / tag / list tags / untag / update /
   describe / GetSignalingChannelEndpoint / GetIceServerConfig, and on every other cycle
   connects a master, answers a SendAlexaOfferToMaster call, holds a message and deletes the
   channel under it (GO_AWAY, then close 1001 after --go-away-grace; the held message is
   dropped); a describe afterwards must be 404. A sampler reads RSS and fds every second;
4. after the load: idle again until held messages expired (held-message TTL plus a margin) and
   the gauges are 0, then poll until the fds are back to the baseline and RSS is within its
   bound (or the settle time runs out), and check everything below.

Checks (any failure exits 1; every request's and frame's result is checked, an unexpected one
is an error, never skipped):
- open fds of each node back to the baseline exactly: every socket a client opened is closed,
  and the files a node opens lazily (SQLite's WAL and shared memory, the Redis connections) were
  opened during the warm-up, before the baseline;
- VmRSS within baseline + max(10 MiB, 20 %): the allocator (mimalloc, crates/server/src/main.rs)
  keeps some freed pages and per-thread heaps for reuse, and the warm-up at the same load has
  already grown them, so a real leak (memory per connection or per message kept) shows as
  growth with the operations done;
- /metrics: masters and viewers connected 0; held messages 0 (single node: every message held
  is accounted for: held = expired + dropped with its deleted channel, none delivered from hold,
  replaced or dropped; cluster: no held-message keys `hm`/`hq`/`hx` left in Redis, docs/deployment.md
  'What is stored where', and no presence key `pr`); held = the messages the soak sent to absent
  recipients and to channels it then deleted, exactly; no connection refused, no message
  rejected, rate limited or dropped, no bus drop, no lease lapse;
- no ERROR line in any node's log; the channel count back to the baseline (nothing leaked);
  every node shuts down cleanly (exit 0 after SIGTERM, kvs_harness.Server.stop).

Loopback only; bounded by --minutes plus the settle bounds; stops by itself.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "interop" / "python"))
sys.path.insert(0, str(ROOT / "tests" / "interop" / "cluster"))
# No node is killed here: the nodes run with the default node lease (15 s, docs/deployment.md),
# not the multi-node suite's short one, so a busy machine does not make a lease lapse.
os.environ.setdefault("KVS_TEST_NODE_LEASE", "15s")

import requests  # noqa: E402

from cluster_harness import RedisServer, Ws, WsRefused, b64, start_node  # noqa: E402
from cluster_harness import stop_all as stop_nodes  # noqa: E402
from kvs_harness import Server  # noqa: E402

TTL = 5  # MessageTtlSeconds of every soak channel: the minimum (docs/protocol.md §3.1)
GRACE = 1.0  # --go-away-grace of every node (cluster_harness.NODE_FLAGS has the same)
FRAME = 15.0  # bounds a wait for one frame or close on a busy 2-core machine (debug build)
SETTLE = TTL + 25.0  # after the load: held messages expire (TTL), the sweep runs (1 s), sockets close
RSS_SETTLE = 30.0  # then how long RSS may take to come down to its bound (allocator purge delays)
RSS_SLACK_KIB = 10 * 1024
RSS_SLACK_FRACTION = 0.20
FD_SLACK = 0
# Counters that must not move during the soak (docs/behaviour.md 'Signaling data plane'); each
# must be in /metrics (a renamed one is a failure here, not a check that passes on nothing).
MUST_STAY = ("connections_rejected_total", "messages_rejected_total", "messages_rate_limited_total",
             "messages_dropped_overflow_total", "messages_held_slow_consumer_total",
             "connections_closed_slow_consumer_total", "messages_dropped_unavailable_total",
             "messages_replaced_total", "messages_delivered_from_hold_total", "bus_dropped_total",
             "bus_dropped_on_arrival_total", "lease_lapses_total", "connections_reregistered_total",
             "http_connections_refused_total", "http_accept_fd_exhausted_total", "api_requests_throttled_total")
# Held messages and presence on Redis (docs/deployment.md 'What is stored where').
REDIS_KINDS = ("hm", "hq", "hr", "hx", "pr")
LOG_ERROR = re.compile(r"\bERROR\b")
LOG_WARN = re.compile(r"\bWARN\b")


# --- the process side: RSS, fds, /metrics, logs ----------------------------------------------
def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int, readings: int = 5) -> int:
    out = fd_count(pid)
    for _ in range(readings - 1):
        time.sleep(0.2)
        out = min(out, fd_count(pid))
    return out


def metrics(node: Server) -> dict[str, int]:
    r = requests.get(node.url + "/metrics", timeout=10)
    assert r.status_code == 200, (node.url, r.status_code, r.text[:300])
    out = {}
    for line in r.text.splitlines():
        if line.startswith("kvs_"):
            k, v = line.split()
            out[k.removeprefix("kvs_signaling_").removeprefix("kvs_")] = int(float(v))
    return out


def log_lines(node: Server) -> list[str]:
    try:
        return Path(node._log.name).read_text(errors="replace").splitlines()
    except OSError:
        return []


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


class Sampler(threading.Thread):
    """RSS and fds of every process once a second while the load runs; keeps the peaks."""

    def __init__(self, procs: dict[str, int]):
        super().__init__(daemon=True)
        self.procs = procs
        self.peak_rss = {n: 0 for n in procs}
        self.peak_fds = {n: 0 for n in procs}
        self.samples = 0
        self.stop_event = threading.Event()

    def sample(self):
        for n, pid in self.procs.items():
            self.peak_rss[n] = max(self.peak_rss[n], rss_kib(pid))
            self.peak_fds[n] = max(self.peak_fds[n], fd_count(pid))
        self.samples += 1

    def run(self):
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(1.0)

    def stop(self):
        self.stop_event.set()
        self.join(10)
        self.sample()


# --- bookkeeping: every outcome is counted or reported -------------------------------------
class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = Counter()
        self.errors: list[str] = []
        self.held_absent = 0  # messages sent to a viewer id that never connects
        self.held_deleted = 0  # messages held on a channel the soak then deleted
        self.record = True

    def ok(self, op: str, n: int = 1):
        with self.lock:
            self.ops[op] += n

    def held(self, absent: int = 0, deleted: int = 0):
        with self.lock:
            self.held_absent += absent
            self.held_deleted += deleted

    def fail(self, what: str):
        with self.lock:
            self.errors.append(what)
            if len(self.errors) <= 20:
                print(f"soak: ERROR {what}", file=sys.stderr, flush=True)


class Failed(Exception):
    pass


def check(cond, what: str):
    if not cond:
        raise Failed(what)


def call(node: Server, op: str, body: dict, status: int = 200, error: str | None = None) -> dict:
    """One control-plane request (SigV4-signed by kvs_harness.sign); the status must be exactly
    `status` (and the AWS error code `error`). Returns the JSON body (or {})."""
    try:
        r = node.op(op, body)
    except requests.RequestException as e:
        raise Failed(f"{op} on :{node.port}: {e!r}") from None
    check(r.status_code == status, f"{op} on :{node.port}: HTTP {r.status_code}, expected {status}: {r.text[:300]}")
    if error is not None:
        check(r.headers.get("x-amzn-ErrorType") == error, f"{op}: {r.headers.get('x-amzn-ErrorType')} != {error}")
    return r.json() if r.content else {}


def post(node: Server, path: str, body: dict, status: int = 200) -> dict:
    try:
        r = node.post(path, body)
    except requests.RequestException as e:
        raise Failed(f"POST {path} on :{node.port}: {e!r}") from None
    check(r.status_code == status, f"POST {path} on :{node.port}: HTTP {r.status_code}: {r.text[:300]}")
    return r.json() if r.content else {}


def frame(w: Ws, kind: str, sender: str | None, payload: str | None, what: str):
    """The next frame on `w` is exactly `kind` from `sender` (None: no senderClientId, as for
    the master's messages and GO_AWAY) with `payload` (None: no messagePayload)."""
    try:
        f = w.recv(FRAME)
    except AssertionError as e:
        raise Failed(f"{what}: {e}") from None
    check(f.get("messageType") == kind, f"{what}: expected {kind}, got {f}")
    check(f.get("senderClientId") == sender, f"{what}: senderClientId {f.get('senderClientId')!r} != {sender!r}")
    check(f.get("messagePayload") == payload, f"{what}: payload differs: {f}")


def connect(node: Server, arn: str, client_id: str | None, tally: Tally) -> Ws:
    try:
        w = Ws(node, arn, client_id, open_timeout=FRAME)
    except WsRefused as e:
        raise Failed(f"connect {client_id or 'master'} on :{node.port}: refused {e}") from None
    except (OSError, TimeoutError) as e:
        raise Failed(f"connect {client_id or 'master'} on :{node.port}: {e!r}") from None
    w.conn.close_timeout = FRAME  # the harness's 2 s is short for a debug build on a busy machine
    tally.ok("ws connect " + ("master" if client_id is None else "viewer"))
    return w


def close(w: Ws, tally: Tally):
    """Close from the client's side: the server must answer the close handshake with 1000."""
    try:
        w.conn.close()
    except Exception as e:  # noqa: BLE001 (reported, not swallowed)
        raise Failed(f"{w}: close failed: {e!r}") from None
    check(w.conn.close_code == 1000, f"{w}: close answered with {w.conn.close_code}, expected 1000")
    tally.ok("ws close")


def closed_with(w: Ws, code: int, within: float, what: str, tally: Tally):
    got = w.closed_within(within)
    check(got == code, f"{what}: closed with {got}, expected {code} within {within}s")
    tally.ok(f"ws closed by server {code}")


# --- the load ----------------------------------------------------------------------------------
class Load:
    def __init__(self, nodes: list[Server], tally: Tally, run_id: str, seed: int, workers: int):
        self.nodes, self.tally, self.run_id, self.seed = nodes, tally, run_id, seed
        self.workers = workers
        # Two channels per signaling worker, used in turn (each worker owns its own: one master
        # per channel, so sessions never replace each other's masters by accident).
        self.channels: list[list[str]] = []
        self.ctl_seq = 0
        self.seq = [0] * workers  # sessions so far, per worker (client ids stay unique across runs)

    def create_channels(self):
        n = self.nodes[0]
        for w in range(self.workers):
            arns = []
            for k in range(2):
                body = {"ChannelName": f"soak-{self.run_id}-w{w}-{k}",
                        "SingleMasterConfiguration": {"MessageTtlSeconds": TTL}}
                arns.append(call(n, "CreateSignalingChannel", body)["ChannelARN"])
            self.channels.append(arns)

    def delete_channels(self):
        for i, arns in enumerate(self.channels):
            for arn in arns:
                call(self.nodes[i % len(self.nodes)], "DeleteSignalingChannel", {"ChannelARN": arn})

    def run(self, seconds: float) -> None:
        """Every worker until the deadline; each finishes its session (bounded by FRAME waits)."""
        deadline = time.monotonic() + seconds
        threads = [threading.Thread(target=self.signaling_worker, args=(w, deadline), name=f"sig-{w}")
                   for w in range(self.workers)]
        threads.append(threading.Thread(target=self.control_worker, args=(deadline,), name="ctl"))
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 10 * FRAME)
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            raise AssertionError(f"soak workers still running long after the deadline: {alive}")

    # One session: master, viewers, offer/answer/ICE both ways, two held messages, closes.
    def signaling_worker(self, w: int, deadline: float):
        rng = random.Random(self.seed * 1000 + w + self.seq[w])
        while time.monotonic() < deadline:
            self.seq[w] += 1
            seq = self.seq[w]
            open_ws: list[Ws] = []
            try:
                self.session(w, seq, rng, open_ws)
            except Failed as e:
                self.tally.fail(f"session w{w}#{seq}: {e}")
            except Exception:  # noqa: BLE001 (reported)
                self.tally.fail(f"session w{w}#{seq}: {traceback.format_exc(limit=3)}")
            finally:
                for x in open_ws:
                    x.close()  # only what a failed session left open; a clean session closed all
            time.sleep(rng.uniform(0.0, 0.05))

    def session(self, w: int, seq: int, rng: random.Random, open_ws: list):
        t = self.tally
        arn = self.channels[w][seq % 2]
        n = len(self.nodes)
        at = (w + seq) % n
        master = connect(self.nodes[at], arn, None, t)
        open_ws.append(master)
        ids = [f"v{w}-{seq}-{j}" for j in range(rng.randint(1, 2))]
        viewers = {}
        for j, cid in enumerate(ids):
            viewers[cid] = connect(self.nodes[(at + 1 + j) % n], arn, cid, t)
            open_ws.append(viewers[cid])
        # Two messages to a viewer that never connects: held, then expired (TTL) or swept. A
        # refusal would come back as a STATUS_RESPONSE (correlationId) ahead of the frames below.
        absent = f"absent{w}-{seq}"
        master.send("ICE_CANDIDATE", b64(f"held-ice {absent}"), recipient=absent, correlation_id=f"h1-{seq}")
        master.send("SDP_OFFER", b64(f"held-offer {absent}"), recipient=absent, correlation_id=f"h2-{seq}")
        t.held(absent=2)
        t.ok("message held for an absent viewer", 2)
        sdp = "v=0\r\no=- %d 2 IN IP4 127.0.0.1\r\ns=-\r\n" + "a=candidate:soak\r\n" * 10
        for cid, v in viewers.items():
            v.send("SDP_OFFER", b64({"type": "offer", "sdp": sdp % seq, "from": cid}), correlation_id=f"o-{cid}")
        offers = {}
        for _ in viewers:
            try:
                f = master.recv(FRAME)
            except AssertionError as e:
                raise Failed(f"master waiting for offers: {e}") from None
            check(f.get("messageType") == "SDP_OFFER" and f.get("senderClientId") in viewers,
                  f"master expected an SDP_OFFER from {list(viewers)}, got {f}")
            offers[f["senderClientId"]] = f["messagePayload"]
        for cid in viewers:
            check(offers.get(cid) == b64({"type": "offer", "sdp": sdp % seq, "from": cid}), f"offer of {cid} differs")
            t.ok("relayed viewer→master")
            master.send("SDP_ANSWER", b64({"type": "answer", "to": cid}), recipient=cid, correlation_id=f"a-{cid}")
            master.send("ICE_CANDIDATE", b64(f"m-ice {cid}"), recipient=cid, correlation_id=f"mi-{cid}")
        for cid, v in viewers.items():
            frame(v, "SDP_ANSWER", None, b64({"type": "answer", "to": cid}), f"viewer {cid} answer")
            frame(v, "ICE_CANDIDATE", None, b64(f"m-ice {cid}"), f"viewer {cid} ice")
            t.ok("relayed master→viewer", 2)
            v.send("ICE_CANDIDATE", b64(f"v-ice {cid}"), correlation_id=f"vi-{cid}")
        got = set()
        for _ in viewers:
            try:
                f = master.recv(FRAME)
            except AssertionError as e:
                raise Failed(f"master waiting for ICE: {e}") from None
            check(f.get("messageType") == "ICE_CANDIDATE" and f.get("messagePayload") == b64(f"v-ice {f.get('senderClientId')}"),
                  f"master expected ICE from a viewer, got {f}")
            got.add(f["senderClientId"])
            t.ok("relayed viewer→master")
        check(got == set(viewers), f"ICE from {got}, expected {set(viewers)}")
        for v in viewers.values():
            close(v, t)
        if seq % 4 == 0:
            # A second master, on another node: the first is closed with 1000 (replaced).
            second = connect(self.nodes[(at + 1) % n], arn, None, t)
            open_ws.append(second)
            closed_with(master, 1000, FRAME, "replaced master", t)
            close(second, t)
        else:
            close(master, t)
        open_ws.clear()
        t.ok("session")

    def control_worker(self, deadline: float):
        rng = random.Random(self.seed * 1000 + 999)
        while time.monotonic() < deadline:
            self.ctl_seq += 1
            open_ws: list[Ws] = []
            try:
                self.control_cycle(self.ctl_seq, open_ws)
            except Failed as e:
                self.tally.fail(f"control #{self.ctl_seq}: {e}")
            except Exception:  # noqa: BLE001 (reported)
                self.tally.fail(f"control #{self.ctl_seq}: {traceback.format_exc(limit=3)}")
            finally:
                for x in open_ws:
                    x.close()
            time.sleep(rng.uniform(0.05, 0.2))

    def control_cycle(self, i: int, open_ws: list):
        t, nodes = self.tally, self.nodes
        node = lambda k: nodes[(i + k) % len(nodes)]  # noqa: E731 (each call on another node)
        name = f"soak-{self.run_id}-c{i}"
        created = call(node(0), "CreateSignalingChannel", {
            "ChannelName": name, "SingleMasterConfiguration": {"MessageTtlSeconds": TTL},
            "Tags": [{"Key": "soak", "Value": self.run_id}]})
        arn = created["ChannelARN"]
        t.ok("CreateSignalingChannel")
        info = call(node(1), "DescribeSignalingChannel", {"ChannelARN": arn})["ChannelInfo"]
        check(info["ChannelName"] == name and info["ChannelStatus"] == "ACTIVE"
              and info["SingleMasterConfiguration"]["MessageTtlSeconds"] == TTL, f"describe: {info}")
        t.ok("DescribeSignalingChannel")
        listed = call(node(2), "ListSignalingChannels", {"ChannelNameCondition": {
            "ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name}})["ChannelInfoList"]
        check([c["ChannelName"] for c in listed] == [name], f"list: {listed}")
        t.ok("ListSignalingChannels")
        call(node(0), "TagResource", {"ResourceARN": arn, "Tags": [{"Key": "cycle", "Value": str(i)}]})
        t.ok("TagResource")
        tags = call(node(1), "ListTagsForResource", {"ResourceARN": arn})["Tags"]
        check(tags == {"soak": self.run_id, "cycle": str(i)}, f"tags: {tags}")
        t.ok("ListTagsForResource")
        call(node(2), "UntagResource", {"ResourceARN": arn, "TagKeyList": ["cycle"]})
        t.ok("UntagResource")
        call(node(0), "UpdateSignalingChannel", {"ChannelARN": arn, "CurrentVersion": info["Version"],
                                                 "SingleMasterConfiguration": {"MessageTtlSeconds": TTL + 1}})
        t.ok("UpdateSignalingChannel")
        after = call(node(1), "DescribeSignalingChannel", {"ChannelARN": arn})["ChannelInfo"]
        check(after["SingleMasterConfiguration"]["MessageTtlSeconds"] == TTL + 1
              and after["Version"] != info["Version"], f"describe after update: {after}")
        t.ok("DescribeSignalingChannel")
        eps = call(node(2), "GetSignalingChannelEndpoint", {"ChannelARN": arn, "SingleMasterChannelEndpointConfiguration": {
            "Protocols": ["WSS", "HTTPS"], "Role": "MASTER"}})["ResourceEndpointList"]
        check(sorted(e["Protocol"] for e in eps) == ["HTTPS", "WSS"], f"endpoints: {eps}")
        t.ok("GetSignalingChannelEndpoint")
        ice = post(node(0), "/v1/get-ice-server-config", {"ChannelARN": arn, "ClientId": "soak-viewer"})
        check(ice.get("IceServerList") and all(s["Uris"] and s["Username"] and s["Password"]
                                               for s in ice["IceServerList"]), f"ice: {ice}")
        t.ok("GetIceServerConfig")
        if i % 2 == 0:
            # A master on the channel: a SendAlexaOfferToMaster call it answers, a message held
            # for a viewer that never comes, then the delete under it.
            master = connect(node(1), arn, None, t)
            open_ws.append(master)
            alexa = f"alexa-{i}"
            offer, answer = b64({"type": "offer", "alexa": i}), b64({"type": "answer", "alexa": i})
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                fut = pool.submit(post, node(2), "/v1/send-alexa-offer-to-master",
                                  {"ChannelARN": arn, "SenderClientId": alexa, "MessagePayload": offer})
                frame(master, "SDP_OFFER", alexa, offer, "master waiting for the Alexa offer")
                master.send("SDP_ANSWER", answer, recipient=alexa, correlation_id=f"alexa-{i}")
                got = fut.result(timeout=2 * FRAME)
            check(got == {"Answer": answer}, f"SendAlexaOfferToMaster: {got}")
            t.ok("SendAlexaOfferToMaster")
            # The master's session handles its frames one after the other: once the viewer has
            # the second message, the first is held (else a delete on another node could win
            # the race, and the message would rightly be refused as sent to a deleted channel).
            viewer = connect(node(2), arn, f"ctl-viewer-{i}", t)
            open_ws.append(viewer)
            master.send("ICE_CANDIDATE", b64("held-then-deleted"), recipient=f"gone-{i}", correlation_id=f"g-{i}")
            master.send("ICE_CANDIDATE", b64("after the held one"), recipient=f"ctl-viewer-{i}", correlation_id=f"c-{i}")
            frame(viewer, "ICE_CANDIDATE", None, b64("after the held one"), "control viewer")
            t.held(deleted=1)
            t.ok("message held, then dropped by the delete")
            t.ok("relayed master→viewer")
            call(node(0), "DeleteSignalingChannel", {"ChannelARN": arn})
            t.ok("DeleteSignalingChannel")
            for w in (master, viewer):
                frame(w, "GO_AWAY", None, None, f"{w} of a deleted channel")
                closed_with(w, 1001, GRACE + FRAME, f"{w} of a deleted channel", t)
            open_ws.clear()
        else:
            call(node(0), "DeleteSignalingChannel", {"ChannelARN": arn})
            t.ok("DeleteSignalingChannel")
        call(node(1), "DescribeSignalingChannel", {"ChannelARN": arn}, status=404, error="ResourceNotFoundException")
        t.ok("DescribeSignalingChannel of a deleted channel: 404")


def channel_count(node: Server) -> int:
    n, token = 0, None
    while True:
        body = {"MaxResults": 100, **({"NextToken": token} if token else {})}
        out = call(node, "ListSignalingChannels", body)
        n += len(out["ChannelInfoList"])
        token = out.get("NextToken")
        if not token:
            return n


# --- one mode ----------------------------------------------------------------------------------
class Mode:
    def __init__(self, name: str, nodes: list[Server], redis: RedisServer | None):
        self.name, self.nodes, self.redis = name, nodes, redis
        self.node_names = ["node"] if len(nodes) == 1 else [f"node {c}" for c in "ABC"[:len(nodes)]]

    def procs(self) -> dict[str, int]:
        return {n: s.proc.pid for n, s in zip(self.node_names, self.nodes)}

    def held_left(self) -> str | None:
        """What is still held (None: nothing)."""
        if self.redis is not None:
            keys = [k for kind in REDIS_KINDS for k in self.redis.cli("--scan", "--pattern", f"kvs:*:{kind}:*")]
            return f"Redis keys left: {keys[:10]} ({len(keys)})" if keys else None
        m = metrics(self.nodes[0])
        left = (m["messages_held_total"] - m["messages_expired_total"] - m["messages_dropped_deleted_total"]
                - m["messages_delivered_from_hold_total"] - m["messages_replaced_total"]
                - m["messages_dropped_overflow_total"])
        return f"{left} held messages not yet expired" if left else None

    def idle(self) -> str | None:
        """Why the node(s) are not idle yet (None: idle): connections left (the /metrics request
        asking is the one HTTP connection open), or held messages."""
        for n, s in zip(self.node_names, self.nodes):
            m = metrics(s)
            if m["masters_connected"] or m["viewers_connected"] or m["http_connections_open"] != 1:
                return (f"{n}: {m['masters_connected']} masters, {m['viewers_connected']} viewers connected, "
                        f"{m['http_connections_open']} connections open")
        return self.held_left()

    def wait_idle(self, bound: float) -> float:
        t0 = time.monotonic()
        while True:
            why = self.idle()
            if why is None:
                return time.monotonic() - t0
            if time.monotonic() - t0 > bound:
                raise AssertionError(f"{self.name}: not idle {bound:g}s after the load: {why}")
            time.sleep(0.25)


def run_mode(mode_name: str, minutes: float, warmup: float, seed: int, workers: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"kvs-soak-{mode_name}-"))
    redis = None
    nodes: list[Server] = []
    run_id = uuid.uuid4().hex[:8]
    tally = Tally()
    result: dict = {"mode": mode_name, "minutes": minutes, "seed": seed, "workers": workers}
    failures: list[str] = []
    try:
        if mode_name == "single":
            nodes.append(Server("--embedded-turn", "false", "--go-away-grace", f"{GRACE:g}s",
                                "--shutdown-timeout", "3s", data_dir=tmp / "data", store="sqlite"))
            label = "one node, SQLite"
        else:
            redis = RedisServer(tmp / "redis")
            nodes.extend(start_node(redis, max_viewers=10) for _ in range(3))
            label = "three nodes on Redis"
        mode = Mode(mode_name, nodes, redis)
        print(f"soak[{mode_name}]: {label}, ports {[s.port for s in nodes]}, seed {seed}, "
              f"{workers} signaling workers + 1 control worker", flush=True)
        load = Load(nodes, tally, run_id, seed, workers)
        load.create_channels()

        # Warm-up at the same load, then idle: the baseline is taken with everything the load
        # makes a node open or allocate once (pools, lazily opened files, allocator heaps).
        load.run(warmup)
        mode.wait_idle(SETTLE)
        warm_errors = list(tally.errors)
        base_rss = {n: rss_kib(p) for n, p in mode.procs().items()}
        # The fewest of a few readings: the socket of the last /metrics request may not be
        # closed on the node's side yet, and the baseline must not count it.
        base_fds = {n: settled_fds(p) for n, p in mode.procs().items()}
        base_m = [metrics(s) for s in nodes]
        base_channels = channel_count(nodes[0])
        held0 = (tally.held_absent, tally.held_deleted)
        ops0 = Counter(tally.ops)
        print(f"soak[{mode_name}]: baseline after {warmup:g}s warm-up: RSS "
              f"{ {n: mib(v) for n, v in base_rss.items()} } MiB, fds {base_fds}", flush=True)

        sampler = Sampler(mode.procs())
        sampler.start()
        t0 = time.monotonic()
        load.run(minutes * 60)
        load_s = time.monotonic() - t0
        sampler.stop()
        settle_s = mode.wait_idle(SETTLE)

        # Back to the baseline: fds exactly (FD_SLACK), RSS within its bound; polled.
        rss_bound = {n: b + max(RSS_SLACK_KIB, int(b * RSS_SLACK_FRACTION)) for n, b in base_rss.items()}
        t1 = time.monotonic()
        while True:
            after_rss = {n: rss_kib(p) for n, p in mode.procs().items()}
            after_fds = {n: fd_count(p) for n, p in mode.procs().items()}
            back = (all(after_fds[n] <= base_fds[n] + FD_SLACK for n in after_fds)
                    and all(after_rss[n] <= rss_bound[n] for n in after_rss))
            if back or time.monotonic() - t1 > RSS_SETTLE:
                break
            time.sleep(0.5)
        settle_s += time.monotonic() - t1
        end_m = [metrics(s) for s in nodes]
        end_channels = channel_count(nodes[0])

        delta = Counter()
        for a, b in zip(base_m, end_m):
            for k, v in b.items():
                if k.endswith("_total"):
                    delta[k] += v - a.get(k, 0)
        held_absent = tally.held_absent - held0[0]
        held_deleted = tally.held_deleted - held0[1]
        ops = tally.ops - ops0
        failures += [f"warm-up: {e}" for e in warm_errors] + tally.errors[len(warm_errors):]

        # --- the checks ---
        for n in base_fds:
            if after_fds[n] > base_fds[n] + FD_SLACK:
                failures.append(f"{n}: {after_fds[n]} open fds after the soak, baseline {base_fds[n]} "
                                f"(+{FD_SLACK} allowed): {fd_targets(mode.procs()[n])}")
            if after_rss[n] > rss_bound[n]:
                failures.append(f"{n}: VmRSS {mib(after_rss[n])} MiB after the soak, baseline "
                                f"{mib(base_rss[n])} MiB, bound {mib(rss_bound[n])} MiB")
        if delta["messages_held_total"] != held_absent + held_deleted:
            failures.append(f"messages held: {delta['messages_held_total']}, the soak sent "
                            f"{held_absent} to absent viewers and {held_deleted} to channels it deleted")
        if delta["messages_dropped_deleted_total"] != held_deleted:
            failures.append(f"held messages dropped with their channel: {delta['messages_dropped_deleted_total']}, "
                            f"expected {held_deleted}")
        if mode_name == "single" and delta["messages_expired_total"] != held_absent:
            failures.append(f"held messages expired: {delta['messages_expired_total']}, expected {held_absent}")
        for k in MUST_STAY:
            if k not in end_m[0]:
                failures.append(f"{k} is not in /metrics")
            elif delta[k]:
                failures.append(f"{k} moved by {delta[k]} during the soak")
        if end_channels != base_channels:
            failures.append(f"{end_channels} channels after the soak, {base_channels} before")
        for n, s in zip(mode.node_names, nodes):
            errs = [line for line in log_lines(s) if LOG_ERROR.search(line)]
            if errs:
                failures.append(f"{n}: {len(errs)} ERROR lines in its log, e.g. {errs[:3]}")
        if not ops["session"]:
            failures.append("no signaling session completed")
        if not ops["CreateSignalingChannel"]:
            failures.append("no control-plane cycle completed")

        result.update(
            label=label, load_s=round(load_s, 1), settle_s=round(settle_s, 1), warmup_s=warmup,
            base_rss=base_rss, peak_rss=sampler.peak_rss, after_rss=after_rss, rss_bound=rss_bound,
            base_fds=base_fds, peak_fds=sampler.peak_fds, after_fds=after_fds, samples=sampler.samples,
            ops=dict(ops), held_absent=held_absent, held_deleted=held_deleted,
            metrics={k: delta[k] for k in ("connections_total", "messages_relayed_total", "messages_held_total",
                                           "messages_expired_total", "messages_dropped_deleted_total",
                                           "bus_published_total")},
            warnings=sum(1 for s in nodes for line in log_lines(s) if LOG_WARN.search(line)),
            channels=base_channels)
        load.delete_channels()
    except BaseException as e:  # reported as a failure of this mode, after the shutdown below
        failures.append(f"{type(e).__name__}: {e}")
        traceback.print_exc()
    finally:
        try:
            stop_nodes(nodes)
        except AssertionError as e:
            failures.append(f"shutdown: {e}")
        if redis is not None:
            try:
                redis.stop()
            except AssertionError as e:
                failures.append(f"redis: {e}")
        shutil.rmtree(tmp, ignore_errors=True)
    result["failures"] = failures
    result["errors"] = len(failures)
    return result


def fd_targets(pid: int) -> dict[str, int]:
    """What the open fds point at, by kind (socket, pipe, anon_inode:..., a path)."""
    kinds = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds[re.sub(r"\[\d+\]$", "", target)] += 1
    return dict(kinds)


# --- the report -----------------------------------------------------------------------------
def markdown(results: list[dict]) -> str:
    out = []
    for r in results:
        out.append(f"**{r.get('label', r['mode'])}**: {r['minutes']:g} min of load "
                   f"({r.get('load_s', '?')} s measured, after a {r.get('warmup_s', '?')} s warm-up and idle; "
                   f"{r['workers']} signaling workers and 1 control worker; settled {r.get('settle_s', '?')} s "
                   f"after the load; seed {r['seed']}); {r['errors']} errors.")
        out.append("")
        if "base_rss" in r:
            out.append("| process | VmRSS baseline | peak | after (bound) | open fds baseline | peak | after |")
            out.append("|---|---|---|---|---|---|---|")
            for n in r["base_rss"]:
                out.append(f"| {n} | {mib(r['base_rss'][n])} MiB | {mib(r['peak_rss'][n])} MiB | "
                           f"{mib(r['after_rss'][n])} MiB (≤ {mib(r['rss_bound'][n])}) | {r['base_fds'][n]} | "
                           f"{r['peak_fds'][n]} | {r['after_fds'][n]} |")
            out.append("")
            ops = r["ops"]
            out.append("| operations | count |")
            out.append("|---|---|")
            for k in sorted(ops, key=lambda k: (-ops[k], k)):
                out.append(f"| {k} | {ops[k]:,} |")
            m = r["metrics"]
            out.append(f"| `/metrics` deltas (all nodes): connections, relayed, held, expired, dropped with a deleted "
                       f"channel, bus published | {m['connections_total']:,}, {m['messages_relayed_total']:,}, "
                       f"{m['messages_held_total']:,}, {m['messages_expired_total']:,}, "
                       f"{m['messages_dropped_deleted_total']:,}, {m['bus_published_total']:,} |")
            out.append(f"| WARN lines in the nodes' logs | {r['warnings']} |")
            out.append("")
        for f in r["failures"][:20]:
            out.append(f"- FAILED: {f}")
        if r["failures"]:
            out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--mode", choices=["single", "cluster", "both"], default="both")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the baseline")
    ap.add_argument("--workers", type=int, default=4, help="signaling workers (each one session at a time)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--markdown", type=Path, default=None, help="also write the summary here")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    a = ap.parse_args()
    if a.minutes <= 0 or a.minutes > 60 or a.warmup < 0 or a.warmup > 300 or not 1 <= a.workers <= 32:
        ap.error("--minutes in (0, 60], --warmup in [0, 300], --workers in [1, 32]")
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(2**31)
    modes = ["single", "cluster"] if a.mode == "both" else [a.mode]
    results = []
    for m in modes:
        r = run_mode(m, a.minutes, a.warmup, seed, a.workers)
        results.append(r)
        print(markdown([r]), flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    if a.markdown:
        a.markdown.write_text(markdown(results) + "\n")
    failed = sum(1 for r in results if r["errors"])
    print(f"soak: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
