"""The test-suite endpoints (docs/testing-with-kvs-signaling.md) with boto3 and a real WebSocket:
`POST /_kvs/reset` empties every region, closes signaling connections with GO_AWAY and drops
held messages; `GET /_kvs/state` counts what is there; with --credentials both answer 403
AccessDeniedException in AWS's error format."""
import json
from urllib.parse import quote

import pytest
import requests
from botocore.exceptions import ClientError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from kvs_harness import Server, assert_aws_error, error_code, wait_until

HANG = 30.0
EMPTY = {"channels": 0, "connections": {"masters": 0, "viewers": 0}, "heldMessages": 0}


def ws(server: Server, arn: str, client_id: str | None = None):
    url = f"ws://127.0.0.1:{server.port}/?X-Amz-ChannelARN={quote(arn, safe='')}"
    if client_id is not None:
        url += f"&X-Amz-ClientId={quote(client_id, safe='')}"
    return ws_connect(url, proxy=None, compression=None, open_timeout=HANG, ping_interval=None,
                      close_timeout=2, legacy=True)


def state(server: Server) -> dict:
    r = requests.get(server.url + "/_kvs/state", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def frames_until_closed(conn) -> list[dict]:
    out = []
    try:
        while True:
            out.append(json.loads(conn.recv(timeout=HANG)))
    except ConnectionClosed:
        return out


def test_reset_empties_the_server_and_sends_go_away(make_server):
    s = make_server()
    east, west = s.client(region="us-east-1"), s.client(region="eu-west-1")
    arn = east.create_signaling_channel(ChannelName="cam")["ChannelARN"]
    east.create_signaling_channel(ChannelName="door")
    west.create_signaling_channel(ChannelName="cam")
    # Streams and a channel's media-storage link are resources too.
    stream = east.create_stream(StreamName="cam-stream", DataRetentionInHours=1)["StreamARN"]
    east.update_media_storage_configuration(ChannelARN=arn, MediaStorageConfiguration={
        "StreamARN": stream, "Status": "ENABLED"})
    master = ws(s, arn)
    viewer = ws(s, arn, "viewer-1")
    # An offer for a viewer that is not connected is held.
    master.send(json.dumps({"action": "SDP_OFFER", "messagePayload": "eyJ0eXBlIjoib2ZmZXIifQ==",
                            "recipientClientId": "viewer-2"}))
    want = {"channels": 3, "connections": {"masters": 1, "viewers": 1}, "heldMessages": 1}
    wait_until(lambda: state(s) == want, what=f"state {want}")

    r = requests.post(s.url + "/_kvs/reset", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"channels": 3, "heldMessages": 1, "streams": 1}
    assert east.list_streams()["StreamInfoList"] == []
    with pytest.raises(ClientError) as gone:
        east.describe_mapped_resource_configuration(StreamARN=stream)
    assert error_code(gone.value) == "ResourceNotFoundException"

    for conn in (master, viewer):
        frames = frames_until_closed(conn)
        assert [f.get("messageType") for f in frames] == ["GO_AWAY"], frames
    assert state(s) == EMPTY
    assert east.list_signaling_channels()["ChannelInfoList"] == []
    assert west.list_signaling_channels()["ChannelInfoList"] == []
    # The server works as a fresh one: the name is free again.
    east.create_signaling_channel(ChannelName="cam")


def test_refused_with_credentials(make_server, tmp_path):
    creds = tmp_path / "c.toml"
    creds.write_text('[[credentials]]\naccess_key_id = "AK"\nsecret_access_key = "s"\n'
                     'account_id = "111122223333"\n')
    creds.chmod(0o600)
    s = make_server("--credentials", str(creds))
    s.client(key="AK", secret="s").create_signaling_channel(ChannelName="kept")
    for method, path in (("POST", "/_kvs/reset"), ("GET", "/_kvs/state")):
        r = requests.request(method, s.url + path, timeout=10)
        assert_aws_error(r, "AccessDeniedException", 403)
    # Nothing was removed.
    assert len(s.client(key="AK", secret="s").list_signaling_channels()["ChannelInfoList"]) == 1
