"""Hostile input on the signaling WebSocket, against the real binary with
--credentials, frames written byte by byte (hostile_util.RawWs) so that malformed ones reach the
server as built. `/health` on a new connection answers 200 in under 100 ms meanwhile.

- The connect (docs/protocol.md §6.1, §7.2, §4.2): bad and duplicated query parameters,
  non-UTF-8 and invalid percent-escapes, forged and truncated signatures, a signature for another
  channel, client id, host, region or account, a presigned URL replayed after it expired. Each is
  refused before the upgrade with its exact AWS error, twice in a row, and changes nothing: the
  channel's master, connected throughout, is neither replaced nor closed, and every channel is
  described the same before and after.
- Frames on a connection: a 70 kB message is closed with 1009 and a reason; invalid UTF-8 in a
  text message with 1007; a binary frame, malformed JSON or an unknown action
  cost a STATUS_RESPONSE when they carry a correlationId (docs/protocol.md §6.1, §6.3) and
  never the connection.
- A client that never reads is disconnected once its outbox is full; the sender and other
  channels are unaffected.
- A flood of 2,000 presigned ConnectAsViewer attempts: the viewer limit holds (exactly
  --max-viewers get in), every other attempt gets its exact error, the server stays up."""
import concurrent.futures
import contextlib
import datetime as dt
import json
import time
from unittest import mock

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from hostile_util import (OP_BINARY, OP_CONT, OP_TEXT, HealthWatch, RawWs, enc, join, metric, presign,
                          presign_pairs, read_to_eof, snapshot)
from kvs_harness import Server, wait_until

CREDS = """
[[credentials]]
access_key_id = "AKIDWSALPHA"
secret_access_key = "ws-alpha-secret"
account_id = "111111111111"

[[credentials]]
access_key_id = "AKIDWSBRAVO"
secret_access_key = "ws-bravo-secret"
account_id = "222222222222"
"""
A = {"key": "AKIDWSALPHA", "secret": "ws-alpha-secret"}
B = {"key": "AKIDWSBRAVO", "secret": "ws-bravo-secret"}
IDENTS = [(A["key"], A["secret"], "us-east-1"), (B["key"], B["secret"], "us-east-1"),
          (A["key"], A["secret"], "eu-west-1")]
REPEAT = 2
ARN, CID, SIG = "X-Amz-ChannelARN", "X-Amz-ClientId", "X-Amz-Signature"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile-ws-creds") / "credentials.toml"
    path.write_text(CREDS)
    s = Server("--credentials", str(path))
    a = s.client(**A)
    s.arn_a = a.create_signaling_channel(ChannelName="ws-a")["ChannelARN"]
    s.arn_other = a.create_signaling_channel(ChannelName="ws-other")["ChannelARN"]
    s.arn_b = s.client(**B).create_signaling_channel(ChannelName="ws-b")["ChannelARN"]
    s.client(**A, region="eu-west-1").create_signaling_channel(ChannelName="ws-a")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def watch(secured):
    w = HealthWatch(secured.port)
    yield w
    w.close()


def now():
    return dt.datetime.now(dt.timezone.utc)


def open_ws(s, arn, client_id=None, who=A, **kw) -> RawWs:
    ws = RawWs(s.port, presign(s.netloc, arn, client_id, **who, **kw), s.netloc)
    assert ws.status == 101, (ws.status, ws.body[:300])
    return ws


@pytest.fixture
def master(secured):
    """The master of ws-a, connected while a hostile connect is tried: it must not be replaced (a
    fresh one per row, so that a row that does replace it fails alone)."""
    ws = open_ws(secured, secured.arn_a)
    yield ws
    ws.close()


def test_the_presigner_matches_botocore():
    """hostile_util.presign_pairs() builds every URL below; it must sign as botocore does."""
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    arn = "arn:aws:kinesisvideo:us-east-1:111111111111:channel/ws-a/1"
    req = AWSRequest(method="GET", url=f"https://127.0.0.1:4580/?{ARN}={enc(arn)}&{CID}=v-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4QueryAuth(Credentials(A["key"], A["secret"]), "kinesisvideo", "us-east-1", expires=299).add_auth(req)
    theirs = dict(p.split("=", 1) for p in req.url.split("?", 1)[1].split("&"))
    mine = dict(presign_pairs("127.0.0.1:4580", [(ARN, arn), (CID, "v-1")], **A, when=when))
    assert theirs["X-Amz-Date"] == mine["X-Amz-Date"] == "20260102T030405Z"
    assert theirs[SIG] == mine[SIG]


# --- the connect ---------------------------------------------------------------------------------------
class Ctx:
    def __init__(self, s):
        self.s, self.netloc = s, s.netloc
        self.arn_a, self.arn_other, self.arn_b = s.arn_a, s.arn_other, s.arn_b

    def signed(self, params, who=A, **kw):
        return join(presign_pairs(self.netloc, params, **who, **kw))

    def pairs(self, params, who=A, **kw):
        return presign_pairs(self.netloc, params, **who, **kw)


def replace_pair(pairs, name, value):
    return [(k, value if k == name else v) for k, v in pairs]


def with_sig(pairs, f):
    return [(k, f(v) if k == SIG else v) for k, v in pairs]


def flip_last(v: str) -> str:
    return v[:-1] + ("0" if v[-1] != "0" else "1")


def move_sig_first(pairs, extra):
    sig = [p for p in pairs if p[0] == SIG]
    rest = [p for p in pairs if p[0] != SIG]
    return rest[:1] + extra + rest[1:] + sig


IAE, INV, INC = "InvalidArgumentException", "InvalidSignatureException", "IncompleteSignatureException"
RNF = "ResourceNotFoundException"
B_CRED = lambda c: f"{B['key']}/{now().strftime('%Y%m%d')}/us-east-1/kinesisvideo/aws4_request"  # noqa: E731

# (id, f(ctx) -> (request target, extra headers), expected code, status)
CONNECT_ROWS = [
    # Duplicated parameters, every copy signed, and query components that do not decode to one
    # text (non-UTF-8, malformed escapes): the canonical query would stand for several requests,
    # so the signature is not accepted (InvalidSignatureException, docs/protocol.md §4.2).
    ("duplicate-channel-arn-same", lambda c: c.signed([(ARN, c.arn_a), (ARN, c.arn_a)]), INV, 403),
    ("duplicate-channel-arn-other-second", lambda c: c.signed([(ARN, c.arn_a), (ARN, c.arn_other)]), INV, 403),
    ("duplicate-channel-arn-other-first", lambda c: c.signed([(ARN, c.arn_other), (ARN, c.arn_a)]), INV, 403),
    ("duplicate-channel-arn-other-account", lambda c: c.signed([(ARN, c.arn_a), (ARN, c.arn_b)]), INV, 403),
    ("duplicate-client-id", lambda c: c.signed([(ARN, c.arn_a), (CID, "v-1"), (CID, "v-2")]), INV, 403),
    ("duplicate-signature-garbage-after", lambda c: join(c.pairs([(ARN, c.arn_a)]) + [(SIG, "0" * 64)]), INV, 403),
    ("duplicate-signature-garbage-before", lambda c: join(move_sig_first(c.pairs([(ARN, c.arn_a)]), [(SIG, "0" * 64)])),
     INV, 403),
    ("duplicate-signature-identical", lambda c: join((p := c.pairs([(ARN, c.arn_a)])) + p[-1:]), INV, 403),
    ("duplicate-credential", lambda c: c.signed([(ARN, c.arn_a), ("X-Amz-Credential", B_CRED(c))]), INV, 403),
    ("duplicate-date", lambda c: c.signed([(ARN, c.arn_a), ("X-Amz-Date", "20200101T000000Z")]), INV, 403),
    ("duplicate-expires", lambda c: c.signed([(ARN, c.arn_a), ("X-Amz-Expires", "604800")]), INV, 403),
    ("non-utf8-client-id", lambda c: c.signed([(ARN, c.arn_a), (CID, b"v-\xff")]), INV, 403),
    ("non-utf8-channel-arn", lambda c: c.signed([(ARN, c.arn_a.encode() + b"\xfe\xff")]), INV, 403),
    ("overlong-utf8-client-id", lambda c: c.signed([(ARN, c.arn_a), (CID, b"v\xc0\xaf")]), INV, 403),
    ("non-utf8-parameter-name", lambda c: c.signed([(ARN, c.arn_a), (b"X-\xff", "1")]), INV, 403),
    ("invalid-percent-escape", lambda c: join(replace_pair(c.pairs([(ARN, c.arn_a), (CID, "v%ZZ")]), CID, "v%ZZ")),
     INV, 403),
    ("truncated-percent-escape", lambda c: join(replace_pair(c.pairs([(ARN, c.arn_a), (CID, "v%F")]), CID, "v%F")),
     INV, 403),
    # bad parameters, signed
    ("client-id-257", lambda c: c.signed([(ARN, c.arn_a), (CID, "v" * 257)]), IAE, 400),
    ("client-id-10k", lambda c: c.signed([(ARN, c.arn_a), (CID, "v" * 10_000)]), IAE, 400),
    ("client-id-reserved", lambda c: c.signed([(ARN, c.arn_a), (CID, "aws_viewer")]), IAE, 400),
    ("client-id-empty", lambda c: c.signed([(ARN, c.arn_a), (CID, "")]), IAE, 400),
    ("missing-channel-arn", lambda c: c.signed([(CID, "v-1")]), IAE, 400),
    ("empty-channel-arn", lambda c: c.signed([(ARN, "")]), IAE, 400),
    ("channel-arn-2000", lambda c: c.signed([(ARN, c.arn_a + "0" * 2000)]), IAE, 400),
    ("channel-arn-not-an-arn", lambda c: c.signed([(ARN, "ws-a")]), IAE, 400),
    # forged, truncated, misdirected signatures
    ("forged-signature", lambda c: join(with_sig(c.pairs([(ARN, c.arn_a)]), flip_last)), INV, 403),
    ("truncated-signature", lambda c: join(with_sig(c.pairs([(ARN, c.arn_a)]), lambda v: v[:40])), INV, 403),
    ("signature-for-another-channel", lambda c: join(replace_pair(c.pairs([(ARN, c.arn_other)]), ARN, enc(c.arn_a))),
     INV, 403),
    ("signature-for-another-client-id",
     lambda c: join(replace_pair(c.pairs([(ARN, c.arn_a), (CID, "v-1")]), CID, "v-2")), INV, 403),
    ("signature-for-another-host", lambda c: c.signed([(ARN, c.arn_a)], headers={"host": "evil.example:443"}),
     INV, 403),
    ("signature-for-another-path", lambda c: join(c.pairs([(ARN, c.arn_a)], path="/other")), INV, 403),
    ("credential-region-rewritten", lambda c: join([(k, v.replace("%2Fus-east-1%2F", "%2Feu-west-1%2F"))
                                                    for k, v in c.pairs([(ARN, c.arn_a)])]), INV, 403),
    ("a-key-with-b-secret", lambda c: c.signed([(ARN, c.arn_a)], who={**A, "secret": B["secret"]}), INV, 403),
    ("unknown-key", lambda c: c.signed([(ARN, c.arn_a)], who={"key": "AKIDNOBODY", "secret": "x"}),
     "UnrecognizedClientException", 403),
    ("valid-for-another-region", lambda c: c.signed([(ARN, c.arn_a)], region="eu-west-1"), RNF, 404),
    ("valid-for-another-account", lambda c: c.signed([(ARN, c.arn_a)], who=B), RNF, 404),
    ("service-s3", lambda c: c.signed([(ARN, c.arn_a)], service="s3"), INV, 403),
    ("host-not-signed", lambda c: (c.signed([(ARN, c.arn_a)], signed_headers="x-hostile", headers={"x-hostile": "1"}),
                                   {"X-Hostile": "1"}), INV, 403),
    ("security-token-added-unsigned", lambda c: join(c.pairs([(ARN, c.arn_a)]) + [("X-Amz-Security-Token", "t")]),
     INV, 403),
    # dates and lifetimes
    ("expired-an-hour-ago", lambda c: c.signed([(ARN, c.arn_a)], when=now() - dt.timedelta(hours=1)), INV, 403),
    ("not-yet-current", lambda c: c.signed([(ARN, c.arn_a)], when=now() + dt.timedelta(minutes=10)), INV, 403),
    ("expires-0", lambda c: c.signed([(ARN, c.arn_a)], expires=0), INC, 403),
    ("expires-604801", lambda c: c.signed([(ARN, c.arn_a)], expires=604801), INC, 403),
    ("expires-negative", lambda c: c.signed([(ARN, c.arn_a)], expires=-1), INC, 403),
    ("expires-2**70", lambda c: c.signed([(ARN, c.arn_a)], expires=2 ** 70), INC, 403),
    ("expires-not-a-number", lambda c: c.signed([(ARN, c.arn_a)], expires="soon"), INC, 403),
    ("date-garbage", lambda c: join(replace_pair(c.pairs([(ARN, c.arn_a)]), "X-Amz-Date", "yesterday")), INC, 403),
    ("wrong-algorithm", lambda c: c.signed([(ARN, c.arn_a)], algorithm="AWS4-HMAC-SHA512"), INC, 403),
    # missing pieces
    ("unsigned", lambda c: join([(ARN, enc(c.arn_a))]), "MissingAuthenticationTokenException", 403),
    ("empty-query", lambda c: "/", "MissingAuthenticationTokenException", 403),
    ("only-a-signature", lambda c: join([(ARN, enc(c.arn_a)), (SIG, "0" * 64)]), INC, 403),
]

MESSAGES = {"expired-an-hour-ago": "Signature expired", "not-yet-current": "Signature not yet current"}


@pytest.mark.parametrize("build,code,status", [pytest.param(*r[1:], id=r[0]) for r in CONNECT_ROWS])
def test_hostile_connects_are_refused_and_change_nothing(secured, watch, master, request, build, code, status):
    row = request.node.callspec.id
    ctx = Ctx(secured)
    before = snapshot(secured, IDENTS)
    with watch.window(f"connect {row}"):
        for _ in range(REPEAT):
            built = build(ctx)
            target, headers = built if isinstance(built, tuple) else (built, {})
            ws = RawWs(secured.port, target, secured.netloc, headers)
            try:
                body = ws.error(code, status)
            finally:
                ws.close()
            if row in MESSAGES:
                assert body["Message"].startswith(MESSAGES[row]), body
    master.ping()  # still connected: nothing replaced or closed it
    assert master.texts == [], master.texts
    assert snapshot(secured, IDENTS) == before


# Without --credentials nothing is signed: an ambiguous parameter is bad input (400
# InvalidArgumentException, docs/protocol.md §6.1), never resolved by picking one of the copies.
OPEN_ROWS = [
    ("duplicate-channel-arn-same", lambda c: join([(ARN, enc(c.arn)), (ARN, enc(c.arn))])),
    ("duplicate-channel-arn-other", lambda c: join([(ARN, enc(c.arn)), (ARN, enc(c.other))])),
    ("duplicate-channel-arn-other-first", lambda c: join([(ARN, enc(c.other)), (ARN, enc(c.arn))])),
    ("duplicate-client-id", lambda c: join([(ARN, enc(c.arn)), (CID, "v-1"), (CID, "v-2")])),
    ("duplicate-client-id-same", lambda c: join([(ARN, enc(c.arn)), (CID, "v-1"), (CID, "v-1")])),
    ("non-utf8-client-id", lambda c: join([(ARN, enc(c.arn)), (CID, "v-%FF")])),
    ("non-utf8-channel-arn", lambda c: join([(ARN, enc(c.arn) + "%FE%FF")])),
    ("overlong-utf8-client-id", lambda c: join([(ARN, enc(c.arn)), (CID, "v%C0%AF")])),
    ("invalid-percent-escape", lambda c: join([(ARN, enc(c.arn)), (CID, "v%ZZ")])),
    ("truncated-percent-escape", lambda c: join([(ARN, enc(c.arn)), (CID, "v%F")])),
    ("escaped-separator-in-arn", lambda c: join([(ARN, enc(c.arn) + "%26X-Amz-ClientId%3Dv-1")])),
]


@pytest.fixture(scope="module")
def open_server():
    s = Server()
    kv = s.client()
    s.arn = kv.create_signaling_channel(ChannelName="open-a")["ChannelARN"]
    s.other = kv.create_signaling_channel(ChannelName="open-b")["ChannelARN"]
    yield s
    s.stop()


@pytest.mark.parametrize("build", [pytest.param(r[1], id=r[0]) for r in OPEN_ROWS])
def test_ambiguous_parameters_in_open_mode_are_400(open_server, build):
    s = open_server
    with RawWs(s.port, join([(ARN, enc(s.arn))]), s.netloc) as master, \
            RawWs(s.port, join([(ARN, enc(s.other))]), s.netloc) as other_master, HealthWatch(s.port) as watch:
        assert master.status == other_master.status == 101
        with watch.window("an ambiguous connect in open mode"):
            for _ in range(REPEAT):
                with RawWs(s.port, build(s), s.netloc) as ws:
                    ws.error(IAE, 400)
        master.ping()  # neither master was replaced
        other_master.ping()
        assert master.texts == other_master.texts == []


def test_a_presigned_url_replayed_after_expiry_is_refused(secured, watch, master):
    """X-Amz-Expires=1: the URL connects once; replayed after X-Amz-Date + 1 s it is refused with
    403 InvalidSignatureException, `Signature expired` (docs/protocol.md §7.2, §4.2)."""
    when = now()
    target = presign(secured.netloc, secured.arn_a, "replayed", **A, when=when, expires=1)
    with watch.window("a presigned URL used, then replayed after expiry"):
        first = RawWs(secured.port, target, secured.netloc)
        assert first.status == 101, (first.status, first.body)
        first.ping()
        first.close()
        # X-Amz-Date has whole seconds: the URL is good until the second after it, plus 1 s.
        valid_until = when.replace(microsecond=0) + dt.timedelta(seconds=1)
        time.sleep(max(0.0, (valid_until - now()).total_seconds()) + 1.1)
        for _ in range(REPEAT):
            again = RawWs(secured.port, target, secured.netloc)
            try:
                body = again.error(INV, 403)
            finally:
                again.close()
            assert body["Message"].startswith("Signature expired"), body
    master.ping()


# --- frames ------------------------------------------------------------------------------------------
def text_frames(*parts: bytes, opcode=OP_TEXT):
    """One message in len(parts) fragments."""
    out = []
    for i, p in enumerate(parts):
        out.append((opcode if i == 0 else OP_CONT, p, i == len(parts) - 1))
    return out


BIG = b'{"action":"SDP_OFFER","recipientClientId":"v-1","messagePayload":"' + b"QUFB" * 17_500 + b'"}'  # 70 kB
# (id, frames [(opcode, payload, fin)], close code)
CLOSE_ROWS = [
    ("text-70kB", [(OP_TEXT, BIG, True)], 1009),
    ("binary-70kB", [(OP_BINARY, BIG, True)], 1009),
    ("text-70kB-in-7-fragments", text_frames(*[BIG[i:i + 10_000] for i in range(0, len(BIG), 10_000)]), 1009),
    ("text-200kB", [(OP_TEXT, BIG * 3, True)], 1009),
    ("utf8-ff", [(OP_TEXT, b'{"action":"SDP_OFFER\xff"}', True)], 1007),
    ("utf8-overlong", [(OP_TEXT, b'{"action":"\xc0\xaf"}', True)], 1007),
    ("utf8-encoded-surrogate", [(OP_TEXT, b'{"action":"\xed\xa0\x80"}', True)], 1007),
    ("utf8-truncated-at-the-end", [(OP_TEXT, b'{"action":"\xe2\x82', True)], 1007),
    ("utf8-invalid-in-a-fragment", text_frames(b'{"action":"SDP_', b'OFFER\xff"}'), 1007),
]


@pytest.mark.parametrize("frames,code", [pytest.param(*r[1:], id=r[0]) for r in CLOSE_ROWS])
def test_oversized_and_invalid_utf8_messages_are_closed_with_their_code(secured, watch, request, frames, code):
    row = request.node.callspec.id
    with watch.window(row):
        ws = open_ws(secured, secured.arn_other, "frames-viewer")
        try:
            for opcode, payload, fin in frames:
                try:
                    ws.send_frame(opcode, payload, fin)
                except OSError:
                    break  # the server closed while reading: its close frame is still to be read
            got, reason = ws.close_frame()
        finally:
            ws.close()
        assert got == code, (row, got, reason)
        if code == 1009:
            assert reason, "a 1009 close frame carries a reason"
    # The connection was released: the same viewer connects again and is served.
    again = open_ws(secured, secured.arn_other, "frames-viewer")
    again.ping()
    again.close()


def status_response(cid: str, error_type: str = IAE) -> dict:
    return {"correlationId": cid, "errorType": error_type, "statusCode": "400", "success": False}


def msg(**kw) -> bytes:
    return json.dumps(kw).encode()


# (id, frames, the STATUS_RESPONSE's correlationId or None for no reply at all); sent by a master.
KEPT_ROWS = [
    ("binary-message-with-correlation-id",
     [(OP_BINARY, msg(action="SDP_OFFER", recipientClientId="v-1", messagePayload="eA==", correlationId="c-bin"),
       True)],
     "c-bin"),
    ("binary-garbage", [(OP_BINARY, b"\x00\x01\x02\xff", True)], None),
    ("unknown-action", [(OP_TEXT, msg(action="SDP_NOPE", recipientClientId="v-1", messagePayload="eA==",
                                      correlationId="c-unknown"), True)], "c-unknown"),
    ("action-a-number", [(OP_TEXT, msg(action=5, recipientClientId="v-1", messagePayload="eA==",
                                       correlationId="c-type"), True)], "c-type"),
    ("payload-not-base64", [(OP_TEXT, msg(action="SDP_OFFER", recipientClientId="v-1", messagePayload="!!!",
                                          correlationId="c-b64"), True)], "c-b64"),
    ("payload-10001", [(OP_TEXT, msg(action="SDP_OFFER", recipientClientId="v-1", messagePayload="A" * 10_001,
                                     correlationId="c-long"), True)], "c-long"),
    ("payload-an-array", [(OP_TEXT, msg(action="SDP_OFFER", recipientClientId="v-1", messagePayload=["eA=="],
                                        correlationId="c-arr"), True)], "c-arr"),
    ("recipient-2**70", [(OP_TEXT, b'{"action":"SDP_OFFER","recipientClientId":%d,"messagePayload":"eA==",'
                                   b'"correlationId":"c-num"}' % 2 ** 70, True)], "c-num"),
    # 1e400 is no number serde_json holds: the frame is not JSON it can read, so it cannot be
    # answered (docs/behaviour.md 'Signaling data plane': malformed JSON is only counted).
    ("recipient-1e400", [(OP_TEXT, b'{"action":"SDP_OFFER","recipientClientId":1e400,"messagePayload":"eA==",'
                                   b'"correlationId":"c-big"}', True)], None),
    ("recipient-missing", [(OP_TEXT, msg(action="SDP_OFFER", messagePayload="eA==", correlationId="c-norecip"), True)],
     "c-norecip"),
    ("recipient-bad-id", [(OP_TEXT, msg(action="SDP_OFFER", recipientClientId="v 1", messagePayload="eA==",
                                        correlationId="c-badrecip"), True)], "c-badrecip"),
    ("nested-payload-50", [(OP_TEXT, b'{"action":"SDP_OFFER","recipientClientId":"v-1","correlationId":"c-deep",'
                                     b'"messagePayload":' + b"[" * 50 + b"]" * 50 + b"}", True)], "c-deep"),
    ("malformed-json", [(OP_TEXT, b'{"action":"SDP_OFFER","correlationId":"c-mal"', True)], None),
    ("nested-10k", [(OP_TEXT, b"[" * 10_000 + b"]" * 10_000, True)], None),
    ("json-array", [(OP_TEXT, b"[]", True)], None),
    ("empty-text", [(OP_TEXT, b"", True)], None),
    ("invalid-correlation-id",
     [(OP_TEXT, msg(action="SDP_NOPE", messagePayload="eA==", correlationId="bad id!"), True)], None),
    ("fragmented-valid-message", text_frames(*[msg(action="ICE_CANDIDATE", recipientClientId="v-1",
                                                   messagePayload="eA==")[i:i + 7] for i in range(0, 80, 7)]), None),
]


@pytest.fixture
def frames_master(secured):
    ws = open_ws(secured, secured.arn_other)
    yield ws
    ws.close()


@pytest.mark.parametrize("frames,cid", [pytest.param(*r[1:], id=r[0]) for r in KEPT_ROWS])
def test_bad_messages_cost_a_status_response_never_the_connection(secured, watch, frames_master, request, frames, cid):
    row = request.node.callspec.id
    ws = frames_master
    with watch.window(row):
        for _ in range(REPEAT):
            for opcode, payload, fin in frames:
                ws.send_frame(opcode, payload, fin)
            ws.ping()  # frames are answered in order: a reply comes before the pong
            if cid is None:
                assert ws.texts == [], (row, ws.texts)
            else:
                assert len(ws.texts) == 1, (row, ws.texts)
                frame = json.loads(ws.texts.pop())
                assert frame.get("messageType") == "STATUS_RESPONSE", frame
                assert "messagePayload" not in frame and "senderClientId" not in frame, frame
                got = frame["statusResponse"]
                assert {k: got.get(k) for k in ("correlationId", "errorType", "statusCode", "success")} == \
                    status_response(cid), frame
                assert isinstance(got.get("description"), str) and 0 < len(got["description"]) <= 1000, frame
    # Still a working master: a viewer's offer reaches it.
    viewer = open_ws(secured, secured.arn_other, "v-check")
    try:
        viewer.send_text(msg(action="SDP_OFFER", messagePayload="eA=="))
        got = ws.next_text()
        assert (got.get("messageType"), got.get("senderClientId"), got.get("messagePayload")) == \
            ("SDP_OFFER", "v-check", "eA=="), got
    finally:
        viewer.close()


# --- a client that never reads -----------------------------------------------------------------------
def test_a_client_that_never_reads_is_disconnected_and_nobody_else_is():
    """The master of a channel never reads (a 4 KiB receive buffer); a viewer sends it 3,000
    9 kB messages (--message-rate-limits false). The master is disconnected once its outbox is
    full; the viewer stays connected, and a pair on another channel is served meanwhile."""
    with Server("--message-rate-limits", "false", "--max-held-messages", "1") as s, \
            HealthWatch(s.port) as watch, contextlib.ExitStack() as sockets:
        kv = s.client()
        arn = kv.create_signaling_channel(ChannelName="slow-reader")["ChannelARN"]
        other = kv.create_signaling_channel(ChannelName="bystanders")["ChannelARN"]

        def ws(a, cid=None, **kw):  # open mode: any signature
            w = sockets.enter_context(RawWs(s.port, presign(s.netloc, a, cid, key="AKID", secret="x"), s.netloc, **kw))
            assert w.status == 101, (w.status, w.body)
            return w
        slow = ws(arn, rcvbuf=4096)
        sender, bystander_m, bystander_v = ws(arn, "flooder"), ws(other), ws(other, "calm")
        frame = msg(action="ICE_CANDIDATE", messagePayload="QUFB" * 2_250)  # 9,000 base64 characters
        start = time.monotonic()
        for i in range(3_000):
            sender.send_text(frame)
            if i % 300 == 0:
                bystander_v.send_text(msg(action="ICE_CANDIDATE", messagePayload="eA=="))
                got = bystander_m.next_text(timeout=10)
                assert got.get("senderClientId") == "calm", got
        sender.ping()
        bystander_v.ping()
        flooded = time.monotonic()
        # The slow master is gone from presence once its outbox overflowed, long before any
        # write-stall timer (30 s by default) could have ended it; then its socket is closed.
        wait_until(lambda: metric(s, "kvs_signaling_masters_connected") == 1, timeout=10,
                   what="the master that never reads to be disconnected")
        data, how = read_to_eof(slow.sock, timeout=20)
        assert how in ("eof", "reset"), how
        assert len(data) < 3_000 * len(frame), "every message was delivered: the client was never cut off"
        sender.ping()  # the sender is not punished for the slow reader
        watch.check(start, flooded, "3,000 messages to a client that never reads")


# --- a flood of connects -----------------------------------------------------------------------------
def test_a_flood_of_2000_presigned_viewer_connects(secured, watch):
    """2,000 ConnectAsViewer attempts on one channel, 16 at a time, every fifth with a forged
    signature; the accepted ones stay connected. Exactly --max-viewers (10) get in, every other
    valid attempt is 400 ClientLimitExceededException, every forged one 403
    InvalidSignatureException; afterwards the slots are free again."""
    arn = secured.client(**A).create_signaling_channel(ChannelName="ws-flood")["ChannelARN"]
    accepted, outcomes = [], {}
    deadline = time.monotonic() + 120

    def attempt(i):
        assert time.monotonic() < deadline, "the flood ran past its bound"
        target = presign(secured.netloc, arn, f"flood-{i}", **A)
        forged = i % 5 == 4
        if forged:
            target = target[:-1] + ("0" if target[-1] != "0" else "1")
        ws = RawWs(secured.port, target, secured.netloc, timeout=30)
        if ws.status == 101:
            accepted.append(ws)
            return "accepted-forged" if forged else "accepted"
        try:
            if forged:
                ws.error(INV, 403)
                return "forged-refused"
            ws.error("ClientLimitExceededException", 400)
            return "limit"
        finally:
            ws.close()

    start = time.monotonic()
    try:
        with watch.window("2,000 viewer connects"):
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                for r in pool.map(attempt, range(2000)):
                    outcomes[r] = outcomes.get(r, 0) + 1
        assert outcomes == {"accepted": 10, "limit": 1590, "forged-refused": 400}, outcomes
        for ws in accepted:
            ws.ping()
    finally:
        for ws in accepted:
            ws.close()
    took = time.monotonic() - start
    # Closed viewers leave: ten new ones get in (the server noticed the closes).
    deadline2 = time.monotonic() + 30
    fresh = []
    try:
        for i in range(10):
            while True:
                ws = RawWs(secured.port, presign(secured.netloc, arn, f"after-{i}", **A), secured.netloc)
                if ws.status == 101:
                    fresh.append(ws)
                    break
                ws.error("ClientLimitExceededException", 400)
                ws.close()
                assert time.monotonic() < deadline2, "the flood's viewers were never released"
                time.sleep(0.05)
    finally:
        for ws in fresh:
            ws.close()
    print(f"2,000 connects in {took:.1f}s: {outcomes}")
