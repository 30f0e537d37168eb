// Real WebRTC calls between two headless Chromium pages through kvs-signaling, using the
// official KVS WebRTC browser bundle: signaling over wss://, ICE servers from
// GetIceServerConfig, and an RTCPeerConnection whose data channel carries a message each way.
// Run by run-browser.sh inside a network namespace of its own (KVS_NETNS_IP).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  KinesisVideoClient,
  CreateSignalingChannelCommand,
  DeleteSignalingChannelCommand,
  GetSignalingChannelEndpointCommand,
} from '@aws-sdk/client-kinesis-video';
import { KinesisVideoSignalingClient, GetIceServerConfigCommand } from '@aws-sdk/client-kinesis-video-signaling';
import { startServer, CREDS } from './server.mjs';
import { launchChromium, openPage } from './browser-kit.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const IP = process.env.KVS_NETNS_IP;
const REGION = 'us-east-1';
let server;
let browser;
let ca;

before(async () => {
  assert.ok(IP, 'run through run-browser.sh (a network namespace with KVS_NETNS_IP)');
  server = await startServer(['--tls-listen', `${IP}:0`, '--go-away-grace', '2s'], { listen: `${IP}:0` });
  ca = readFileSync(join(server.dataDir, 'tls', 'ca.pem'));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const handler = () => new NodeHttpHandler({ httpsAgent: new https.Agent({ ca }) });

async function prepare(name) {
  const kv = new KinesisVideoClient({ region: REGION, endpoint: server.tlsEndpoint, credentials: CREDS, requestHandler: handler() });
  const { ChannelARN } = await kv.send(new CreateSignalingChannelCommand({ ChannelName: name }));
  const ep = async (Role) => {
    const out = await kv.send(new GetSignalingChannelEndpointCommand({
      ChannelARN, SingleMasterChannelEndpointConfiguration: { Protocols: ['WSS', 'HTTPS'], Role },
    }));
    return Object.fromEntries(out.ResourceEndpointList.map((e) => [e.Protocol, e.ResourceEndpoint]));
  };
  const master = await ep('MASTER');
  const viewer = await ep('VIEWER');
  assert.match(master.WSS, /^wss:\/\//);
  const sig = new KinesisVideoSignalingClient({ region: REGION, endpoint: master.HTTPS, credentials: CREDS, requestHandler: handler() });
  const { IceServerList } = await sig.send(new GetIceServerConfigCommand({ ChannelARN, ClientId: 'browser' }));
  const iceServers = IceServerList.map((s) => ({ urls: s.Uris, username: s.Username, credential: s.Password }));
  return { kv, ChannelARN, master, viewer, iceServers };
}

const page = (logs, who) => openPage(browser, server, logs, who);

// Runs in the master page: answers every viewer, echoes on the data channel.
function runMaster({ arn, wss, region, creds, iceServers, policy }) {
  const K = window.KVSWebRTC;
  const signaling = new K.SignalingClient({ channelARN: arn, channelEndpoint: wss, role: K.Role.MASTER, region, credentials: creds });
  window.masterGot = new Promise((resolveGot) => {
    signaling.on('sdpOffer', async (offer, remoteClientId) => {
      const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: policy });
      window.masterPc = pc;
      pc.onicecandidate = ({ candidate }) => { if (candidate) signaling.sendIceCandidate(candidate, remoteClientId); };
      pc.ondatachannel = ({ channel }) => {
        channel.onmessage = (m) => { resolveGot(m.data); channel.send(`pong to ${m.data}`); };
      };
      signaling.on('iceCandidate', (c, from) => { if (from === remoteClientId) pc.addIceCandidate(c); });
      await pc.setRemoteDescription(offer);
      await pc.setLocalDescription(await pc.createAnswer());
      signaling.sendSdpAnswer(pc.localDescription, remoteClientId);
    });
  });
  window.masterSignaling = signaling;
  return new Promise((resolve, reject) => {
    signaling.on('open', () => resolve('open'));
    signaling.on('error', (e) => reject(new Error(String(e && e.message || e))));
    signaling.open();
  });
}

// Runs in the viewer page: offers, sends "ping" once the data channel opens, returns the reply
// and the type of the local candidate in use.
function runViewer({ arn, wss, region, creds, iceServers, policy, clientId }) {
  const K = window.KVSWebRTC;
  const signaling = new K.SignalingClient({ channelARN: arn, channelEndpoint: wss, role: K.Role.VIEWER, region, credentials: creds, clientId });
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: policy });
  const dc = pc.createDataChannel('kvs');
  pc.onicecandidate = ({ candidate }) => { if (candidate) signaling.sendIceCandidate(candidate); };
  signaling.on('sdpAnswer', (answer) => pc.setRemoteDescription(answer));
  signaling.on('iceCandidate', (c) => pc.addIceCandidate(c));
  signaling.on('open', async () => {
    await pc.setLocalDescription(await pc.createOffer());
    signaling.sendSdpOffer(pc.localDescription);
  });
  window.viewerSignaling = signaling;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no call: ice=${pc.iceConnectionState} conn=${pc.connectionState}`)), 30000);
    dc.onopen = () => dc.send(`ping from ${clientId}`);
    dc.onmessage = async (m) => {
      clearTimeout(timer);
      const stats = await pc.getStats();
      let type = 'unknown';
      let relayProtocol;
      stats.forEach((r) => {
        if (r.type === 'transport' && r.selectedCandidatePairId) {
          const pair = stats.get(r.selectedCandidatePairId);
          const local = stats.get(pair.localCandidateId);
          type = local.candidateType;
          relayProtocol = local.relayProtocol;
        }
      });
      resolve({ reply: m.data, localCandidateType: type, relayProtocol });
    };
    signaling.on('error', (e) => reject(new Error(String(e && e.message || e))));
    signaling.open();
  });
}

// `only`: keep the URIs it accepts (and the servers left with any).
async function call(name, policy, pages, only = () => true) {
  const logs = pages?.logs ?? [];
  const prepared = await prepare(name);
  const { kv, ChannelARN, master, viewer } = prepared;
  const iceServers = prepared.iceServers
    .map((s) => ({ ...s, urls: s.urls.filter(only) }))
    .filter((s) => s.urls.length > 0);
  assert.ok(iceServers.length > 0, 'no ICE server left');
  const args = { arn: ChannelARN, region: REGION, creds: CREDS, iceServers, policy };
  const mp = pages?.mp ?? await page(logs, 'master');
  const vp = pages?.vp ?? await page(logs, 'viewer');
  try {
    assert.equal(await mp.evaluate(runMaster, { ...args, wss: master.WSS }), 'open');
    const out = await vp.evaluate(runViewer, { ...args, wss: viewer.WSS, clientId: `viewer-${policy}` });
    assert.equal(out.reply, `pong to ping from viewer-${policy}`);
    assert.equal(await mp.evaluate(() => window.masterGot), `ping from viewer-${policy}`);
    return { out, kv, ChannelARN, mp, vp, logs };
  } catch (e) {
    console.error(logs.join('\n'));
    throw e;
  }
}

test('a master and a viewer call each other with host candidates', async () => {
  const { out, mp, vp } = await call('browser-host', 'all');
  assert.notEqual(out.localCandidateType, 'relay');
  await mp.context().close();
  await vp.context().close();
});

test('with iceTransportPolicy relay the call goes through the embedded TURN relay', async () => {
  const { out, mp, vp } = await call('browser-relay', 'relay');
  assert.equal(out.localCandidateType, 'relay');
  await mp.context().close();
  await vp.context().close();
});

// Behind a firewall that lets only TCP 443 out: the ICE servers are only the turns: URIs, which
// point at the HTTPS + WSS listener's port (TURN over TLS shares it, docs/turn.md).
test('with only the turns: URIs the relay-only call goes through TURN over TLS', async () => {
  const { out, mp, vp } = await call('browser-turns', 'relay', undefined, (u) => u.startsWith('turns:'));
  assert.equal(out.localCandidateType, 'relay');
  assert.equal(out.relayProtocol, 'tls');
  await mp.context().close();
  await vp.context().close();
});

test('after GO_AWAY (channel deleted and recreated) the clients reconnect and call again', async () => {
  const first = await call('browser-again', 'all');
  const goAway = (p, name) => p.evaluate((n) => new Promise((resolve) => window[n].on('close', () => resolve('closed'))), name);
  const closed = Promise.all([goAway(first.vp, 'viewerSignaling'), goAway(first.mp, 'masterSignaling')]);
  await first.kv.send(new DeleteSignalingChannelCommand({ ChannelARN: first.ChannelARN }));
  assert.deepEqual(await closed, ['closed', 'closed']);
  // The same pages look the channel up again (new ARN, new endpoints, new ICE credentials),
  // reconnect and call again.
  const second = await call('browser-again', 'all', { mp: first.mp, vp: first.vp, logs: first.logs });
  assert.notEqual(second.ChannelARN, first.ChannelARN);
  await first.mp.context().close();
  await first.vp.context().close();
});

async function aiortcCall(name, { relayOnly = false, only = () => true } = {}) {
  const logs = [];
  const prepared = await prepare(name);
  const { ChannelARN, master, viewer } = prepared;
  const iceServers = prepared.iceServers
    .map((s) => ({ ...s, urls: s.urls.filter(only) }))
    .filter((s) => s.urls.length > 0);
  const mp = await page(logs, 'master');
  try {
    const policy = relayOnly ? 'relay' : 'all';
    const args = { arn: ChannelARN, region: REGION, creds: CREDS, iceServers, policy };
    assert.equal(await mp.evaluate(runMaster, { ...args, wss: master.WSS }), 'open');
    const python = process.env.KVS_AIORTC_PYTHON || join(HERE, '..', '.venv', 'bin', 'python');
    const { stdout } = await promisify(execFile)(python, [
      join(HERE, '..', 'aiortc', 'viewer.py'),
      '--arn', ChannelARN, '--wss', viewer.WSS, '--region', REGION,
      '--key', CREDS.accessKeyId, '--secret', CREDS.secretAccessKey,
      '--client-id', 'aiortc-viewer', '--ice-servers', JSON.stringify(iceServers),
      '--ca', join(server.dataDir, 'tls', 'ca.pem'), ...(relayOnly ? ['--relay-only'] : []),
    ], { timeout: 60000 });
    assert.equal(await mp.evaluate(() => window.masterGot), 'ping from aiortc-viewer');
    return stdout.trim().split('\n');
  } catch (e) {
    console.error(logs.join('\n'));
    throw e;
  } finally {
    await mp.context().close();
  }
}

test('an aiortc (Python) viewer calls a browser master through the server', async () => {
  assert.deepEqual(await aiortcCall('aiortc-call'), ['pong to ping from aiortc-viewer']);
});

// aioice speaks TURN over TLS on turns:…?transport=tcp, verifying the relay's certificate
// against the server's CA (viewer.py --ca).
test('an aiortc viewer calls relay-only through the turns: URIs (TURN over TLS)', async () => {
  const out = await aiortcCall('aiortc-turns', { relayOnly: true, only: (u) => u.startsWith('turns:') });
  assert.deepEqual(out, ['pong to ping from aiortc-viewer', 'relay']);
});
