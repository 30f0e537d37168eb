"""The server validates everything itself (docs/protocol.md §3.1: botocore checks only required/types/min,
and here even that is off). Every constraint of every member of the signaling operations is read
from the service model and violated one at a time: too long, too short, pattern, range, enum,
list size, wrong JSON type, missing required member; plus malformed JSON and empty bodies.
Each must be InvalidArgumentException 400 (behaviour.md 'Errors') and change nothing."""
import copy
import json

import pytest

from kvs_harness import OPS, assert_aws_error, load_model

MODEL = load_model("kinesisvideo")
SHAPES = MODEL["shapes"]

# Valid request bodies. "{ARN}", "{VERSION}", "{NAME}" and "{TOKEN}" are filled in per test
# from a live channel. Every optional structure/list member is present so nested members can be
# mutated; NextToken of ListTagsForResource is added by the mutation (there is no valid one).
BASES = {
    "CreateSignalingChannel": {"ChannelName": "val-never-created", "ChannelType": "SINGLE_MASTER",
                               "SingleMasterConfiguration": {"MessageTtlSeconds": 30},
                               "Tags": [{"Key": "k", "Value": "v"}]},
    "DescribeSignalingChannel": [{"ChannelName": "{NAME}"}, {"ChannelARN": "{ARN}"}],
    "ListSignalingChannels": {"MaxResults": 1, "NextToken": "{TOKEN}",
                              "ChannelNameCondition": {"ComparisonOperator": "BEGINS_WITH",
                                                       "ComparisonValue": "val-"}},
    "UpdateSignalingChannel": {"ChannelARN": "{ARN}", "CurrentVersion": "{VERSION}",
                               "SingleMasterConfiguration": {"MessageTtlSeconds": 30}},
    "DeleteSignalingChannel": {"ChannelARN": "{ARN}", "CurrentVersion": "{VERSION}"},
    "GetSignalingChannelEndpoint": {"ChannelARN": "{ARN}",
                                    "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WSS", "HTTPS"],
                                                                                 "Role": "MASTER"}},
    "TagResource": {"ResourceARN": "{ARN}", "Tags": [{"Key": "k2", "Value": "v2"}]},
    "UntagResource": {"ResourceARN": "{ARN}", "TagKeyList": ["k"]},
    "ListTagsForResource": {"ResourceARN": "{ARN}"},
}

# One value per model pattern that breaks the pattern but no other constraint.
PATTERN_BREAKERS = {
    "[a-zA-Z0-9_.-]+": ["has space", "slash/name", "ünïcode", "semi;colon", "tab\tname"],
    r"arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+": [
        "not-an-arn", "arn:aws:s3:::bucket", "arn:aws:kinesisvideo:us-east-1:000000000000:channel/bad name/1",
        "arn:aws:kinesisvideo:us-east-1:000000000000:channel/x/notdigits",
        "arn:AWS:kinesisvideo:us-east-1:000000000000:channel/x/1"],
    "[a-zA-Z0-9]+": ["has-dash", "under_score", "sp ace"],
    "[a-zA-Z0-9+/=]*": ["!!notatoken!!", "a b", "abc-def"],
    r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$": ["bad*key", "semi;", "quote\"", "hash#"],
    r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*": ["bad*value", "semi;", "hash#"],
}

# Values that satisfy each pattern, used to build too-long strings.
PATTERN_FILL = {
    "[a-zA-Z0-9_.-]+": "a",
    "[a-zA-Z0-9]+": "a",
    "[a-zA-Z0-9+/=]*": "A",
    r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$": "k",
    r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*": "v",
}

WRONG_TYPES = {
    "string": [123, True, ["x"], {"x": "y"}],
    "integer": ["30", 30.5, True, [30], {"v": 30}],
    "list": ["x", {"k": "v"}, 5],
    "structure": ["x", ["x"], 5],
}

# Lists whose overflow has its own error (issue: '>50 tags -> TagsPerResourceExceededLimitException').
TOO_MANY_CODE = {"TagOnCreateList": "TagsPerResourceExceededLimitException",
                 "TagList": "TagsPerResourceExceededLimitException"}


def too_long_arn(n):
    prefix, suffix = "arn:aws:kinesisvideo:us-east-1:000000000000:channel/", "/1712136149494"
    return prefix + "a" * (n - len(prefix) - len(suffix)) + suffix


def member_value_for_list(list_shape):
    """A valid item for a list shape, used to build too-many/too-few lists."""
    item = list_shape["member"]["shape"]
    if item == "Tag":
        return lambda i: {"Key": f"key{i}", "Value": "v"}
    if item == "TagKey":
        return lambda i: f"key{i}"
    if item == "ChannelProtocol":
        return lambda i: ["WSS", "HTTPS"][i % 2]
    raise AssertionError(f"no item generator for list of {item}: extend the test")


def cases():
    """(id, operation, base index, path, action, value, expected codes) for every constraint."""
    out = []

    def add(op, bi, path, action, value, why, codes=("InvalidArgumentException",)):
        out.append(pytest.param(op, bi, path, action, value, set(codes),
                                id=f"{op}-{bi}-{'.'.join(map(str, path))}-{why}"))

    def walk(op, bi, shape_name, path, required):
        shape = SHAPES[shape_name]
        t = shape["type"]
        if required:
            add(op, bi, path, "delete", None, "missing")
        for wrong in WRONG_TYPES.get(t, []):
            add(op, bi, path, "set", wrong, f"type-{type(wrong).__name__}")
        if t == "string":
            pat = shape.get("pattern")
            if "enum" in shape:
                for bad in ("NOT_A_VALUE", shape["enum"][0].lower(), ""):
                    add(op, bi, path, "set", bad, f"enum-{bad or 'empty'}")
            if shape.get("min", 0) >= 1:
                add(op, bi, path, "set", "", "too-short")
            if "max" in shape:
                n = shape["max"] + 1
                val = too_long_arn(n) if shape_name == "ResourceARN" else PATTERN_FILL[pat] * n
                add(op, bi, path, "set", val, f"too-long-{n}")
            if pat:
                assert pat in PATTERN_BREAKERS, f"new pattern in the model: {pat!r}; extend PATTERN_BREAKERS"
                for i, bad in enumerate(PATTERN_BREAKERS[pat]):
                    add(op, bi, path, "set", bad, f"pattern{i}")
        elif t == "integer":
            if "min" in shape:
                add(op, bi, path, "set", shape["min"] - 1, "below-min")
                add(op, bi, path, "set", -(2**31) - 1, "far-below-min")
            if "max" in shape:
                add(op, bi, path, "set", shape["max"] + 1, "above-max")
                add(op, bi, path, "set", 2**63, "far-above-max")
        elif t == "list":
            gen = member_value_for_list(shape)
            if shape.get("min", 0) >= 1:
                add(op, bi, path, "set", [], "empty-list")
            if "max" in shape:
                n = shape["max"] + 1
                add(op, bi, path, "set", [gen(i) for i in range(n)], f"list-of-{n}",
                    codes=(TOO_MANY_CODE.get(shape_name, "InvalidArgumentException"),))
            walk(op, bi, shape["member"]["shape"], path + [0], False)
        elif t == "structure":
            for m, ref in shape["members"].items():
                walk(op, bi, ref["shape"], path + [m], m in shape.get("required", []))

    for op in OPS:
        bases = BASES[op] if isinstance(BASES[op], list) else [BASES[op]]
        in_shape = SHAPES[MODEL["operations"][op]["input"]["shape"]]
        for bi, base in enumerate(bases):
            for m, ref in in_shape["members"].items():
                if bi == 0 or m in base:
                    walk(op, bi, ref["shape"], [m], m in in_shape.get("required", []))
    return out


CASES = cases()


def fill(obj, ctx):
    if isinstance(obj, str):
        for k, v in ctx.items():
            obj = obj.replace("{" + k + "}", v)
        return obj
    if isinstance(obj, list):
        return [fill(x, ctx) for x in obj]
    if isinstance(obj, dict):
        return {k: fill(v, ctx) for k, v in obj.items()}
    return obj


def mutate(body, path, action, value):
    body = copy.deepcopy(body)
    node = body
    for p in path[:-1]:
        if isinstance(p, int):
            node = node[p]
        else:
            node = node.setdefault(p, {})
    last = path[-1]
    if action == "delete":
        if isinstance(node, dict):
            node.pop(last, None)
        else:
            del node[last]
    else:
        node[last] = value
    return body


def base_body(op, bi):
    b = BASES[op]
    return b[bi] if isinstance(b, list) else b


@pytest.fixture(scope="module")
def vctx(server):
    """A channel and a valid NextToken for the base requests."""
    kv = server.client()
    for n in ("val-a", "val-b", "val-c"):
        kv.create_signaling_channel(ChannelName=n, Tags=[{"Key": "k", "Value": "v"}])
    return {"kv": kv}


def live_ctx(server, vctx):
    kv = vctx["kv"]
    r = server.op("DescribeSignalingChannel", {"ChannelName": "val-a"})
    if r.status_code == 404:  # an earlier case wrongly deleted it; start over so cases stay independent
        kv.create_signaling_channel(ChannelName="val-a", Tags=[{"Key": "k", "Value": "v"}])
        r = server.op("DescribeSignalingChannel", {"ChannelName": "val-a"})
    info = r.json()["ChannelInfo"]
    token = kv.list_signaling_channels(
        MaxResults=1, ChannelNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "val-"}
    )["NextToken"]
    return {"ARN": info["ChannelARN"], "VERSION": info["Version"], "NAME": "val-a", "TOKEN": token}


def snapshot(server):
    """Everything a rejected request could have changed in this account and region."""
    kv = server.client()
    chans = kv.list_signaling_channels()["ChannelInfoList"]
    tags = {c["ChannelName"]: kv.list_tags_for_resource(ResourceARN=c["ChannelARN"])["Tags"]
            for c in chans if c["ChannelName"].startswith("val-")}
    return chans, tags


def test_the_model_yields_cases():
    assert len(CASES) > 150
    ops = {c.values[0] for c in CASES}
    assert ops == set(OPS)


@pytest.mark.parametrize("op", list(OPS))
def test_base_requests_are_valid(make_server, op):
    """Guards the test itself: each unmutated base request succeeds."""
    s = make_server()
    kv = s.client()
    for n in ("val-a", "val-b", "val-c"):
        kv.create_signaling_channel(ChannelName=n, Tags=[{"Key": "k", "Value": "v"}])
    bases = BASES[op] if isinstance(BASES[op], list) else [BASES[op]]
    for base in bases:
        ctx = live_ctx(s, {"kv": kv})
        r = s.op(op, fill(base, ctx))
        assert r.status_code == 200, (op, r.status_code, r.text)


@pytest.mark.parametrize("op,bi,path,action,value,codes", CASES)
def test_constraint_violation_is_rejected_and_changes_nothing(server, vctx, op, bi, path, action, value, codes):
    ctx = live_ctx(server, vctx)
    body = mutate(fill(base_body(op, bi), ctx), path, action, value)
    before = snapshot(server)
    r = server.op(op, body)
    assert_aws_error(r, codes, 400)
    assert snapshot(server) == before


# --- bodies that are not a JSON object --------------------------------------------------------
MALFORMED = [b"{", b"not json", b"{\"ChannelName\": }", b"{\"ChannelName\": \"x\",}", b"[]", b"null",
             b"\"str\"", b"42", b"true", b"{\"ChannelName\": \"x\"} trailing", b"\xff\xfe{}",
             "{\"ChannelName\": \"x\u0000\"}".encode()]


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("raw", MALFORMED, ids=lambda b: repr(b)[:30])
def test_malformed_json_is_invalid_argument(server, vctx, op, raw):
    before = snapshot(server)
    assert_aws_error(server.op(op, raw), "InvalidArgumentException", 400)
    assert snapshot(server) == before


@pytest.mark.parametrize("op", [o for o in OPS if SHAPES[MODEL["operations"][o]["input"]["shape"]].get("required")]
                         + ["DescribeSignalingChannel"])
def test_empty_body_or_empty_object_without_required_members_is_invalid(server, vctx, op):
    before = snapshot(server)
    for raw in (b"", b"{}"):
        assert_aws_error(server.op(op, raw), "InvalidArgumentException", 400)
    assert snapshot(server) == before


def test_empty_body_is_an_empty_object_for_list(server):
    for raw in (b"", b"{}"):
        r = server.op("ListSignalingChannels", raw)
        assert r.status_code == 200, r.text
        assert isinstance(r.json()["ChannelInfoList"], list)


def test_deeply_nested_json_is_invalid_not_a_crash(server, vctx):
    deep = b"{\"ChannelName\": " + b"[" * 5000 + b"]" * 5000 + b"}"
    assert_aws_error(server.op("CreateSignalingChannel", deep), "InvalidArgumentException", 400)
    assert server.op("ListSignalingChannels", {}).status_code == 200


@pytest.mark.parametrize("token", ["//79", "====", "AAAA", "QQ==" * 10, "A" * 1024])
def test_unusable_next_tokens_are_invalid(server, vctx, token):
    """Tokens that fit the model's pattern but that the server never handed out and that
    cannot be a base64 channel name (behaviour.md: 'an invalid NextToken')."""
    r = server.op("ListSignalingChannels", {"NextToken": token})
    assert_aws_error(r, "InvalidArgumentException", 400)


def test_max_length_values_are_accepted(server, vctx):
    """The boundaries themselves are valid: 256-char names, 128-char keys, 256-char values,
    Unicode letters, numbers and separators in tags."""
    kv = server.client()
    name = "m" * 256
    arn = kv.create_signaling_channel(ChannelName=name, Tags=[
        {"Key": "k" * 128, "Value": "v" * 256}, {"Key": "ünï côdé 数字 ٣", "Value": ""},
        {"Key": "_.:/=+-@", "Value": "_.:/=+-@ ü"}])["ChannelARN"]
    assert kv.describe_signaling_channel(ChannelName=name)["ChannelInfo"]["ChannelARN"] == arn
    assert kv.list_tags_for_resource(ResourceARN=arn)["Tags"] == {
        "k" * 128: "v" * 256, "ünï côdé 数字 ٣": "", "_.:/=+-@": "_.:/=+-@ ü"}
    kv.delete_signaling_channel(ChannelARN=arn)
    r = server.op("ListSignalingChannels", {"MaxResults": 10000})
    assert r.status_code == 200, r.text
