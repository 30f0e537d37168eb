"""A KVS master on aiortc for the storage-session tests: it connects to the signaling WebSocket
as master and answers every SDP offer (the storage session's included) with a moving test
pattern as H.264 video and a 440 Hz tone as Opus audio, applying trickled ICE candidates.

`Master(ws_url)` runs in a thread of its own with its own event loop, so a pytest test drives it
with plain calls: `start()`, `offers` (the sender ClientIds of the offers it answered),
`stop()` (closes the WebSocket and every peer connection: the master leaves the channel).
"""
import asyncio
import base64
import fractions
import json
import math
import re
import threading
import time

import struct

import websockets
from aiortc import (AudioStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription,
                    VideoStreamTrack)
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame, VideoFrame


class TestPattern(VideoStreamTrack):
    """320x240 at 30 fps (yuv420p): grey bars that move four columns per frame, on coloured
    chroma."""

    W, H = 320, 240

    def __init__(self):
        super().__init__()
        self.n = 0
        self.row = bytes(b for i in range(8) for b in [16 + 30 * i] * 40)

    @staticmethod
    def fill(plane, width, height, row):
        pad = plane.line_size - width
        plane.update((row + b"\0" * pad) * height)

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        self.n += 1
        shift = (4 * self.n) % self.W
        row = self.row[-shift:] + self.row[:-shift] if shift else self.row
        frame = VideoFrame(self.W, self.H, "yuv420p")
        self.fill(frame.planes[0], self.W, self.H, row)
        self.fill(frame.planes[1], self.W // 2, self.H // 2, bytes([90]) * (self.W // 2))
        self.fill(frame.planes[2], self.W // 2, self.H // 2, bytes([160]) * (self.W // 2))
        frame.pts, frame.time_base = pts, time_base
        return frame


class Tone(AudioStreamTrack):
    """A sine of `hz` (440 Hz: the master's; a viewer's voice has its own pitch, so the master
    can tell whose audio it gets), 48 kHz mono, 20 ms frames, paced in real time. `clock` scales the RTP
    clock against real time: 0.975 is a sender whose audio clock runs 2.5% slow, as the KVS C
    SDK's sample master's does (its RTP timestamps fall behind its video's and the wall
    clock's)."""

    def __init__(self, clock=1.0, hz=440):
        super().__init__()
        self.hz = hz
        self.samples = 0
        self.start = None
        self.clock = clock

    async def recv(self):
        if self.start is None:
            self.start = time.time()
        wait = self.start + self.samples / 48000 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        n = 960
        pcm = struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * self.hz * (i + self.samples) / 48000))
                                       for i in range(n)))
        frame = AudioFrame(format="s16", layout="mono", samples=n)
        frame.planes[0].update(pcm)
        frame.sample_rate = 48000
        frame.pts = int(self.samples * self.clock)
        frame.time_base = fractions.Fraction(1, 48000)
        self.samples += n
        return frame


def send_as_master(pc, audio, audio_direction):
    """A master's answer to the storage peer's offer (set as the remote description): the test
    pattern as H.264, `audio` in `audio_direction`."""
    for t in pc.getTransceivers():
        if t.kind == "video":
            t.sender.replaceTrack(TestPattern())
            t.direction = "sendonly"
            h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs
                    if c.mimeType == "video/H264"]
            t.setCodecPreferences(h264)
        elif t.kind == "audio":
            t.sender.replaceTrack(audio)
            t.direction = audio_direction


async def add_candidate(pc, body):
    """An ICE_CANDIDATE payload (decoded) added to `pc`."""
    c = candidate_from_sdp(body["candidate"].split(":", 1)[1])
    c.sdpMid = body.get("sdpMid")
    c.sdpMLineIndex = body.get("sdpMLineIndex")
    try:
        await pc.addIceCandidate(c)
    except ValueError:
        pass  # already known from the offer's SDP (end-of-candidates)


def b64json(obj):
    return base64.b64encode(json.dumps(obj).encode()).decode()


class Master:
    def __init__(self, ws_url, audio_clock=1.0):
        self.ws_url = ws_url
        self.audio_clock = audio_clock
        self.offers = []
        self.errors = []
        self.pcs = {}
        self.loop = asyncio.new_event_loop()
        self.connected = threading.Event()
        self._stop = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self, timeout=15):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._run(), self.loop)
        assert self.connected.wait(timeout), f"master did not connect: {self.errors}"

    def stop(self, timeout=15):
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        fut.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)

    async def _shutdown(self):
        if self._stop is not None:
            self._stop.set()
        for pc in list(self.pcs.values()):
            await pc.close()

    async def _run(self):
        self._stop = asyncio.Event()
        try:
            async with websockets.connect(self.ws_url) as ws:
                self.connected.set()
                pump = asyncio.create_task(self._pump(ws))
                await self._stop.wait()
                pump.cancel()
        except Exception as e:  # reported through `errors`, asserted by the test
            self.errors.append(repr(e))

    async def _pump(self, ws):
        async for raw in ws:
            msg = json.loads(raw)
            payload = msg.get("messagePayload")
            body = json.loads(base64.b64decode(payload)) if payload else None
            sender = msg.get("senderClientId")
            try:
                if msg.get("messageType") == "SDP_OFFER":
                    await self._answer(ws, sender, body["sdp"])
                elif msg.get("messageType") == "ICE_CANDIDATE" and body and body.get("candidate"):
                    pc = self.pcs.get(sender)
                    if pc is not None:
                        await add_candidate(pc, body)
            except Exception as e:
                self.errors.append(repr(e))

    async def _answer(self, ws, sender, sdp):
        self.offers.append(sender)
        pc = RTCPeerConnection()
        self.pcs[sender] = pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        send_as_master(pc, Tone(self.audio_clock), "sendonly")
        await pc.setLocalDescription(await pc.createAnswer())
        await ws.send(json.dumps({
            "action": "SDP_ANSWER",
            "recipientClientId": sender,
            "messagePayload": b64json({"type": "answer", "sdp": pc.localDescription.sdp}),
        }))


def metric(server, line_re, default=None):
    """The value of the first /metrics line matching `line_re` (a full-line regex, value
    excluded), or `default`. Shared by the storage tests on one node and on several."""
    import requests
    text = requests.get(server.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        m = re.fullmatch(line_re + r" (\S+)", line)
        if m:
            return float(m.group(1))
    return default


def wait_for(what, check, timeout=40.0):
    """Polls `check` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


# --- JoinStorageSessionAsViewer (test_storage_viewers.py, storage_viewer.py) ---------------------
# Added for the viewer tests; nothing above changes.
import collections  # noqa: E402


def pcm_of(frame):
    """A decoded s16 audio frame (aiortc's Opus decoder gives packed stereo) as a list of mono
    samples: the first channel."""
    assert frame.format.name == "s16", frame.format.name
    channels = len(frame.layout.channels)
    raw = bytes(frame.planes[0])[:frame.samples * channels * 2]
    return list(struct.unpack(f"<{frame.samples * channels}h", raw))[::channels]


def tone_power(samples, hz, rate=48000):
    """The power of one frequency in `samples` (Goertzel), normalised by the count."""
    if not samples:
        return 0.0
    k = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - k * s1 * s2) / len(samples)


def tone_share(samples, hz, rate=48000):
    """How much of the samples' energy is a sine of `hz`: 0 (none, or silence) to 1 (a pure
    tone of that pitch)."""
    if not samples:
        return 0.0
    energy = sum(x * x for x in samples) / len(samples)
    if energy == 0:
        return 0.0
    amplitude2 = 4 * tone_power(samples, hz, rate) / len(samples)
    return amplitude2 / 2 / energy


def recent_samples(frames, since, limit=48000):
    """The mono samples of the (arrival time, samples) frames that arrived after `since`, at
    most the last `limit` of them."""
    out = []
    for t, pcm in list(frames):
        if t >= since:
            out.extend(pcm)
    return out[-limit:]


class _Tap:
    """The master's WebSocket, recording every frame it receives (parsed, payload decoded as
    `body`) into a list before the master handles it."""

    def __init__(self, ws, into):
        self.ws, self.into = ws, into

    def __aiter__(self):
        return self._iter()

    async def _iter(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            payload = msg.get("messagePayload")
            try:
                msg["body"] = json.loads(base64.b64decode(payload)) if payload else None
            except ValueError:
                msg["body"] = None
            self.into.append(msg)
            yield raw

    async def send(self, data):
        await self.ws.send(data)


class TalkbackMaster(Master):
    """The same master (test pattern and 440 Hz tone), which also:
    - records every message it receives (`messages`, parsed, payload decoded as `body`) and the
      SDP of every offer (`offer_sdps`, by sender);
    - answers audio `sendrecv` where the offer allows it (the storage peer's audio is sendrecv
      when viewers talk through it) and counts the audio it receives per sender
      (`audio_frames`), keeping recent samples (`audio`: sender -> (arrival time, mono samples));
    - uses no STUN server (host candidates only: no traffic off this machine)."""

    def __init__(self, ws_url):
        super().__init__(ws_url)
        self.messages = []
        self.offer_sdps = {}
        self.audio_frames = {}
        self.audio = {}

    def from_client(self, client_id):
        return [m for m in self.messages if m.get("senderClientId") == client_id]

    async def _pump(self, ws):
        await super()._pump(_Tap(ws, self.messages))

    async def _consume(self, sender, track):
        from aiortc.mediastreams import MediaStreamError
        try:
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    self.audio_frames[sender] = self.audio_frames.get(sender, 0) + 1
                    self.audio.setdefault(sender, collections.deque(maxlen=600)).append(
                        (time.monotonic(), pcm_of(frame)))
        except MediaStreamError:
            pass
        except Exception as e:
            self.errors.append(f"{track.kind} track from {sender}: {e!r}")

    async def _answer(self, ws, sender, sdp):
        from aiortc import RTCConfiguration
        self.offers.append(sender)
        self.offer_sdps.setdefault(sender, []).append(sdp)
        old = self.pcs.get(sender)
        if old is not None:
            await old.close()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs[sender] = pc
        pc.on("track", lambda track: asyncio.ensure_future(self._consume(sender, track)))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        # sendrecv is and-ed with the offer's direction: sendonly against a recvonly offer.
        send_as_master(pc, Tone(), "sendrecv")
        await pc.setLocalDescription(await pc.createAnswer())
        await ws.send(json.dumps({
            "action": "SDP_ANSWER",
            "recipientClientId": sender,
            "messagePayload": b64json({"type": "answer", "sdp": pc.localDescription.sdp}),
        }))
