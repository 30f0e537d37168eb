"""Storage sessions across nodes (issue 15, docs/webrtc-ingestion.md): the aiortc master is on
node A, JoinStorageSession is answered by node B, which claims the channel on Redis and runs the
recording peer itself; media reaches B over the signaling that crosses the bus. A later join on
node C supersedes B's session (B stops its peer within its check interval), and every node lists
the one session, on C. The master leaving ends it."""
import urllib.parse

import pytest
import requests

from storage_master import Master, wait_for
from storage_master import metric as shared_metric

pytestmark = pytest.mark.timeout(180)


def metric(node, line_re):
    return shared_metric(node, line_re, default=0.0)


def sessions(node, channel):
    listed = requests.get(node.url + "/_kvs/storage-sessions", timeout=10).json()["sessions"]
    return [s for s in listed if s["channelArn"] == channel]


def test_join_on_another_node_than_the_master_and_the_latest_join_wins(nodes, name):
    a, b, c = nodes
    kv = a.client()
    channel = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    stream = kv.create_stream(StreamName=name, DataRetentionInHours=1)["StreamARN"]
    kv.update_media_storage_configuration(
        ChannelARN=channel, MediaStorageConfiguration={"StreamARN": stream, "Status": "ENABLED"})

    def storage(node):
        ep = node.client().get_signaling_channel_endpoint(
            ChannelARN=channel,
            SingleMasterChannelEndpointConfiguration={"Protocols": ["WEBRTC"], "Role": "MASTER"},
        )["ResourceEndpointList"][0]["ResourceEndpoint"]
        return node.client(service="kinesis-video-webrtc-storage", endpoint_url=ep)

    ws = a.url.replace("http://", "ws://") + "/?" + urllib.parse.urlencode({"X-Amz-ChannelARN": channel})
    master = Master(ws)
    master.start()
    audio = r'kvs_storage_samples_received_total\{track="audio"\}'
    superseded = r'kvs_storage_sessions_ended_total\{reason="superseded"\}'
    left = r'kvs_storage_sessions_ended_total\{reason="master_left"\}'
    b_audio0, b_superseded0 = metric(b, audio), metric(b, superseded)
    c_audio0, c_left0 = metric(c, audio), metric(c, left)
    try:
        storage(b).join_storage_session(channelArn=channel)
        wait_for("media on node B", lambda: metric(b, audio) >= b_audio0 + 10)
        assert metric(b, "kvs_storage_video_keyframes_total") >= 1
        on_b = wait_for("B's session in the listing", lambda: sessions(a, channel))
        assert len(on_b) == 1

        storage(c).join_storage_session(channelArn=channel)
        wait_for("B's peer to stop", lambda: metric(b, superseded) == b_superseded0 + 1, timeout=10)
        wait_for("media on node C", lambda: metric(c, audio) >= c_audio0 + 10)
        for node in (a, b, c):
            listed = sessions(node, channel)
            assert len(listed) == 1 and listed[0]["sessionId"] != on_b[0]["sessionId"], listed
            assert listed[0]["node"] != on_b[0]["node"]
        assert len(master.offers) == 2 and master.errors == []
    finally:
        master.stop()
    wait_for("C's session to end with the master", lambda: metric(c, left) == c_left0 + 1, timeout=15)
    assert sessions(b, channel) == []
