"""A KVS viewer on aiortc for the JoinStorageSessionAsViewer tests (docs/webrtc-ingestion.md),
behaving as the KVS WebRTC JS SDK's ingestion viewer does: it connects the signaling WebSocket
as VIEWER with its ClientId, and once JoinStorageSessionAsViewer has been called it *answers*
the SDP_OFFER the storage peer sends it (the offer looks like the master's: no
senderClientId), sending its SDP_ANSWER and its ICE candidates without a recipientClientId.

It receives the master's video (H.264) and audio (Opus) and may send a tone of its own
(`send_audio=HZ`, audio `sendrecv`). Its answer carries no candidates: they go out trickled as
ICE_CANDIDATE messages only, as a browser's do (`trickle=False` keeps them in the SDP instead).

`Viewer(ws_url, client_id)` runs in a thread with its own event loop (like
storage_master.Master), so a pytest test drives it with plain calls and reads:
- `messages`: every frame received, as JSON, with `body` (the decoded payload) added;
- `offers`: those that were SDP_OFFERs; `answered`: how many SDP_ANSWERs it sent; `sent`:
  every message it sent (as JSON);
- `frames`: decoded frames per kind ({"video": n, "audio": n}); `video_sizes`: the (w, h) seen;
  `audio`: recent decoded audio as (arrival time, mono samples) (see storage_master.tone_power);
- `closed_code`: the close code when the server closed the WebSocket, else None;
- `errors`: anything that went wrong inside (a test asserts it is empty);
- `close()`: closes the WebSocket and the peer connection (the viewer leaves).
"""
import asyncio
import base64
import collections
import json
import re
import threading
import time
import urllib.parse

import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from storage_master import Tone, add_candidate, b64json, pcm_of


def presign_viewer_url(wss_endpoint, channel_arn, client_id, key="AKIDEXAMPLE",
                       secret="open-mode-secret", region="us-east-1"):
    """The ConnectAsViewer URL presigned with botocore (SigV4 query auth, service
    kinesisvideo), as the SDKs build it; ws:// or wss:// as the endpoint says."""
    scheme, rest = wss_endpoint.split("://", 1)
    http = ("https" if scheme == "wss" else "http") + "://" + rest.rstrip("/") + "/"
    query = urllib.parse.urlencode({"X-Amz-ChannelARN": channel_arn, "X-Amz-ClientId": client_id},
                                   quote_via=urllib.parse.quote)
    req = AWSRequest(method="GET", url=f"{http}?{query}")
    SigV4QueryAuth(Credentials(key, secret), "kinesisvideo", region, expires=299).add_auth(req)
    return scheme + "://" + req.url.split("://", 1)[1]


def sdp_sections(sdp):
    """The SDP's media sections: [(kind, [lines])], in order ('m=video ...' opens one)."""
    out = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            out.append((line[2:].split(" ", 1)[0], [line]))
        elif out and line:
            out[-1][1].append(line)
    return out


def section_direction(lines):
    found = [ln[2:] for ln in lines if ln in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")]
    return found[0] if len(found) == 1 else found


def section_codecs(lines):
    """The codec names of the section's rtpmap lines, upper-cased (H264, OPUS, RTX, ...)."""
    return [m.group(1).upper() for ln in lines for m in [re.match(r"a=rtpmap:\d+ ([^/]+)/", ln)] if m]


class Viewer:
    def __init__(self, ws_url, client_id, send_audio=None, trickle=True, answer=True):
        self.ws_url = ws_url
        self.client_id = client_id
        self.send_audio = send_audio
        self.trickle = trickle
        self.answer = answer
        self.messages = []
        self.offers = []
        self.sent = []
        self.answered = 0
        self.frames = {"video": 0, "audio": 0}
        self.video_sizes = set()
        self.audio = collections.deque(maxlen=600)  # ~12 s of 20 ms frames
        self.errors = []
        self.closed_code = None
        self.pc = None
        self.pcs = []
        self.loop = asyncio.new_event_loop()
        self.connected = threading.Event()
        self._stop = None
        self._done = asyncio.Event()
        self._ws = None
        self._early = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    # --- driven from the test's thread ---------------------------------------------------------
    def start(self, timeout=15):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._run(), self.loop)
        assert self.connected.wait(timeout), f"viewer {self.client_id} did not connect: {self.errors}"
        return self

    def close(self, timeout=15):
        if not self.thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        try:
            fut.result(timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)

    def of_type(self, kind):
        return [m for m in self.messages if m.get("messageType") == kind]

    def send_raw(self, msg, timeout=10):
        """Sends one message (a dict) as is over the viewer's WebSocket."""
        asyncio.run_coroutine_threadsafe(self._send(msg), self.loop).result(timeout)

    def __repr__(self):
        return f"<viewer {self.client_id}>"

    # --- on the viewer's own loop ---------------------------------------------------------------
    async def _shutdown(self):
        if self._stop is not None:
            self._stop.set()
        for pc in self.pcs:
            await pc.close()
        # The WebSocket is closed (close frame sent, the server's awaited) before the loop stops.
        await asyncio.wait_for(self._done.wait(), 10)

    async def _run(self):
        self._stop = asyncio.Event()
        try:
            await self._connected_run()
        finally:
            self._done.set()

    async def _connected_run(self):
        try:
            async with websockets.connect(self.ws_url, proxy=None, compression=None,
                                          ping_interval=None, close_timeout=2) as ws:
                self._ws = ws
                self.connected.set()
                pump = asyncio.create_task(self._pump(ws))
                stop = asyncio.create_task(self._stop.wait())
                await asyncio.wait({pump, stop}, return_when=asyncio.FIRST_COMPLETED)
                pump.cancel()
                stop.cancel()
        except Exception as e:  # reported through `errors`, asserted by the test
            self.errors.append(repr(e))

    async def _send(self, msg):
        self.sent.append(msg)
        await self._ws.send(json.dumps(msg))

    async def _pump(self, ws):
        try:
            async for raw in ws:
                msg = json.loads(raw)
                payload = msg.get("messagePayload")
                try:
                    msg["body"] = json.loads(base64.b64decode(payload)) if payload else None
                except ValueError:
                    msg["body"] = None
                self.messages.append(msg)
                try:
                    kind = msg.get("messageType")
                    if kind == "SDP_OFFER":
                        self.offers.append(msg)
                        if self.answer:
                            await self._answer(msg["body"]["sdp"])
                    elif kind == "ICE_CANDIDATE" and msg["body"] and msg["body"].get("candidate"):
                        if self.pc is None:
                            self._early.append(msg["body"])
                        else:
                            await add_candidate(self.pc, msg["body"])
                except Exception as e:
                    self.errors.append(repr(e))
        except websockets.ConnectionClosed as e:
            self.closed_code = e.rcvd.code if e.rcvd is not None else 1006
            return
        self.closed_code = ws.close_code


    async def _consume(self, track):
        try:
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if track.kind == "video":
                    self.video_sizes.add((frame.width, frame.height))
                else:
                    self.audio.append((time.monotonic(), pcm_of(frame)))
        except MediaStreamError:
            pass
        except Exception as e:
            self.errors.append(f"{track.kind} track: {e!r}")

    async def _answer(self, sdp):
        # A new offer (the same ClientId joined again) replaces the previous leg.
        if self.pc is not None:
            await self.pc.close()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        self.pcs.append(pc)
        pc.on("track", lambda track: asyncio.ensure_future(self._consume(track)))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for body in self._early:
            await add_candidate(pc, body)
        self._early = []
        for t in pc.getTransceivers():
            if t.kind == "video":
                t.direction = "recvonly"
            elif t.kind == "audio":
                if self.send_audio:
                    t.sender.replaceTrack(Tone(hz=self.send_audio))
                    t.direction = "sendrecv"
                else:
                    t.direction = "recvonly"
        await pc.setLocalDescription(await pc.createAnswer())
        local = pc.localDescription.sdp
        candidates = []
        if self.trickle:
            # As a browser trickles: the answer without candidates, then each one on its own.
            mids = [next((ln[6:] for ln in lines if ln.startswith("a=mid:")), None)
                    for _, lines in sdp_sections(local)]
            index, kept = -1, []
            for line in local.split("\r\n"):
                if line.startswith("m="):
                    index += 1
                if line.startswith("a=candidate:"):
                    mid = mids[index] if 0 <= index < len(mids) else None
                    if index == 0:
                        candidates.append((line[2:], index, mid))
                    continue
                if line == "a=end-of-candidates":
                    continue
                kept.append(line)
            local = "\r\n".join(kept)
        await self._send({"action": "SDP_ANSWER",
                          "messagePayload": b64json({"type": "answer", "sdp": local})})
        self.answered += 1
        for line, index, mid in candidates:
            await self._send({"action": "ICE_CANDIDATE", "messagePayload": b64json(
                {"candidate": line, "sdpMid": mid, "sdpMLineIndex": index})})
