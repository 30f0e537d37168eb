"""The web console's server side (docs/console.md), driven as its pages drive it, beside real AWS
clients: the redirect from `/`, channels through the same handlers as the API (boto3 sees what
the console made and the other way round), the live view of a channel over server-sent events
(a master and a viewer connecting, a relayed offer, held messages with their expiry, rejected and
rate-limited messages, GO_AWAY, disconnecting one client), the API inspector (a boto3 call and
its error, live), and credentials mode: a session opened by one SigV4-signed request, nothing of
another account visible, no secret anywhere in what the console answers.

Browser-level checks (pages, screenshots) are in tests/interop/node/console.test.mjs."""
from __future__ import annotations

import base64
import json
import queue
import threading
import time
from urllib.parse import quote

import pytest
import requests
from botocore.exceptions import ClientError
from websockets.sync.client import connect as ws_connect

from kvs_harness import Server, assert_aws_error, error_code, sign

HANG = 10.0


class Sse:
    """A server-sent event stream read on a thread; `next(kind)` waits for the next event of a kind."""

    def __init__(self, url: str, cookies=None):
        self.resp = requests.get(url, stream=True, timeout=(5, 60), cookies=cookies,
                                 headers={"Accept": "text/event-stream"})
        self.status = self.resp.status_code
        self.events: queue.Queue = queue.Queue()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        kind, data = None, []
        try:
            for raw in self.resp.iter_lines(decode_unicode=True):
                if raw is None:
                    continue
                if raw == "":
                    if kind is not None:
                        self.events.put((kind, json.loads("\n".join(data)) if data else None))
                    kind, data = None, []
                elif raw.startswith("event:"):
                    kind = raw[6:].strip()
                elif raw.startswith("data:"):
                    data.append(raw[5:].strip())
        except Exception:  # the test closed the stream
            pass

    def next(self, kind: str, pred=lambda d: True, timeout: float = HANG) -> dict:
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind!r} event matching within {timeout}s; saw {seen}")
            try:
                k, d = self.events.get(timeout=left)
            except queue.Empty:
                continue
            seen.append((k, d))
            if k == kind and pred(d):
                return d

    def close(self):
        self.resp.close()


def ws_url(server: Server, arn: str, client_id: str | None = None) -> str:
    url = f"ws://127.0.0.1:{server.port}/?X-Amz-ChannelARN={quote(arn, safe='')}"
    if client_id is not None:
        url += f"&X-Amz-ClientId={quote(client_id, safe='')}"
    return url


def ws(url: str):
    return ws_connect(url, proxy=None, compression=None, open_timeout=HANG, ping_interval=None,
                      close_timeout=2, legacy=True)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def console(server: Server, method: str, path: str, body=None, cookies=None, headers=None):
    return requests.request(method, server.url + "/console/api/" + path, cookies=cookies, timeout=10,
                            data=None if body is None else json.dumps(body), headers=headers or {})


def test_a_browser_at_the_root_is_sent_to_the_console_and_the_pages_are_served(server):
    r = requests.get(server.url + "/", headers={"Accept": "text/html,application/xhtml+xml"},
                     allow_redirects=False, timeout=10)
    assert (r.status_code, r.headers["Location"]) == (302, "/console")
    # An API client at / still gets the API's answer.
    r = requests.get(server.url + "/", timeout=10)
    assert_aws_error(r, "UnknownOperationException", 404)
    page = requests.get(server.url + "/console", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for asset, kind in [("app.js", "text/javascript"), ("app.css", "text/css"), ("sigv4.js", "text/javascript")]:
        r = requests.get(f"{server.url}/console/{asset}", timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(kind), asset
    assert_aws_error(requests.get(server.url + "/console/nope.js", timeout=10), "ResourceNotFoundException", 404)


def test_open_mode_needs_no_sign_in(server):
    who = console(server, "GET", "whoami").json()
    assert {k: who[k] for k in ("mode", "signedIn", "account", "accessKeyId")} == {
        "mode": "open", "signedIn": True, "account": "000000000000", "accessKeyId": None}


def test_channels_made_in_the_console_and_by_boto3_are_the_same_channels(server, name):
    c = server.client()
    made = console(server, "POST", "call/CreateSignalingChannel",
                   {"ChannelName": name + "-c", "SingleMasterConfiguration": {"MessageTtlSeconds": 90},
                    "Tags": [{"Key": "k", "Value": "v"}]})
    assert made.status_code == 200, made.text
    arn = made.json()["ChannelARN"]
    info = c.describe_signaling_channel(ChannelARN=arn)["ChannelInfo"]
    assert (info["ChannelName"], info["SingleMasterConfiguration"]["MessageTtlSeconds"]) == (name + "-c", 90)
    by_sdk = c.create_signaling_channel(ChannelName=name + "-s")["ChannelARN"]
    listed = {ch["arn"]: ch for ch in console(server, "GET", "channels").json()["channels"]}
    assert listed[arn]["tags"] == {"k": "v"} and listed[arn]["ttl"] == 90
    assert listed[by_sdk]["name"] == name + "-s"
    assert (listed[by_sdk]["status"], listed[by_sdk]["masters"], listed[by_sdk]["viewers"]) == ("ACTIVE", 0, 0)
    # An update with a stale version is the API's VersionMismatchException, shown as a conflict.
    stale = listed[arn]["version"]
    c.update_signaling_channel(ChannelARN=arn, CurrentVersion=stale,
                               SingleMasterConfiguration={"MessageTtlSeconds": 100})
    r = console(server, "POST", "call/UpdateSignalingChannel",
                {"ChannelARN": arn, "CurrentVersion": stale, "SingleMasterConfiguration": {"MessageTtlSeconds": 120}})
    assert_aws_error(r, "VersionMismatchException", 400)
    r = console(server, "POST", "call/DeleteSignalingChannel", {"ChannelARN": by_sdk})
    assert r.status_code == 200, r.text
    with pytest.raises(ClientError) as gone:
        c.describe_signaling_channel(ChannelARN=by_sdk)
    assert error_code(gone.value) in {"ResourceNotFoundException", "ResourceInUseException"}
    assert_aws_error(console(server, "POST", "call/NoSuchOperation", {}), "UnknownOperationException", 404)


def test_the_live_view_shows_connections_messages_held_and_go_away(server, name):
    arn = server.client().create_signaling_channel(ChannelName=name)["ChannelARN"]
    live = Sse(f"{server.url}/console/api/live?channel={quote(arn, safe='')}")
    try:
        assert live.status == 200
        snap = live.next("snapshot")
        assert snap == {"connections": [], "held": []}
        # A viewer alone: its offer is held for the master, with its expiry.
        viewer = ws(ws_url(server, arn, "viewer-1"))
        joined = live.next("connected", lambda d: d["clientId"] == "viewer-1")
        assert joined["role"] == "VIEWER" and joined["from"].startswith("127.0.0.1:")
        viewer.send(json.dumps({"action": "SDP_OFFER", "messagePayload": b64("offer-sdp")}))
        held = live.next("message", lambda d: d["type"] == "SDP_OFFER")
        assert {k: held[k] for k in ("from", "to", "outcome", "size")} == {
            "from": "viewer-1", "to": "MASTER", "outcome": "held", "size": len(b64("offer-sdp"))}
        assert "payload" not in held  # payloads hidden unless asked for
        listed = live.next("held", lambda d: len(d["held"]) == 1)["held"][0]
        assert (listed["recipient"], listed["type"], listed["sender"]) == ("MASTER", "SDP_OFFER", "viewer-1")
        assert 50_000 < listed["expiresAt"] - time.time() * 1000 <= 60_000
        # The master connects: it takes the held offer; its answer is relayed live.
        master = ws(ws_url(server, arn))
        assert live.next("connected", lambda d: d["role"] == "MASTER")["clientId"] is None
        assert json.loads(master.recv(timeout=HANG))["messageType"] == "SDP_OFFER"
        master.send(json.dumps({"action": "SDP_ANSWER", "recipientClientId": "viewer-1",
                                "messagePayload": b64("answer")}))
        relayed = live.next("message", lambda d: d["type"] == "SDP_ANSWER")
        assert (relayed["from"], relayed["to"], relayed["outcome"]) == ("MASTER", "viewer-1", "relayed")
        # A message that is not valid is shown as rejected.
        viewer.send("not json")
        rejected = live.next("message", lambda d: d["outcome"] == "rejected")
        assert rejected["from"] == "viewer-1" and rejected["reason"]
        # Disconnect one client from the console; then GO_AWAY to the rest.
        r = console(server, "POST", "channel/disconnect", {"ChannelARN": arn, "Role": "VIEWER", "ClientId": "viewer-1"})
        assert (r.status_code, r.json()) == (200, {"disconnected": True})
        assert live.next("disconnected", lambda d: d["clientId"] == "viewer-1")["role"] == "VIEWER"
        r = console(server, "POST", "channel/disconnect", {"ChannelARN": arn, "Role": "VIEWER", "ClientId": "viewer-1"})
        assert_aws_error(r, "ResourceNotFoundException", 404)
        r = console(server, "POST", "channel/goaway", {"ChannelARN": arn})
        assert (r.status_code, r.json()) == (200, {"connections": 1})
        assert live.next("goaway")["connections"] == 1
        assert json.loads(master.recv(timeout=HANG))["messageType"] == "GO_AWAY"
        master.close()
    finally:
        live.close()


def test_payloads_are_shown_only_when_asked_for(server, name):
    arn = server.client().create_signaling_channel(ChannelName=name)["ChannelARN"]
    live = Sse(f"{server.url}/console/api/live?channel={quote(arn, safe='')}&payloads=1")
    try:
        live.next("snapshot")
        viewer = ws(ws_url(server, arn, "v"))
        live.next("connected")
        viewer.send(json.dumps({"action": "ICE_CANDIDATE", "messagePayload": b64("candidate")}))
        assert live.next("message")["payload"] == b64("candidate")
        viewer.close()
    finally:
        live.close()


def test_the_inspector_shows_a_boto3_call_and_its_error_live(server, name):
    stream = Sse(f"{server.url}/console/api/inspector/stream?channel={name}")
    try:
        assert stream.status == 200
        with pytest.raises(ClientError) as missing:
            server.client().describe_signaling_channel(ChannelName=name)
        rid = missing.value.response["ResponseMetadata"]["RequestId"]
        live = stream.next("call")
        assert {k: live[k] for k in ("operation", "channel", "status", "errorCode", "requestId", "accessKeyId")} == {
            "operation": "DescribeSignalingChannel", "channel": name, "status": 404,
            "errorCode": "ResourceNotFoundException", "requestId": rid, "accessKeyId": "AKIDEXAMPLE"}
        assert live["latencyMs"] >= 0
        calls = console(server, "GET", f"inspector?channel={name}").json()["calls"]
        assert [c["requestId"] for c in calls] == [rid]
    finally:
        stream.close()


def test_try_a_call_gets_a_presigned_url_that_connects(server, name):
    arn = server.client().create_signaling_channel(ChannelName=name)["ChannelARN"]
    r = console(server, "POST", "signaling-url", {"ChannelARN": arn, "Role": "VIEWER", "ClientId": "tab-2"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["url"].startswith(f"ws://127.0.0.1:{server.port}/?") and "X-Amz-Signature=" in out["url"]
    assert out["iceServers"] and all(s["urls"] and s["username"] and s["credential"] for s in out["iceServers"])
    conn = ws(out["url"])
    conn.close()


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


def sign_in(server: Server, key: str, secret: str) -> requests.Response:
    headers = sign("POST", "/console/api/session", {"Host": server.netloc, "Content-Type": "application/json"},
                   b"{}", key=key, secret=secret, region="us-west-2")
    return requests.post(server.url + "/console/api/session", data=b"{}", headers=headers, timeout=10)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    path = tmp_path_factory.mktemp("console-creds") / "credentials.toml"
    path.write_text(CREDS)
    s = Server("--credentials", str(path))
    yield s
    s.stop()


def test_credentials_mode_signs_in_with_sigv4_and_shows_only_the_account(secured, name):
    s = secured
    # Nothing without a session.
    assert console(s, "GET", "whoami").json()["signedIn"] is False
    assert_aws_error(console(s, "GET", "channels"), "AccessDeniedException", 403)
    assert_aws_error(console(s, "POST", "call/ListSignalingChannels", {}), "AccessDeniedException", 403)
    assert Sse(f"{s.url}/console/api/live?channel=x").status == 403
    # A wrong secret is the API's refusal.
    assert_aws_error(sign_in(s, "AKIDALPHA", "wrong"), "InvalidSignatureException", 403)
    r = sign_in(s, "AKIDALPHA", "alpha-secret")
    assert r.status_code == 200, r.text
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    alpha = r.cookies
    who = console(s, "GET", "whoami", cookies=alpha).json()
    assert (who["account"], who["accessKeyId"], who["region"]) == ("111111111111", "AKIDALPHA", "us-west-2")
    mine = console(s, "POST", "call/CreateSignalingChannel", {"ChannelName": name}, cookies=alpha).json()["ChannelARN"]
    bravo_arn = s.client(key="AKIDBRAVO", secret="bravo-secret", region="us-west-2").create_signaling_channel(
        ChannelName=name + "-b")["ChannelARN"]
    listed = [c["arn"] for c in console(s, "GET", "channels", cookies=alpha).json()["channels"]]
    assert mine in listed and bravo_arn not in listed
    # Another account's channel is not found from this session, for every action.
    for path, body in [("channel/goaway", {"ChannelARN": bravo_arn}),
                       ("signaling-url", {"ChannelARN": bravo_arn, "Role": "MASTER"})]:
        assert_aws_error(console(s, "POST", path, body, cookies=alpha), "ResourceNotFoundException", 404)
    assert Sse(f"{s.url}/console/api/live?channel={quote(bravo_arn, safe='')}", cookies=alpha).status == 404
    # Bravo's calls are not in Alpha's inspector; nothing the console answers holds a secret.
    s.client(key="AKIDALPHA", secret="alpha-secret", region="us-west-2").list_signaling_channels()
    with pytest.raises(ClientError):
        s.client(key="AKIDBRAVO", secret="bravo-secret", region="us-west-2").describe_signaling_channel(
            ChannelName="bravo-missing")
    calls = console(s, "GET", "inspector", cookies=alpha).json()["calls"]
    assert [(c["operation"], c["accessKeyId"], c["status"]) for c in calls] == [
        ("ListSignalingChannels", "AKIDALPHA", 200)]
    everything = json.dumps(calls) + console(s, "GET", "channels", cookies=alpha).text
    url = console(s, "POST", "signaling-url", {"ChannelARN": mine, "Role": "MASTER"}, cookies=alpha).json()["url"]
    everything += url
    assert "alpha-secret" not in everything and "bravo-secret" not in everything
    ws(url.replace("ws://", "ws://")).close()  # the presigned URL verifies
    # Signing out ends the session.
    assert console(s, "DELETE", "session", cookies=alpha).status_code == 204
    assert_aws_error(console(s, "GET", "channels", cookies=alpha), "AccessDeniedException", 403)
