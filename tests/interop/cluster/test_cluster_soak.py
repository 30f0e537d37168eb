"""Fault soak (issue 12, "What must work" 6, second half): three nodes on a Redis with its AOF
(`appendfsync always`), while clients connect to one channel, give up and retry:

- nodes are killed at random (kill -9) and restarted,
- Redis is killed (kill -9) and restarted on its AOF,
- Redis is stopped (SIGSTOP) for longer than the nodes' Redis response timeout (2 s), then
  continued;
- Redis stalls its writes only (`CLIENT PAUSE 3000 WRITE`, what a slow disk does under
  `appendfsync always`): reads are answered, so a connect gets past its channel check and waits
  on its presence claim, the step that must not leak when the client or the node gives up.

Clients (masters and viewers of one channel, spread over the nodes) connect fully and leave,
close the socket in the middle of the handshake (before the 101, while the node may be waiting
on Redis), or drop it (RST) right after the 101; a creator acknowledges channels meanwhile.

Afterwards (Redis up, every node up and ready), within one node lease (the suite's
--node-lease, plus 3 s for the renewal period and a busy machine):
- fresh clients reach the viewer limit again: exactly 10 viewers accepted, the 11th refused;
- never more than one master: masters on two nodes, the older is closed with 1000 (replaced);
- nothing acknowledged is lost: every channel created with a 200 during the soak exists, and a
  message sent to a held recipient after the soak is delivered when it connects.

Bounded and reproducible as far as threads allow: KVS_SOAK_SECONDS (default 60) and
KVS_SOAK_SEED (default: random, always printed); loopback only. Errors the clients meet are
classified: refusals other than 400 ClientLimitExceededException / 503 ServiceUnavailable, a
connect that hangs, an HTTP error other than 503 fail the test.
"""
from __future__ import annotations

import base64
import os
import random
import socket
import struct
import threading
import time
from collections import Counter
from urllib.parse import quote

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from cluster_harness import TEST_LEASE, Ws, WsRefused, b64, create, wait_until

SOAK_SECONDS = float(os.environ.get("KVS_SOAK_SECONDS", "60"))
VIEWERS = 10
REPLACED = 1000
CONNECT_HANG = 10.0  # a connect still unanswered after this long (Redis down or not) is a failure


def lease_seconds() -> float:
    v = TEST_LEASE.strip()
    return float(v[:-2]) / 1000 if v.endswith("ms") else float(v.rstrip("s"))


class Trio:
    """Three node slots; the chaos thread replaces a slot's node, clients pick one."""

    def __init__(self, start):
        self.start = start
        self.nodes = [start() for _ in range(3)]
        self.lock = threading.Lock()
        self.started = 3

    def pick(self, rng: random.Random):
        with self.lock:
            return rng.choice(self.nodes)

    def kill_and_restart(self, i: int, pause: float):
        with self.lock:
            old = self.nodes[i]
        old.kill()
        time.sleep(pause)
        new = self.start()
        with self.lock:
            self.nodes[i] = new
            self.started += 1


def chaos(trio: Trio, redis, rng: random.Random, deadline: float, log: list, errors: list):
    """Until the deadline: one fault at a time, each undone before the next (the last too)."""
    try:
        while True:
            time.sleep(rng.uniform(1.0, 3.0))
            if time.monotonic() >= deadline:
                return
            what = rng.choice(["kill-node", "kill-node", "kill-redis", "stop-redis", "pause-writes"])
            t = time.monotonic()
            if what == "kill-node":
                i = rng.randrange(3)
                trio.kill_and_restart(i, rng.uniform(0.0, 1.0))
                what += f" {i}"
            elif what == "pause-writes":
                ms = rng.randrange(2500, 4000)  # longer than the 2 s response timeout
                assert redis.cli("CLIENT", "PAUSE", str(ms), "WRITE") == ["OK"]
                time.sleep(ms / 1000)
            elif what == "kill-redis":
                redis.kill()
                time.sleep(rng.uniform(0.3, 2.0))
                redis.start()
            else:
                redis.pause()
                try:
                    time.sleep(rng.uniform(2.5, 4.0))  # longer than the 2 s response timeout
                finally:
                    redis.resume()
            log.append(f"{what} ({time.monotonic() - t:.1f}s)")
    except BaseException as e:  # reported by the test
        errors.append(f"chaos: {e!r}")


def _upgrade_request(node, arn: str, client_id: str | None) -> bytes:
    q = f"X-Amz-ChannelARN={quote(arn, safe='')}"
    if client_id is not None:
        q += f"&X-Amz-ClientId={quote(client_id, safe='')}"
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /?{q} HTTP/1.1\r\nHost: {node.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def _reset(sock: socket.socket):
    """Close with RST (SO_LINGER 0): the client is gone at once, no close frame, no FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def client(trio: Trio, arn: str, rng: random.Random, deadline: float, stats: Counter, unexpected: list):
    ids = [None] + [f"soak-v{i}" for i in range(14)]  # masters and a pool of viewer ids (over the limit)
    while time.monotonic() < deadline:
        node = trio.pick(rng)
        who = None if rng.random() < 0.2 else rng.choice(ids[1:])
        how = rng.choice(["full", "give-up-mid-handshake", "drop-after-101"])
        try:
            if how == "full":
                # Half of these clients give up after 1 s (the websockets client then closes
                # the socket mid-handshake), the others wait as long as a node may take.
                impatient = rng.random() < 0.5
                try:
                    w = Ws(node, arn, who, open_timeout=1.0 if impatient else CONNECT_HANG)
                except TimeoutError:
                    if not impatient:
                        raise
                    stats["full: gave up after 1s"] += 1
                    continue
                try:
                    # The master writes to a viewer that is mostly not connected: held messages
                    # to hand over on the viewer's next connect (one more Redis round trip).
                    w.send("ICE_CANDIDATE", b64("soak"), recipient="soak-v0" if who is None else None)
                    w.recv_within(rng.uniform(0.0, 1.5))
                finally:
                    w.close()
                stats["full: connected"] += 1
            else:
                with socket.create_connection(("127.0.0.1", node.port), timeout=CONNECT_HANG) as s:
                    s.sendall(_upgrade_request(node, arn, who))
                    if how == "give-up-mid-handshake":
                        # Gone before the answer: at once, or after waiting a while (a client's
                        # timeout during a Redis stall, while the node waits on Redis).
                        time.sleep(rng.uniform(0.0, 0.05) if rng.random() < 0.5 else rng.uniform(0.3, 2.5))
                        _reset(s)
                        stats[how] += 1
                    else:
                        head = s.recv(4096)
                        _reset(s)
                        if not head:  # the node closed it: killed under it
                            stats[f"{how}: closed"] += 1
                            continue
                        status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/1.1 ") else b"?"
                        stats[f"{how}: {status.decode(errors='replace')}"] += 1
                        if status not in (b"101", b"400", b"503"):
                            unexpected.append(f"{how} on :{node.port}: {head[:300]!r}")
        except WsRefused as e:
            kind = (e.json().get("__type") if e.body.startswith(b"{") else None)
            stats[f"refused {e.status} {kind}"] += 1
            if (e.status, kind) not in ((400, "ClientLimitExceededException"), (503, "ServiceUnavailable")):
                unexpected.append(f"{how} on :{node.port}: refused {e.status} {e.body[:300]!r}")
        except TimeoutError as e:
            unexpected.append(f"{how} on :{node.port}: no answer within {CONNECT_HANG}s ({e!r})")
        except (OSError, ConnectionClosed, InvalidHandshake) as e:  # a node killed under it
            stats[f"{how}: {type(e).__name__}"] += 1
        time.sleep(rng.uniform(0.0, 0.15))


def creator(trio: Trio, name: str, rng: random.Random, deadline: float, acked: list, unexpected: list,
            stats: Counter):
    i = 0
    while time.monotonic() < deadline:
        node = trio.pick(rng)
        n = f"{name}-k{i}"
        i += 1
        try:
            r = node.op("CreateSignalingChannel", {"ChannelName": n})
        except requests.RequestException as e:  # a node killed under it
            stats[f"create: {type(e).__name__}"] += 1
            continue
        stats[f"create: {r.status_code}"] += 1
        if r.status_code == 200:
            acked.append(n)
        elif r.status_code != 503 or r.json().get("__type") != "ServiceUnavailable":
            unexpected.append(f"create {n} on :{node.port}: {r.status_code} {r.text[:300]}")
        time.sleep(rng.uniform(0.05, 0.25))


def _presence(redis, arn) -> list[str]:
    keys = [k for k in redis.keys_of_channel(arn) if ":pr:" in k]
    return redis.cli("HGETALL", keys[0]) if keys else []


@pytest.mark.timeout(SOAK_SECONDS + 180)
def test_fault_soak_then_limits_one_master_and_nothing_lost(make_redis, make_node, name):
    seed = int(os.environ.get("KVS_SOAK_SEED") or random.SystemRandom().randrange(2**31))
    print(f"\nsoak: seed {seed} (KVS_SOAK_SEED={seed} repeats the choices), {SOAK_SECONDS:g}s")
    redis = make_redis()
    trio = Trio(lambda: make_node(redis=redis, max_viewers=VIEWERS))
    arn = create(trio.nodes[0], name)

    deadline = time.monotonic() + SOAK_SECONDS
    stats, unexpected, acked, log, chaos_errors = Counter(), [], [], [], []
    threads = [threading.Thread(target=chaos, args=(trio, redis, random.Random(seed), deadline, log, chaos_errors))]
    threads += [threading.Thread(target=client, args=(trio, arn, random.Random(seed + 1 + k), deadline, stats,
                                                      unexpected)) for k in range(8)]
    threads.append(threading.Thread(target=creator, args=(trio, name, random.Random(seed + 100), deadline, acked,
                                                          unexpected, stats)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(SOAK_SECONDS + 60)
    assert not any(t.is_alive() for t in threads), "a soak thread did not finish"
    print(f"soak: faults {log}")
    print(f"soak: {dict(sorted(stats.items()))}")
    assert not chaos_errors, chaos_errors
    assert log, "no fault was injected"
    assert not unexpected, f"{len(unexpected)} unexpected outcomes, e.g. {unexpected[:5]}"

    # Redis is up (the chaos thread undoes each fault), every node is up: none died by itself.
    assert redis.ping()
    for n in trio.nodes:
        assert n.proc.poll() is None, f"node :{n.port} died by itself during the soak:\n{n.log()}"
    wait_until(lambda: all(requests.get(n.url + "/ready", timeout=5).status_code == 200 for n in trio.nodes),
               timeout=15, interval=0.2, what="every node ready after the soak")
    bound = lease_seconds() + 3
    a, b, c = trio.nodes

    # 1. Fresh clients reach the viewer limit again within one lease: exactly 10, the 11th refused.
    fresh: dict[str, Ws] = {}
    t0 = time.monotonic()
    try:
        while len(fresh) < VIEWERS:
            for i in range(VIEWERS):
                cid = f"fresh-{i}"
                if cid not in fresh:
                    try:
                        fresh[cid] = Ws(trio.nodes[i % 3], arn, cid)
                    except WsRefused as e:
                        assert e.status == 400, e
            if len(fresh) < VIEWERS:
                if time.monotonic() - t0 > bound:
                    raise AssertionError(f"{bound:g}s after the soak only {len(fresh)} of {VIEWERS} fresh viewers "
                                         f"are accepted: presence leaked. Presence: {_presence(redis, arn)}")
                time.sleep(0.25)
        print(f"soak: the viewer limit was reachable again {time.monotonic() - t0:.1f}s after the soak")
        with pytest.raises(WsRefused) as refused:
            Ws(c, arn, "fresh-eleventh").close()
        assert refused.value.status == 400, refused.value
        assert refused.value.json().get("__type") == "ClientLimitExceededException", refused.value.body

        # 2. One master: a master on A, then one on B; A's is closed as replaced, B's gets offers.
        m1 = Ws(a, arn)
        m2 = Ws(b, arn)
        try:
            assert m1.closed_within(5) == REPLACED, "the first master was not replaced by the second"
            fresh["fresh-2"].send("SDP_OFFER", b64("after-soak"))
            got = m2.recv(5)
            assert got["messageType"] == "SDP_OFFER" and got["senderClientId"] == "fresh-2", got
            assert m2.is_open()

            # 3. A message to a recipient connected nowhere is held, and delivered when it
            # connects (to another node), once a place is free.
            m2.send("SDP_ANSWER", b64("held-after-soak"), recipient="late")
            for w in fresh.values():
                w.close()
            late = wait_until(lambda: _try(c, arn, "late"), timeout=bound, interval=0.25,
                              what="a place for the late viewer")
            try:
                got = late.recv(5)
                assert got["messageType"] == "SDP_ANSWER" and got["messagePayload"] == b64("held-after-soak"), got
            finally:
                late.close()
        finally:
            m1.close()
            m2.close()
    finally:
        for w in fresh.values():
            w.close()

    # 4. Every channel acknowledged during the soak is there.
    missing = [n for i, n in enumerate(acked)
               if trio.nodes[i % 3].op("DescribeSignalingChannel", {"ChannelName": n}).status_code != 200]
    print(f"soak: {len(acked)} creates acknowledged, {trio.started - 3} node restarts")
    assert acked, "no create was acknowledged during the soak"
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged channels lost: {missing[:10]}"


def _try(node, arn, client_id):
    try:
        return Ws(node, arn, client_id)
    except WsRefused as e:
        assert e.status == 400, e
        return None
