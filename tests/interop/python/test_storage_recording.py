"""WebRTC ingestion end to end (issue 15): an aiortc master (H.264 test pattern, Opus tone) on a
channel bound to a stream; JoinStorageSession starts the server's recording peer; the master
sends for a while and leaves; then boto3's kinesis-video-media GetMedia, on the endpoint
GetDataEndpoint names, returns Matroska that ffprobe (Debian ffmpeg) reads as one H.264 video
track and one Opus audio track covering the time the master sent. The stream's fragments carry
AWS's tags, and FRAGMENT_NUMBER resumes after a given fragment."""
import json
import re
import subprocess
import time
import urllib.parse

import pytest
import requests

from storage_master import Master, metric, wait_for

pytestmark = pytest.mark.timeout(180)

SEND_SECONDS = 8.0



def ffprobe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_packets",
         "-show_entries", "packet=stream_index,pts_time,flags", str(path)],
        check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def console_storage(server, channel):
    r = requests.get(server.url + "/console/api/storage", params={"channel": channel}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def get_media(server, kv, stream_name, selector):
    ep = kv.get_data_endpoint(StreamName=stream_name, APIName="GET_MEDIA")["DataEndpoint"]
    media = server.client(service="kinesis-video-media", endpoint_url=ep)
    resp = media.get_media(StreamName=stream_name, StartSelector=selector)
    assert resp["ContentType"] == "video/webm"
    return resp["Payload"].read()


def bound_channel(server, kv, name, retention_hours):
    """A channel recording into a new stream: (channel ARN, stream ARN, the storage client on
    its WEBRTC endpoint, the master's WebSocket URL)."""
    channel = kv.create_signaling_channel(ChannelName=name)["ChannelARN"]
    stream = kv.create_stream(StreamName=name, DataRetentionInHours=retention_hours)["StreamARN"]
    kv.update_media_storage_configuration(
        ChannelARN=channel, MediaStorageConfiguration={"StreamARN": stream, "Status": "ENABLED"})
    eps = kv.get_signaling_channel_endpoint(
        ChannelARN=channel,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "WEBRTC"], "Role": "MASTER"},
    )["ResourceEndpointList"]
    by = {e["Protocol"]: e["ResourceEndpoint"] for e in eps}
    storage = server.client(service="kinesis-video-webrtc-storage", endpoint_url=by["WEBRTC"])
    ws = by["WSS"].rstrip("/") + "/?" + urllib.parse.urlencode({"X-Amz-ChannelARN": channel})
    return channel, stream, storage, ws


def test_a_recorded_session_reads_back_as_h264_and_opus(server, kv, name, tmp_path):
    channel, stream, storage, ws = bound_channel(server, kv, name, 2)

    fragments0 = metric(server, "kvs_media_fragments_total") or 0
    master = Master(ws)
    master.start()
    try:
        storage.join_storage_session(channelArn=channel)
        wait_for("the first keyframe", lambda: (metric(server, "kvs_storage_video_keyframes_total") or 0) >= 1)
        time.sleep(SEND_SECONDS)
        assert master.errors == []
        # The console's storage view shows the running session (state as of its last renewal).
        view = console_storage(server, channel)
        assert view["configuration"] == {"status": "ENABLED", "streamArn": stream}
        assert [s["state"] for s in view["sessions"]] == ["CONNECTED"], view

    finally:
        master.stop()
    # The session ends on the master's leave and its recording's last fragment is flushed.
    wait_for("the session to end", lambda: (metric(server, "kvs_storage_sessions_active") or 0) == 0, timeout=15)
    assert (metric(server, "kvs_media_fragments_total") or 0) >= fragments0 + 2

    # ... and, once it ended, what the stream holds.
    view = console_storage(server, channel)
    assert view["sessions"] == []
    rec = view["recording"]
    assert rec["streamArn"] == stream and rec["fragments"] >= 2 and rec["bytes"] > 10_000, rec
    assert SEND_SECONDS - 2.5 <= rec["durationMillis"] / 1000 <= SEND_SECONDS + 3.0, rec
    assert rec["latest"] - rec["earliest"] >= rec["durationMillis"] - 50, rec

    body = get_media(server, kv, name, {"StartSelectorType": "EARLIEST"})
    assert body[:4] == b"\x1a\x45\xdf\xa3"  # an EBML header opens every chunk
    for tag in (b"AWS_KINESISVIDEO_FRAGMENT_NUMBER", b"AWS_KINESISVIDEO_SERVER_TIMESTAMP",
                b"AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", b"AWS_KINESISVIDEO_CONTINUATION_TOKEN"):
        assert tag in body, tag
    path = tmp_path / "recording.mkv"
    path.write_bytes(body)
    probe = ffprobe(path)
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    assert codecs == ["h264", "opus"], probe["streams"]
    video = next(s for s in probe["streams"] if s["codec_name"] == "h264")
    assert (video["width"], video["height"]) == (320, 240)
    audio = next(s for s in probe["streams"] if s["codec_name"] == "opus")
    assert audio["sample_rate"] == "48000"

    # Duration: both tracks span the time the master sent (from the first keyframe on), less
    # what the session's start and end cost.
    def span(index):
        t = [float(p["pts_time"]) for p in probe["packets"]
             if p["stream_index"] == index and p.get("pts_time") not in (None, "N/A")]
        return max(t) - min(t)
    for s in probe["streams"]:
        got = span(s["index"])
        assert SEND_SECONDS - 2.5 <= got <= SEND_SECONDS + 3.0, (s["codec_name"], got)
    keyframes = [p for p in probe["packets"] if p["stream_index"] == video["index"] and "K" in p["flags"]]
    assert len(keyframes) >= 2

    # FRAGMENT_NUMBER: what follows the first fragment, and less of it.
    first = re.search(rb"AWS_KINESISVIDEO_FRAGMENT_NUMBER.{0,8}?(\d{5,})", body, re.S).group(1).decode()
    rest = get_media(server, kv, name, {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": first})
    assert 0 < len(rest) < len(body)
    assert first.encode() not in rest.split(b"AWS_KINESISVIDEO_CONTINUATION_TOKEN")[0]


@pytest.mark.parametrize("audio_clock", [0.975, 1.025])
def test_audio_from_a_sender_whose_audio_clock_drifts_is_all_recorded(server, kv, name, tmp_path, audio_clock):
    """The KVS C SDK's sample master sends Opus whose RTP clock runs ~2.5% slow against its
    video and the wall clock. Its audio must still be recorded whole, in step with the video
    (the recording re-anchors a drifting track, docs/webrtc-ingestion.md), not dropped once it
    falls behind; and a clock running fast must not run ahead."""
    seconds = 20.0
    channel, _, storage, ws = bound_channel(server, kv, name, 1)
    audio0 = metric(server, r'kvs_storage_samples_received_total\{track="audio"\}') or 0
    master = Master(ws, audio_clock=audio_clock)
    master.start()
    try:
        storage.join_storage_session(channelArn=channel)
        wait_for("the first keyframe", lambda: (metric(server, "kvs_storage_video_keyframes_total") or 0) >= 1)
        time.sleep(seconds)
        assert master.errors == []
    finally:
        master.stop()
    wait_for("the session to end", lambda: (metric(server, "kvs_storage_sessions_active") or 0) == 0, timeout=15)
    received = (metric(server, r'kvs_storage_samples_received_total\{track="audio"\}') or 0) - audio0

    path = tmp_path / "drift.mkv"
    path.write_bytes(get_media(server, kv, name, {"StartSelectorType": "EARLIEST"}))
    probe = ffprobe(path)
    index = {s["codec_name"]: s["index"] for s in probe["streams"]}
    assert sorted(index) == ["h264", "opus"], probe["streams"]

    def times(codec):
        return [float(p["pts_time"]) for p in probe["packets"]
                if p["stream_index"] == index[codec] and p.get("pts_time") not in (None, "N/A")]
    audio, video = times("opus"), times("h264")
    # Every Opus packet received from the first keyframe on is kept (the ones before the first
    # keyframe cannot be: a fragment starts on one), ...
    assert received >= (seconds - 1) * 50, received
    assert len(audio) >= 0.97 * (max(video) - min(video)) * 50, (len(audio), received, max(video) - min(video))
    # ... in order, none on the same instant, ...
    assert all(b > a for a, b in zip(audio, audio[1:])), "audio timestamps not increasing"
    # ... and in step with the video at the end as at the start.
    assert abs(max(audio) - max(video)) <= 0.4, (max(audio), max(video))
    assert abs(min(audio) - min(video)) <= 0.4, (min(audio), min(video))

