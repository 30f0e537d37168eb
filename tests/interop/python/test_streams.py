"""Kinesis video streams and the channels' media-storage configuration through boto3 (issue 15;
docs/protocol.md "Streams and media storage"): every operation on every store backend (memory,
SQLite, Redis), the error paths with their exact codes, statuses and messages, and the wire bytes
the KVS C SDK's storage sample reads first (DescribeMediaStorageConfiguration)."""
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from kvs_harness import Server, error_code, http_status

REDIS = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                         else None)


def raises(code, status, fn, **kw):
    with pytest.raises(ClientError) as e:
        fn(**kw)
    assert error_code(e.value) == code, e.value.response
    assert http_status(e.value) == status
    return e.value.response["Error"]["Message"]


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module", params=["memory", "sqlite", "redis"])
def backend(request):
    """A server per store backend; Redis on a redis-server of its own."""
    tmp = Path(tempfile.mkdtemp(prefix="kvs-streams-"))
    redis = None
    if request.param == "memory":
        server = Server()
    elif request.param == "sqlite":
        server = Server(data_dir=tmp / "data", store="sqlite")
    else:
        if REDIS is None:
            pytest.fail("redis-server is missing (apt-get install redis-server)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        redis = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", str(tmp)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        server = Server(data_dir=tmp / "data", store=f"redis://127.0.0.1:{port}")
    yield server
    server.stop()
    if redis is not None:
        redis.kill()
        redis.wait()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def bkv(backend):
    return backend.client()


def test_create_describe_list_and_delete(backend, bkv):
    name = uid("cam")
    arn = bkv.create_stream(StreamName=name, DeviceName="dev-1", MediaType="video/h264",
                            DataRetentionInHours=24, Tags={"team": "video"})["StreamARN"]
    prefix = f"arn:aws:kinesisvideo:us-east-1:000000000000:stream/{name}/"
    assert arn.startswith(prefix) and arn[len(prefix):].isdigit() and len(arn[len(prefix):]) == 13
    for info in (bkv.describe_stream(StreamName=name)["StreamInfo"],
                 bkv.describe_stream(StreamARN=arn)["StreamInfo"]):
        assert info["StreamName"] == name and info["StreamARN"] == arn
        assert info["DeviceName"] == "dev-1" and info["MediaType"] == "video/h264"
        assert info["Status"] == "ACTIVE" and info["DataRetentionInHours"] == 24
        assert info["KmsKeyId"] == "arn:aws:kms:us-east-1:000000000000:alias/aws/kinesisvideo"
        assert int(info["CreationTime"].timestamp() * 1000 + 0.5) == int(arn[len(prefix):])
        assert len(info["Version"]) == 20 and info["Version"].isalnum()
    others = [bkv.create_stream(StreamName=f"{name}-{i}")["StreamARN"] for i in range(3)]
    # Pages of two, filtered by prefix, through botocore's paginator.
    pages = list(bkv.get_paginator("list_streams").paginate(
        StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name},
        PaginationConfig={"PageSize": 2}))
    assert [len(p["StreamInfoList"]) for p in pages] == [2, 2]
    assert [i["StreamName"] for p in pages for i in p["StreamInfoList"]] == \
        [name] + [f"{name}-{i}" for i in range(3)]
    for a in others:
        bkv.delete_stream(StreamARN=a)
    bkv.delete_stream(StreamARN=arn, CurrentVersion=bkv.describe_stream(StreamARN=arn)["StreamInfo"]["Version"])
    assert raises("ResourceNotFoundException", 404, bkv.describe_stream, StreamARN=arn) == \
        "The requested stream is not found or not active."


def test_update_stream_and_data_retention(bkv):
    name = uid("upd")
    bkv.create_stream(StreamName=name, DataRetentionInHours=2)
    v1 = bkv.describe_stream(StreamName=name)["StreamInfo"]["Version"]
    bkv.update_stream(StreamName=name, CurrentVersion=v1, DeviceName="d2", MediaType="audio/opus")
    info = bkv.describe_stream(StreamName=name)["StreamInfo"]
    assert (info["DeviceName"], info["MediaType"]) == ("d2", "audio/opus")
    assert info["Version"] != v1
    assert raises("VersionMismatchException", 400, bkv.update_stream, StreamName=name, CurrentVersion=v1) == \
        "The specified version does not match the latest version of the stream."
    v2 = info["Version"]
    bkv.update_data_retention(StreamName=name, CurrentVersion=v2, Operation="INCREASE_DATA_RETENTION",
                              DataRetentionChangeInHours=10)
    v3 = bkv.describe_stream(StreamName=name)["StreamInfo"]["Version"]
    assert bkv.describe_stream(StreamName=name)["StreamInfo"]["DataRetentionInHours"] == 12
    assert raises("InvalidArgumentException", 400, bkv.update_data_retention, StreamName=name,
                  CurrentVersion=v3, Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=13) == \
        f"The data retention of stream {name} is 12 hours; it cannot be decreased by 13 hours."
    assert raises("InvalidArgumentException", 400, bkv.update_data_retention, StreamName=name,
                  CurrentVersion=v3, Operation="SET_DATA_RETENTION", DataRetentionChangeInHours=1) == \
        ("1 validation error detected: Value 'SET_DATA_RETENTION' at 'operation' failed to satisfy "
         "constraint: Member must satisfy enum value set: [INCREASE_DATA_RETENTION, DECREASE_DATA_RETENTION]")
    bkv.update_data_retention(StreamName=name, CurrentVersion=v3, Operation="DECREASE_DATA_RETENTION",
                              DataRetentionChangeInHours=12)
    assert bkv.describe_stream(StreamName=name)["StreamInfo"]["DataRetentionInHours"] == 0


def test_stream_tags(bkv):
    name = uid("tag")
    arn = bkv.create_stream(StreamName=name, Tags={"a": "1"})["StreamARN"]
    bkv.tag_stream(StreamName=name, Tags={"a": "2", "b": ""})
    assert bkv.list_tags_for_stream(StreamARN=arn)["Tags"] == {"a": "2", "b": ""}
    bkv.untag_stream(StreamARN=arn, TagKeyList=["a", "absent"])
    assert bkv.list_tags_for_stream(StreamName=name)["Tags"] == {"b": ""}
    raises("TagsPerResourceExceededLimitException", 400, bkv.tag_stream, StreamARN=arn,
           Tags={f"k{i}": "v" for i in range(50)})
    ch = bkv.create_signaling_channel(ChannelName=uid("ch"))["ChannelARN"]
    assert raises("InvalidResourceFormatException", 400, bkv.tag_stream, StreamARN=ch, Tags={"k": "v"}) == \
        f"The StreamARN {ch} is not the ARN of a stream."


def test_get_data_endpoint_is_this_server(backend, bkv):
    name = uid("ep")
    bkv.create_stream(StreamName=name)
    for api in ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
                "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP", "GET_IMAGES"]:
        assert bkv.get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"] == backend.url
    raises("ResourceNotFoundException", 404, bkv.get_data_endpoint, StreamName=uid("none"), APIName="GET_MEDIA")


def test_media_storage_configuration_and_mapping(backend, bkv):
    ch_name, st_name = uid("ch"), uid("st")
    ch = bkv.create_signaling_channel(ChannelName=ch_name)["ChannelARN"]
    # The exact bytes the C SDK's storage sample parses first: a never configured channel.
    r = backend.post("/describeMediaStorageConfiguration", {"ChannelName": ch_name})
    assert r.status_code == 200 and r.text == '{"MediaStorageConfiguration":{"Status":"DISABLED"}}', r.text
    no_retention = bkv.create_stream(StreamName=uid("zero"))["StreamARN"]
    assert raises("NoDataRetentionException", 400, bkv.update_media_storage_configuration, ChannelARN=ch,
                  MediaStorageConfiguration={"Status": "ENABLED", "StreamARN": no_retention}).startswith(
        "The stream zero-")
    st = bkv.create_stream(StreamName=st_name, DataRetentionInHours=1)["StreamARN"]
    bkv.update_media_storage_configuration(ChannelARN=ch,
                                           MediaStorageConfiguration={"Status": "ENABLED", "StreamARN": st})
    assert bkv.describe_media_storage_configuration(ChannelARN=ch)["MediaStorageConfiguration"] == \
        {"Status": "ENABLED", "StreamARN": st}
    assert bkv.describe_mapped_resource_configuration(StreamName=st_name)["MappedResourceConfigurationList"] == \
        [{"Type": "SIGNALING_CHANNEL", "ARN": ch}]
    eps = bkv.get_signaling_channel_endpoint(
        ChannelARN=ch, SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS", "WEBRTC"],
                                                                 "Role": "MASTER"})["ResourceEndpointList"]
    assert {e["Protocol"]: e["ResourceEndpoint"] for e in eps} == {
        "WSS": backend.url.replace("http://", "ws://"), "HTTPS": backend.url, "WEBRTC": backend.url}
    # A stream serves one channel.
    ch2 = bkv.create_signaling_channel(ChannelName=uid("ch2"))["ChannelARN"]
    assert raises("ResourceInUseException", 400, bkv.update_media_storage_configuration, ChannelARN=ch2,
                  MediaStorageConfiguration={"Status": "ENABLED", "StreamARN": st}) == \
        f"The stream {st_name} is already mapped to {ch}."
    # Deleting the channel frees the stream; deleting the stream clears the channel.
    bkv.delete_signaling_channel(ChannelARN=ch)
    assert bkv.describe_mapped_resource_configuration(StreamARN=st)["MappedResourceConfigurationList"] == []
    bkv.update_media_storage_configuration(ChannelARN=ch2,
                                           MediaStorageConfiguration={"Status": "ENABLED", "StreamARN": st})
    bkv.delete_stream(StreamARN=st)
    assert bkv.describe_media_storage_configuration(ChannelARN=ch2)["MediaStorageConfiguration"] == \
        {"Status": "DISABLED"}
    assert raises("InvalidArgumentException", 400, bkv.get_signaling_channel_endpoint, ChannelARN=ch2,
                  SingleMasterChannelEndpointConfiguration={"Protocols": ["WEBRTC"], "Role": "MASTER"}).endswith(
        "is not configured for media storage, so it has no WEBRTC endpoint.")


def test_validation_and_missing_resources(server, kv):
    assert raises("InvalidArgumentException", 400, kv.create_stream, StreamName="a" * 257) == \
        ("1 validation error detected: Value at 'streamName' failed to satisfy constraint: Member must "
         "have length between 1 and 256 (inclusive); got 257")
    assert raises("InvalidArgumentException", 400, kv.create_stream, StreamName="x", MediaType="h264") == \
        ("1 validation error detected: Value at 'mediaType' failed to satisfy constraint: Member must "
         "satisfy regular expression pattern: [\\w\\-\\.\\+]+/[\\w\\-\\.\\+]+(,[\\w\\-\\.\\+]+/[\\w\\-\\.\\+]+)*")
    assert raises("InvalidArgumentException", 400, kv.describe_stream) == \
        "Either StreamName or StreamARN must be specified."
    assert raises("InvalidArgumentException", 400, kv.list_streams, MaxResults=10001) == \
        ("1 validation error detected: Value '10001' at 'maxResults' failed to satisfy constraint: Member "
         "must have value between 1 and 10000 (inclusive)")
    name = uid("dup")
    kv.create_stream(StreamName=name)
    assert raises("ResourceInUseException", 400, kv.create_stream, StreamName=name) == \
        f"The stream {name} already exists."
    assert raises("ResourceNotFoundException", 404, kv.describe_media_storage_configuration,
                  ChannelName=uid("none")) == "The requested channel is not found or not active."
    ch = kv.create_signaling_channel(ChannelName=uid("ch"))["ChannelARN"]
    assert raises("InvalidArgumentException", 400, kv.update_media_storage_configuration, ChannelARN=ch,
                  MediaStorageConfiguration={"Status": "ENABLED"}) == \
        "MediaStorageConfiguration.StreamARN must be specified when Status is ENABLED."
    # Unknown to boto3's model? No: every operation is routed (no UnknownOperationException).
    for path in ["/createStream", "/describeStream", "/listStreams", "/updateStream", "/deleteStream",
                 "/updateDataRetention", "/tagStream", "/untagStream", "/listTagsForStream", "/getDataEndpoint",
                 "/updateMediaStorageConfiguration", "/describeMediaStorageConfiguration",
                 "/describeMappedResourceConfiguration"]:
        r = server.post(path, {})
        assert r.headers.get("x-amzn-ErrorType") != "UnknownOperationException", (path, r.text)


def test_account_stream_limit(make_server):
    s = make_server("--max-streams", "1")
    kv = s.client()
    kv.create_stream(StreamName="one")
    assert raises("AccountStreamLimitExceededException", 400, kv.create_stream, StreamName="two") == \
        "You have reached the maximum limit of streams (1) for this account."
