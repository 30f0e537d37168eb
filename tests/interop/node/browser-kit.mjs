// What the browser end-to-end tests share (run by run-browser.sh inside a network namespace of
// their own, KVS_NETNS_IP): Chromium and its pages, waiting, /metrics, and, for the storage tests
// (storage.test.mjs, storage-viewer.test.mjs), their server, boto3 and a KVS master in a page.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
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
// SDK v3 clients for kinesis-video-webrtc-storage (JoinStorageSession, JoinStorageSessionAsViewer)
// and GetMedia are not among this package's dependencies.
const VENV_PYTHON = join(HERE, '..', '.venv', 'bin', 'python');
export const REGION = 'us-east-1';

// Debian's Chromium, headless, as these tests launch it; `extra`: a test's own flags.
export function launchChromium(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--ignore-certificate-errors', '--disable-features=WebRtcHideLocalIpsWithMdns',
      ...extra,
    ],
  });
}

// Chromium may report ERR_NETWORK_CHANGED once while the namespace's fresh veth settles: a
// transient of the test network, not of the server, so the navigation is retried (bounded).
export async function gotoSettled(p, url) {
  for (let attempt = 1; ; attempt++) {
    try {
      await p.goto(url);
      return;
    } catch (e) {
      if (attempt >= 5 || !String(e.message).includes('ERR_NETWORK_CHANGED')) throw e;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

// A page in a browser context of its own, its console and errors kept in `logs` as `[who] …`,
// with the official KVS WebRTC SDK bundle loaded (window.KVSWebRTC). It is a page of the server's
// https origin: a secure context (the SDK's signer needs crypto.subtle).
export async function openPage(browser, server, logs, who) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const p = await ctx.newPage();
  p.on('console', (m) => logs.push(`[${who}] ${m.type()}: ${m.text()}`));
  p.on('pageerror', (e) => logs.push(`[${who}] pageerror: ${e.message}`));
  await gotoSettled(p, `${server.tlsEndpoint}/health`);
  await p.addScriptTag({ path: BUNDLE });
  return p;
}

export async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// One sample of the server's /metrics: `line` is a metric's name with its labels, as printed
// (0 while it has none).
async function metric(server, line) {
  const text = await (await fetch(`${server.endpoint}/metrics`)).text();
  const esc = line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = text.match(new RegExp(`^${esc} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : 0;
}

// The storage tests' set-up, registered as the file's before and after: one server with TLS on
// the namespace's address, the storage module's lines at debug (printed when a test fails: see
// `storageLog`), and one Chromium that plays audio with no user gesture. The returned object's
// `server` and `browser` are set once `before` has run; its functions use them.
export function storageSuite() {
  let ca;
  let caPath;
  const handler = () => new NodeHttpHandler({ httpsAgent: new https.Agent({ ca }) });
  const kit = {
    server: undefined,
    browser: undefined,

    // A page of openPage's, with the page helpers (pageHelpers) that runMaster and a test's own
    // page functions use. `wire`: every WebSocket frame received and sent is kept (window.wire).
    async page(logs, who, { wire = false } = {}) {
      const p = await openPage(kit.browser, kit.server, logs, who);
      await p.evaluate(pageHelpers, { wire });
      return p;
    },

    // A boto3 call: `code` sees `args` (JSON from here), `client(service, endpoint)`, and prints
    // its result, which this returns. Asynchronous (the pages' events go on meanwhile), or with
    // `sync` the string itself; `timeout` in ms.
    boto3(code, args, { sync = false, timeout = 30000 } = {}) {
      const argv = ['-c', `
import json, sys, boto3
args = json.loads(sys.argv[1])
def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name=${JSON.stringify(REGION)}, verify=${JSON.stringify(caPath)},
                        aws_access_key_id=${JSON.stringify(CREDS.accessKeyId)}, aws_secret_access_key=${JSON.stringify(CREDS.secretAccessKey)})
${code}
`, JSON.stringify(args)];
      const options = { encoding: 'utf8', timeout };
      if (sync) return execFileSync(VENV_PYTHON, argv, options).trim();
      return promisify(execFile)(VENV_PYTHON, argv, options).then(({ stdout }) => stdout.trim());
    },

    metric: (line) => metric(kit.server, line),

    // The last `n` lines of the server's log that speak of storage, for a failing test's report.
    storageLog: (n) => `\n--- server storage log ---\n${kit.server.logs.filter((l) => l.includes('storage')).slice(-n).join('\n')}`,

    // A stream (`name`, an hour's retention) and a signaling channel (`name`) recorded into it
    // (media storage enabled). `endpoints(Role)`: { WSS, HTTPS, WEBRTC } for that role;
    // `iceServers(https, ClientId)`: GetIceServerConfig at that HTTPS endpoint, as RTCIceServers.
    async storageChannel(name) {
      const kv = new KinesisVideoClient({ region: REGION, endpoint: kit.server.tlsEndpoint, credentials: CREDS, requestHandler: handler() });
      const { StreamARN } = await kv.send(new CreateStreamCommand({ StreamName: name, DataRetentionInHours: 1 }));
      const { ChannelARN } = await kv.send(new CreateSignalingChannelCommand({ ChannelName: name }));
      await kv.send(new UpdateMediaStorageConfigurationCommand({
        ChannelARN, MediaStorageConfiguration: { StreamARN, Status: 'ENABLED' },
      }));
      const endpoints = async (Role) => {
        const out = await kv.send(new GetSignalingChannelEndpointCommand({
          ChannelARN, SingleMasterChannelEndpointConfiguration: { Protocols: ['WSS', 'HTTPS', 'WEBRTC'], Role },
        }));
        return Object.fromEntries(out.ResourceEndpointList.map((e) => [e.Protocol, e.ResourceEndpoint]));
      };
      const iceServers = async (endpoint, ClientId) => {
        const sig = new KinesisVideoSignalingClient({ region: REGION, endpoint, credentials: CREDS, requestHandler: handler() });
        const { IceServerList } = await sig.send(new GetIceServerConfigCommand({ ChannelARN, ClientId }));
        return IceServerList.map((s) => ({ urls: s.Uris, username: s.Username, credential: s.Password }));
      };
      return { ChannelARN, endpoints, iceServers };
    },
  };

  before(async () => {
    const ip = process.env.KVS_NETNS_IP;
    assert.ok(ip, 'run through run-browser.sh (a network namespace with KVS_NETNS_IP)');
    kit.server = await startServer(['--tls-listen', `${ip}:0`], {
      listen: `${ip}:0`, log: process.env.KVS_STORAGE_TEST_LOG || 'warn,kvs_signaling::storage=debug',
    });
    caPath = join(kit.server.dataDir, 'tls', 'ca.pem');
    ca = readFileSync(caPath);
    kit.browser = await launchChromium(['--autoplay-policy=no-user-gesture-required']);
  });

  after(async () => {
    await kit.browser?.close();
    await kit.server?.stop();
  });

  return kit;
}

// Runs in a storage test's page (once, before the test's page functions): the helpers they use.
function pageHelpers({ wire }) {
  if (wire) {
    const w = { received: [], sent: [] };
    window.wire = w;
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (e) => {
          try { w.received.push(JSON.parse(e.data)); } catch { w.received.push({ unparsed: String(e.data) }); }
        });
      }

      send(data) {
        try { w.sent.push(JSON.parse(data)); } catch { w.sent.push({ unparsed: String(data) }); }
        super.send(data);
      }
    };
  }
  // A tone of `hz` (an oscillator at 48 kHz): its MediaStream.
  window.tone = (hz) => {
    const audioCtx = new AudioContext({ sampleRate: 48000 });
    const osc = audioCtx.createOscillator();
    osc.frequency.value = hz;
    const dest = audioCtx.createMediaStreamDestination();
    osc.connect(dest);
    osc.start();
    audioCtx.resume();
    return dest.stream;
  };
  // The strongest frequency of a received track now: { hz, db }. The track also plays
  // (muted) in an <audio> element: Chromium feeds WebAudio from a remote track only then.
  window.toneMeter = (track) => {
    const el = new Audio();
    el.muted = true;
    el.srcObject = new MediaStream([track]);
    el.play().catch(() => {});
    const ctx = new AudioContext({ sampleRate: 48000 });
    const src = ctx.createMediaStreamSource(new MediaStream([track]));
    const an = ctx.createAnalyser();
    an.fftSize = 8192;
    an.smoothingTimeConstant = 0;
    const mute = ctx.createGain();
    mute.gain.value = 0;
    src.connect(an);
    an.connect(mute);
    mute.connect(ctx.destination);
    ctx.resume();
    const bins = new Float32Array(an.frequencyBinCount);
    return () => {
      an.getFloatFrequencyData(bins);
      let best = 1;
      for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
      return { hz: Math.round((best * ctx.sampleRate) / an.fftSize), db: Math.round(bins[best]) };
    };
  };
  // A peer connection, also window.pc, whose state changes go to `ev.states` (ms since it was
  // made). `hear`: its received tracks are noted too and its received audio is measured
  // (window.heard).
  window.peer = (iceServers, ev, hear) => {
    const pc = new RTCPeerConnection({ iceServers });
    window.pc = pc;
    const t0 = performance.now();
    const note = (what) => ev.states.push(`${Math.round(performance.now() - t0)}ms ${what}`);
    pc.onconnectionstatechange = () => note(`connection=${pc.connectionState}`);
    pc.oniceconnectionstatechange = () => note(`ice=${pc.iceConnectionState}`);
    pc.onicegatheringstatechange = () => note(`gathering=${pc.iceGatheringState}`);
    if (hear) {
      pc.ontrack = ({ track }) => {
        note(`track ${track.kind}`);
        if (track.kind === 'audio') window.heard = window.toneMeter(track);
      };
    }
    return pc;
  };
  // Opens a SignalingClient: 'open' once it is, rejected on its first error.
  window.opened = (signaling) => new Promise((resolve, reject) => {
    signaling.on('open', () => resolve('open'));
    signaling.on('error', (e) => reject(new Error(String(e && e.message || e))));
    signaling.open();
  });
}

// Runs in a storage test's page: a KVS master sending a moving canvas test pattern (width x
// height, captureStream at 30 fps) and a tone of `hz` to every viewer that offers (here: the
// storage session's peer), preferring H.264. `sample`: as the SDK's sample master page does it
// (tracks added before the offer is applied, no codec preferences); else the offer first, then
// the tracks, H.264 (and its rtx) preferred. `hear`: the tone it receives is measured
// (window.heard). `window.evidence` keeps the offers ({ from, sdp }), answers, state changes and
// errors for the test's report; what its SignalingClient emits is kept in `window.emitted`.
export function runMaster({ arn, wss, region, creds, iceServers, width, height, hz, sample, hear }) {
  const K = window.KVSWebRTC;
  const ev = { offers: [], answers: [], states: [], errors: [] };
  window.evidence = ev;
  window.emitted = [];
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext('2d');
  let n = 0;
  window.drawTimer = setInterval(() => {
    n++;
    for (let i = 0; i < 8; i++) {
      g.fillStyle = `hsl(${i * 45}, 80%, 50%)`;
      g.fillRect(((i * 40 + 4 * n) % width), 0, 40, height);
    }
    g.fillStyle = '#fff';
    g.font = '32px sans-serif';
    g.fillText(String(n), 10, 40);
  }, 33);
  const video = canvas.captureStream(30).getVideoTracks()[0];
  const audio = window.tone(hz).getAudioTracks()[0];
  const media = new MediaStream([video, audio]);

  const signaling = new K.SignalingClient({ channelARN: arn, channelEndpoint: wss, role: K.Role.MASTER, region, credentials: creds });
  window.masterSignaling = signaling;
  for (const name of ['sdpOffer', 'sdpAnswer', 'iceCandidate', 'statusResponse']) {
    signaling.on(name, (payload, from) => window.emitted.push({ event: name, from: from === undefined ? null : from }));
  }
  window.pcs = {};
  const pending = {};
  signaling.on('iceCandidate', (c, from) => {
    const pc = window.pcs[from];
    if (pc && pc.remoteDescription) pc.addIceCandidate(c).catch((e) => ev.errors.push(`addIceCandidate: ${e}`));
    else (pending[from] ||= []).push(c);
  });
  signaling.on('sdpOffer', async (offer, from) => {
    try {
      ev.offers.push({ from, sdp: offer.sdp });
      const pc = window.peer(iceServers, ev, hear);
      window.pcs[from] = pc;
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
  return window.opened(signaling);
}
