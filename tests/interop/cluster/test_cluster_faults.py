"""Faults (issue 8, item 5): a node killed with kill -9 mid-call, and Redis hanging (SIGSTOP),
dying (kill -9) and coming back on the same port with its AOF."""
import base64
import concurrent.futures
import json
import threading
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from cluster_harness import (RedisServer, Ws, WsRefused, b64, connect_status, create, describe, free_port,
                             lease_args, wait_until)
from kvs_harness import OPS, sign

OFFER = b64({"type": "offer", "sdp": "v=0\r\n"})
ANSWER = b64({"type": "answer", "sdp": "v=0\r\n"})


@pytest.mark.timeout(90)
def test_a_node_killed_mid_call(nodes, make_node, name):
    """Master on A, viewer on E talking; kill -9 E; the viewer reconnects with the same ClientId
    to C and the call goes on. Viewers that were on E stop counting toward the limit (2) within
    30 s, and the channels E acknowledged are all there."""
    a, _, c = nodes
    e = make_node()
    call = create(a, name)
    full = create(a, name + "-full")
    made_on_e = [create(e, f"{name}-e{i}") for i in range(5)]

    master = Ws(a, call)
    viewer = Ws(e, call, "caller")
    stale = [Ws(e, full, "s1"), Ws(e, full, "s2")]
    try:
        viewer.send("SDP_OFFER", OFFER)
        got = master.recv()
        assert got["messageType"] == "SDP_OFFER" and got["senderClientId"] == "caller", got
        master.send("SDP_ANSWER", ANSWER, recipient="caller")
        assert viewer.recv()["messageType"] == "SDP_ANSWER"
        assert connect_status(c, full, "s3") == 400, "the limit of 2 viewers is not in force"

        e.kill()
        killed_at = time.monotonic()
        # The master keeps trickling candidates to the viewer: first while it is connected
        # nowhere (held for its next connection), then while it reconnects, then live. It must
        # get every one, in order (docs/deployment.md: messages sent meanwhile to a client of
        # the dead node are held for its next connection). Started 0.3 s after the kill: in
        # the first milliseconds Redis may not have seen E's subscription drop yet.
        time.sleep(0.3)
        sent, stop = [], threading.Event()

        def trickle():
            for i in range(60):
                if stop.is_set():
                    return
                p = b64(f"away-{i}")
                master.send("ICE_CANDIDATE", p, recipient="caller")
                sent.append(p)
                time.sleep(0.07)  # under the 20/s ICE rate limit of the connection

        pump = threading.Thread(target=trickle)
        pump.start()
        time.sleep(0.4)
        # The viewer's socket is gone; it reconnects with the same ClientId to C at once (the
        # SDKs retry with backoff; a few seconds of retries are allowed).
        viewer.close()
        again = wait_until(lambda: _try_connect(c, call, "caller"), timeout=5, interval=0.2,
                           what="the viewer to reconnect to C with its ClientId")
        try:
            time.sleep(0.6)
            stop.set()
            pump.join(5)
            got = []
            while (f := again.recv_within(1.5)) is not None:
                got.append(f.get("messagePayload"))
            missing = [base64.b64decode(p).decode() for p in sent if p not in got]
            assert not missing, f"{len(missing)} of {len(sent)} messages to the reconnecting viewer lost: {missing}"
            assert got == sent, "the held and live messages arrived out of order"
            for i in range(3):
                again.send("ICE_CANDIDATE", b64(f"after-kill-{i}"))
            for i in range(3):
                got = master.recv()
                assert got["messageType"] == "ICE_CANDIDATE" and got["senderClientId"] == "caller", got
                assert got["messagePayload"] == b64(f"after-kill-{i}"), got
            master.send("ICE_CANDIDATE", b64("to-caller"), recipient="caller")
            got = again.recv()
            assert got["messagePayload"] == b64("to-caller"), got
        finally:
            stop.set()
            pump.join(5)
            again.close()

        # s1 and s2 lived on E: their places free up within 30 s (the node lease).
        fresh = wait_until(lambda: _try_connect(c, full, "s3"), timeout=30, interval=0.5,
                           what="the dead node's viewers to stop counting")
        freed_after = time.monotonic() - killed_at
        fresh.close()
        print(f"viewers of the killed node stopped counting after {freed_after:.1f}s")

        for arn in made_on_e:
            describe(c, arn)
    finally:
        for w in [master, viewer] + stale:
            w.close()


@pytest.mark.timeout(60)
def test_the_masters_node_killed(nodes, make_node, name):
    """Master on E, viewer on A; kill -9 E. What the viewer sends meanwhile is held; the master
    reconnects to C at once (its entry on the dead node does not block it) and gets it."""
    a, _, c = nodes
    e = make_node()
    arn = create(a, name)
    master = Ws(e, arn)
    viewer = Ws(a, arn, "v")
    try:
        viewer.send("SDP_OFFER", OFFER)
        assert master.recv()["senderClientId"] == "v"
        e.kill()
        master.close()
        viewer.send("ICE_CANDIDATE", b64("meanwhile-1"))
        viewer.send("ICE_CANDIDATE", b64("meanwhile-2"))
        time.sleep(0.3)
        again = wait_until(lambda: _try_connect(c, arn, None), timeout=5, interval=0.2,
                           what="the master to reconnect to C")
        try:
            for p in ("meanwhile-1", "meanwhile-2"):
                got = again.recv()
                assert got["messagePayload"] == b64(p) and got["senderClientId"] == "v", got
            again.send("SDP_ANSWER", ANSWER, recipient="v")
            assert viewer.recv()["messageType"] == "SDP_ANSWER"
        finally:
            again.close()
    finally:
        viewer.close()
        master.close()


def _try_connect(node, arn, client_id):
    try:
        return Ws(node, arn, client_id, open_timeout=5)
    except (WsRefused, OSError):
        return None


# --- Redis down ------------------------------------------------------------------------------
# docs/deployment.md "Failure behaviour", Redis unavailable: "Requests fail fast: at once when the
# connection is refused, within 2 seconds when Redis hangs, with a JSON `ServiceUnavailable`
# error (HTTP 503) [...] WebSocket connects are refused with 503 before the upgrade [...] `GET
# /ready` answers 503." The bound below is those 2 s plus 1 s of margin (a debug build on a busy
# 2-core machine, several checks at once); the status and the error code are exact.
PROMISED_FAIL_FAST = 2.0
FAIL_FAST = PROMISED_FAIL_FAST + 1.0


def timed_op(node, op, body, timeout=20.0):
    """(response, seconds) of one signed request, with our own timeout so a hang is measured."""
    data = json.dumps(body).encode()
    hdrs = sign("POST", OPS[op], {"Content-Type": "application/json", "Host": node.netloc}, data,
                key="AKIDEXAMPLE", secret="x", region="us-east-1")
    t0 = time.monotonic()
    r = requests.post(node.url + OPS[op], data=data, headers=hdrs, timeout=timeout)
    return r, time.monotonic() - t0


def assert_fast_503(r, took, what, limit=FAIL_FAST):
    assert took <= limit, f"{what}: took {took:.1f}s to fail (promised: within {PROMISED_FAIL_FAST:g} s)"
    assert r.status_code == 503, (what, r.status_code, r.text[:300])
    assert "json" in r.headers.get("Content-Type", ""), (what, r.headers)
    body = r.json()
    assert body.get("__type") == "ServiceUnavailable", (what, body)
    assert r.headers.get("x-amzn-ErrorType") == body["__type"], (what, r.headers)
    assert r.headers.get("x-amzn-RequestId"), (what, r.headers)
    assert isinstance(body.get("Message") or body.get("message"), str), (what, body)
    return body["__type"]


def check_open_call_during_outage(master, viewer):
    """docs/deployment.md: open WebSockets stay open while Redis is away, and a message sent
    meanwhile gets an error STATUS_RESPONSE (when it carries a correlationId)."""
    t0 = time.monotonic()
    viewer.send("ICE_CANDIDATE", b64("during-outage"), correlation_id="outage-1")
    got = viewer.recv(8)
    took = time.monotonic() - t0
    assert got["messageType"] == "STATUS_RESPONSE", got
    assert got["statusResponse"]["correlationId"] == "outage-1", got
    # The WebSocket answers backend failures as the HTTP API does (ServiceUnavailable, 503).
    assert got["statusResponse"].get("statusCode") == "503", got
    assert got["statusResponse"].get("errorType") == "ServiceUnavailable", got
    assert took <= FAIL_FAST, f"the STATUS_RESPONSE took {took:.1f}s (promised: within {PROMISED_FAIL_FAST:g} s)"
    assert master.is_open() and viewer.is_open()
    return got["statusResponse"].get("errorType")


def check_down(trio, arn, name):
    """While Redis is unavailable: 503 ServiceUnavailable JSON errors within the promised time,
    WS connects refused with 503 before the upgrade, /ready 503, /health alive. The checks run in
    parallel (each bounded)."""
    a, b, c = trio

    def ws_check(node, client_id):
        t0 = time.monotonic()
        try:
            w = Ws(node, arn, client_id, open_timeout=15)
        except WsRefused as e:
            return e.status, time.monotonic() - t0, e.body
        w.close()
        return 101, time.monotonic() - t0, b""

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        jobs = {
            "create on A": pool.submit(timed_op, a, "CreateSignalingChannel", {"ChannelName": name + "-down"}),
            "describe on B": pool.submit(timed_op, b, "DescribeSignalingChannel", {"ChannelARN": arn}),
            "list on C": pool.submit(timed_op, c, "ListSignalingChannels", {}),
            "ws viewer on C": pool.submit(ws_check, c, "down-viewer"),
            "ws master on A": pool.submit(ws_check, a, None),
        }
        names, timings = set(), {}
        for what, f in jobs.items():
            if what.startswith("ws"):
                status, took, body = f.result()
                timings[what] = took
                assert took <= FAIL_FAST, f"{what}: took {took:.1f}s (promised: within {PROMISED_FAIL_FAST:g} s)"
                assert status == 503, (what, status, body[:300])
            else:
                r, took = f.result()
                timings[what] = took
                names.add(assert_fast_503(r, took, what))
    print("  down: " + ", ".join(f"{w} {t:.2f}s" for w, t in timings.items()))
    for n in trio:
        assert n.proc.poll() is None, f"node {n.url} died while Redis was down:\n{n.log()}"
        assert requests.get(n.url + "/health", timeout=5).status_code == 200
        ready = requests.get(n.url + "/ready", timeout=10)
        assert ready.status_code == 503, f"/ready answered {ready.status_code} on {n.url} with Redis down"
    return names


def wait_recovered(trio, arn, timeout=10.0):
    t0 = time.monotonic()

    def ok():
        try:
            return all(n.op("DescribeSignalingChannel", {"ChannelARN": arn}).status_code == 200 for n in trio)
        except requests.RequestException:
            return False

    wait_until(ok, timeout=timeout, interval=0.25, what="every node to answer again after Redis returned")
    took = time.monotonic() - t0
    for n in trio:
        assert requests.get(n.url + "/ready", timeout=5).status_code == 200, n.url
    return took


def check_working(trio, name, tag):
    """Control plane and a cross-node call work (new channel, master on A, viewer on C)."""
    a, b, c = trio
    arn = create(b, f"{name}-{tag}")
    master = Ws(a, arn)
    viewer = Ws(c, arn, "after")
    try:
        viewer.send("SDP_OFFER", OFFER)
        got = master.recv()
        assert got["messageType"] == "SDP_OFFER" and got["senderClientId"] == "after", got
        master.send("SDP_ANSWER", ANSWER, recipient="after")
        assert viewer.recv()["messageType"] == "SDP_ANSWER"
    finally:
        master.close()
        viewer.close()


def probe_call(master, viewer, timeout=10.0):
    """For a call set up before an outage: "closed" if the server closed either side (a client
    then reconnects), "flows" once a viewer's candidate reaches the master again. A connection
    left open that silently drops messages fails the test."""
    deadline, i = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        i += 1
        try:
            viewer.send("ICE_CANDIDATE", b64(f"probe-{i}"))
        except ConnectionClosed:
            return "closed"
        while True:
            got = master.recv_within(1.0)
            if got is None:
                break
            if got.get("messageType") == "ICE_CANDIDATE" and got.get("messagePayload", "").startswith(
                    b64("probe-")[:4]):
                return "flows"
        if not (master.is_open() and viewer.is_open()):
            return "closed"
    raise AssertionError(f"a call open through the outage neither flows nor is closed {timeout}s after "
                         "Redis returned")


@pytest.mark.timeout(150)
def test_redis_hangs_dies_and_returns(make_redis, make_node, name):
    """Redis of the test's own under three nodes: SIGSTOP (hang), SIGCONT; then kill -9 during
    a stream of creates, restart on the same port and AOF directory. Nodes fail fast and
    cleanly while it is away, recover by themselves, and lose no acknowledged write."""
    redis = make_redis()
    calls = []
    trio = [make_node(redis=redis) for _ in range(3)]
    try:
        arn = create(trio[0], name)
        check_working(trio, name, "before")
        call = create(trio[1], name + "-call")
        calls.append((Ws(trio[0], call), Ws(trio[2], call, "through-hang")))

        # 1. Redis hangs: every connection to it is open but nothing comes back.
        redis.pause()
        try:
            names = check_down(trio, arn, name)
            status_error = check_open_call_during_outage(*calls[0])
        finally:
            redis.resume()
        took = wait_recovered(trio, arn)
        print(f"hang: errors {sorted(names)}, on the open call {status_error}; recovered {took:.1f}s after SIGCONT; "
              f"call open through it: {probe_call(*calls[0])}")
        check_working(trio, name, "after-hang")
        call2 = create(trio[1], name + "-call2")
        calls.append((Ws(trio[2], call2), Ws(trio[0], call2, "through-kill")))

        # 2. Redis dies (kill -9) under a stream of creates on all three nodes.
        acked, failed, stop = [], [], threading.Event()
        lock = threading.Lock()

        def writer(w):
            i = 0
            while not stop.is_set():
                n = f"{name}-w{w}-{i}"
                i += 1
                try:
                    r = trio[(w + i) % 3].op("CreateSignalingChannel", {"ChannelName": n})
                except requests.RequestException:
                    continue
                with lock:
                    (acked if r.status_code == 200 else failed).append((n, r.status_code))
                if r.status_code != 200:
                    time.sleep(0.05)

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(writer, w) for w in range(6)]
            wait_until(lambda: len(acked) >= 30, timeout=20, what="30 acknowledged creates")
            redis.kill()
            time.sleep(1.0)
            stop.set()
            for f in futures:
                f.result()
        assert all(s == 503 for _, s in failed), failed[:10]
        names = check_down(trio, arn, name)
        status_error = check_open_call_during_outage(*calls[1])

        redis.start()
        took = wait_recovered(trio, arn)
        print(f"kill -9: {len(acked)} creates acknowledged, {len(failed)} refused; errors {sorted(names)}, "
              f"on the open call {status_error}; "
              f"recovered {took:.1f}s after restart; call open through it: {probe_call(*calls[1])}")

        # Nothing acknowledged is lost (appendfsync always), and every node sees it.
        def present(i_n):
            i, (n, _) = i_n
            return n, trio[i % 3].op("DescribeSignalingChannel", {"ChannelName": n}).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            missing = [n for n, s in pool.map(present, enumerate(acked)) if s != 200]
        assert not missing, f"{len(missing)} acknowledged channels lost: {missing[:10]}"
        describe(trio[2], arn)
        check_working(trio, name, "after-kill")
        for n in trio:
            assert n.proc.poll() is None, n.log()
    finally:
        for pair in calls:
            for w in pair:
                w.close()


@pytest.mark.timeout(60)
def test_a_node_started_before_redis_serves_once_redis_is_there(tmp_path, spawn):
    """docs/deployment.md: "A node can start before Redis does: it answers 503 until Redis is
    reachable (`GET /ready` tells), and `GET /health` answers 200 as soon as the process
    serves." So the node must start (a failure to start, a crash included, fails the test), be
    not ready, answer 503 ServiceUnavailable at once (the connection is refused), and serve
    without a restart once Redis is there."""
    port = free_port()
    n = spawn("--embedded-turn", "false", *lease_args(), store=f"redis://127.0.0.1:{port}", ready_timeout=15)
    redis = None
    try:
        assert requests.get(n.url + "/health", timeout=10).status_code == 200
        assert requests.get(n.url + "/ready", timeout=10).status_code == 503, "ready with no Redis"
        r, took = timed_op(n, "ListSignalingChannels", {})
        assert_fast_503(r, took, "list with no Redis")
        redis = RedisServer(tmp_path / "late-redis", port=port)
        wait_until(lambda: n.op("ListSignalingChannels", {}).status_code == 200, timeout=10, interval=0.25,
                   what="the node to serve once Redis is up")
        create(n, "late-redis-ok")
        assert requests.get(n.url + "/ready", timeout=10).status_code == 200
    finally:
        if redis:
            redis.stop()


@pytest.mark.timeout(60)
def test_an_open_call_loses_nothing_once_redis_is_back(make_redis, make_node, name):
    """A call open through a short Redis outage (kill -9, 2 s, restart): once the control plane
    answers again, every message either side sends reaches the other, in order. (Messages held
    for a recipient that is still connected are never handed to it: only a reconnect would.)"""
    redis = make_redis()
    a, b = make_node(redis=redis), make_node(redis=redis)
    master = viewer = None
    try:
        arn = create(a, name)
        master, viewer = Ws(b, arn), Ws(a, arn, "v")
        viewer.send("ICE_CANDIDATE", b64("before"))
        assert master.recv()["messagePayload"] == b64("before")
        redis.kill()
        time.sleep(2.0)
        redis.start()
        wait_recovered([a, b], arn)
        for i in range(5):
            viewer.send("ICE_CANDIDATE", b64(f"v-{i}"))
            master.send("ICE_CANDIDATE", b64(f"m-{i}"), recipient="v")
            time.sleep(0.2)
        got_m = [master.recv_within(2.0) for _ in range(5)]
        got_v = [viewer.recv_within(2.0) for _ in range(5)]
        assert [g and g["messagePayload"] for g in got_m] == [b64(f"v-{i}") for i in range(5)], \
            "master missed viewer messages sent after Redis returned"
        assert [g and g["messagePayload"] for g in got_v] == [b64(f"m-{i}") for i in range(5)], \
            "viewer missed master messages sent after Redis returned"
    finally:
        for w in (master, viewer):
            if w:
                w.close()
