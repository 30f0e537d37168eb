"""Hostile input on the HTTP APIs, against the real binary with --credentials so that signatures
matter. Every row gets its exact AWS-style error (status, `x-amzn-ErrorType` =
`__type`, `x-amzn-RequestId`, `Message` and `message`: docs/behaviour.md 'Errors'), twice in a
row; nothing changes (every channel of three namespaces described before and after, with its
tags); and `/health` on a new connection answers 200 in under 100 ms meanwhile.

- bodies (docs/protocol.md §1, §3): malformed and deeply nested JSON, huge numbers, wrong types,
  invalid UTF-8, overlong names, tags, ARNs and tokens: 400 InvalidArgumentException (too many
  tags: TagsPerResourceExceededLimitException, §8.3);
- sizes: a body over 1 MiB is 413 RequestEntityTooLargeException; exactly 1 MiB is served;
- the HTTP layer (docs/behaviour.md 'Errors', the refusals before any handler runs): 300 headers,
  one 1 MB header or a 100 kB URI is 431 RequestHeaderFieldsTooLargeException, a request line or
  header hyper cannot parse is 400 InvalidArgumentException, each followed by a close;
- signatures (docs/protocol.md §4.2, §7.1): forged, truncated, for another region or account,
  replayed after the 5 minutes."""
import datetime as dt
import json

import pytest
import requests

from hostile_util import (HealthWatch, check_error_parts, check_response_error, exchange, http_request,
                          snapshot)
from kvs_harness import Server, sign

CREDS = """
[[credentials]]
access_key_id = "AKIDHOSTILEA"
secret_access_key = "hostile-alpha-secret"
account_id = "111111111111"

[[credentials]]
access_key_id = "AKIDHOSTILEB"
secret_access_key = "hostile-bravo-secret"
account_id = "222222222222"
"""
A = {"key": "AKIDHOSTILEA", "secret": "hostile-alpha-secret"}
B = {"key": "AKIDHOSTILEB", "secret": "hostile-bravo-secret"}
IDENTS = [(A["key"], A["secret"], "us-east-1"), (B["key"], B["secret"], "us-east-1"),
          (A["key"], A["secret"], "eu-west-1")]
REPEAT = 2  # each hostile request is sent this often: the same answer every time
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile-creds") / "credentials.toml"
    path.write_text(CREDS)
    s = Server("--credentials", str(path))
    a = s.client(**A)
    arn = a.create_signaling_channel(ChannelName="hostile-a", Tags=[{"Key": "team", "Value": "a"}],
                                     SingleMasterConfiguration={"MessageTtlSeconds": 30})["ChannelARN"]
    s.client(**B).create_signaling_channel(ChannelName="hostile-b")
    s.client(**A, region="eu-west-1").create_signaling_channel(ChannelName="hostile-eu")
    s.arn_a = arn
    yield s
    s.stop()


@pytest.fixture(scope="module")
def watch(secured):
    w = HealthWatch(secured.port)
    yield w
    w.close()


def version_of(s, arn):
    return s.client(**A).describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]["Version"]


def refused_and_unchanged(s, watch, what, send, code, status):
    """`send()` REPEAT times, each answered with exactly this error; nothing changes; /health
    answers meanwhile."""
    before = snapshot(s, IDENTS)
    with watch.window(what):
        for _ in range(REPEAT):
            check_response_error(send(), code, status)
    assert snapshot(s, IDENTS) == before, f"{what} changed the state"


# --- bodies ------------------------------------------------------------------------------------------
def nest(open_: bytes, close: bytes, depth: int, inner: bytes = b"1") -> bytes:
    return open_ * depth + inner + close * depth


def ttl(raw: bytes) -> bytes:
    return b'{"ChannelName":"hx-ttl","SingleMasterConfiguration":{"MessageTtlSeconds":' + raw + b"}}"


def j(**members) -> bytes:
    return json.dumps(members).encode()


def create(**members) -> bytes:
    return json.dumps({"ChannelName": "hx-new", **members}).encode()


def tags(arn, tag_list) -> bytes:
    return json.dumps({"ResourceARN": arn, "Tags": tag_list}).encode()


C, U, D, L = "CreateSignalingChannel", "UpdateSignalingChannel", "DeleteSignalingChannel", "ListSignalingChannels"
T, UT, DS, EP = "TagResource", "UntagResource", "DescribeSignalingChannel", "GetSignalingChannelEndpoint"
IAE, TAGS = "InvalidArgumentException", "TagsPerResourceExceededLimitException"

# (id, operation, body: bytes or f(ctx) -> bytes where ctx has .arn_a and .version, error code)
BODY_ROWS = [
    # malformed JSON
    ("truncated-object", C, b'{"ChannelName": "hx-new"', IAE),
    ("unterminated-string", C, b'{"ChannelName": "hx-new', IAE),
    ("trailing-comma", C, b'{"ChannelName": "hx-new",}', IAE),
    ("single-quotes", C, b"{'ChannelName': 'hx-new'}", IAE),
    ("trailing-garbage", C, b'{"ChannelName": "hx-new"} x', IAE),
    ("two-documents", C, b'{"ChannelName": "hx-new"}{"ChannelName": "hx-two"}', IAE),
    ("array-body", C, b'[{"ChannelName": "hx-new"}]', IAE),
    ("null-body", C, b"null", IAE),
    ("string-body", C, b'"hx-new"', IAE),
    ("number-body", C, b"42", IAE),
    ("nan", C, ttl(b"NaN"), IAE),
    ("infinity", C, ttl(b"Infinity"), IAE),
    ("nul-byte-after", C, b'{"ChannelName": "hx-new"}\x00', IAE),
    ("comment", C, b'{"ChannelName": "hx-new" /* c */}', IAE),
    ("utf16-body", C, '{"ChannelName": "hx-new"}'.encode("utf-16"), IAE),
    # deeply nested JSON
    ("100k-nested-arrays", C, nest(b"[", b"]", 100_000, b""), IAE),
    ("100k-unclosed-arrays", C, b"[" * 100_000, IAE),
    ("100k-nested-objects", C, nest(b'{"a":', b"}", 100_000), IAE),
    ("100k-nested-in-tags", C, b'{"ChannelName":"hx-new","Tags":' + nest(b"[", b"]", 100_000, b"") + b"}", IAE),
    ("40k-nested-in-config", C, b'{"ChannelName":"hx-new","SingleMasterConfiguration":'
     + nest(b'{"MessageTtlSeconds":', b"}", 40_000, b"60") + b"}", IAE),
    ("100k-nested-tag-value", T, lambda c: b'{"ResourceARN":"%s","Tags":[{"Key":"k","Value":' % c.arn_a.encode()
     + nest(b"[", b"]", 100_000, b"") + b"}]}", IAE),
    # huge numbers
    ("ttl-1e400", C, ttl(b"1e400"), IAE),
    ("ttl-2**70", C, ttl(str(2 ** 70).encode()), IAE),
    ("ttl-minus-2**70", C, ttl(str(-2 ** 70).encode()), IAE),
    ("ttl-2**32+60", C, ttl(str(2 ** 32 + 60).encode()), IAE),  # 60 if truncated to 32 bits
    ("ttl-2**64+60", C, ttl(str(2 ** 64 + 60).encode()), IAE),  # 60 if truncated to 64 bits
    ("ttl-fraction", C, ttl(b"60.5"), IAE),
    ("ttl-100k-digits", C, ttl(b"1" + b"0" * 100_000), IAE),
    ("ttl-1e-400", C, ttl(b"1e-400"), IAE),
    ("update-ttl-2**70", U, lambda c: j(ChannelARN=c.arn_a, CurrentVersion=c.version,
                                         SingleMasterConfiguration={"MessageTtlSeconds": 2 ** 70}), IAE),
    ("update-ttl-1e400", U, lambda c: b'{"ChannelARN":"%s","CurrentVersion":"%s","SingleMasterConfiguration":'
     b'{"MessageTtlSeconds":1e400}}' % (c.arn_a.encode(), c.version.encode()), IAE),
    ("max-results-2**70", L, json.dumps({"MaxResults": 2 ** 70}).encode(), IAE),
    ("max-results-1e400", L, b'{"MaxResults": 1e400}', IAE),
    ("max-results-negative", L, b'{"MaxResults": -1}', IAE),
    # wrong types
    ("name-number", C, b'{"ChannelName": 5}', IAE),
    ("name-array", C, b'{"ChannelName": ["hx-new"]}', IAE),
    ("name-object", C, b'{"ChannelName": {"a": "hx-new"}}', IAE),
    ("name-null", C, b'{"ChannelName": null}', IAE),
    ("name-bool", C, b'{"ChannelName": true}', IAE),
    ("type-number", C, create(ChannelType=1), IAE),
    ("config-string", C, create(SingleMasterConfiguration="60"), IAE),
    ("ttl-string", C, create(SingleMasterConfiguration={"MessageTtlSeconds": "60"}), IAE),
    ("ttl-bool", C, create(SingleMasterConfiguration={"MessageTtlSeconds": True}), IAE),
    ("tags-map", C, create(Tags={"k": "v"}), IAE),
    ("tags-string", C, create(Tags="k=v"), IAE),
    ("tag-key-number", C, create(Tags=[{"Key": 1, "Value": "v"}]), IAE),
    ("tag-value-null", C, create(Tags=[{"Key": "k", "Value": None}]), IAE),
    ("condition-array", L, b'{"ChannelNameCondition": []}', IAE),
    ("max-results-string", L, b'{"MaxResults": "5"}', IAE),
    ("delete-arn-number", D, b'{"ChannelARN": 5}', IAE),
    ("delete-version-number", D, lambda c: json.dumps({"ChannelARN": c.arn_a, "CurrentVersion": 12345}).encode(), IAE),
    ("untag-keys-string", UT, lambda c: json.dumps({"ResourceARN": c.arn_a, "TagKeyList": "team"}).encode(), IAE),
    ("tag-list-of-strings", T, lambda c: json.dumps({"ResourceARN": c.arn_a, "Tags": ["team=b"]}).encode(), IAE),
    ("endpoint-protocols-string", EP, lambda c: j(ChannelARN=c.arn_a,
                                                   SingleMasterChannelEndpointConfiguration={"Protocols": "WSS"}), IAE),
    # invalid UTF-8 (and a lone surrogate escaped)
    ("utf8-ff", C, b'{"ChannelName": "hx\xff"}', IAE),
    ("utf8-overlong-slash", C, b'{"ChannelName": "hx\xc0\xaf"}', IAE),
    ("utf8-encoded-surrogate", C, b'{"ChannelName": "hx\xed\xa0\x80"}', IAE),
    ("utf8-truncated", C, b'{"ChannelName": "hx\xe2\x82"}', IAE),
    ("utf8-in-member-name", C, b'{"Channel\xffName": "hx-new"}', IAE),
    ("utf8-in-tag-value", T,
     lambda c: b'{"ResourceARN":"%s","Tags":[{"Key":"team","Value":"\xff"}]}' % c.arn_a.encode(), IAE),
    ("latin1-tag-value", C,
     '{"ChannelName": "hx-new", "Tags": [{"Key": "k", "Value": "caf\xe9"}]}'.encode("latin-1"), IAE),
    ("lone-surrogate-escape", C, b'{"ChannelName": "hx\\ud800"}', IAE),
    # overlong names, tags, ARNs, tokens
    ("name-257", C, create(ChannelName="a" * 257), IAE),
    ("name-10k", C, create(ChannelName="a" * 10_000), IAE),
    ("name-900k", C, create(ChannelName="a" * 900_000), IAE),
    ("name-empty", C, create(ChannelName=""), IAE),
    ("name-unicode", C, create(ChannelName="hx-\u00e9"), IAE),
    ("tag-key-129", T, lambda c: tags(c.arn_a, [{"Key": "k" * 129, "Value": "v"}]), IAE),
    ("tag-key-100k", T, lambda c: tags(c.arn_a, [{"Key": "k" * 100_000, "Value": "v"}]), IAE),
    ("tag-value-257", T, lambda c: tags(c.arn_a, [{"Key": "team", "Value": "v" * 257}]), IAE),
    ("tag-value-500k", T, lambda c: tags(c.arn_a, [{"Key": "team", "Value": "v" * 500_000}]), IAE),
    ("tag-key-empty", T, lambda c: tags(c.arn_a, [{"Key": "", "Value": "v"}]), IAE),
    ("tag-key-angle-brackets", T, lambda c: tags(c.arn_a, [{"Key": "<script>", "Value": "v"}]), IAE),
    ("tag-key-newline", T, lambda c: tags(c.arn_a, [{"Key": "team\n", "Value": "v"}]), IAE),
    ("51-tags", T, lambda c: tags(c.arn_a, [{"Key": f"k{i}", "Value": "v"} for i in range(51)]), TAGS),
    ("10k-tags", T, lambda c: tags(c.arn_a, [{"Key": f"k{i}", "Value": "v"} for i in range(10_000)]), TAGS),
    ("create-51-tags", C, create(Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)]), TAGS),
    ("untag-10k-keys", UT, lambda c: j(ResourceARN=c.arn_a, TagKeyList=[f"k{i}" for i in range(10_000)]), IAE),
    ("untag-key-129", UT, lambda c: json.dumps({"ResourceARN": c.arn_a, "TagKeyList": ["k" * 129]}).encode(), IAE),
    ("arn-1025", DS, lambda c: json.dumps({"ChannelARN": c.arn_a + "0" * (1025 - len(c.arn_a))}).encode(), IAE),
    ("arn-100k", D, lambda c: json.dumps({"ChannelARN": c.arn_a + "0" * 100_000}).encode(), IAE),
    ("arn-non-ascii", D, lambda c: j(ChannelARN=c.arn_a.replace("hostile-a", "hostile-\u00e4")), IAE),
    ("version-65", D, lambda c: json.dumps({"ChannelARN": c.arn_a, "CurrentVersion": "a" * 65}).encode(), IAE),
    ("comparison-value-257", L, json.dumps({"ChannelNameCondition": {"ComparisonOperator": "BEGINS_WITH",
                                                                     "ComparisonValue": "a" * 257}}).encode(), IAE),
    ("next-token-1025", L, json.dumps({"NextToken": "A" * 1025}).encode(), IAE),
    ("next-token-garbage", L, json.dumps({"NextToken": "!!not-a-token!!"}).encode(), IAE),
]


class Ctx:
    def __init__(self, s):
        self.arn_a = s.arn_a
        self.version = version_of(s, s.arn_a)


@pytest.mark.parametrize("op,body,code", [pytest.param(*r[1:], id=r[0]) for r in BODY_ROWS])
def test_hostile_bodies_are_refused_and_change_nothing(secured, watch, op, body, code):
    ctx = Ctx(secured)
    op = op(ctx) if callable(op) else op
    data = body(ctx) if callable(body) else body
    assert len(data) <= MIB  # these are about content, not size
    refused_and_unchanged(secured, watch, f"{op} {data[:60]!r}",
                          lambda: secured.op(op, data, **A), code, 400)


# --- sizes -------------------------------------------------------------------------------------------
def test_a_body_of_exactly_one_mib_is_served(secured, watch):
    data = b"{}" + b" " * (MIB - 2)
    with watch.window("a 1 MiB body"):
        r = secured.op("ListSignalingChannels", data, **A)
    assert r.status_code == 200, r.text[:300]
    assert {c["ChannelName"] for c in r.json()["ChannelInfoList"]} == {"hostile-a"}


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_one_mib_is_413(secured, watch, framing):
    """docs/behaviour.md 'Errors' format; 413 RequestEntityTooLargeException, whether the length
    was declared or the body is chunked."""
    data = json.dumps({"ChannelName": "hx-big", "Tags": [{"Key": "k", "Value": "v"}]}).encode()
    data += b" " * (MIB + 1 - len(data))
    before = snapshot(secured, IDENTS)
    with watch.window(f"a {len(data)}-byte body ({framing})"):
        for _ in range(REPEAT):
            hdrs = sign("POST", "/createSignalingChannel", {"Content-Type": "application/json", "Host": secured.netloc},
                        data, region="us-east-1", **A)
            if framing == "chunked":
                body = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 65536]), data[i:i + 65536])
                                for i in range(0, len(data), 65536)) + b"0\r\n\r\n"
                req = http_request("POST", "/createSignalingChannel", secured.netloc, body,
                                   {**hdrs, "Transfer-Encoding": "chunked"})
            else:
                req = http_request("POST", "/createSignalingChannel", secured.netloc, data, hdrs)
            status, headers, body, _ = exchange(secured.port, req)
            check_error_parts(status, headers, body, "RequestEntityTooLargeException", 413)
    assert snapshot(secured, IDENTS) == before


def test_a_declared_10_gb_body_is_413_without_waiting_for_it(secured, watch):
    """Nothing of the body is sent: the answer comes from the declared length alone (waiting for
    the body would end in the body timeout instead)."""
    req = http_request("POST", "/createSignalingChannel", secured.netloc, b"",
                       {"Content-Type": "application/json", "Content-Length": str(10 * 1024 ** 3)})
    with watch.window("a declared 10 GB body"):
        status, headers, body, _ = exchange(secured.port, req, timeout=5)
    check_error_parts(status, headers, body, "RequestEntityTooLargeException", 413)


# --- the HTTP layer ----------------------------------------------------------------------------------
def raw(netloc, *lines: bytes, body: bytes = b"") -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def parse_rows(netloc):
    h = b"Host: " + netloc.encode()
    return [
        ("garbage-request-line", raw(netloc, b"GARBAGE")),
        ("http-9.9", raw(netloc, b"GET /health HTTP/9.9", h)),
        ("bad-method-token", raw(netloc, b"G(T /health HTTP/1.1", h)),
        ("space-in-uri", raw(netloc, b"GET /a b c HTTP/1.1", h)),
        ("header-without-colon", raw(netloc, b"GET /health HTTP/1.1", h, b"NoColonHere")),
        ("space-in-header-name", raw(netloc, b"GET /health HTTP/1.1", h, b"Bad Header: v")),
        ("nul-in-header-value", raw(netloc, b"GET /health HTTP/1.1", h, b"X-A: a\x00b")),
        ("obsolete-line-folding", raw(netloc, b"GET /health HTTP/1.1", h, b"X-A: a", b" b")),
        ("content-length-abc", raw(netloc, b"POST /listSignalingChannels HTTP/1.1", h, b"Content-Length: abc")),
        ("content-length-negative", raw(netloc, b"POST /listSignalingChannels HTTP/1.1", h, b"Content-Length: -1")),
        ("content-lengths-disagree", raw(netloc, b"POST /listSignalingChannels HTTP/1.1", h, b"Content-Length: 2",
                                         b"Content-Length: 3", body=b"{}")),
        ("bad-chunk-size", raw(netloc, b"POST /listSignalingChannels HTTP/1.1", h, b"Transfer-Encoding: chunked",
                               body=b"zz\r\n{}\r\n0\r\n\r\n")),
    ]


PARSE_IDS = [r[0] for r in parse_rows("x")]


@pytest.mark.parametrize("row", PARSE_IDS)
def test_unparseable_requests_are_400_in_the_aws_format_then_closed(secured, watch, row):
    req = dict(parse_rows(secured.netloc))[row]
    before = snapshot(secured, IDENTS)
    with watch.window(row):
        for _ in range(REPEAT):
            status, headers, body, after = exchange(secured.port, req)
            check_error_parts(status, headers, body, "InvalidArgumentException", 400)
            assert after in ("eof", "reset"), f"the connection was kept after {row}"
    assert snapshot(secured, IDENTS) == before


@pytest.mark.parametrize("case", ["300-headers", "one-1mb-header"])
def test_oversized_headers_are_431(secured, watch, case):
    """The table's row: 300 request headers, or one header of 1 MB: 431 with
    x-amzn-ErrorType RequestHeaderFieldsTooLargeException, x-amzn-RequestId and a JSON body."""
    hdrs = ({f"X-Hostile-{i}": "v" for i in range(300)} if case == "300-headers"
            else {"X-Hostile": "a" * 1_000_000})
    req = http_request("POST", "/listSignalingChannels", secured.netloc, b"{}", hdrs)
    with watch.window(case):
        for _ in range(REPEAT):
            status, headers, body, after = exchange(secured.port, req)
            check_error_parts(status, headers, body, "RequestHeaderFieldsTooLargeException", 431)
            assert after in ("eof", "reset"), f"the connection was kept after {case}"


@pytest.mark.parametrize("where", ["path", "query"])
def test_a_100_kb_uri_is_refused_in_the_aws_format(secured, watch, where):
    """A request head over 64 KiB is 431 RequestHeaderFieldsTooLargeException (docs/behaviour.md
    'Errors': the refusals before any handler runs), a long URI included, then the connection is
    closed. (A URI "too long for the parser", 414, would need more than 65,534 bytes: it cannot
    fit in a 64 KiB head, so no request reaches that row.)"""
    target = "/" + "a" * 100_000 if where == "path" else "/?X-Amz-ChannelARN=" + "a" * 100_000
    req = http_request("GET", target, secured.netloc)
    with watch.window(f"a 100 kB URI ({where})"):
        for _ in range(REPEAT):
            status, headers, body, after = exchange(secured.port, req)
            check_error_parts(status, headers, body, "RequestHeaderFieldsTooLargeException", 431)
            assert after in ("eof", "reset")


# --- signatures on the HTTP APIs ---------------------------------------------------------------------
def now():
    return dt.datetime.now(dt.timezone.utc)


def flip_last_hex(h):
    auth = h["Authorization"]
    return {"Authorization": auth[:-1] + ("0" if auth[-1] != "0" else "1")}


def truncate_signature(h):
    head, sig = h["Authorization"].rsplit("Signature=", 1)
    return {"Authorization": f"{head}Signature={sig[:32]}"}


def drop_signature(h):
    return {"Authorization": h["Authorization"].rsplit(", Signature=", 1)[0]}


def region_rewritten(h):
    return {"Authorization": h["Authorization"].replace("/us-east-1/", "/eu-west-1/")}


def key_rewritten(h):
    return {"Authorization": h["Authorization"].replace("Credential=AKIDHOSTILEA/", "Credential=AKIDHOSTILEB/")}


# (id, operation, kwargs of Server.op, expected code, status); the body names A's us-east-1 channel.
SIG_ROWS = [
    ("forged-signature", D, {**A, "after_sign": flip_last_hex}, "InvalidSignatureException", 403),
    ("truncated-signature", D, {**A, "after_sign": truncate_signature}, "InvalidSignatureException", 403),
    ("signature-dropped", D, {**A, "after_sign": drop_signature}, "IncompleteSignatureException", 403),
    ("scope-region-rewritten", D, {**A, "after_sign": region_rewritten}, "InvalidSignatureException", 403),
    ("credential-key-rewritten-to-b", D, {**A, "after_sign": key_rewritten}, "InvalidSignatureException", 403),
    ("a-key-b-secret", D, {**A, "secret": B["secret"]}, "InvalidSignatureException", 403),
    ("valid-for-another-region", D, {**A, "region": "eu-west-1"}, "ResourceNotFoundException", 404),
    ("valid-for-another-account", D, {**B}, "ResourceNotFoundException", 404),
    ("valid-for-another-account-tag", T, {**B}, "ResourceNotFoundException", 404),
    ("replayed-after-5-minutes", D, {**A, "when": "-6m"}, "InvalidSignatureException", 403),
    ("replayed-after-a-day", D, {**A, "when": "-1d"}, "InvalidSignatureException", 403),
    ("date-header-garbage", D, {**A, "after_sign": {"X-Amz-Date": "yesterday"}}, "IncompleteSignatureException", 403),
]


@pytest.mark.parametrize("op,kw,code,status", [pytest.param(*r[1:], id=r[0]) for r in SIG_ROWS])
def test_forged_and_replayed_signatures_are_refused_and_change_nothing(secured, watch, op, kw, code, status):
    kw = dict(kw)
    shift = {"-6m": dt.timedelta(minutes=-6), "-1d": dt.timedelta(days=-1)}.get(kw.pop("when", None))
    body = ({"ResourceARN": secured.arn_a, "Tags": [{"Key": "team", "Value": "intruder"}]} if op == T
            else {"ChannelARN": secured.arn_a})

    def send():
        return secured.op(op, body, when=now() + shift if shift else None, **kw)
    refused_and_unchanged(secured, watch, f"{op} signed {kw}", send, code, status)
    if code == "InvalidSignatureException" and shift:
        assert send().json()["Message"].startswith("Signature expired"), "docs/protocol.md §4.2"


def test_the_module_left_the_channels_as_they_were(secured):
    """A last look: the three channels made at the start are intact."""
    a = secured.client(**A)
    info = a.describe_signaling_channel(ChannelARN=secured.arn_a)["ChannelInfo"]
    assert info["ChannelStatus"] == "ACTIVE" and info["SingleMasterConfiguration"] == {"MessageTtlSeconds": 30}
    assert a.list_tags_for_resource(ResourceARN=secured.arn_a)["Tags"] == {"team": "a"}
    assert [c["ChannelName"] for c in a.list_signaling_channels()["ChannelInfoList"]] == ["hostile-a"]
    assert requests.get(secured.url + "/health", timeout=5).status_code == 200
