// WebRTC ingestion (issue 15) with a browser as master: headless Chromium runs the official KVS
// WebRTC JS SDK's SignalingClient as MASTER with a moving canvas test pattern (captureStream at
// 30 fps) and a WebAudio oscillator; JoinStorageSession makes the server's recording peer offer
// to it; the page answers preferring H.264 and trickles its candidates. Once the master has sent
// for a while and left, GetMedia (boto3) returns Matroska that ffprobe reads as H.264 + Opus.
// Run by run-browser.sh inside a network namespace of its own (KVS_NETNS_IP).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { CREDS } from './server.mjs';
import { REGION, runMaster, storageSuite, waitFor } from './browser-kit.mjs';

const SEND_MS = 6000;
const kit = storageSuite();

// Runs in the page: what the peer connection sent (outbound-rtp and their codecs).
async function sentStats() {
  const stats = await window.pc.getStats();
  const out = [];
  stats.forEach((r) => {
    if (r.type === 'outbound-rtp') {
      const codec = stats.get(r.codecId);
      out.push({
        kind: r.kind, codec: codec && codec.mimeType, packetsSent: r.packetsSent, bytesSent: r.bytesSent,
        framesEncoded: r.framesEncoded, keyFramesEncoded: r.keyFramesEncoded, encoder: r.encoderImplementation,
        size: r.frameWidth && `${r.frameWidth}x${r.frameHeight}`,
      });
    }
  });
  return out;
}

async function recordAndReadBack(t, name, sample) {
  const T0 = Date.now();
  const at = () => `${((Date.now() - T0) / 1000).toFixed(1)}s`;
  const { ChannelARN, endpoints, iceServers: iceServersAt } = await kit.storageChannel(name);
  const ep = await endpoints('MASTER');
  const iceServers = await iceServersAt(ep.HTTPS, 'chromium-master');

  const logs = [];
  const p = await kit.page(logs, 'page');
  const caps = await p.evaluate(() => RTCRtpSender.getCapabilities('video').codecs.map((c) => c.mimeType));
  t.diagnostic(`chromium video send codecs: ${[...new Set(caps)].join(' ')}`);
  assert.ok(caps.includes('video/H264'), 'this Chromium offers no H.264 encoder');

  const evidence = async () => {
    const ev = await p.evaluate(() => window.evidence).catch((e) => ({ error: String(e) }));
    return `\n--- page evidence ---\n${JSON.stringify(ev, null, 1)}\n--- page log ---\n${logs.join('\n')}`
      + kit.storageLog(200);
  };

  // Cumulative over the server's life (the tests share it): compared with its value before.
  const keyframes0 = await kit.metric('kvs_storage_video_keyframes_total');
  try {
    assert.equal(await p.evaluate(runMaster, {
      arn: ChannelARN, wss: ep.WSS, region: REGION, creds: CREDS, iceServers, width: 320, height: 240, hz: 440, sample,
    }), 'open');
    t.diagnostic(`${at()} master open`);
    kit.boto3('client("kinesis-video-webrtc-storage", args["ep"]).join_storage_session(channelArn=args["arn"])',
      { ep: ep.WEBRTC, arn: ChannelARN }, { sync: true, timeout: 60000 });
    t.diagnostic(`${at()} JoinStorageSession returned`);
    await p.waitForFunction(() => window.pc && window.pc.connectionState === 'connected', null, { timeout: 30000 });
    t.diagnostic(`${at()} page peer connection connected`);
    await waitFor('the first keyframe', async () => (await kit.metric('kvs_storage_video_keyframes_total')) > keyframes0, 20000);
    t.diagnostic(`${at()} first keyframe recorded`);
    await new Promise((r) => setTimeout(r, SEND_MS));
    const sent = await p.evaluate(sentStats);
    t.diagnostic(`${at()} sent: ${JSON.stringify(sent)}`);
    const ev = await p.evaluate(() => window.evidence);
    if (process.env.KVS_STORAGE_TEST_SDP) t.diagnostic(`offer:\n${ev.offers[0].sdp}\nanswer:\n${ev.answers[0]}\nstates: ${ev.states.join(', ')}`);
    assert.deepEqual(ev.errors, []);
    assert.equal(ev.offers.length, 1);
    assert.match(ev.offers[0].from, /^kvs-storage-session-/);
    assert.match(ev.offers[0].sdp, /H264/);
    assert.match(ev.answers[0], /a=rtpmap:\d+ H264\/90000/);
    assert.deepEqual(sent.map((s) => [s.kind, s.codec]).sort(), [['audio', 'audio/opus'], ['video', 'video/H264']]);
    // The master leaves: its peer connection and its signaling connection close.
    await p.evaluate(() => {
      clearInterval(window.drawTimer);
      window.pc.close();
      window.masterSignaling.close();
    });
    t.diagnostic(`${at()} master closed`);
    await waitFor('the session to end', async () => (await kit.metric('kvs_storage_sessions_active')) === 0, 20000);
    t.diagnostic(`${at()} storage session ended`);
  } catch (e) {
    e.message += await evidence();
    throw e;
  } finally {
    await p.context().close();
  }
  const keyframesRecorded = (await kit.metric('kvs_storage_video_keyframes_total')) - keyframes0;
  t.diagnostic(`kvs_storage_video_keyframes_total grew by ${keyframesRecorded}`);
  assert.ok(keyframesRecorded > 0);

  const dir = mkdtempSync(join(tmpdir(), 'kvs-storage-'));
  const file = join(dir, 'recording.mkv');
  const bytes = Number(kit.boto3(`
kv = client("kinesisvideo", args["ep"])
data = kv.get_data_endpoint(StreamName=args["name"], APIName="GET_MEDIA")["DataEndpoint"]
resp = client("kinesis-video-media", data).get_media(StreamName=args["name"], StartSelector={"StartSelectorType": "EARLIEST"})
assert resp["ContentType"] == "video/webm", resp["ContentType"]
body = resp["Payload"].read()
open(args["file"], "wb").write(body)
print(len(body))
`, { ep: kit.server.tlsEndpoint, name, file }, { sync: true, timeout: 60000 }));
  t.diagnostic(`${at()} GetMedia: ${bytes} bytes`);
  assert.ok(bytes > 10000, `${bytes} bytes`);
  assert.deepEqual([...readFileSync(file).subarray(0, 4)], [0x1a, 0x45, 0xdf, 0xa3]);
  const ff = spawnSync('ffprobe', [
    '-v', 'error', '-print_format', 'json', '-show_streams', '-show_packets',
    '-show_entries', 'packet=stream_index,pts_time,flags', file,
  ], { encoding: 'utf8', timeout: 60000, maxBuffer: 64 << 20 });
  assert.equal(ff.status, 0, ff.stderr);
  // ffprobe notes each further chunk's unknown-length Segment (GetMedia's chunks are whole
  // Matroska documents, one after another): shown, not asserted; the packets are all read.
  if (ff.stderr.trim()) t.diagnostic(`ffprobe: ${ff.stderr.trim()}`);
  const probe = JSON.parse(ff.stdout);
  const codecs = probe.streams.map((s) => s.codec_name).sort();
  assert.deepEqual(codecs, ['h264', 'opus'], JSON.stringify(probe.streams));
  const v = probe.streams.find((s) => s.codec_name === 'h264');
  const a = probe.streams.find((s) => s.codec_name === 'opus');
  assert.deepEqual([v.width, v.height], [320, 240]);
  assert.equal(a.sample_rate, '48000');
  const span = (index) => {
    const ts = probe.packets.filter((q) => q.stream_index === index && q.pts_time && q.pts_time !== 'N/A').map((q) => Number(q.pts_time));
    return Math.max(...ts) - Math.min(...ts);
  };
  const vSpan = span(v.index);
  const aSpan = span(a.index);
  const keyframes = probe.packets.filter((q) => q.stream_index === v.index && q.flags.includes('K')).length;
  const count = (index) => probe.packets.filter((q) => q.stream_index === index).length;
  t.diagnostic(`${at()} ffprobe: video ${count(v.index)} packets over ${vSpan.toFixed(2)}s, `
    + `audio ${count(a.index)} packets over ${aSpan.toFixed(2)}s, ${keyframes} keyframes`);
  assert.ok(vSpan >= 3, `video pts span ${vSpan}`);
  assert.ok(aSpan >= 3, `audio pts span ${aSpan}`);
  assert.ok(keyframes >= 1);
  writeFileSync(join(dir, 'probe.json'), JSON.stringify(probe.streams, null, 1));
}

test('a Chromium master (KVS JS SDK, canvas + oscillator, H.264 preferred) is recorded by JoinStorageSession and reads back with GetMedia as H.264 + Opus',
  (t) => recordAndReadBack(t, 'chromium-storage', false));

test('the same with a master built as the SDK sample page does it: tracks added before the offer, no codec preferences',
  (t) => recordAndReadBack(t, 'chromium-storage-sample', true));
