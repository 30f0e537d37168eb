"""The signaling WebSocket across nodes (issue 8, items 2-4): a viewer and a master on different
nodes talk as on one node; held messages wait in Redis for a recipient who connects to any node,
with the TTL they were accepted under; one master and the viewer limit are cluster-wide; GO_AWAY
on delete reaches every node, and a node's shutdown sends GO_AWAY to its own connections only.

Every node runs with --max-viewers 2 and --go-away-grace 1s (cluster_harness.NODE_FLAGS)."""
import time

import pytest

from cluster_harness import Ws, WsRefused, b64, connect_status, create, delete, metric, update_ttl, wait_until

# docs/behaviour.md: "Close codes: 1000 for idle timeout, maximum duration and replacement; 1001
# after GO_AWAY."
REPLACED = 1000
GONE_AWAY = 1001

OFFER = b64({"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"})
ANSWER = b64({"type": "answer", "sdp": "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n"})


def cand(i: int) -> str:
    return b64({"candidate": f"candidate:{i} 1 udp {2000 + i} 10.0.0.{i} {9000 + i} typ host",
                "sdpMid": "0", "sdpMLineIndex": 0})


def expect(ws: Ws, kind: str, payload: str, sender: str | None = None, timeout: float = 5.0) -> dict:
    got = ws.recv(timeout)
    assert got.get("messageType") == kind, (ws, kind, got)
    assert got.get("messagePayload") == payload, (ws, got)
    if sender is not None:
        assert got.get("senderClientId") == sender, (ws, got)
    return got


def assert_quiet(ws: Ws, seconds: float):
    got = ws.recv_within(seconds)
    assert got is None, (ws, "expected nothing, got", got)


@pytest.mark.timeout(60)
def test_viewer_and_master_on_different_nodes_exchange_offer_answer_and_candidates(nodes, name):
    a, b, c = nodes
    arn = create(c, name)
    master = Ws(b, arn)
    viewer = Ws(a, arn, "viewer-a")
    other = Ws(c, arn, "viewer-c")
    try:
        viewer.send("SDP_OFFER", OFFER)
        expect(master, "SDP_OFFER", OFFER, sender="viewer-a")
        master.send("SDP_ANSWER", ANSWER, recipient="viewer-a")
        expect(viewer, "SDP_ANSWER", ANSWER)
        for i in range(3):
            viewer.send("ICE_CANDIDATE", cand(i))
            master.send("ICE_CANDIDATE", cand(100 + i), recipient="viewer-a")
        for i in range(3):
            expect(master, "ICE_CANDIDATE", cand(i), sender="viewer-a")
            expect(viewer, "ICE_CANDIDATE", cand(100 + i))
        # A second viewer on a third node gets only what is addressed to it.
        other.send("SDP_OFFER", OFFER)
        expect(master, "SDP_OFFER", OFFER, sender="viewer-c")
        master.send("SDP_ANSWER", ANSWER, recipient="viewer-c")
        expect(other, "SDP_ANSWER", ANSWER)
        assert_quiet(viewer, 0.5)
        # An invalid message still gets its STATUS_RESPONSE from the sender's node.
        viewer.send("SDP_OFFER", "***", correlation_id="bad-1")
        got = viewer.recv()
        assert got["messageType"] == "STATUS_RESPONSE", got
        assert got["statusResponse"]["correlationId"] == "bad-1", got
        assert_quiet(master, 0.3)
    finally:
        for w in (master, viewer, other):
            w.close()


@pytest.mark.timeout(60)
def test_a_late_master_on_another_node_receives_held_messages_in_order(nodes, name):
    a, b, c = nodes
    arn = create(b, name)
    viewer = Ws(a, arn, "early")
    payloads = [("SDP_OFFER", OFFER)] + [("ICE_CANDIDATE", cand(i)) for i in range(3)]
    for kind, p in payloads:
        viewer.send(kind, p)
    time.sleep(0.3)
    master = Ws(c, arn)
    try:
        for kind, p in payloads:
            expect(master, kind, p, sender="early")
        assert_quiet(master, 0.5)
        # Held the other way: the master answers a viewer that is connected nowhere, who then
        # connects to a third node.
        master.send("SDP_ANSWER", ANSWER, recipient="late-viewer")
        master.send("ICE_CANDIDATE", cand(7), recipient="late-viewer")
        time.sleep(0.3)
        late = Ws(b, arn, "late-viewer")
        try:
            expect(late, "SDP_ANSWER", ANSWER)
            expect(late, "ICE_CANDIDATE", cand(7))
            assert_quiet(late, 0.3)
        finally:
            late.close()
        # Live traffic still flows after the held messages.
        viewer.send("ICE_CANDIDATE", cand(9))
        expect(master, "ICE_CANDIDATE", cand(9), sender="early")
    finally:
        viewer.close()
        master.close()


@pytest.mark.timeout(60)
def test_held_messages_expire_across_nodes(nodes, name):
    a, b, _ = nodes
    arn = create(a, name, ttl=5)
    viewer = Ws(a, arn, "v")
    viewer.send("SDP_OFFER", OFFER)
    viewer.send("ICE_CANDIDATE", cand(1))
    time.sleep(6.5)
    master = Ws(b, arn)
    try:
        assert_quiet(master, 1.5)
        # Messages sent now are delivered live, on any node.
        viewer.send("ICE_CANDIDATE", cand(2))
        expect(master, "ICE_CANDIDATE", cand(2), sender="v")
    finally:
        viewer.close()
        master.close()


@pytest.mark.timeout(60)
def test_a_ttl_update_on_another_node_applies_only_to_later_messages(nodes, name):
    """The seed case across nodes: TTL 120, msg1; TTL updated to 5 through node C; msg2 right
    after the update's response; 6 s later a master on B gets msg1 only. msg2 is accepted by A,
    which must use the TTL C just wrote (no stale copy)."""
    a, b, c = nodes
    arn = create(a, name, ttl=120)
    viewer = Ws(a, arn, "seed")
    try:
        viewer.send("ICE_CANDIDATE", b64("msg1"))
        time.sleep(0.2)
        update_ttl(c, arn, 5)
        viewer.send("ICE_CANDIDATE", b64("msg2"))
        time.sleep(6.0)
        master = Ws(b, arn)
        try:
            expect(master, "ICE_CANDIDATE", b64("msg1"), sender="seed")
            assert_quiet(master, 1.0)
        finally:
            master.close()
    finally:
        viewer.close()


@pytest.mark.timeout(60)
def test_one_master_cluster_wide(nodes, name):
    a, b, c = nodes
    arn = create(a, name)
    m1 = Ws(a, arn)
    m2 = Ws(b, arn)
    viewer = Ws(c, arn, "v")
    try:
        assert m1.closed_within(5) == REPLACED, "the first master (node A) was not closed by a master on B"
        viewer.send("SDP_OFFER", OFFER)
        expect(m2, "SDP_OFFER", OFFER, sender="v")
        m2.send("SDP_ANSWER", ANSWER, recipient="v")
        expect(viewer, "SDP_ANSWER", ANSWER)
        # And back: a master on C replaces the one on B.
        m3 = Ws(c, arn)
        try:
            assert m2.closed_within(5) == REPLACED, "the master on B was not closed by a master on C"
            viewer.send("ICE_CANDIDATE", cand(1))
            expect(m3, "ICE_CANDIDATE", cand(1), sender="v")
        finally:
            m3.close()
    finally:
        for w in (m1, m2, viewer):
            w.close()


@pytest.mark.timeout(60)
def test_the_viewer_limit_counts_viewers_on_every_node(nodes, name):
    a, b, c = nodes
    arn = create(a, name)
    master = Ws(c, arn)
    v1 = Ws(a, arn, "v1")
    v2 = Ws(b, arn, "v2")
    try:
        with pytest.raises(WsRefused) as refused:
            Ws(c, arn, "v3").close()
        # As on one node (crates/server/tests/ws_signaling.rs): HTTP 400 at the handshake, with
        # the AWS error as JSON.
        assert refused.value.status == 400, refused.value
        assert refused.value.json().get("__type") == "ClientLimitExceededException", refused.value.body
        # The master does not count; reconnecting v1 on another node replaces it (not a third
        # viewer) and closes the old connection on A.
        v1b = Ws(c, arn, "v1")
        try:
            assert v1.closed_within(5) == REPLACED, "v1's old connection on A was not closed"
            master.send("SDP_ANSWER", ANSWER, recipient="v1")
            expect(v1b, "SDP_ANSWER", ANSWER)
            v1b.send("SDP_OFFER", OFFER)
            expect(master, "SDP_OFFER", OFFER, sender="v1")
        finally:
            v1b.close()
        # A viewer that leaves frees its place for a viewer on any node.
        v2.close()
        status = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            status = connect_status(a, arn, "v4")
            if status == 101:
                break
            time.sleep(0.2)
        assert status == 101, f"v2 left but v4 is still refused ({status})"
    finally:
        for w in (master, v1, v2):
            w.close()


@pytest.mark.timeout(60)
def test_go_away_on_delete_reaches_every_node(nodes, name):
    a, b, c = nodes
    arn = create(b, name)
    conns = [Ws(a, arn), Ws(b, arn, "vb"), Ws(c, arn, "vc")]
    try:
        delete(a, arn)
        for w in conns:
            got = w.recv(5)
            assert got["messageType"] == "GO_AWAY", (w, got)
        # Then each is closed after the 1 s grace, with a close frame (1001 going away).
        for w in conns:
            assert w.closed_within(5) == GONE_AWAY, w
        for n in nodes:
            assert connect_status(n, arn, "late") == 404
    finally:
        for w in conns:
            w.close()


@pytest.mark.timeout(60)
def test_shutting_one_node_down_sends_go_away_to_its_connections_only(nodes, make_node, name):
    a, b, c = nodes
    d = make_node()
    arn = create(a, name)
    arn2 = create(a, name + "-2")
    on_d = [Ws(d, arn), Ws(d, arn2, "d-viewer")]
    elsewhere = [Ws(a, arn, "a-viewer"), Ws(b, arn2)]
    try:
        d.proc.terminate()
        for w in on_d:
            got = w.recv(5)
            assert got["messageType"] == "GO_AWAY", (w, got)
        for w in elsewhere:
            assert_quiet(w, 1.0)
        for w in on_d:
            assert w.closed_within(8) == GONE_AWAY, w
        assert d.proc.wait(timeout=10) == 0, d.log()
        # What the viewer on A sends before the master is back is held (D said goodbye: its
        # master no longer counts), and reaches the master when it reconnects to C.
        elsewhere[0].send("ICE_CANDIDATE", cand(5))
        time.sleep(0.2)
        m = Ws(c, arn)
        try:
            expect(m, "ICE_CANDIDATE", cand(5), sender="a-viewer")
            elsewhere[0].send("SDP_OFFER", OFFER)
            expect(m, "SDP_OFFER", OFFER, sender="a-viewer")
            m.send("SDP_ANSWER", ANSWER, recipient="a-viewer")
            expect(elsewhere[0], "SDP_ANSWER", ANSWER)
        finally:
            m.close()
    finally:
        for w in on_d + elsewhere:
            w.close()


@pytest.mark.timeout(60)
def test_a_newer_held_offer_replaces_the_older_across_nodes(nodes, name):
    """docs/protocol.md §6.3: a pending offer for the same client is overwritten by a newer one, also
    when the viewer sent them through different nodes (it reconnected in between)."""
    a, b, c = nodes
    arn = create(a, name)
    v = Ws(a, arn, "again")
    v.send("SDP_OFFER", b64("offer-1"))
    v.send("ICE_CANDIDATE", cand(1))
    time.sleep(0.2)
    v2 = Ws(b, arn, "again")
    try:
        assert v.closed_within(5) == REPLACED, "the viewer's first connection was not replaced"
        v2.send("SDP_OFFER", b64("offer-2"))
        v2.send("ICE_CANDIDATE", cand(2))
        time.sleep(0.3)
        master = Ws(c, arn)
        try:
            got = []
            while (f := master.recv_within(1.0)) is not None:
                got.append((f["messageType"], f["messagePayload"]))
            offers = [p for k, p in got if k == "SDP_OFFER"]
            assert offers == [b64("offer-2")], got
            assert [p for k, p in got if k == "ICE_CANDIDATE"] == [cand(1), cand(2)], got
        finally:
            master.close()
    finally:
        v.close()
        v2.close()


def _assert_no_recipient(ws: Ws, correlation_id: str):
    """docs/behaviour.md 'Deleting a channel': messages sent on a connection of a deleted
    channel have no recipient and are answered by ResourceNotFoundException."""
    ws.send("ICE_CANDIDATE", cand(1), correlation_id=correlation_id)
    got = ws.recv_within(5)
    assert got is not None, (f"{ws}: a message sent on a deleted channel's connection got no "
                             "ResourceNotFoundException STATUS_RESPONSE (the connection closed, or nothing came)")
    assert got["messageType"] == "STATUS_RESPONSE", got
    assert got["statusResponse"]["correlationId"] == correlation_id, got
    assert got["statusResponse"]["errorType"] == "ResourceNotFoundException", got


@pytest.mark.timeout(60)
def test_held_messages_of_a_deleted_channel_reach_nobody(nodes, redis, name):
    """Held messages are keyed by the channel's ARN, and the ARN of a deleted channel never comes
    back (a recreated channel has a new one), so "reach nobody" is checked where it can fail:
    the delete drops them from Redis at once (no key of the ARN is left, the deleting node counts
    them as dropped), nothing is held for the ARN afterwards, and no node lets anyone connect to
    the ARN again."""
    a, b, c = nodes
    arn = create(a, name)
    v = Ws(b, arn, "gone")
    try:
        v.send("SDP_OFFER", OFFER)  # no master anywhere: held, in Redis
        wait_until(lambda: any(":hm:" in k for k in redis.held_and_presence_keys(arn)), timeout=5,
                   what="the offer to be held in Redis")
        dropped = metric(c, "kvs_signaling_messages_dropped_deleted_total")
        delete(c, arn)
        assert redis.held_and_presence_keys(arn) == [], "the deleted channel's presence or held messages outlive it"
        assert metric(c, "kvs_signaling_messages_dropped_deleted_total") - dropped == 1
        assert v.recv(5)["messageType"] == "GO_AWAY"
        # In the grace period the viewer's messages have no recipient: answered, never held.
        _assert_no_recipient(v, "after-delete")
        assert redis.held_and_presence_keys(arn) == [], "a message sent after the delete was held"
        assert v.closed_within(5) == GONE_AWAY
    finally:
        v.close()
    for n in nodes:
        assert connect_status(n, arn) == 404, n.url
        assert connect_status(n, arn, "gone") == 404, n.url
    assert redis.held_and_presence_keys(arn) == []
    # A channel recreated with the name is another channel (another ARN) and starts empty.
    arn2 = create(b, name)
    assert arn2 != arn
    master = Ws(a, arn2)
    try:
        assert_quiet(master, 1.0)
    finally:
        master.close()


@pytest.mark.timeout(60)
def test_a_deleting_channel_holds_nothing_and_takes_no_connection(make_node, redis, name):
    """With --lifecycle-delay the channel is DELETING for a while after the delete's 200: its
    held messages are already gone (the delete dropped them), its connections got GO_AWAY, a
    connect to its ARN on any node is refused (ResourceInUseException, not ACTIVE) and nothing
    sent meanwhile is held; once the delay is over the ARN is unknown (404)."""
    delay = 3.0
    a, b = make_node("--lifecycle-delay", f"{delay:g}s"), make_node("--lifecycle-delay", f"{delay:g}s")

    def status():
        r = a.op("DescribeSignalingChannel", {"ChannelARN": arn})
        return r.json()["ChannelInfo"]["ChannelStatus"] if r.status_code == 200 else r.status_code

    arn = create(a, name)
    wait_until(lambda: status() == "ACTIVE", timeout=delay + 10, what="the channel to be ACTIVE")
    v = Ws(b, arn, "gone")
    try:
        v.send("SDP_OFFER", OFFER)
        wait_until(lambda: any(":hm:" in k for k in redis.held_and_presence_keys(arn)), timeout=5,
                   what="the offer to be held in Redis")
        delete(a, arn)
        assert status() == "DELETING"
        assert redis.held_and_presence_keys(arn) == [], "held messages or presence outlive the delete's 200"
        assert v.recv(5)["messageType"] == "GO_AWAY"
        _assert_no_recipient(v, "while-deleting")  # within the 1 s --go-away-grace
        for n in (a, b):
            for who in (None, "gone", "late"):
                try:
                    Ws(n, arn, who).close()
                    raise AssertionError(f"{who or 'master'} connected to a DELETING channel on {n.url}")
                except WsRefused as e:
                    assert e.status == 400 and e.json().get("__type") == "ResourceInUseException", e
        assert redis.held_and_presence_keys(arn) == [], "something was held for a DELETING channel"
        assert status() == "DELETING", "the checks above outlasted the lifecycle delay; raise `delay`"
    finally:
        v.close()
    wait_until(lambda: status() == 404, timeout=delay + 10, what="the channel to be gone")
    for n in (a, b):
        assert connect_status(n, arn, "late") == 404
    assert redis.held_and_presence_keys(arn) == []


@pytest.mark.timeout(60)
def test_send_alexa_offer_to_master_through_another_node(nodes, name):
    """The HTTPS SendAlexaOfferToMaster on node A waits for the answer of a master on node B."""
    import threading
    a, b, _ = nodes
    arn = create(a, name)
    master = Ws(b, arn)
    result = {}

    def call():
        sig = a.client(service="kinesis-video-signaling")
        try:
            result["out"] = sig.send_alexa_offer_to_master(ChannelARN=arn, SenderClientId="alexa-1",
                                                           MessagePayload=b64("alexa-offer"))
        except Exception as e:  # reported below
            result["err"] = e

    t = threading.Thread(target=call)
    t.start()
    try:
        got = master.recv(5)
        assert got["messageType"] == "SDP_OFFER" and got["senderClientId"] == "alexa-1", got
        assert got["messagePayload"] == b64("alexa-offer"), got
        master.send("SDP_ANSWER", b64("alexa-answer"), recipient="alexa-1")
        t.join(10)
        assert not t.is_alive(), "SendAlexaOfferToMaster did not return"
        assert "err" not in result, result
        assert result["out"]["Answer"] == b64("alexa-answer"), result
    finally:
        t.join(10)
        master.close()


@pytest.mark.timeout(60)
def test_a_message_crosses_redis_once_and_only_to_its_recipients_node(nodes, redis, name):
    """docs/deployment.md 'How a message travels': one PUBLISH per message, on the bus channel
    of the recipient's node; none between two connections of one node."""
    a, b, _ = nodes
    arn = create(a, name)
    master = Ws(b, arn)
    remote = Ws(a, arn, "remote")
    local = Ws(b, arn, "local")
    mon = Monitor(redis.port)
    try:
        for i in range(4):
            remote.send("ICE_CANDIDATE", cand(i))
            expect(master, "ICE_CANDIDATE", cand(i), sender="remote")
        to_b = mon.publishes()
        for i in range(4):
            master.send("ICE_CANDIDATE", cand(10 + i), recipient="remote")
            expect(remote, "ICE_CANDIDATE", cand(10 + i))
        to_a = mon.publishes()[len(to_b):]
        for i in range(4):
            local.send("ICE_CANDIDATE", cand(20 + i))
            expect(master, "ICE_CANDIDATE", cand(20 + i), sender="local")
            master.send("ICE_CANDIDATE", cand(30 + i), recipient="local")
            expect(local, "ICE_CANDIDATE", cand(30 + i))
        same_node = mon.publishes()[len(to_b) + len(to_a):]
        assert len(to_b) == 4 and len(set(to_b)) == 1, to_b
        assert len(to_a) == 4 and len(set(to_a)) == 1, to_a
        assert to_a[0] != to_b[0], (to_a, to_b)
        assert same_node == [], same_node
    finally:
        mon.close()
        for w in (master, remote, local):
            w.close()


class Monitor:
    """Redis MONITOR on a connection of its own: the bus channels PUBLISHed to, in order."""

    def __init__(self, port):
        import socket
        import threading
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self.lines, self.buf, self.lock = [], b"", threading.Lock()
        self.sock.settimeout(0.2)
        first = b""
        deadline = time.monotonic() + 5
        while b"\r\n" not in first and time.monotonic() < deadline:
            try:
                first += self.sock.recv(4096)
            except TimeoutError:
                pass
        assert first.startswith(b"+OK"), first
        self.buf = first.split(b"\r\n", 1)[1]

    def _drain(self):
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            self.buf += chunk
        *done, self.buf = self.buf.split(b"\r\n")
        self.lines += [d.decode(errors="replace") for d in done if d]

    def publishes(self):
        self._drain()
        out = []
        for line in self.lines:
            # +1700000000.123456 [0 127.0.0.1:5555] "PUBLISH" "kvs:bus:NODE" "..."
            parts = line.split('"')
            if len(parts) > 3 and parts[1].upper() == "PUBLISH":
                out.append(parts[3])
        return out

    def close(self):
        self.sock.close()


def _connect_all(targets):
    """Connect (node, arn, client_id) targets at the same moment; Ws or WsRefused for each."""
    import concurrent.futures
    import threading
    barrier = threading.Barrier(len(targets))

    def go(t):
        barrier.wait()
        try:
            return Ws(*t)
        except WsRefused as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
        return list(pool.map(go, targets))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("round_", range(3))
def test_viewers_racing_on_three_nodes_get_exactly_the_limit(nodes, name, round_):
    arn = create(nodes[0], name)
    results = _connect_all([(nodes[i % 3], arn, f"racer-{i}") for i in range(6)])
    try:
        ok = [r for r in results if isinstance(r, Ws)]
        refused = [r for r in results if isinstance(r, WsRefused)]
        assert len(ok) == 2, results
        assert all(r.status == 400 for r in refused), refused
    finally:
        for r in results:
            if isinstance(r, Ws):
                r.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("round_", range(3))
def test_masters_racing_on_three_nodes_leave_exactly_one(nodes, name, round_):
    arn = create(nodes[0], name)
    masters = _connect_all([(nodes[i % 3], arn, None) for i in range(3)])
    viewer = None
    try:
        assert all(isinstance(m, Ws) for m in masters), masters
        closed = [m.closed_within(3) for m in masters]
        alive = [m for m, c in zip(masters, closed) if c is None]
        assert len(alive) == 1, f"{len(alive)} masters still open after a race: {closed}"
        assert sorted(c for c in closed if c is not None) == [REPLACED, REPLACED], closed
        viewer = Ws(nodes[1], arn, "who")
        viewer.send("SDP_OFFER", OFFER)
        expect(alive[0], "SDP_OFFER", OFFER, sender="who")
    finally:
        for m in masters:
            if isinstance(m, Ws):
                m.close()
        if viewer:
            viewer.close()


@pytest.mark.timeout(60)
def test_a_stopped_nodes_viewers_stop_counting_at_once(nodes, make_node, name):
    """SIGTERM releases the node's presence (docs/deployment.md): no lease wait."""
    a, _, _ = nodes
    d = make_node()
    arn = create(a, name)
    vs = [Ws(d, arn, "d1"), Ws(d, arn, "d2")]
    try:
        assert connect_status(a, arn, "a1") == 400
        d.proc.terminate()
        assert d.proc.wait(timeout=10) == 0, d.log()
        t0 = time.monotonic()
        status = None
        while time.monotonic() - t0 < 2.0:
            status = connect_status(a, arn, "a1")
            if status == 101:
                break
            time.sleep(0.1)
        assert status == 101, "the stopped node's viewers still count"
    finally:
        for v in vs:
            v.close()
