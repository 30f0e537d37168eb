"""SigV4 with --credentials (docs/protocol.md §4.2, §7.1; behaviour.md 'Errors'): every failure is a 403
AWS-style JSON error with the documented code and changes nothing; accounts (and regions) are
isolated namespaces (docs/design.md §2 'Namespaces')."""
import datetime as dt
import json
from unittest import mock

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from kvs_harness import Server, assert_aws_error, assert_client_error, error_code, http_status, raw_http, sign

CREDS = """
[[credentials]]
access_key_id = "AKIDALPHA"
secret_access_key = "alpha-secret"
account_id = "111111111111"

[[credentials]]
access_key_id = "AKIDBRAVO"
secret_access_key = "bravo/secret+with=odd chars"
account_id = "222222222222"

[[credentials]]
access_key_id = "ASIACHARLIE"
secret_access_key = "charlie-secret"
account_id = "333333333333"
session_token = "charlie-session-token"
"""
A = {"key": "AKIDALPHA", "secret": "alpha-secret"}
B = {"key": "AKIDBRAVO", "secret": "bravo/secret+with=odd chars"}
C = {"key": "ASIACHARLIE", "secret": "charlie-secret"}
C_TOKEN = "charlie-session-token"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    path = tmp_path_factory.mktemp("creds") / "credentials.toml"
    path.write_text(CREDS)
    s = Server("--credentials", str(path))
    s.client(**A).create_signaling_channel(ChannelName="alpha-existing")
    yield s
    s.stop()


def snapshot(s):
    out = {}
    for who, region in ((A, "us-east-1"), (B, "us-east-1"), (A, "eu-west-1")):
        kv = s.client(**who, region=region)
        chans = kv.list_signaling_channels()["ChannelInfoList"]
        out[(who["key"], region)] = (chans, {c["ChannelName"]: kv.list_tags_for_resource(
            ResourceARN=c["ChannelARN"])["Tags"] for c in chans})
    return out


def now():
    return dt.datetime.now(dt.timezone.utc)


def test_the_test_signer_matches_botocore():
    """kvs_harness.sign() is what the tampering tests use; it must agree with botocore."""
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    body = b'{"ChannelName":"x"}'
    req = AWSRequest(method="POST", url="http://127.0.0.1:4580/createSignalingChannel", data=body,
                     headers={"Content-Type": "application/json"})
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4Auth(Credentials("AKIDALPHA", "alpha-secret"), "kinesisvideo", "us-east-1").add_auth(req)
    mine = sign("POST", "/createSignalingChannel", {"Content-Type": "application/json", "Host": "127.0.0.1:4580"},
                body, key="AKIDALPHA", secret="alpha-secret", region="us-east-1", when=when)
    assert mine["Authorization"] == req.headers["Authorization"]
    assert mine["X-Amz-Date"] == req.headers["X-Amz-Date"]


def test_valid_requests_work_and_arns_carry_account_and_region(secured):
    a = secured.client(**A)
    arn = a.create_signaling_channel(ChannelName="alpha-chan")["ChannelARN"]
    assert arn.startswith("arn:aws:kinesisvideo:us-east-1:111111111111:channel/alpha-chan/")
    eu = secured.client(**A, region="eu-west-1")
    assert eu.create_signaling_channel(ChannelName="alpha-chan")["ChannelARN"].startswith(
        "arn:aws:kinesisvideo:eu-west-1:111111111111:channel/alpha-chan/")
    b = secured.client(**B)
    assert b.create_signaling_channel(ChannelName="bravo-chan")["ChannelARN"].startswith(
        "arn:aws:kinesisvideo:us-east-1:222222222222:channel/bravo-chan/")
    # The hand-made signer is accepted too (so refusals below are about the tampering only).
    r = secured.op("ListSignalingChannels", {}, **A)
    assert r.status_code == 200, r.text
    # Signed headers beyond botocore's choice (C SDK style: host;user-agent;x-amz-date, token unsigned).
    r = secured.op("ListSignalingChannels", b"{\n\t\"MaxResults\": 5\n}", **C,
                   headers={"User-Agent": "kvs-c-sdk/1.0"}, signed_headers=["host", "user-agent", "x-amz-date"],
                   after_sign={"X-Amz-Security-Token": C_TOKEN})
    assert r.status_code == 200, r.text


def test_session_tokens_are_the_keys_own(secured):
    """A key with a session_token verifies with exactly that token, signed (botocore) or not (C SDK);
    a key without one refuses any token, as AWS refuses a long-term key sent with a token."""
    arn = secured.client(**C, session_token=C_TOKEN).create_signaling_channel(ChannelName="temp")["ChannelARN"]
    assert ":333333333333:" in arn
    for who, token in ((C, None), (C, "charlie-session-tokeN"), (C, C_TOKEN + "x"), (A, "any-token"),
                       (A, C_TOKEN)):
        with pytest.raises(ClientError) as e:
            secured.client(**who, session_token=token, fresh=True).list_signaling_channels()
        assert (error_code(e.value), http_status(e.value)) == ("UnrecognizedClientException", 403), (who, token)
        r = secured.op("ListSignalingChannels", {}, **who, after_sign={"X-Amz-Security-Token": token} if token else {})
        assert_aws_error(r, "UnrecognizedClientException", 403)


def test_health_needs_no_signature(secured):
    assert requests.get(secured.url + "/health", timeout=5).status_code == 200


CREATE = ("CreateSignalingChannel", {"ChannelName": "intruder"})


@pytest.mark.parametrize("case,kw,code", [
    ("wrong-secret", {**A, "secret": "wrong"}, "InvalidSignatureException"),
    ("other-accounts-secret", {**A, "secret": B["secret"]}, "InvalidSignatureException"),
    ("unknown-key", {"key": "AKIDUNKNOWN", "secret": "x"}, "UnrecognizedClientException"),
    ("wrong-service", {**A, "service": "s3"}, "InvalidSignatureException"),
    ("signaling-name-as-service", {**A, "service": "kinesis-video-signaling"}, "InvalidSignatureException"),
    ("unsigned", {**A, "sign_request": False}, "MissingAuthenticationTokenException"),
    ("host-not-signed", {**A, "signed_headers": ["content-type", "x-amz-date"]}, "InvalidSignatureException"),
    ("other-host-sent", {**A, "after_sign": {"Host": "evil.example:443"}}, "InvalidSignatureException"),
    ("date-changed", {**A, "after_sign": lambda h: {"X-Amz-Date": (
        dt.datetime.strptime(h["X-Amz-Date"], "%Y%m%dT%H%M%SZ") - dt.timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")}},
     "InvalidSignatureException"),
    ("signed-header-changed", {**A, "headers": {"X-Extra": "1"}, "after_sign": {"X-Extra": "2"}},
     "InvalidSignatureException"),
    ("signed-header-dropped", {**A, "headers": {"X-Extra": "1"}, "drop": ("X-Extra",)}, "InvalidSignatureException"),
    ("no-date", {**A, "drop": ("X-Amz-Date",)}, "IncompleteSignatureException"),
    ("garbage-authorization", {**A, "after_sign": {"Authorization": "AWS4-HMAC-SHA256 garbage"}},
     "IncompleteSignatureException"),
    ("no-signature-part", {**A, "after_sign": {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDALPHA/20260101/us-east-1/kinesisvideo/aws4_request, "
                         "SignedHeaders=host;x-amz-date"}}, "IncompleteSignatureException"),
    ("other-algorithm", {**A, "after_sign": {"Authorization": "Bearer abc"}}, "IncompleteSignatureException"),
    ("scope-date-mismatch", {**A, "after_sign": {}, "scope_shift": True}, "InvalidSignatureException"),
])
def test_bad_signatures_are_refused_and_change_nothing(secured, case, kw, code):
    kw = dict(kw)
    before = snapshot(secured)
    op, body = CREATE
    if kw.pop("scope_shift", False):
        # A signature whose credential scope date is not the X-Amz-Date's day.
        data = json.dumps(body).encode()
        hdrs = sign("POST", "/createSignalingChannel", {"Content-Type": "application/json", "Host": secured.netloc},
                    data, key=A["key"], secret=A["secret"], region="us-east-1", scope_date="20200101")
        r = requests.post(secured.url + "/createSignalingChannel", data=data, headers=hdrs, timeout=10)
    else:
        r = secured.op(op, body, **kw)
    assert_aws_error(r, code, 403)
    assert snapshot(secured) == before


def test_tampered_body_is_refused(secured):
    before = snapshot(secured)
    data = json.dumps({"ChannelName": "innocent"}).encode()
    hdrs = sign("POST", "/createSignalingChannel", {"Content-Type": "application/json", "Host": secured.netloc},
                data, region="us-east-1", **A)
    r = requests.post(secured.url + "/createSignalingChannel", data=json.dumps({"ChannelName": "intruder"}),
                      headers=hdrs, timeout=10)
    assert_aws_error(r, "InvalidSignatureException", 403)
    assert snapshot(secured) == before


def test_boto3_with_wrong_secret_sees_the_error_code(secured):
    with pytest.raises(ClientError) as e:
        secured.client(key="AKIDALPHA", secret="nope").list_signaling_channels()
    assert error_code(e.value) == "InvalidSignatureException" and http_status(e.value) == 403
    with pytest.raises(ClientError) as e:
        secured.client(key="AKIDNOBODY", secret="nope").list_signaling_channels()
    assert error_code(e.value) == "UnrecognizedClientException" and http_status(e.value) == 403


@pytest.mark.parametrize("skew,prefix", [(-301 - 60, "Signature expired"), (-3600 * 24, "Signature expired"),
                                         (360, "Signature not yet current"),
                                         (3600 * 24, "Signature not yet current")])
def test_clock_skew_is_refused(secured, skew, prefix):
    before = snapshot(secured)
    r = secured.op(*CREATE, **A, when=now() + dt.timedelta(seconds=skew))
    body = assert_aws_error(r, "InvalidSignatureException", 403)
    assert body["Message"].startswith(prefix), body
    assert prefix in r.text  # the C SDK searches the raw body for it (docs/protocol.md §1.1)
    assert snapshot(secured) == before


@pytest.mark.parametrize("skew", [-240, -60, 60, 240])
def test_clock_skew_within_five_minutes_is_accepted(secured, skew):
    r = secured.op("ListSignalingChannels", {}, **A, when=now() + dt.timedelta(seconds=skew))
    assert r.status_code == 200, r.text


def test_missing_host_header_is_refused(secured):
    """HTTP/1.0 lets a request reach the server without any Host header."""
    before = snapshot(secured)
    data = json.dumps({"ChannelName": "intruder"}).encode()
    hdrs = sign("POST", "/createSignalingChannel", {"Content-Type": "application/json", "Host": secured.netloc},
                data, region="us-east-1", **A)
    hdrs.pop("Host")
    head = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    req = (f"POST /createSignalingChannel HTTP/1.0\r\n{head}Content-Length: {len(data)}\r\n\r\n").encode() + data
    status, headers, body = raw_http(secured, req)
    # behaviour.md 'Errors': `host` not signed (here: signed, then absent) is 403
    # InvalidSignatureException, like any signature that does not verify.
    assert status == 403, (status, body)
    assert "json" in headers.get("content-type", ""), (status, headers, body)
    assert json.loads(body)["__type"] == "InvalidSignatureException", body
    assert headers.get("x-amzn-errortype") == "InvalidSignatureException", headers
    assert snapshot(secured) == before


# --- isolation -------------------------------------------------------------------------------
def test_accounts_are_isolated(secured):
    a, b = secured.client(**A), secured.client(**B)
    arn = a.create_signaling_channel(ChannelName="private", Tags=[{"Key": "owner", "Value": "alpha"}])["ChannelARN"]
    info = a.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]
    v = info["Version"]
    other_account_arn = arn.replace(":111111111111:", ":222222222222:")
    calls = [
        ("describe by ARN", lambda: b.describe_signaling_channel(ChannelARN=arn)),
        ("describe by name", lambda: b.describe_signaling_channel(ChannelName="private")),
        ("describe ARN rewritten to B", lambda: b.describe_signaling_channel(ChannelARN=other_account_arn)),
        ("update", lambda: b.update_signaling_channel(ChannelARN=arn, CurrentVersion=v,
                                                      SingleMasterConfiguration={"MessageTtlSeconds": 5})),
        ("delete", lambda: b.delete_signaling_channel(ChannelARN=arn)),
        ("delete with version", lambda: b.delete_signaling_channel(ChannelARN=arn, CurrentVersion=v)),
        ("tag", lambda: b.tag_resource(ResourceARN=arn, Tags=[{"Key": "x", "Value": "y"}])),
        ("untag", lambda: b.untag_resource(ResourceARN=arn, TagKeyList=["owner"])),
        ("list tags", lambda: b.list_tags_for_resource(ResourceARN=arn)),
        ("endpoint", lambda: b.get_signaling_channel_endpoint(ChannelARN=arn)),
    ]
    for what, call in calls:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "ResourceNotFoundException", (what, e.value.response)
        assert http_status(e.value) == 404, what
    assert all(c["ChannelName"] != "private" for c in b.list_signaling_channels()["ChannelInfoList"])
    assert b.list_signaling_channels(ChannelNameCondition={"ComparisonOperator": "BEGINS_WITH",
                                                           "ComparisonValue": "priv"})["ChannelInfoList"] == []
    assert a.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"] == info
    assert a.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"owner": "alpha"}
    # B has a namespace of its own: the same name is free there.
    b_arn = b.create_signaling_channel(ChannelName="private")["ChannelARN"]
    assert ":222222222222:channel/private/" in b_arn
    assert a.describe_signaling_channel(ChannelName="private")["ChannelInfo"]["ChannelARN"] == arn


def test_regions_are_isolated_within_an_account(secured):
    east, west = secured.client(**A), secured.client(**A, region="eu-west-1")
    arn = east.create_signaling_channel(ChannelName="regional")["ChannelARN"]
    for call in (lambda: west.describe_signaling_channel(ChannelARN=arn),
                 lambda: west.describe_signaling_channel(ChannelName="regional"),
                 lambda: west.list_tags_for_resource(ResourceARN=arn),
                 lambda: west.delete_signaling_channel(ChannelARN=arn)):
        with pytest.raises(ClientError) as e:
            call()
        assert_client_error(e.value, "ResourceNotFoundException", 404)
    assert east.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]["ChannelStatus"] == "ACTIVE"


def test_per_account_channel_limit(tmp_path):
    path = tmp_path / "creds.toml"
    path.write_text(CREDS)
    with Server("--credentials", str(path), "--max-channels", "2") as s:
        a, b = s.client(**A), s.client(**B)
        a.create_signaling_channel(ChannelName="one")
        a.create_signaling_channel(ChannelName="two")
        with pytest.raises(ClientError) as e:
            a.create_signaling_channel(ChannelName="three")
        assert_client_error(e.value, "AccountChannelLimitExceededException", 400)
        b.create_signaling_channel(ChannelName="one")  # B's quota is its own
        b.create_signaling_channel(ChannelName="two")
