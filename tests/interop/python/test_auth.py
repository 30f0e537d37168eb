"""SigV4 verification with --credentials, and account isolation."""
import json

import pytest
from botocore.exceptions import ClientError

from conftest import Server, error_code

CREDS = """
[[credentials]]
access_key_id = "AKIDALPHA"
secret_access_key = "alpha-secret"
account_id = "111111111111"

[[credentials]]
access_key_id = "AKIDBRAVO"
secret_access_key = "bravo-secret"
account_id = "222222222222"
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    path = tmp_path_factory.mktemp("creds") / "credentials.toml"
    path.write_text(CREDS)
    s = Server("--credentials", str(path))
    yield s
    s.stop()


def count(s):
    return len(s.client("AKIDALPHA", "alpha-secret").list_signaling_channels()["ChannelInfoList"])


def test_valid_signatures_work_and_arns_carry_the_account(secured):
    a = secured.client("AKIDALPHA", "alpha-secret")
    arn = a.create_signaling_channel(ChannelName="alpha-chan")["ChannelARN"]
    assert ":111111111111:channel/alpha-chan/" in arn
    eu = secured.client("AKIDALPHA", "alpha-secret", region="eu-west-1")
    assert eu.create_signaling_channel(ChannelName="alpha-chan")["ChannelARN"].startswith(
        "arn:aws:kinesisvideo:eu-west-1:111111111111:")


@pytest.mark.parametrize("kw,code", [
    ({"secret": "wrong"}, "InvalidSignatureException"),
    ({"key": "AKIDUNKNOWN"}, "UnrecognizedClientException"),
    ({"service": "s3"}, "InvalidSignatureException"),
    ({"sign": False}, "MissingAuthenticationTokenException"),
])
def test_bad_signatures_are_refused_and_change_nothing(secured, kw, code):
    before = count(secured)
    args = {"key": "AKIDALPHA", "secret": "alpha-secret", **kw}
    r = secured.raw("/createSignalingChannel", json.dumps({"ChannelName": "intruder"}), **args)
    assert 400 <= r.status_code < 500 and r.status_code == 403, r.text
    assert r.json()["__type"] == code
    assert r.headers["x-amzn-ErrorType"] == code
    assert count(secured) == before


@pytest.mark.parametrize("skew,prefix", [(-600, "Signature expired"), (600, "Signature not yet current")])
def test_clock_skew(secured, skew, prefix):
    before = count(secured)
    r = secured.raw("/createSignalingChannel", json.dumps({"ChannelName": "skewed"}),
                    key="AKIDALPHA", secret="alpha-secret", skew_seconds=skew)
    assert r.status_code == 403
    assert r.json()["Message"].startswith(prefix), r.text
    assert count(secured) == before
    ok = secured.raw("/listSignalingChannels", "{}", key="AKIDALPHA", secret="alpha-secret", skew_seconds=120)
    assert ok.status_code == 200


def test_tampered_or_unsigned_host(secured):
    # Host left out of SignedHeaders, or a Host other than the one signed: both refused.
    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="POST", url=secured.url + "/listSignalingChannels", data=b"{}",
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("AKIDALPHA", "alpha-secret"), "kinesisvideo", "us-east-1").add_auth(req)
    hdrs = dict(req.headers.items())
    hdrs["Authorization"] = hdrs["Authorization"].replace("content-type;host;x-amz-date", "content-type;x-amz-date")
    r = requests.post(req.url, data=b"{}", headers=hdrs, timeout=10)
    assert r.status_code == 403 and r.json()["__type"] == "InvalidSignatureException"
    hdrs = dict(req.headers.items())
    hdrs["Host"] = "other.example"
    r = requests.post(req.url, data=b"{}", headers=hdrs, timeout=10)
    assert r.status_code == 403 and r.json()["__type"] == "InvalidSignatureException"


def test_accounts_are_isolated(secured):
    a = secured.client("AKIDALPHA", "alpha-secret")
    b = secured.client("AKIDBRAVO", "bravo-secret")
    arn = a.create_signaling_channel(ChannelName="private")["ChannelARN"]
    version = a.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]["Version"]
    for call in (
        lambda: b.describe_signaling_channel(ChannelARN=arn),
        lambda: b.describe_signaling_channel(ChannelName="private"),
        lambda: b.update_signaling_channel(ChannelARN=arn, CurrentVersion=version),
        lambda: b.delete_signaling_channel(ChannelARN=arn),
        lambda: b.tag_resource(ResourceARN=arn, Tags=[{"Key": "x", "Value": "y"}]),
        lambda: b.list_tags_for_resource(ResourceARN=arn),
        lambda: b.get_signaling_channel_endpoint(ChannelARN=arn),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "ResourceNotFoundException"
    assert all(c["ChannelName"] != "private" for c in b.list_signaling_channels()["ChannelInfoList"])
    assert a.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]["Version"] == version
    assert b.create_signaling_channel(ChannelName="private")["ChannelARN"] != arn
