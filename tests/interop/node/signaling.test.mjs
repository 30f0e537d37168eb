// A master and two viewers built on the official KVS WebRTC JS SDK's SignalingClient and
// SigV4RequestSigner exchange offers, answers and ICE candidates through kvs-signaling, with
// every connect SigV4-presigned and verified (--credentials).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { SignalingClient, SigV4RequestSigner, Role } from 'amazon-kinesis-video-streams-webrtc';
import {
  KinesisVideoClient,
  CreateSignalingChannelCommand,
  DescribeSignalingChannelCommand,
  GetSignalingChannelEndpointCommand,
} from '@aws-sdk/client-kinesis-video';
import { KinesisVideoSignalingClient, GetIceServerConfigCommand } from '@aws-sdk/client-kinesis-video-signaling';
import { startServer, CREDS, ACCOUNT } from './server.mjs';

// Node 20 has no global WebSocket; the SDK uses the global one.
globalThis.WebSocket = WebSocket;

const REGION = 'us-west-2';
let server;
let kv;

before(async () => {
  server = await startServer();
  kv = new KinesisVideoClient({ region: REGION, endpoint: server.endpoint, credentials: CREDS });
});

after(async () => {
  await server.stop();
});

// The SDK's signer accepts only wss:// endpoints. Over plain ws:// we sign the wss:// form of
// the same host and path (the signature covers host, path and query, not the scheme).
class PlainWsSigner {
  constructor(region, credentials, secret) {
    this.inner = new SigV4RequestSigner(region, { ...credentials, secretAccessKey: secret ?? credentials.secretAccessKey });
  }
  async getSignedURL(endpoint, queryParams, date) {
    const signed = await this.inner.getSignedURL(endpoint.replace(/^ws:/, 'wss:'), queryParams, date);
    return signed.replace(/^wss:/, 'ws:');
  }
}

async function channel(name) {
  const { ChannelARN } = await kv.send(new CreateSignalingChannelCommand({ ChannelName: name }));
  const { ChannelInfo } = await kv.send(new DescribeSignalingChannelCommand({ ChannelName: name }));
  assert.equal(ChannelInfo.ChannelARN, ChannelARN);
  assert.ok(ChannelARN.startsWith(`arn:aws:kinesisvideo:${REGION}:${ACCOUNT}:channel/${name}/`));
  return ChannelARN;
}

async function endpoints(arn, role) {
  const out = await kv.send(new GetSignalingChannelEndpointCommand({
    ChannelARN: arn,
    SingleMasterChannelEndpointConfiguration: { Protocols: ['WSS', 'HTTPS'], Role: role },
  }));
  const byProtocol = Object.fromEntries(out.ResourceEndpointList.map((e) => [e.Protocol, e.ResourceEndpoint]));
  assert.ok(byProtocol.WSS && byProtocol.HTTPS, JSON.stringify(out));
  return byProtocol;
}

function client(arn, wss, role, clientId, secret) {
  return new SignalingClient({
    channelARN: arn,
    channelEndpoint: wss,
    role,
    clientId,
    region: REGION,
    credentials: CREDS,
    requestSigner: new PlainWsSigner(REGION, CREDS, secret),
  });
}

function opened(c) {
  return new Promise((resolve, reject) => {
    c.once('open', resolve);
    c.once('error', reject);
    c.open();
  });
}

function next(c, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    c.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

const offer = (who) => ({ type: 'offer', sdp: `v=0\r\no=- ${who} 2 IN IP4 127.0.0.1\r\n` });
const answer = (who) => ({ type: 'answer', sdp: `v=0\r\no=- answer-for-${who} 2 IN IP4 127.0.0.1\r\n` });
const candidate = (n) => ({ candidate: `candidate:${n} 1 udp 2122260223 10.0.0.${n} 5000${n} typ host`, sdpMid: '0', sdpMLineIndex: 0 });

test('a master and two viewers complete offer/answer/ICE exchanges', async () => {
  const arn = await channel('node-three-way');
  const m = await endpoints(arn, 'MASTER');
  const v = await endpoints(arn, 'VIEWER');
  const master = client(arn, m.WSS, Role.MASTER);
  const viewers = ['viewer-a', 'viewer-b'].map((id) => client(arn, v.WSS, Role.VIEWER, id));
  await opened(master);
  await Promise.all(viewers.map(opened));

  for (const [i, viewer] of viewers.entries()) {
    const id = viewer.config.clientId;
    const gotOffer = next(master, 'sdpOffer');
    viewer.sendSdpOffer(offer(id));
    const [sdp, sender] = await gotOffer;
    assert.equal(sender, id);
    assert.deepEqual(sdp, offer(id));

    const gotAnswer = next(viewer, 'sdpAnswer');
    master.sendSdpAnswer(answer(id), id);
    const [ans] = await gotAnswer;
    assert.deepEqual(ans, answer(id));

    const toMaster = next(master, 'iceCandidate');
    viewer.sendIceCandidate(candidate(i + 1));
    const [c1, from] = await toMaster;
    assert.equal(from, id);
    assert.deepEqual(c1, candidate(i + 1));

    const toViewer = next(viewer, 'iceCandidate');
    master.sendIceCandidate(candidate(i + 10), id);
    const [c2] = await toViewer;
    assert.deepEqual(c2, candidate(i + 10));
  }
  master.close();
  viewers.forEach((c) => c.close());
});

test('a master that connects late receives the held offer and candidates', async () => {
  const arn = await channel('node-late-master');
  const v = await endpoints(arn, 'VIEWER');
  const m = await endpoints(arn, 'MASTER');
  const viewer = client(arn, v.WSS, Role.VIEWER, 'early');
  await opened(viewer);
  viewer.sendSdpOffer(offer('early'));
  viewer.sendIceCandidate(candidate(7));
  await new Promise((r) => setTimeout(r, 300));

  const master = client(arn, m.WSS, Role.MASTER);
  const gotOffer = next(master, 'sdpOffer');
  const gotCandidate = next(master, 'iceCandidate');
  await opened(master);
  const [sdp, sender] = await gotOffer;
  assert.equal(sender, 'early');
  assert.deepEqual(sdp, offer('early'));
  const [cand] = await gotCandidate;
  assert.deepEqual(cand, candidate(7));
  master.close();
  viewer.close();
});

test('a connect signed with the wrong secret is refused', async () => {
  const arn = await channel('node-bad-secret');
  const v = await endpoints(arn, 'VIEWER');
  const viewer = client(arn, v.WSS, Role.VIEWER, 'intruder', 'not-the-secret');
  await assert.rejects(opened(viewer));
});

test('GetIceServerConfig on the HTTPS endpoint returns TURN credentials', async () => {
  const arn = await channel('node-ice');
  const { HTTPS } = await endpoints(arn, 'VIEWER');
  const sig = new KinesisVideoSignalingClient({ region: REGION, endpoint: HTTPS, credentials: CREDS });
  const out = await sig.send(new GetIceServerConfigCommand({ ChannelARN: arn, ClientId: 'viewer-x' }));
  assert.ok(out.IceServerList.length >= 1);
  for (const s of out.IceServerList) {
    assert.ok(s.Uris.length >= 1 && s.Uris.length <= 4);
    assert.ok(s.Ttl > 30);
    assert.match(s.Username, /^\d+:/);
    assert.ok(s.Password.length > 0);
  }
});
