"""Every control-plane operation through boto3 (client-side validation off), and the error wire."""
import concurrent.futures
import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, status


def describe(kv, **kw):
    return kv.describe_signaling_channel(**kw)["ChannelInfo"]


def test_create_describe_defaults_and_identity(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    m = re.fullmatch(r"arn:aws:kinesisvideo:us-east-1:(\d{12}):channel/" + re.escape(name) + r"/(\d{13})", arn)
    assert m, arn
    info = describe(kv, ChannelName=name)
    assert info == describe(kv, ChannelARN=arn)
    assert info["ChannelType"] == "SINGLE_MASTER"
    assert info["ChannelStatus"] == "ACTIVE"
    assert info["SingleMasterConfiguration"] == {"MessageTtlSeconds": 60}
    assert re.fullmatch(r"[A-Za-z0-9]{20}", info["Version"])
    assert int(m.group(2)) == round(info["CreationTime"].timestamp() * 1000)


def test_update_rotates_version_and_stale_versions_change_nothing(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    v1 = describe(kv, ChannelARN=arn)["Version"]
    resp = kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v1,
                                       SingleMasterConfiguration={"MessageTtlSeconds": 5})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    info = describe(kv, ChannelARN=arn)
    assert info["Version"] != v1
    assert info["SingleMasterConfiguration"]["MessageTtlSeconds"] == 5
    with pytest.raises(ClientError) as e:
        kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v1,
                                    SingleMasterConfiguration={"MessageTtlSeconds": 100})
    assert error_code(e.value) == "VersionMismatchException" and status(e.value) == 400
    assert describe(kv, ChannelARN=arn) == info
    for bad in (4, 121, -1, 10**12):
        with pytest.raises(ClientError) as e:
            kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=info["Version"],
                                        SingleMasterConfiguration={"MessageTtlSeconds": bad})
        assert error_code(e.value) == "InvalidArgumentException"
    assert describe(kv, ChannelARN=arn) == info


def test_update_requires_arn_and_version_and_unknown_is_404(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    with pytest.raises(ClientError) as e:
        kv.update_signaling_channel(ChannelARN=arn)
    assert error_code(e.value) == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        kv.update_signaling_channel(CurrentVersion="abc")
    assert error_code(e.value) == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        kv.update_signaling_channel(ChannelARN=arn.replace(name, name + "x"), CurrentVersion="abc")
    assert error_code(e.value) == "ResourceNotFoundException" and status(e.value) == 404


def test_concurrent_updates_have_one_winner(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    v = describe(kv, ChannelARN=arn)["Version"]

    def update(i):
        try:
            kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=v,
                                        SingleMasterConfiguration={"MessageTtlSeconds": 10 + i})
            return "ok"
        except ClientError as e:
            return error_code(e)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(update, range(12)))
    assert results.count("ok") == 1, results
    assert set(results) == {"ok", "VersionMismatchException"}


def test_delete_with_and_without_version(kv, name):
    a = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    b = kv.create_signaling_channel(ChannelName=name + "b")["ChannelARN"]
    with pytest.raises(ClientError) as e:
        kv.delete_signaling_channel(ChannelARN=a, CurrentVersion="wrongversion")
    assert error_code(e.value) == "VersionMismatchException"
    kv.delete_signaling_channel(ChannelARN=a, CurrentVersion=describe(kv, ChannelARN=a)["Version"])
    kv.delete_signaling_channel(ChannelARN=b)
    for arn in (a, b):
        with pytest.raises(ClientError) as e:
            describe(kv, ChannelARN=arn)
        assert error_code(e.value) == "ResourceNotFoundException"


def test_duplicate_name_and_channel_limit(name):
    from conftest import Server
    s = Server("--max-channels", "2")
    try:
        kv = s.client()
        kv.create_signaling_channel(ChannelName="a")
        with pytest.raises(ClientError) as e:
            kv.create_signaling_channel(ChannelName="a")
        assert error_code(e.value) == "ResourceInUseException"
        kv.create_signaling_channel(ChannelName="b")
        with pytest.raises(ClientError) as e:
            kv.create_signaling_channel(ChannelName="c")
        assert error_code(e.value) == "AccountChannelLimitExceededException"
    finally:
        s.stop()


def test_tags(kv, name):
    arn = kv.create_signaling_channel(ChannelName=name, Tags=[{"Key": "a", "Value": "1"}])["ChannelARN"]
    kv.tag_resource(ResourceARN=arn, Tags=[{"Key": "a", "Value": "2"}, {"Key": "b", "Value": ""}])
    kv.untag_resource(ResourceARN=arn, TagKeyList=["b", "missing"])
    assert kv.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"a": "2"}
    kv.tag_resource(ResourceARN=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(49)])
    with pytest.raises(ClientError) as e:
        kv.tag_resource(ResourceARN=arn, Tags=[{"Key": "extra", "Value": "v"}])
    assert error_code(e.value) == "TagsPerResourceExceededLimitException"
    assert len(kv.list_tags_for_resource(ResourceARN=arn)["Tags"]) == 50
    with pytest.raises(ClientError) as e:
        kv.create_signaling_channel(ChannelName=name + "t",
                                    Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    assert error_code(e.value) == "TagsPerResourceExceededLimitException"


def test_endpoints(server, kv, name):
    arn = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    for role in ("MASTER", "VIEWER"):
        out = kv.get_signaling_channel_endpoint(
            ChannelARN=arn,
            SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS"], "Role": role})
        eps = {e["Protocol"]: e["ResourceEndpoint"] for e in out["ResourceEndpointList"]}
        assert eps == {"WSS": f"ws://127.0.0.1:{server.port}", "HTTPS": f"http://127.0.0.1:{server.port}"}
    with pytest.raises(ClientError) as e:
        kv.get_signaling_channel_endpoint(
            ChannelARN=arn, SingleMasterChannelEndpointConfiguration={"Protocols": ["SMTP"], "Role": "MASTER"})
    assert error_code(e.value) == "InvalidArgumentException"


def test_listing_pages_with_begins_with(kv, name):
    for i in range(12):
        kv.create_signaling_channel(ChannelName=f"{name}-{i:02d}")
    seen, token = [], None
    while True:
        kw = {"MaxResults": 5, "ChannelNameCondition": {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name}}
        if token:
            kw["NextToken"] = token
        out = kv.list_signaling_channels(**kw)
        seen += [c["ChannelName"] for c in out["ChannelInfoList"]]
        token = out.get("NextToken")
        if not token:
            break
    assert seen == [f"{name}-{i:02d}" for i in range(12)]
    with pytest.raises(ClientError) as e:
        kv.list_signaling_channels(NextToken="!!notatoken!!")
    assert error_code(e.value) == "InvalidArgumentException"
    for bad in (0, 10001):
        with pytest.raises(ClientError) as e:
            kv.list_signaling_channels(MaxResults=bad)
        assert error_code(e.value) == "InvalidArgumentException"


def test_lifecycle_with_delay():
    from conftest import Server
    s = Server("--lifecycle-delay", "1s")
    try:
        kv = s.client()
        arn = kv.create_signaling_channel(ChannelName="slow")["ChannelARN"]
        info = describe(kv, ChannelARN=arn)
        assert info["ChannelStatus"] == "CREATING"
        with pytest.raises(ClientError) as e:
            kv.update_signaling_channel(ChannelARN=arn, CurrentVersion=info["Version"])
        assert error_code(e.value) == "ResourceInUseException"
        time.sleep(1.2)
        assert describe(kv, ChannelARN=arn)["ChannelStatus"] == "ACTIVE"
        kv.delete_signaling_channel(ChannelARN=arn)
        assert describe(kv, ChannelARN=arn)["ChannelStatus"] == "DELETING"
        with pytest.raises(ClientError) as e:
            kv.delete_signaling_channel(ChannelARN=arn)
        assert error_code(e.value) == "ResourceInUseException"
        time.sleep(1.2)
        with pytest.raises(ClientError) as e:
            describe(kv, ChannelARN=arn)
        assert error_code(e.value) == "ResourceNotFoundException"
    finally:
        s.stop()
