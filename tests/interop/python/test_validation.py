"""The server validates everything itself: patterns, lengths, ranges, enums, required members,
JSON types, malformed JSON. Each is InvalidArgumentException (400) and changes nothing."""
import json

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, status

BAD_NAMES = ["", "x" * 257, "has space", "slash/", "ünïcode", "semi;colon"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_channel_names(kv, bad):
    before = kv.list_signaling_channels()["ChannelInfoList"]
    with pytest.raises(ClientError) as e:
        kv.create_signaling_channel(ChannelName=bad)
    assert error_code(e.value) == "InvalidArgumentException" and status(e.value) == 400
    assert kv.list_signaling_channels()["ChannelInfoList"] == before


@pytest.mark.parametrize("body", [
    {"ChannelName": "ok", "ChannelType": "MULTI_MASTER"},
    {"ChannelName": "ok", "SingleMasterConfiguration": {"MessageTtlSeconds": 4}},
    {"ChannelName": "ok", "SingleMasterConfiguration": {"MessageTtlSeconds": 121}},
    {"ChannelName": "ok", "SingleMasterConfiguration": {"MessageTtlSeconds": "60"}},
    {"ChannelName": "ok", "SingleMasterConfiguration": {"MessageTtlSeconds": 6.5}},
    {"ChannelName": 5},
    {"ChannelName": ["a"]},
    {"ChannelName": "ok", "Tags": [{"Key": "", "Value": "v"}]},
    {"ChannelName": "ok", "Tags": [{"Key": "k" * 129, "Value": "v"}]},
    {"ChannelName": "ok", "Tags": [{"Key": "k", "Value": "v" * 257}]},
    {"ChannelName": "ok", "Tags": [{"Key": "bad*key", "Value": "v"}]},
    {"ChannelName": "ok", "Tags": [{"Key": "k"}]},
    {"ChannelName": "ok", "Tags": {"k": "v"}},
    {},
])
def test_bad_create_bodies(server, kv, body):
    r = server.raw("/createSignalingChannel", json.dumps(body))
    assert r.status_code == 400, r.text
    assert r.headers["x-amzn-ErrorType"] == "InvalidArgumentException"
    with pytest.raises(ClientError):
        kv.describe_signaling_channel(ChannelName="ok")


@pytest.mark.parametrize("raw", [b"{", b"not json", b"[]", b"null", b"\"str\"", b"{\"ChannelName\": }"])
def test_malformed_json(server, raw):
    r = server.raw("/createSignalingChannel", raw)
    assert r.status_code == 400
    body = r.json()
    assert body["__type"] == "InvalidArgumentException"
    assert body["Message"]


def test_empty_body_is_empty_object(server):
    r = server.raw("/listSignalingChannels", b"")
    assert r.status_code == 200, r.text
    assert "ChannelInfoList" in r.json()
    r = server.raw("/describeSignalingChannel", b"")
    assert r.status_code == 400 and r.json()["__type"] == "InvalidArgumentException"


@pytest.mark.parametrize("arn", [
    "", "not-an-arn", "arn:aws:s3:::bucket",
    "arn:aws:kinesisvideo:us-east-1:123:channel/bad name/1",
    "arn:aws:kinesisvideo:us-east-1:123:channel/x/" + "1" * 1100,
])
def test_bad_arns(kv, arn):
    for call in (
        lambda: kv.describe_signaling_channel(ChannelARN=arn),
        lambda: kv.delete_signaling_channel(ChannelARN=arn),
        lambda: kv.update_signaling_channel(ChannelARN=arn, CurrentVersion="abc"),
        lambda: kv.list_tags_for_resource(ResourceARN=arn),
        lambda: kv.get_signaling_channel_endpoint(ChannelARN=arn),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "InvalidArgumentException", arn


def test_bad_versions_and_enums(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    info = kv.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]
    for v in ("", "has-dash", "x" * 65):
        with pytest.raises(ClientError) as e:
            kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v)
        assert error_code(e.value) == "InvalidArgumentException"
    for cfg in ({"Protocols": [], "Role": "MASTER"}, {"Protocols": ["WSS"] * 6, "Role": "MASTER"},
                {"Protocols": ["WSS"], "Role": "OBSERVER"}):
        with pytest.raises(ClientError) as e:
            kv.get_signaling_channel_endpoint(ChannelARN=arn, SingleMasterChannelEndpointConfiguration=cfg)
        assert error_code(e.value) == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        kv.list_signaling_channels(ChannelNameCondition={"ComparisonOperator": "ENDS_WITH", "ComparisonValue": "x"})
    assert error_code(e.value) == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        kv.untag_resource(ResourceARN=arn, TagKeyList=[])
    assert error_code(e.value) == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        kv.tag_resource(ResourceARN=arn, Tags=[])
    assert error_code(e.value) == "InvalidArgumentException"
    assert kv.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"] == info


def test_error_wire_format(server):
    r = server.raw("/describeSignalingChannel", json.dumps({"ChannelName": "missing-channel"}))
    assert r.status_code == 404
    assert r.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["x-amzn-RequestId"]
    assert r.headers["Date"].endswith("GMT")
    body = r.json()
    assert body["__type"] == "ResourceNotFoundException" and body["Message"]


def test_unknown_operations_are_json_not_html(server):
    for path in ("/createStream", "/nope", "/", "/describesignalingchannel"):
        r = server.raw(path, "{}")
        assert r.status_code == 404, path
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json()["__type"] == "UnknownOperationException"
