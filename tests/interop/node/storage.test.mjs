// WebRTC ingestion (issue 15) with a browser as master: headless Chromium runs the official KVS
// WebRTC JS SDK's SignalingClient as MASTER with a moving canvas test pattern (captureStream at
// 30 fps) and a WebAudio oscillator; JoinStorageSession makes the server's recording peer offer
// to it; the page answers preferring H.264 and trickles its candidates. Once the master has sent
// for a while and left, GetMedia (boto3) returns Matroska that ffprobe reads as H.264 + Opus.
// Run by run-browser.sh inside a network namespace of its own (KVS_NETNS_IP).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync, spawnSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  KinesisVideoClient,
  CreateSignalingChannelCommand,
  CreateStreamCommand,
  GetSignalingChannelEndpointCommand,
  UpdateMediaStorageConfigurationCommand,
} from '@aws-sdk/client-kinesis-video';
import { KinesisVideoSignalingClient, GetIceServerConfigCommand } from '@aws-sdk/client-kinesis-video-signaling';
import { startServer, CREDS } from './server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUNDLE = join(HERE, 'node_modules', 'amazon-kinesis-video-streams-webrtc', 'dist', 'kvs-webrtc.min.js');
// boto3 from the Python suite's venv (scripts/test.sh makes it before this suite runs): the JS
// SDK v3 clients for JoinStorageSession and GetMedia are not among this package's dependencies.
const VENV_PYTHON = join(HERE, '..', '.venv', 'bin', 'python');
const IP = process.env.KVS_NETNS_IP;
const REGION = 'us-east-1';
const SEND_MS = 6000;
let server;
let browser;
let ca;
let caPath;

before(async () => {
  assert.ok(IP, 'run through run-browser.sh (a network namespace with KVS_NETNS_IP)');
  // The storage module at debug: its lines are printed when the test fails.
  server = await startServer(['--tls-listen', `${IP}:0`], {
    listen: `${IP}:0`, log: process.env.KVS_STORAGE_TEST_LOG || 'warn,kvs_signaling::storage=debug',
  });
  caPath = join(server.dataDir, 'tls', 'ca.pem');
  ca = readFileSync(caPath);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--ignore-certificate-errors', '--autoplay-policy=no-user-gesture-required',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    ],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const handler = () => new NodeHttpHandler({ httpsAgent: new https.Agent({ ca }) });

// A boto3 call: `code` sees `args` (JSON from here), `client(service, endpoint)`, and prints
// its result.
const boto3 = (code, args) => execFileSync(VENV_PYTHON, ['-c', `
import json, sys, boto3
args = json.loads(sys.argv[1])
def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name=${JSON.stringify(REGION)}, verify=${JSON.stringify(caPath)},
                        aws_access_key_id=${JSON.stringify(CREDS.accessKeyId)}, aws_secret_access_key=${JSON.stringify(CREDS.secretAccessKey)})
${code}
`, JSON.stringify(args)], { encoding: 'utf8', timeout: 60000 }).trim();

async function metric(name) {
  const text = await (await fetch(`${server.endpoint}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : 0;
}

async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// Runs in the page: a KVS master sending a canvas test pattern and a tone to every viewer that
// offers (here: the storage session's peer), preferring H.264. `window.evidence` keeps the SDPs
// and state changes for the test's report.
// `sample`: as the SDK's sample master page does it (tracks added before the offer is applied, no
// codec preferences); else the offer first, then the tracks, H.264 (and its rtx) preferred.
function runMaster({ arn, wss, region, creds, iceServers, sample }) {
  const K = window.KVSWebRTC;
  const ev = { offers: [], answers: [], states: [], errors: [], from: [] };
  window.evidence = ev;
  const canvas = document.createElement('canvas');
  canvas.width = 320;
  canvas.height = 240;
  const g = canvas.getContext('2d');
  let n = 0;
  window.drawTimer = setInterval(() => {
    n++;
    for (let i = 0; i < 8; i++) {
      g.fillStyle = `hsl(${i * 45}, 80%, 50%)`;
      g.fillRect(((i * 40 + 4 * n) % 320), 0, 40, 240);
    }
    g.fillStyle = '#fff';
    g.font = '32px sans-serif';
    g.fillText(String(n), 10, 40);
  }, 33);
  const video = canvas.captureStream(30).getVideoTracks()[0];
  const audioCtx = new AudioContext({ sampleRate: 48000 });
  const osc = audioCtx.createOscillator();
  osc.frequency.value = 440;
  const dest = audioCtx.createMediaStreamDestination();
  osc.connect(dest);
  osc.start();
  audioCtx.resume();
  const audio = dest.stream.getAudioTracks()[0];
  const media = new MediaStream([video, audio]);

  const signaling = new K.SignalingClient({ channelARN: arn, channelEndpoint: wss, role: K.Role.MASTER, region, credentials: creds });
  window.masterSignaling = signaling;
  window.pcs = {};
  const pending = {};
  signaling.on('iceCandidate', (c, from) => {
    const pc = window.pcs[from];
    if (pc && pc.remoteDescription) pc.addIceCandidate(c).catch((e) => ev.errors.push(`addIceCandidate: ${e}`));
    else (pending[from] ||= []).push(c);
  });
  signaling.on('sdpOffer', async (offer, from) => {
    try {
      ev.from.push(from);
      ev.offers.push(offer.sdp);
      const pc = new RTCPeerConnection({ iceServers });
      window.pcs[from] = pc;
      window.pc = pc;
      const t0 = performance.now();
      const note = (what) => ev.states.push(`${Math.round(performance.now() - t0)}ms ${what}`);
      pc.onconnectionstatechange = () => note(`connection=${pc.connectionState}`);
      pc.oniceconnectionstatechange = () => note(`ice=${pc.iceConnectionState}`);
      pc.onicegatheringstatechange = () => note(`gathering=${pc.iceGatheringState}`);
      pc.onicecandidate = ({ candidate }) => {
        if (candidate) signaling.sendIceCandidate(candidate, from);
      };
      if (sample) media.getTracks().forEach((track) => pc.addTrack(track, media));
      await pc.setRemoteDescription(offer);
      for (const c of pending[from] || []) await pc.addIceCandidate(c);
      delete pending[from];
      if (!sample) {
        pc.addTrack(video, media);
        pc.addTrack(audio, media);
        const h264 = RTCRtpSender.getCapabilities('video').codecs
          .filter((c) => c.mimeType === 'video/H264' || c.mimeType === 'video/rtx');
        for (const t of pc.getTransceivers()) {
          if (t.receiver.track.kind === 'video') t.setCodecPreferences(h264);
        }
      }
      await pc.setLocalDescription(await pc.createAnswer());
      ev.answers.push(pc.localDescription.sdp);
      signaling.sendSdpAnswer(pc.localDescription, from);
    } catch (e) {
      ev.errors.push(`answering: ${e}`);
    }
  });
  return new Promise((resolve, reject) => {
    signaling.on('open', () => resolve('open'));
    signaling.on('error', (e) => reject(new Error(String(e && e.message || e))));
    signaling.open();
  });
}

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
  const kv = new KinesisVideoClient({ region: REGION, endpoint: server.tlsEndpoint, credentials: CREDS, requestHandler: handler() });
  const { StreamARN } = await kv.send(new CreateStreamCommand({ StreamName: name, DataRetentionInHours: 1 }));
  const { ChannelARN } = await kv.send(new CreateSignalingChannelCommand({ ChannelName: name }));
  await kv.send(new UpdateMediaStorageConfigurationCommand({
    ChannelARN, MediaStorageConfiguration: { StreamARN, Status: 'ENABLED' },
  }));
  const out = await kv.send(new GetSignalingChannelEndpointCommand({
    ChannelARN, SingleMasterChannelEndpointConfiguration: { Protocols: ['WSS', 'HTTPS', 'WEBRTC'], Role: 'MASTER' },
  }));
  const ep = Object.fromEntries(out.ResourceEndpointList.map((e) => [e.Protocol, e.ResourceEndpoint]));
  const sig = new KinesisVideoSignalingClient({ region: REGION, endpoint: ep.HTTPS, credentials: CREDS, requestHandler: handler() });
  const { IceServerList } = await sig.send(new GetIceServerConfigCommand({ ChannelARN, ClientId: 'chromium-master' }));
  const iceServers = IceServerList.map((s) => ({ urls: s.Uris, username: s.Username, credential: s.Password }));

  const logs = [];
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const p = await ctx.newPage();
  p.on('console', (m) => logs.push(`[page] ${m.type()}: ${m.text()}`));
  p.on('pageerror', (e) => logs.push(`[page] pageerror: ${e.message}`));
  // A secure context (the SDK's signer needs crypto.subtle): a page of the server's https
  // origin. ERR_NETWORK_CHANGED may come once while the namespace's veth settles (bounded retry).
  for (let attempt = 1; ; attempt++) {
    try {
      await p.goto(`${server.tlsEndpoint}/health`);
      break;
    } catch (e) {
      if (attempt >= 5 || !String(e.message).includes('ERR_NETWORK_CHANGED')) throw e;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
  await p.addScriptTag({ path: BUNDLE });
  const caps = await p.evaluate(() => RTCRtpSender.getCapabilities('video').codecs.map((c) => c.mimeType));
  t.diagnostic(`chromium video send codecs: ${[...new Set(caps)].join(' ')}`);
  assert.ok(caps.includes('video/H264'), 'this Chromium offers no H.264 encoder');

  const evidence = async () => {
    const ev = await p.evaluate(() => window.evidence).catch((e) => ({ error: String(e) }));
    const storageLines = server.logs.filter((l) => l.includes('storage'));
    return `\n--- page evidence ---\n${JSON.stringify(ev, null, 1)}\n--- page log ---\n${logs.join('\n')}`
      + `\n--- server storage log ---\n${storageLines.slice(-200).join('\n')}`;
  };

  // Cumulative over the server's life (the tests share it): compared with its value before.
  const keyframes0 = await metric('kvs_storage_video_keyframes_total');
  try {
    assert.equal(await p.evaluate(runMaster, {
      arn: ChannelARN, wss: ep.WSS, region: REGION, creds: CREDS, iceServers, sample,
    }), 'open');
    t.diagnostic(`${at()} master open`);
    boto3('client("kinesis-video-webrtc-storage", args["ep"]).join_storage_session(channelArn=args["arn"])',
      { ep: ep.WEBRTC, arn: ChannelARN });
    t.diagnostic(`${at()} JoinStorageSession returned`);
    await p.waitForFunction(() => window.pc && window.pc.connectionState === 'connected', null, { timeout: 30000 });
    t.diagnostic(`${at()} page peer connection connected`);
    await waitFor('the first keyframe', async () => (await metric('kvs_storage_video_keyframes_total')) > keyframes0, 20000);
    t.diagnostic(`${at()} first keyframe recorded`);
    await new Promise((r) => setTimeout(r, SEND_MS));
    const sent = await p.evaluate(sentStats);
    t.diagnostic(`${at()} sent: ${JSON.stringify(sent)}`);
    const ev = await p.evaluate(() => window.evidence);
    if (process.env.KVS_STORAGE_TEST_SDP) t.diagnostic(`offer:\n${ev.offers[0]}\nanswer:\n${ev.answers[0]}\nstates: ${ev.states.join(', ')}`);
    assert.deepEqual(ev.errors, []);
    assert.equal(ev.from.length, 1);
    assert.match(ev.from[0], /^kvs-storage-session-/);
    assert.match(ev.offers[0], /H264/);
    assert.match(ev.answers[0], /a=rtpmap:\d+ H264\/90000/);
    assert.deepEqual(sent.map((s) => [s.kind, s.codec]).sort(), [['audio', 'audio/opus'], ['video', 'video/H264']]);
    // The master leaves: its peer connection and its signaling connection close.
    await p.evaluate(() => {
      clearInterval(window.drawTimer);
      window.pc.close();
      window.masterSignaling.close();
    });
    t.diagnostic(`${at()} master closed`);
    await waitFor('the session to end', async () => (await metric('kvs_storage_sessions_active')) === 0, 20000);
    t.diagnostic(`${at()} storage session ended`);
  } catch (e) {
    e.message += await evidence();
    throw e;
  } finally {
    await ctx.close();
  }
  const keyframesRecorded = (await metric('kvs_storage_video_keyframes_total')) - keyframes0;
  t.diagnostic(`kvs_storage_video_keyframes_total grew by ${keyframesRecorded}`);
  assert.ok(keyframesRecorded > 0);

  const dir = mkdtempSync(join(tmpdir(), 'kvs-storage-'));
  const file = join(dir, 'recording.mkv');
  const bytes = Number(boto3(`
kv = client("kinesisvideo", args["ep"])
data = kv.get_data_endpoint(StreamName=args["name"], APIName="GET_MEDIA")["DataEndpoint"]
resp = client("kinesis-video-media", data).get_media(StreamName=args["name"], StartSelector={"StartSelectorType": "EARLIEST"})
assert resp["ContentType"] == "video/webm", resp["ContentType"]
body = resp["Payload"].read()
open(args["file"], "wb").write(body)
print(len(body))
`, { ep: server.tlsEndpoint, name, file }));
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
