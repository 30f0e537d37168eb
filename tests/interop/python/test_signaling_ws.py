"""The signaling WebSocket's close codes and the shutdown around it (behaviour.md 'Signaling data
plane': "Close codes: 1000 for idle timeout, maximum duration and replacement; 1001 after
GO_AWAY"; a deleted channel's connections get GO_AWAY and are closed with 1001 after
--go-away-grace), and SendAlexaOfferToMaster callers that give up: the server must not wait for
them at shutdown.

Every close code is asserted exactly; a wait for a close only bounds a hang (HANG).
Open mode: the URL needs no signature (`?X-Amz-ChannelARN=...[&X-Amz-ClientId=...]`)."""
import base64
import concurrent.futures
import json
import signal
import time
from urllib.parse import quote

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from kvs_harness import SHUTDOWN_BOUND, Server

HANG = 30.0  # only bounds a hang while waiting for a frame or a close


class Ws:
    def __init__(self, server: Server, arn: str, client_id: str | None = None):
        url = f"ws://127.0.0.1:{server.port}/?X-Amz-ChannelARN={quote(arn, safe='')}"
        if client_id is not None:
            url += f"&X-Amz-ClientId={quote(client_id, safe='')}"
        self.conn = ws_connect(url, proxy=None, compression=None, open_timeout=HANG, ping_interval=None,
                               close_timeout=2, legacy=True)

    def recv(self) -> dict:
        try:
            return json.loads(self.conn.recv(timeout=HANG))
        except ConnectionClosed as e:
            raise AssertionError(f"closed ({e}) while waiting for a frame") from None

    def close_code(self) -> int:
        """Reads until the server closes; the code of its close frame (1006: no close frame).
        A connection still open after HANG is a failure."""
        deadline = time.monotonic() + HANG
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"still open after {HANG}s"
            try:
                self.conn.recv(timeout=left)
            except TimeoutError:
                continue
            except ConnectionClosed as e:
                return e.rcvd.code if e.rcvd is not None else 1006

    def close(self):
        self.conn.close()


@pytest.fixture
def channel(server, name):
    return server.client().create_signaling_channel(ChannelName=name)["ChannelARN"]


def test_a_second_master_replaces_the_first_with_1000(server, channel):
    first = Ws(server, channel)
    second = Ws(server, channel)
    try:
        assert first.close_code() == 1000
    finally:
        first.close()
        second.close()


def test_a_viewer_with_the_same_client_id_replaces_the_first_with_1000(server, channel):
    first = Ws(server, channel, "viewer-1")
    other = Ws(server, channel, "viewer-2")
    second = Ws(server, channel, "viewer-1")
    try:
        assert first.close_code() == 1000
    finally:
        for w in (first, other, second):
            w.close()


@pytest.mark.parametrize("client_id", [None, "viewer-1"])
def test_a_client_close_is_answered_with_a_close_frame(server, channel, client_id):
    """behaviour.md 'Signaling data plane': the server answers a client's close frame with one
    echoing its code; a socket dropped without it reads as 1006 (abnormal) at the client."""
    w = Ws(server, channel, client_id)
    w.conn.close_timeout = HANG
    w.conn.close(code=1000)
    assert w.conn.close_code == 1000, (w.conn.protocol.close_sent, w.conn.protocol.close_rcvd)


def test_delete_sends_go_away_then_closes_with_1001(make_server, name):
    s = make_server("--go-away-grace", "200ms")
    arn = s.client().create_signaling_channel(ChannelName=name)["ChannelARN"]
    master, viewer = Ws(s, arn), Ws(s, arn, "viewer-1")
    try:
        s.client().delete_signaling_channel(ChannelARN=arn)
        for w in (master, viewer):
            frame = w.recv()
            assert frame.get("messageType") == "GO_AWAY", frame
            assert w.close_code() == 1001
    finally:
        master.close()
        viewer.close()


def test_idle_timeout_closes_with_1000(make_server, name):
    s = make_server("--idle-timeout", "1s")
    arn = s.client().create_signaling_channel(ChannelName=name)["ChannelARN"]
    w = Ws(s, arn)
    try:
        assert w.close_code() == 1000
    finally:
        w.close()


def test_sigterm_sends_go_away_and_exits_once_clients_leave(name):
    """SIGTERM with connections open: GO_AWAY to each; clients that leave on it (as the SDKs do)
    let the server exit 0 long before its --shutdown-timeout."""
    s = Server("--shutdown-timeout", "60s")
    arn = s.client().create_signaling_channel(ChannelName=name)["ChannelARN"]
    master, viewer = Ws(s, arn), Ws(s, arn, "viewer-1")
    s.proc.send_signal(signal.SIGTERM)
    for w in (master, viewer):
        frame = w.recv()
        assert frame.get("messageType") == "GO_AWAY", frame
        w.close()
    assert s.stop() == 0  # already signalled: waits up to SHUTDOWN_BOUND, checks the exit code


def test_abandoned_alexa_offers_do_not_hold_up_shutdown(name):
    """60 SendAlexaOfferToMaster callers give up after 0.3 s (no master answers); then SIGTERM,
    with no connection open, must find nothing to wait for: not the callers' answer timeout
    (60 s here) and not the --shutdown-timeout (60 s here), only SHUTDOWN_BOUND."""
    s = Server("--shutdown-timeout", "60s", "--alexa-answer-timeout", "60s")
    arn = s.client().create_signaling_channel(ChannelName=name)["ChannelARN"]
    offer = base64.b64encode(json.dumps({"type": "offer", "sdp": "v=0\r\n"}).encode()).decode()

    def give_up(i):
        try:
            r = s.post("/v1/send-alexa-offer-to-master", {"ChannelARN": arn, "SenderClientId": f"alexa-{i}",
                                                           "MessagePayload": offer},
                       service="kinesisvideo", timeout=0.3)
        except requests.exceptions.ReadTimeout:
            return "gave up"
        return f"answered {r.status_code}: {r.text[:200]}"

    with concurrent.futures.ThreadPoolExecutor(60) as pool:
        outcomes = list(pool.map(give_up, range(60)))
    assert outcomes == ["gave up"] * 60, outcomes
    try:
        s.stop()
    except AssertionError as e:
        raise AssertionError(f"60 abandoned SendAlexaOfferToMaster waiters held up the shutdown beyond "
                             f"{SHUTDOWN_BOUND}s: {e}") from None
