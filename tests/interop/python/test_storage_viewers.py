"""JoinStorageSessionAsViewer end to end (docs/webrtc-ingestion.md): viewers connected through
the storage session, as the KVS WebRTC JS SDK's ingestion viewer uses it.

The aiortc master (storage_master.TalkbackMaster: H.264 test pattern 320x240, 440 Hz Opus tone)
is connected and JoinStorageSession has started the server's storage peer. An aiortc viewer
(storage_viewer.Viewer) connects the signaling WebSocket as VIEWER with its ClientId and calls
boto3's kinesis-video-webrtc-storage `join_storage_session_as_viewer` on the WEBRTC endpoint;
the storage peer then offers to it over its WebSocket as if it were the master (no
senderClientId), the viewer answers without a recipientClientId (the server routes the answer
and the candidates to the storage peer, never to the real master), and receives the master's
video and audio through the peer. A viewer's audio goes to the master (one talker); at most 3
viewers per session (ClientLimitExceededException, with the text the JS SDK looks for); a
viewer may join before the session exists; legs end when the viewer leaves or the session
ends, as /metrics counts (`kvs_storage_viewers_*`). Also the API's error paths, with exact
codes."""
import time
import urllib.parse
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

from storage_master import TalkbackMaster, metric, recent_samples, tone_share, wait_for
from storage_viewer import Viewer, presign_viewer_url, sdp_sections, section_codecs, section_direction

pytestmark = pytest.mark.timeout(120)

ACTIVE = "kvs_storage_viewers_active"
JOINED = "kvs_storage_viewers_joined_total"
SESSION_VIEWERS_FULL = "maximum number of viewers connected to the session"

# The pitches: the master's tone is 440 Hz (storage_master.Tone); each talking viewer has its own.
MASTER_HZ, FIRST_HZ, SECOND_HZ = 440, 660, 1000


def ended(reason):
    return rf'kvs_storage_viewers_ended_total\{{reason="{reason}"\}}'


def m(server, line_re):
    return metric(server, line_re, default=0.0)


class Setup:
    """One channel bound to a stream with storage ENABLED, its endpoints, and what a test starts
    on it (the master, viewers); everything is closed at teardown."""

    def __init__(self, server, kv, name, storage_status="ENABLED"):
        self.server, self.kv, self.name = server, kv, name
        self.channel = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
        self.stream = kv.create_stream(StreamName=name, DataRetentionInHours=1)["StreamARN"]
        kv.update_media_storage_configuration(
            ChannelARN=self.channel,
            MediaStorageConfiguration={"StreamARN": self.stream, "Status": storage_status})
        self.master = None
        self.viewers = []
        if storage_status != "ENABLED":
            self.storage = server.client(service="kinesis-video-webrtc-storage", endpoint_url=server.url)
            self.viewer_wss = server.url.replace("http://", "ws://")
            return
        eps = kv.get_signaling_channel_endpoint(
            ChannelARN=self.channel,
            SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "WEBRTC"], "Role": "MASTER"},
        )["ResourceEndpointList"]
        by = {e["Protocol"]: e["ResourceEndpoint"] for e in eps}
        self.webrtc = by["WEBRTC"]
        self.storage = server.client(service="kinesis-video-webrtc-storage", endpoint_url=self.webrtc)
        self.master_ws = by["WSS"].rstrip("/") + "/?" + urllib.parse.urlencode({"X-Amz-ChannelARN": self.channel})
        veps = kv.get_signaling_channel_endpoint(
            ChannelARN=self.channel,
            SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS"], "Role": "VIEWER"},
        )["ResourceEndpointList"]
        self.viewer_wss = veps[0]["ResourceEndpoint"]

    def start_master(self):
        self.master = TalkbackMaster(self.master_ws)
        self.master.start()
        return self.master

    def start_session(self):
        """JoinStorageSession; waits for the storage peer's offer to the master. Its ClientId."""
        n = len(self.master.offers)
        resp = self.storage.join_storage_session(channelArn=self.channel)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        wait_for("the storage peer's offer to the master", lambda: len(self.master.offers) > n, timeout=15)
        peer = self.master.offers[-1]
        assert peer.startswith("kvs-storage-session-"), peer
        return peer

    def viewer(self, client_id, **kw):
        v = Viewer(presign_viewer_url(self.viewer_wss, self.channel, client_id), client_id, **kw)
        self.viewers.append(v)
        return v.start()

    def join(self, client_id):
        resp = self.storage.join_storage_session_as_viewer(channelArn=self.channel, clientId=client_id)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200, resp
        return resp

    def refused_join(self, client_id):
        with pytest.raises(ClientError) as e:
            self.storage.join_storage_session_as_viewer(channelArn=self.channel, clientId=client_id)
        return e.value.response

    def close(self):
        for v in self.viewers:
            v.close()
        if self.master is not None and self.master.thread.is_alive():
            self.master.stop()


@pytest.fixture
def setup(server, kv, name):
    """A bound channel; at teardown every viewer and the master are closed and the node's viewer
    legs go back to what they were (the legs of this test ended)."""
    active0 = m(server, ACTIVE)
    made = []

    def make(**kw):
        s = Setup(server, kv, name + ("-" + str(len(made)) if made else ""), **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
    wait_for("the test's viewer legs to end", lambda: m(server, ACTIVE) == active0, timeout=20)


def wait_media(v, video=30, audio=50, timeout=30):
    wait_for(f"{v}'s media (video {video}, audio {audio} frames)",
             lambda: v.frames["video"] >= video and v.frames["audio"] >= audio, timeout=timeout)


def wait_answered(v, n=1, timeout=15):
    wait_for(f"{v}'s offer number {n}, answered", lambda: v.answered >= n, timeout=timeout)


def assert_like_the_masters(msg):
    """A message the storage peer sends a viewer: as the master's would be, no senderClientId."""
    assert "senderClientId" not in msg, msg
    assert "recipientClientId" not in msg, msg


def test_a_viewer_is_offered_by_the_storage_peer_and_receives_the_masters_media(server, setup):
    s = setup()
    master = s.start_master()
    peer = s.start_session()
    wait_for("the storage peer's first keyframe",
             lambda: m(server, "kvs_storage_video_keyframes_total") >= 1, timeout=30)
    joined0, active0, left0 = m(server, JOINED), m(server, ACTIVE), m(server, ended("left"))
    sessions_ended0 = sum(m(server, rf'kvs_storage_sessions_ended_total\{{reason="{r}"\}}')
                          for r in ("superseded", "master_left", "no_answer", "connect_failed", "stopped"))

    vid = "viewer-" + uuid.uuid4().hex[:8]
    v = s.viewer(vid)
    assert v.offers == [], "an offer before JoinStorageSessionAsViewer"
    # The call on the wire: 200 and an empty body, as AWS answers it.
    r = server.post("/joinStorageSessionAsViewer", {"channelArn": s.channel, "clientId": vid},
                    host=urllib.parse.urlsplit(s.webrtc).netloc)
    assert (r.status_code, r.content) == (200, b""), (r.status_code, r.text)
    wait_for("the join to be counted", lambda: m(server, JOINED) == joined0 + 1, timeout=5)

    # The storage peer's offer, as if from the master.
    wait_for("the viewer's offer", lambda: v.offers, timeout=15)
    offer = v.offers[0]
    assert offer["messageType"] == "SDP_OFFER"
    assert_like_the_masters(offer)
    assert offer["body"]["type"] == "offer"
    sections = dict((kind, lines) for kind, lines in sdp_sections(offer["body"]["sdp"]))
    assert sorted(k for k, _ in sdp_sections(offer["body"]["sdp"])) == ["audio", "video"], offer["body"]["sdp"]
    assert "H264" in section_codecs(sections["video"]), sections["video"]
    assert section_direction(sections["video"]) == "sendonly", sections["video"]
    assert "OPUS" in section_codecs(sections["audio"]), sections["audio"]
    assert section_direction(sections["audio"]) == "sendrecv", sections["audio"]
    wait_for("the peer's trickled candidates", lambda: v.of_type("ICE_CANDIDATE"), timeout=10)
    for c in v.of_type("ICE_CANDIDATE"):
        assert_like_the_masters(c)
        assert c["body"]["candidate"].startswith("candidate:"), c

    # The answer and the candidates went out with no recipient (the JS SDK sends none).
    wait_answered(v)
    assert [x["action"] for x in v.sent][0] == "SDP_ANSWER"
    assert "ICE_CANDIDATE" in [x["action"] for x in v.sent]
    assert all("recipientClientId" not in x for x in v.sent), v.sent

    # The master's media, through the peer: its 320x240 test pattern and its 440 Hz tone.
    wait_media(v)
    assert v.video_sizes == {(320, 240)}, v.video_sizes
    wait_for("the master's tone at the viewer",
             lambda: tone_share(recent_samples(v.audio, 0, limit=24000), MASTER_HZ) > 0.6, timeout=10)
    wait_for("the leg in the gauge", lambda: m(server, ACTIVE) == active0 + 1, timeout=5)
    # Listed with its session, for operators and in the console, once its leg is connected.
    def listed_viewers():
        sessions = requests.get(server.url + "/_kvs/storage-sessions", timeout=10).json()["sessions"]
        return [x["viewers"] for x in sessions if x["channelArn"] == s.channel]
    wait_for("the viewer listed CONNECTED", lambda: [[(x["clientId"], x["state"]) for x in vs]
                                                     for vs in listed_viewers()] == [[(vid, "CONNECTED")]], timeout=5)
    console = requests.get(server.url + "/console/api/storage", params={"channel": s.channel}, timeout=10).json()
    assert [(x["clientId"], x["state"]) for x in console["viewers"]] == [(vid, "CONNECTED")], console
    assert [(x["master"], len(x["viewers"])) for x in console["sessions"]] == [("connected", 1)], console

    # Nothing of the viewer's reached the real master: no answer, no candidate, nothing.
    assert master.from_client(vid) == [], master.from_client(vid)
    assert [x for x in master.messages if x.get("messageType") == "SDP_ANSWER"] == []
    assert {x.get("senderClientId") for x in master.messages} == {peer}, master.messages
    assert set(master.pcs) == {peer}, list(master.pcs)
    assert v.errors == [] and master.errors == []

    # The viewer leaves: its leg ends (left), the session goes on.
    v.close()
    wait_for("the leg to end as left", lambda: m(server, ended("left")) == left0 + 1, timeout=15)
    wait_for("the gauge back", lambda: m(server, ACTIVE) == active0, timeout=5)
    assert listed_viewers() == [[]], "a viewer that left is still listed"
    ended_now = sum(m(server, rf'kvs_storage_sessions_ended_total\{{reason="{r}"\}}')
                    for r in ("superseded", "master_left", "no_answer", "connect_failed", "stopped"))
    assert ended_now == sessions_ended0, "the viewer's leaving ended the storage session"
    listed = requests.get(server.url + "/_kvs/storage-sessions", timeout=10).json()["sessions"]
    assert len([x for x in listed if x["channelArn"] == s.channel]) == 1, listed


def test_a_viewers_audio_reaches_the_master_and_only_the_first_talker_is_forwarded(server, setup):
    s = setup()
    master = s.start_master()
    peer = s.start_session()
    # The peer's audio toward the master is two-way now: it carries the viewers' audio.
    sections = dict(sdp_sections(master.offer_sdps[peer][-1]))
    assert section_direction(sections["audio"]) == "sendrecv", sections["audio"]
    assert section_direction(sections["video"]) == "recvonly", sections["video"]

    first = s.viewer("talker-1-" + uuid.uuid4().hex[:6], send_audio=FIRST_HZ)
    s.join(first.client_id)
    wait_answered(first)
    wait_for("audio from the storage peer at the master", lambda: master.audio_frames.get(peer, 0) >= 50, timeout=30)

    def heard_first():
        heard = recent_samples(master.audio.get(peer, ()), time.monotonic() - 0.5)
        return tone_share(heard, FIRST_HZ) > 0.6
    wait_for("the first talker's tone at the master", heard_first, timeout=15)
    heard = recent_samples(master.audio[peer], time.monotonic() - 1.0)
    assert tone_share(heard, MASTER_HZ) < 0.05, "the master hears itself"
    assert master.from_client(first.client_id) == []

    # A second talker: its audio is not mixed in; the master goes on hearing the first.
    second = s.viewer("talker-2-" + uuid.uuid4().hex[:6], send_audio=SECOND_HZ)
    s.join(second.client_id)
    wait_answered(second)
    wait_media(second, video=30, audio=25)
    assert second.pc.connectionState == "connected", second.pc.connectionState
    since = time.monotonic()
    frames0 = master.audio_frames[peer]
    time.sleep(3.0)
    assert master.audio_frames[peer] >= frames0 + 100, (frames0, master.audio_frames[peer])
    heard = recent_samples(master.audio[peer], since)
    assert len(heard) >= 48000, len(heard)
    shares = {hz: round(tone_share(heard, hz), 3) for hz in (FIRST_HZ, SECOND_HZ, MASTER_HZ)}
    assert shares[FIRST_HZ] > 0.6 and shares[SECOND_HZ] < 0.05, ("not the first talker alone", shares)
    assert master.from_client(second.client_id) == []
    assert first.errors == [] and second.errors == [] and master.errors == []


def test_at_most_three_viewers_a_rejoin_replaces_and_legs_end_with_the_session(server, setup):
    s = setup()
    master = s.start_master()
    s.start_session()
    joined0, active0 = m(server, JOINED), m(server, ACTIVE)
    replaced0, left0, session_ended0 = (m(server, ended(r)) for r in ("replaced", "left", "session_ended"))
    tag = uuid.uuid4().hex[:6]
    v1, v2, v3 = (s.viewer(f"v{i}-{tag}") for i in (1, 2, 3))
    for v in (v1, v2, v3):
        s.join(v.client_id)
    for v in (v1, v2, v3):
        wait_answered(v)
    wait_for("three legs", lambda: m(server, ACTIVE) == active0 + 3, timeout=10)
    assert m(server, JOINED) == joined0 + 3

    # A fourth ClientId: refused, with the text the JS SDK looks for.
    v4 = s.viewer(f"v4-{tag}")
    resp = s.refused_join(v4.client_id)
    assert (resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ClientLimitExceededException", 400), resp
    assert SESSION_VIEWERS_FULL in resp["Error"]["Message"], resp["Error"]["Message"]
    assert m(server, JOINED) == joined0 + 3, "a refused join was counted"

    # The same ClientId again: a new offer replaces its leg; still three, not four.
    s.join(v2.client_id)
    wait_answered(v2, 2)
    assert len(v2.offers) == 2
    assert_like_the_masters(v2.offers[1])
    wait_for("v2's old leg to end as replaced", lambda: m(server, ended("replaced")) == replaced0 + 1, timeout=10)
    wait_for("still three legs", lambda: m(server, ACTIVE) == active0 + 3, timeout=5)
    frames = v2.frames["video"]
    wait_for("v2's new leg's video", lambda: v2.frames["video"] >= frames + 15, timeout=20)
    resp = s.refused_join(v4.client_id)
    assert (resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ClientLimitExceededException", 400), resp
    time.sleep(1.0)
    assert v4.offers == [], "a refused viewer was offered"

    # v1 leaves: its leg ends and no longer counts; v4 gets in.
    v1.close()
    wait_for("v1's leg to end as left", lambda: m(server, ended("left")) == left0 + 1, timeout=15)
    wait_for("two legs", lambda: m(server, ACTIVE) == active0 + 2, timeout=5)
    s.join(v4.client_id)
    wait_answered(v4)
    wait_media(v4, video=15, audio=25)
    assert v4.video_sizes == {(320, 240)}
    wait_for("three legs again", lambda: m(server, ACTIVE) == active0 + 3, timeout=10)

    # The master leaves: the session ends, and every leg with it.
    master.stop()
    wait_for("the legs to end with the session",
             lambda: m(server, ended("session_ended")) == session_ended0 + 3, timeout=20)
    wait_for("no leg left", lambda: m(server, ACTIVE) == active0, timeout=5)
    for v in (v2, v3, v4):
        assert v.errors == [], (v, v.errors)
        assert all("senderClientId" not in x for x in v.messages), (v, v.messages)


def test_a_viewer_may_join_before_the_session_starts(server, setup):
    s = setup()
    master = s.start_master()
    joined0 = m(server, JOINED)
    v = s.viewer("early-" + uuid.uuid4().hex[:6])
    s.join(v.client_id)
    wait_for("the join to be counted", lambda: m(server, JOINED) == joined0 + 1, timeout=5)
    time.sleep(2.0)
    assert v.offers == [] and master.offers == [], (v.offers, master.offers)

    s.start_session()
    wait_answered(v)
    assert_like_the_masters(v.offers[0])
    wait_media(v, video=15, audio=25)
    assert v.video_sizes == {(320, 240)}
    assert master.from_client(v.client_id) == []
    assert v.errors == [] and master.errors == []


def test_join_as_viewer_errors(server, kv, setup):
    s = setup()
    joined0 = m(server, JOINED)

    def refused(client_id, channel=None, **kw):
        args = {"channelArn": channel or s.channel}
        if client_id is not None:
            args["clientId"] = client_id
        with pytest.raises(ClientError) as e:
            (kw.get("storage") or s.storage).join_storage_session_as_viewer(**args)
        r = e.value.response
        return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]

    # No signaling connection with that ClientId on this channel.
    ghost = "ghost-" + uuid.uuid4().hex[:6]
    assert refused(ghost)[:2] == ("ResourceNotFoundException", 404)
    # ... not even when one is connected with it on another channel.
    other = setup()
    elsewhere = other.viewer(ghost)
    assert refused(ghost)[:2] == ("ResourceNotFoundException", 404)
    elsewhere.close()

    # The model's validation: clientId 1..256 of [a-zA-Z0-9_.-], required.
    for bad in ("a b", "", "x" * 257, "v/1", None):
        assert refused(bad)[:2] == ("InvalidArgumentException", 400), bad
    # No such channel.
    missing = s.channel.rsplit("/", 2)[0] + "/nope-" + uuid.uuid4().hex[:8] + "/1"
    assert refused("v-1", channel=missing)[:2] == ("ResourceNotFoundException", 404)

    # Storage DISABLED (the stream bound, the status not ENABLED): as for JoinStorageSession,
    # even with the viewer connected.
    disabled = setup(storage_status="DISABLED")
    there = disabled.viewer("v-disabled")
    code, status, message = refused(there.client_id, channel=disabled.channel, storage=disabled.storage)
    assert (code, status) == ("InvalidArgumentException", 400), message
    assert "media storage" in message, message
    with pytest.raises(ClientError) as e:
        disabled.storage.join_storage_session(channelArn=disabled.channel)
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    # A channel with no storage configuration at all.
    plain = kv.create_signaling_channel(ChannelName=s.name + "-plain")["ChannelARN"]
    assert refused("v-1", channel=plain)[:2] == ("InvalidArgumentException", 400)

    assert m(server, JOINED) == joined0, "a refused join was counted"
