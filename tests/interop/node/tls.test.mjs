// Over TLS the official SDKs need no adaptation: the KVS JS SDK's own SigV4RequestSigner signs
// the wss:// endpoint GetSignalingChannelEndpoint returns, and the AWS SDK v3 talks https://,
// trusting the local CA kvs-signaling generated.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { SignalingClient, Role } from 'amazon-kinesis-video-streams-webrtc';
import {
  KinesisVideoClient,
  CreateSignalingChannelCommand,
  GetSignalingChannelEndpointCommand,
} from '@aws-sdk/client-kinesis-video';
import { KinesisVideoSignalingClient, GetIceServerConfigCommand } from '@aws-sdk/client-kinesis-video-signaling';
import { startServer, CREDS } from './server.mjs';

const REGION = 'us-east-1';
let server;
let ca;

before(async () => {
  server = await startServer(['--tls-listen', '127.0.0.1:0']);
  ca = readFileSync(join(server.dataDir, 'tls', 'ca.pem'));
  // The SDK opens `new WebSocket(url)`; give it one that trusts the local CA.
  globalThis.WebSocket = class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { ca });
    }
  };
});

after(async () => {
  await server.stop();
});

function handler() {
  return new NodeHttpHandler({ httpsAgent: new https.Agent({ ca }) });
}

test('the TLS listener serves the control plane and hands out https:// and wss:// endpoints', async () => {
  assert.ok(server.tlsPort, 'ready line names the https listener');
  const kv = new KinesisVideoClient({ region: REGION, endpoint: server.tlsEndpoint, credentials: CREDS, requestHandler: handler() });
  const { ChannelARN } = await kv.send(new CreateSignalingChannelCommand({ ChannelName: 'tls-chan' }));
  const out = await kv.send(new GetSignalingChannelEndpointCommand({
    ChannelARN,
    SingleMasterChannelEndpointConfiguration: { Protocols: ['WSS', 'HTTPS'], Role: 'MASTER' },
  }));
  const eps = Object.fromEntries(out.ResourceEndpointList.map((e) => [e.Protocol, e.ResourceEndpoint]));
  assert.equal(eps.WSS, `wss://localhost:${server.tlsPort}`);
  assert.equal(eps.HTTPS, `https://localhost:${server.tlsPort}`);

  const sig = new KinesisVideoSignalingClient({ region: REGION, endpoint: eps.HTTPS, credentials: CREDS, requestHandler: handler() });
  const ice = await sig.send(new GetIceServerConfigCommand({ ChannelARN }));
  assert.ok(ice.IceServerList.length >= 1);

  // The SDK's own signer, unwrapped, over wss://.
  const mk = (role, clientId) => new SignalingClient({
    channelARN: ChannelARN, channelEndpoint: eps.WSS, role, clientId, region: REGION, credentials: CREDS,
  });
  const master = mk(Role.MASTER);
  const viewer = mk(Role.VIEWER, 'tls-viewer');
  const open = (c) => new Promise((resolve, reject) => { c.once('open', resolve); c.once('error', reject); c.open(); });
  await open(master);
  await open(viewer);
  const got = new Promise((resolve) => master.once('sdpOffer', (sdp, from) => resolve([sdp, from])));
  viewer.sendSdpOffer({ type: 'offer', sdp: 'v=0\r\n' });
  const [sdp, from] = await got;
  assert.equal(from, 'tls-viewer');
  assert.deepEqual(sdp, { type: 'offer', sdp: 'v=0\r\n' });
  master.close();
  viewer.close();
});
