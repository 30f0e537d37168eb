"""API quotas under hostile rates (`serve --quotas aws`, docs/protocol.md §8.1, docs/behaviour.md 'Errors'):
per-channel and per-account token buckets at AWS's published rates, a burst of one second's
worth, refusing with 400 ClientLimitExceededException and AWS's message followed by the bucket.
`--quotas off` (the default) never throttles; `--quota SCOPE.OPERATION=RATE` overrides one rate.

Calls are made back to back until the first refusal. With a bucket of `rate` tokens refilled at
`rate` per second, the calls allowed before it are at least `rate` (the bucket starts full) and
at most `rate + floor(elapsed * rate)`: on any machine fast enough to make the calls within
1/rate s (the usual case) that is exactly `rate`, the 6th DescribeSignalingChannel in the same
second refused. A refused call changes nothing; `/health` answers meanwhile."""
import concurrent.futures
import json
import math
import threading
import time

import pytest
import requests

from hostile_util import HealthWatch, RawWs, check_response_error, enc, refused_at_start
from kvs_harness import sign

THROTTLED = ("Kinesis Video Streams has throttled the request because you have exceeded the limit of allowed "
             "client calls. Try making the call later.")
LIMIT = "ClientLimitExceededException"


def check_throttle_message(message: str, op: str):
    """AWS's text, then which bucket ran dry."""
    assert message.startswith(THROTTLED), message
    assert op in message[len(THROTTLED):], message


class Caller:
    """Signed POSTs over one keep-alive connection (back-to-back calls, no connect per call)."""

    def __init__(self, s, region="us-east-1"):
        self.s, self.region = s, region
        self.session = requests.Session()

    def post(self, path, body):
        data = json.dumps(body).encode()
        hdrs = sign("POST", path, {"Content-Type": "application/json", "Host": self.s.netloc}, data,
                    key="AKIDQUOTA", secret="x", region=self.region)
        return self.session.post(self.s.url + path, data=data, headers=hdrs, timeout=30)

    def allowed(self, path, body, op) -> bool:
        """True if served (200), False if throttled with exactly the documented error."""
        r = self.post(path, body)
        if r.status_code == 200:
            return True
        check_throttle_message(check_response_error(r, LIMIT, 400)["Message"], op)
        return False


def until_refused(call, rate: float, most: int) -> tuple[int, float]:
    """Calls back to back until one is refused; (calls allowed before it, seconds taken). Checks
    the token-bucket bound described in the module comment."""
    t0 = time.monotonic()
    for i in range(most):
        if not call():
            elapsed = time.monotonic() - t0
            assert i >= rate, f"refused after only {i} calls (a full bucket holds {rate})"
            assert i <= rate + math.floor(elapsed * rate), (
                f"{i} calls allowed in {elapsed:.3f}s: more than {rate}/s with a burst of {rate}")
            return i, elapsed
    raise AssertionError(f"{most} calls in {time.monotonic() - t0:.2f}s, none refused (rate {rate}/s)")


def ws_connect(s, arn, client_id=None) -> RawWs:
    target = f"/?X-Amz-ChannelARN={enc(arn)}" + (f"&X-Amz-ClientId={enc(client_id)}" if client_id else "")
    return RawWs(s.port, target, s.netloc)  # open mode: no signature needed


DESCRIBE = ("/describeSignalingChannel", "DescribeSignalingChannel")
ICE = ("/v1/get-ice-server-config", "GetIceServerConfig")


def channels(s, *names):
    kv = s.client()
    return [kv.create_signaling_channel(ChannelName=n)["ChannelARN"] for n in names]


# --- --quotas aws ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path,op", [DESCRIBE, ICE], ids=["DescribeSignalingChannel", "GetIceServerConfig"])
def test_five_calls_per_second_per_channel(make_server, path, op):
    """5 TPS per channel: the 6th call within the second is refused; another channel is still
    served; a second later the channel is served again."""
    s = make_server("--quotas", "aws")
    one, two = channels(s, "quota-one", "quota-two")
    c = Caller(s)
    with HealthWatch(s.port) as watch, watch.window(f"{op} throttled"):
        until_refused(lambda: c.allowed(path, {"ChannelARN": one}, op), 5, 60)
        assert c.allowed(path, {"ChannelARN": two}, op), "another channel has a bucket of its own"
    time.sleep(1.0)  # the bucket refills
    assert c.allowed(path, {"ChannelARN": one}, op)


@pytest.mark.parametrize("role", ["master", "viewer"])
def test_three_connects_per_second_per_channel_refused_at_the_handshake(make_server, role):
    """ConnectAsMaster / ConnectAsViewer: 3 TPS per channel; the 4th handshake within the second is
    refused before the upgrade with 400 ClientLimitExceededException (AWS format) and replaces
    nobody; another channel still connects."""
    s = make_server("--quotas", "aws")
    one, two = channels(s, "connect-one", "connect-two")
    op = "ConnectAsMaster" if role == "master" else "ConnectAsViewer"
    opened = []
    n = iter(range(1000))

    def attempt(arn=one):
        ws = ws_connect(s, arn, None if role == "master" else f"viewer-{next(n)}")
        if ws.status == 101:
            opened.append(ws)
            return True
        try:
            check_throttle_message(ws.error(LIMIT, 400)["Message"], op)
        finally:
            ws.close()
        return False
    try:
        with HealthWatch(s.port) as watch, watch.window(f"{op} throttled"):
            until_refused(attempt, 3, 30)
            latest = opened[-1]
            latest.ping()  # the refused connect replaced no one
            assert attempt(two), "another channel has a bucket of its own"
    finally:
        for ws in opened:
            ws.close()


def test_fifty_creates_per_second_per_account(make_server):
    """CreateSignalingChannel: 50 TPS per account and region. Creates from 8 threads until one is
    refused: at most 50 + 50/s x elapsed succeed, each refused one created nothing, and another
    region (another account namespace, docs/design.md §2 'Namespaces') is still served."""
    s = make_server("--quotas", "aws")
    results, lock, stop = [], threading.Lock(), threading.Event()
    counter = iter(range(10_000))

    def worker():
        c = Caller(s)
        while not stop.is_set():
            with lock:
                i = next(counter)
            if i >= 600:
                return
            name = f"burst-{i}"
            t0 = time.monotonic()
            ok = c.allowed("/createSignalingChannel", {"ChannelName": name}, "CreateSignalingChannel")
            with lock:
                results.append((t0, time.monotonic(), name, ok))
            if not ok:
                stop.set()
    with HealthWatch(s.port) as watch, watch.window("CreateSignalingChannel throttled"):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for f in [pool.submit(worker) for _ in range(8)]:
                f.result()
    refused = [r for r in results if not r[3]]
    allowed = [r for r in results if r[3]]
    assert refused, f"{len(results)} creates, none refused"
    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
    assert len(allowed) >= 50, f"only {len(allowed)} creates before a refusal (a full bucket holds 50)"
    assert len(allowed) <= 50 + math.floor(elapsed * 50), f"{len(allowed)} creates in {elapsed:.2f}s"
    listed = {c["ChannelName"] for c in s.client().list_signaling_channels()["ChannelInfoList"]}
    assert listed == {r[2] for r in allowed}, "a refused create created something (or an allowed one did not)"
    assert Caller(s, region="eu-west-1").allowed("/createSignalingChannel", {"ChannelName": "burst-0"},
                                                 "CreateSignalingChannel")


# --- --quotas off, --quota --------------------------------------------------------------------------
def test_quotas_off_is_the_default_and_never_throttles(make_server):
    """No flag: 40 describes, 40 ICE configurations, 10 master connects and 120 creates, all back
    to back, are all served."""
    s = make_server()
    (one,) = channels(s, "unthrottled")
    c = Caller(s)
    for _ in range(40):
        assert c.allowed(DESCRIBE[0], {"ChannelARN": one}, DESCRIBE[1])
        assert c.allowed(ICE[0], {"ChannelARN": one}, ICE[1])
    for _ in range(10):
        ws = ws_connect(s, one)
        assert ws.status == 101, (ws.status, ws.body)
        ws.close()
    for i in range(120):
        assert c.allowed("/createSignalingChannel", {"ChannelName": f"many-{i}"}, "CreateSignalingChannel")


@pytest.mark.parametrize("profile", [[], ["--quotas", "aws"]], ids=["alone", "over-aws"])
def test_one_rate_overridden(make_server, profile):
    """`--quota channel.DescribeSignalingChannel=1`: the 2nd describe within the second is refused.
    Alone, nothing else is limited; over `--quotas aws`, AWS's other rates still apply."""
    s = make_server(*profile, "--quota", "channel.DescribeSignalingChannel=1")
    (one,) = channels(s, "overridden")
    c = Caller(s)
    until_refused(lambda: c.allowed(DESCRIBE[0], {"ChannelARN": one}, DESCRIBE[1]), 1, 20)
    if profile:
        until_refused(lambda: c.allowed(ICE[0], {"ChannelARN": one}, ICE[1]), 5, 60)
    else:
        for _ in range(30):
            assert c.allowed(ICE[0], {"ChannelARN": one}, ICE[1])


@pytest.mark.parametrize("args", [["--quotas", "maybe"], ["--quota", "channel.NoSuchOperation=1"],
                                  ["--quota", "galaxy.DescribeSignalingChannel=1"],
                                  ["--quota", "channel.DescribeSignalingChannel=fast"],
                                  ["--quota", "channel.DescribeSignalingChannel=-1"],
                                  ["--quota", "channel.DescribeSignalingChannel=1e400"],
                                  ["--quota", "DescribeSignalingChannel"]],
                         ids=lambda a: " ".join(a))
def test_bad_quota_flags_are_refused_at_start_up(tmp_path, args):
    """A hostile configuration never starts a server: it exits with an error naming the value,
    without a panic."""
    rc, err = refused_at_start(*args, data_dir=tmp_path)
    assert rc != 0, rc
    assert "panic" not in err, err[-2000:]
    assert "unexpected argument" not in err, f"the flag is unknown: {err[-2000:]}"
    assert args[-1] in err, err[-2000:]
