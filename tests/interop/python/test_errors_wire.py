"""The error (and success) wire format (docs/protocol.md §1, §1.1, §4.1; behaviour.md 'Errors'):
status per the model, x-amzn-ErrorType: <Code>, x-amzn-RequestId, a correct Date,
Content-Type application/json, body {"__type", "Message", "message"}; unknown path or method ->
UnknownOperationException 404 in JSON, never HTML."""
import email.utils
import json
import time

import pytest
import requests
from botocore.exceptions import ClientError

from kvs_harness import OPS, assert_aws_error, load_model

MODEL = load_model("kinesisvideo")


def check_common_headers(r):
    rid = r.headers.get("x-amzn-RequestId")
    assert rid and rid.strip(), r.headers
    date = r.headers.get("Date")
    assert date, r.headers
    parsed = email.utils.parsedate_to_datetime(date)
    assert date.endswith(" GMT"), date
    assert abs(parsed.timestamp() - time.time()) < 60, date
    return rid


def full_error_check(r, code, status):
    body = assert_aws_error(r, code, status)
    assert r.headers["x-amzn-ErrorType"] == code  # exactly the code: no ':' suffix, no '#' prefix
    assert r.headers["Content-Type"].startswith("application/json")
    assert body["__type"] == code
    assert body.get("message") == body["Message"], body  # both casings (docs/protocol.md §1.1)
    check_common_headers(r)
    return body


def model_status(code):
    return MODEL["shapes"][code]["error"]["httpStatusCode"]


@pytest.fixture(scope="module")
def chan(server):
    kv = server.client()
    arn = kv.create_signaling_channel(ChannelName="wire")["ChannelARN"]
    return arn


def test_not_found(server):
    r = server.op("DescribeSignalingChannel", {"ChannelName": "missing-channel"})
    full_error_check(r, "ResourceNotFoundException", model_status("ResourceNotFoundException"))
    assert model_status("ResourceNotFoundException") == 404


def test_invalid_argument(server):
    full_error_check(server.op("CreateSignalingChannel", {"ChannelName": "bad name"}), "InvalidArgumentException", 400)
    full_error_check(server.op("CreateSignalingChannel", b"{"), "InvalidArgumentException", 400)


def test_version_mismatch(server, chan):
    r = server.op("UpdateSignalingChannel", {"ChannelARN": chan, "CurrentVersion": "abcdefghij0123456789"})
    full_error_check(r, "VersionMismatchException", model_status("VersionMismatchException"))


def test_resource_in_use(server, chan):
    full_error_check(server.op("CreateSignalingChannel", {"ChannelName": "wire"}), "ResourceInUseException",
                     model_status("ResourceInUseException"))


def test_tags_exceeded(server, chan):
    r = server.op("TagResource", {"ResourceARN": chan, "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]})
    full_error_check(r, "TagsPerResourceExceededLimitException", model_status("TagsPerResourceExceededLimitException"))


def test_request_ids_are_unique(server):
    ids = {check_common_headers(server.op("DescribeSignalingChannel", {"ChannelName": "missing"})) for _ in range(20)}
    assert len(ids) == 20


def test_success_headers(server, chan):
    r = server.op("DescribeSignalingChannel", {"ChannelARN": chan})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    check_common_headers(r)
    assert "x-amzn-ErrorType" not in r.headers
    r = server.op("ListTagsForResource", {"ResourceARN": chan})
    assert r.status_code == 200
    check_common_headers(r)


def test_boto3_sees_code_message_and_request_id(server, kv):
    with pytest.raises(ClientError) as e:
        kv.describe_signaling_channel(ChannelName="missing-channel")
    resp = e.value.response
    assert resp["Error"]["Code"] == "ResourceNotFoundException"
    assert resp["Error"]["Message"]
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert resp["ResponseMetadata"]["RequestId"] == resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    ok = kv.list_signaling_channels()
    assert ok["ResponseMetadata"]["RequestId"]


@pytest.mark.parametrize("path", ["/nope", "/v1/nothing-here", "/createSignalingChannel/extra", "/describe",
                                  "/createStream/x", "/health/x", "/%7E"])
def test_unknown_paths_are_json_404(server, path):
    r = server.post(path, "{}")
    full_error_check(r, "UnknownOperationException", 404)
    assert "<html" not in r.text.lower()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("op", ["CreateSignalingChannel", "ListSignalingChannels", "TagResource"])
def test_wrong_method_on_an_operation_is_json_404(server, method, op):
    r = server.post(OPS[op], "{}", method=method)
    full_error_check(r, "UnknownOperationException", 404)


def test_unsigned_unknown_path_in_open_mode(server):
    r = server.post("/nope", "{}", sign_request=False)
    full_error_check(r, "UnknownOperationException", 404)


def test_error_bodies_are_small_json_objects(server):
    r = server.op("DescribeSignalingChannel", {"ChannelName": "missing"})
    body = json.loads(r.content)
    assert set(body) >= {"__type", "Message"}
    assert len(r.content) < 2048


def test_browsers_may_call_from_any_origin(server):
    """CORS, as for browser apps calling AWS: preflights answered without authentication, and
    responses readable (with the request id and error type) from the page's origin."""
    pre = requests.options(server.url + "/describeSignalingChannel", timeout=5, headers={
        "Origin": "http://localhost:3001",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,x-amz-date,x-amz-security-token,content-type",
    })
    assert pre.status_code == 200
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert "x-amz-security-token" in pre.headers["Access-Control-Allow-Headers"].lower()
    r = server.post("/describeSignalingChannel", {"ChannelName": "no-such-channel"},
                    headers={"Origin": "http://localhost:3001"})
    assert r.status_code == 404
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    exposed = r.headers["Access-Control-Expose-Headers"].lower()
    assert "x-amzn-requestid" in exposed and "x-amzn-errortype" in exposed
