"""JoinStorageSessionAsViewer across nodes (docs/webrtc-ingestion.md): three nodes on one
Redis. The aiortc master's WebSocket is on node A, JoinStorageSession is answered by node B (the
storage peer runs there), the viewer's WebSocket is on node C and its JoinStorageSessionAsViewer
is answered by node A: the viewer still gets the peer's offer (no senderClientId), its answer
reaches the peer on B (never the master), and it receives the master's video and audio. The
3-viewer limit of a session holds whichever node each viewer joins through; a viewer that
leaves frees its place; the master leaving ends every leg. A viewer may also join (on one node)
before the session is started (on another).

The nodes here allow 10 viewers per channel (the suite's shared nodes allow 2: the storage peer
and four viewers would not fit), so the limit met is the session's 3."""
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from cluster_harness import start_node, stop_all, ws_url
from storage_master import TalkbackMaster, wait_for
from storage_master import metric as shared_metric
from storage_viewer import Viewer, presign_viewer_url

pytestmark = pytest.mark.timeout(150)

ACTIVE = "kvs_storage_viewers_active"
JOINED = "kvs_storage_viewers_joined_total"
SESSION_VIEWERS_FULL = "maximum number of viewers connected to the session"


def metric(node, line_re):
    return shared_metric(node, line_re, default=0.0)


def ended(reason):
    return rf'kvs_storage_viewers_ended_total\{{reason="{reason}"\}}'


@pytest.fixture(scope="module")
def trio(redis):
    """Nodes A, B and C on the session's Redis, 10 viewers per channel; shutdowns checked."""
    started = []
    try:
        for _ in range(3):
            started.append(start_node(redis, max_viewers=10))
        yield started
    finally:
        stop_all(started)


class Channel:
    def __init__(self, node, name):
        kv = node.client()
        self.arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
        stream = kv.create_stream(StreamName=name, DataRetentionInHours=1)["StreamARN"]
        kv.update_media_storage_configuration(
            ChannelARN=self.arn, MediaStorageConfiguration={"StreamARN": stream, "Status": "ENABLED"})
        self.viewers = []
        self.master = None

    def storage(self, node):
        ep = node.client().get_signaling_channel_endpoint(
            ChannelARN=self.arn,
            SingleMasterChannelEndpointConfiguration={"Protocols": ["WEBRTC"], "Role": "MASTER"},
        )["ResourceEndpointList"][0]["ResourceEndpoint"]
        return node.client(service="kinesis-video-webrtc-storage", endpoint_url=ep)

    def start_master(self, node):
        self.master = TalkbackMaster(ws_url(node, self.arn))
        self.master.start()
        return self.master

    def viewer(self, node, client_id, **kw):
        wss = node.url.replace("http://", "ws://")
        v = Viewer(presign_viewer_url(wss, self.arn, client_id), client_id, **kw)
        self.viewers.append(v)
        return v.start()

    def join(self, node, client_id):
        resp = self.storage(node).join_storage_session_as_viewer(channelArn=self.arn, clientId=client_id)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200, resp

    def refused_join(self, node, client_id):
        with pytest.raises(ClientError) as e:
            self.storage(node).join_storage_session_as_viewer(channelArn=self.arn, clientId=client_id)
        r = e.value.response
        return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]

    def close(self):
        for v in self.viewers:
            v.close()
        if self.master is not None and self.master.thread.is_alive():
            self.master.stop()


@pytest.fixture
def channels():
    made = []
    yield made
    for c in made:
        c.close()


def test_viewers_across_nodes_get_the_peers_offer_and_media_and_the_limit_is_the_sessions(trio, channels, name):
    a, b, c = trio
    ch = Channel(a, name)
    channels.append(ch)
    master = ch.start_master(a)
    ch.storage(b).join_storage_session(channelArn=ch.arn)
    wait_for("the storage peer's offer", lambda: master.offers, timeout=15)
    peer = master.offers[0]
    wait_for("media on node B", lambda: metric(b, "kvs_storage_video_keyframes_total") >= 1, timeout=30)

    joined0 = {n.url: metric(n, JOINED) for n in trio}
    active0 = {n.url: metric(n, ACTIVE) for n in trio}
    left0, session_ended0 = metric(b, ended("left")), metric(b, ended("session_ended"))
    tag = uuid.uuid4().hex[:6]

    # The viewer's WebSocket on C, its join answered by A, the peer on B.
    v1 = ch.viewer(c, f"v1-{tag}")
    ch.join(a, v1.client_id)
    wait_for("v1's offer, answered", lambda: v1.answered >= 1, timeout=15)
    assert "senderClientId" not in v1.offers[0] and v1.offers[0]["body"]["type"] == "offer", v1.offers[0]
    assert all("senderClientId" not in x for x in v1.messages), v1.messages
    wait_for("v1's media", lambda: v1.frames["video"] >= 30 and v1.frames["audio"] >= 50, timeout=30)
    assert v1.video_sizes == {(320, 240)}, v1.video_sizes
    wait_for("the join counted on A", lambda: metric(a, JOINED) == joined0[a.url] + 1, timeout=5)
    assert (metric(b, JOINED), metric(c, JOINED)) == (joined0[b.url], joined0[c.url])
    wait_for("the leg on B", lambda: metric(b, ACTIVE) == active0[b.url] + 1, timeout=5)
    assert (metric(a, ACTIVE), metric(c, ACTIVE)) == (active0[a.url], active0[c.url])
    assert master.from_client(v1.client_id) == [], master.from_client(v1.client_id)
    assert set(master.pcs) == {peer}

    # Two more, each joining through another node: WebSocket on A joined on B, on B joined on C.
    v2 = ch.viewer(a, f"v2-{tag}")
    ch.join(b, v2.client_id)
    v3 = ch.viewer(b, f"v3-{tag}")
    ch.join(c, v3.client_id)
    for v in (v2, v3):
        wait_for(f"{v}'s offer, answered", lambda: v.answered >= 1, timeout=15)
    wait_for("three legs on B", lambda: metric(b, ACTIVE) == active0[b.url] + 3, timeout=10)

    # A fourth, on C, joining through B, then through A: the session is full wherever it asks.
    v4 = ch.viewer(c, f"v4-{tag}")
    for node in (b, a):
        code, status, message = ch.refused_join(node, v4.client_id)
        assert (code, status) == ("ClientLimitExceededException", 400), (node.url, code, status, message)
        assert SESSION_VIEWERS_FULL in message, message
    time.sleep(1.0)
    assert v4.offers == []

    # v1 leaves (its WebSocket on C): its leg on B ends, and v4 gets its place.
    v1.close()
    wait_for("v1's leg to end as left", lambda: metric(b, ended("left")) == left0 + 1, timeout=15)
    wait_for("two legs on B", lambda: metric(b, ACTIVE) == active0[b.url] + 2, timeout=5)
    ch.join(a, v4.client_id)
    wait_for("v4's offer, answered", lambda: v4.answered >= 1, timeout=15)
    wait_for("v4's video", lambda: v4.frames["video"] >= 15, timeout=30)
    assert v4.video_sizes == {(320, 240)}
    for v in (v2, v3, v4):
        assert master.from_client(v.client_id) == []
        assert v.errors == [], (v, v.errors)
    assert [x for x in master.messages if x.get("messageType") == "SDP_ANSWER"] == []
    assert {x.get("senderClientId") for x in master.messages} == {peer}, master.messages
    assert master.errors == []

    # The master leaves: the session ends on B, and its three legs with it.
    master.stop()
    wait_for("the legs to end with the session",
             lambda: metric(b, ended("session_ended")) == session_ended0 + 3, timeout=25)
    wait_for("no leg left on B", lambda: metric(b, ACTIVE) == active0[b.url], timeout=5)


def test_a_viewer_joined_on_one_node_is_offered_when_another_node_starts_the_session(trio, channels, name):
    a, b, c = trio
    ch = Channel(a, name)
    channels.append(ch)
    master = ch.start_master(a)
    v = ch.viewer(c, "early-" + uuid.uuid4().hex[:6])
    ch.join(a, v.client_id)
    time.sleep(2.0)
    assert v.offers == [] and master.offers == []

    active0 = metric(b, ACTIVE)
    ch.storage(b).join_storage_session(channelArn=ch.arn)
    wait_for("v's offer, answered", lambda: v.answered >= 1, timeout=20)
    assert "senderClientId" not in v.offers[0]
    wait_for("v's video", lambda: v.frames["video"] >= 15, timeout=30)
    assert v.video_sizes == {(320, 240)}
    wait_for("the leg on B (the peer's node)", lambda: metric(b, ACTIVE) == active0 + 1, timeout=5)
    assert master.from_client(v.client_id) == []
    assert v.errors == [] and master.errors == []
