"""JoinStorageSession end to end (issue 15, docs/webrtc-ingestion.md): an aiortc master with a
moving test pattern (H.264) and a tone (Opus) on a channel bound to a stream; boto3's
kinesis-video-webrtc-storage client joins the storage session on the WEBRTC endpoint; the
server's own WebRTC peer (str0m) offers to the master over the signaling channel, and media
flows to it: /metrics counts video keyframes and audio samples. A second join supersedes the
first (a new offer, the old session ends), and the master leaving ends the session.
Also the API's validation and error paths, with exact codes."""
import urllib.parse
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

from storage_master import Master, metric, wait_for

pytestmark = pytest.mark.timeout(180)



def code(e):
    return e.value.response["Error"]["Code"]


@pytest.fixture
def bound(server, kv, name):
    """A channel bound to a stream with retention and media storage ENABLED; its endpoints."""
    channel = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    stream = kv.create_stream(StreamName=name, DataRetentionInHours=1)["StreamARN"]
    kv.update_media_storage_configuration(
        ChannelARN=channel, MediaStorageConfiguration={"StreamARN": stream, "Status": "ENABLED"})
    eps = kv.get_signaling_channel_endpoint(
        ChannelARN=channel,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS", "WEBRTC"],
                                                  "Role": "MASTER"})["ResourceEndpointList"]
    by = {e["Protocol"]: e["ResourceEndpoint"] for e in eps}
    storage = server.client(service="kinesis-video-webrtc-storage", endpoint_url=by["WEBRTC"])
    ws = by["WSS"].rstrip("/") + "/?" + urllib.parse.urlencode({"X-Amz-ChannelARN": channel})
    return channel, storage, ws


def test_media_flows_to_the_storage_peer_and_the_session_ends_when_the_master_leaves(server, bound):
    channel, storage, ws = bound
    started0 = metric(server, "kvs_storage_sessions_started_total") or 0
    master = Master(ws)
    master.start()
    try:
        resp = storage.join_storage_session(channelArn=channel)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert metric(server, "kvs_storage_sessions_started_total") == started0 + 1
        wait_for("the storage peer's offer", lambda: master.offers)
        assert master.offers[0].startswith("kvs-storage-session-")
        wait_for("video keyframes", lambda: (metric(server, "kvs_storage_video_keyframes_total") or 0) >= 1)
        wait_for("audio samples",
                 lambda: (metric(server, r'kvs_storage_samples_received_total\{track="audio"\}') or 0) >= 10)
        assert metric(server, r'kvs_storage_received_bytes_total\{track="video"\}') > 1000

        def connected():
            listed = requests.get(server.url + "/_kvs/storage-sessions", timeout=10).json()["sessions"]
            mine = [s for s in listed if s["channelArn"] == channel]
            assert len(mine) == 1, listed
            return mine if mine[0]["state"] == "CONNECTED" else None

        # The listing shows the state as of the session's last renewal (once a second).
        mine = wait_for("the listed session to be CONNECTED", connected, timeout=5)

        # The most recent joiner wins: a new offer, the first session ends as superseded.
        superseded0 = metric(server, r'kvs_storage_sessions_ended_total\{reason="superseded"\}')
        storage.join_storage_session(channelArn=channel)
        wait_for("the second offer", lambda: len(master.offers) >= 2)
        assert master.offers[1] != master.offers[0]
        wait_for("the first session to end", lambda: metric(
            server, r'kvs_storage_sessions_ended_total\{reason="superseded"\}') == superseded0 + 1)
        listed = requests.get(server.url + "/_kvs/storage-sessions", timeout=10).json()["sessions"]
        assert [s["sessionId"] for s in listed if s["channelArn"] == channel] != [mine[0]["sessionId"]]
        assert master.errors == []
    finally:
        left0 = metric(server, r'kvs_storage_sessions_ended_total\{reason="master_left"\}')
        master.stop()
    wait_for("the session to end on the master's leave", lambda: metric(
        server, r'kvs_storage_sessions_ended_total\{reason="master_left"\}') == left0 + 1, timeout=15)
    listed = requests.get(server.url + "/_kvs/storage-sessions", timeout=10).json()["sessions"]
    assert [s for s in listed if s["channelArn"] == channel] == []


def test_join_errors(server, kv, bound, name):
    channel, storage, _ = bound
    # No master connected yet: the storage peer has nobody to offer to.
    with pytest.raises(ClientError) as e:
        storage.join_storage_session(channelArn=channel)
    assert code(e) == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    missing = channel.rsplit("/", 2)[0] + "/nope-" + uuid.uuid4().hex[:8] + "/1"
    with pytest.raises(ClientError) as e:
        storage.join_storage_session(channelArn=missing)
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        storage.join_storage_session(channelArn="arn:azure:kinesisvideo:us-east-1:1:channel/x/1")
    assert code(e) == "InvalidArgumentException"
    # A channel without media storage.
    plain = kv.create_signaling_channel(ChannelName=name + "-plain")["ChannelARN"]
    with pytest.raises(ClientError) as e:
        storage.join_storage_session(channelArn=plain)
    assert code(e) == "InvalidArgumentException"
    assert "media storage" in e.value.response["Error"]["Message"]
    # As a viewer: validated, then the viewer must be connected with that ClientId
    # (test_storage_viewers.py covers the rest).
    with pytest.raises(ClientError) as e:
        storage.join_storage_session_as_viewer(channelArn=channel, clientId="bad id")
    assert code(e) == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        storage.join_storage_session_as_viewer(channelArn=channel, clientId="viewer-1")
    assert code(e) == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
