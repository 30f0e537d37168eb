// JoinStorageSessionAsViewer with browsers on both ends (docs/webrtc-ingestion.md): headless
// Chromium page A runs the official KVS WebRTC JS SDK's SignalingClient as MASTER (a canvas test
// pattern at 320x240 and a 440 Hz tone), JoinStorageSession (boto3) makes the server's storage
// peer offer to it. Page B runs the SDK's SignalingClient as VIEWER with a ClientId and a 660 Hz
// tone of its own; once its WebSocket is open, JoinStorageSessionAsViewer (boto3) makes the
// storage peer offer to it as if it were the master (no senderClientId). Page B answers as the
// SDK's own storage viewer does (examples/master.js in VIEWER role, through examples/answerer.js):
// sendSdpAnswer and sendIceCandidate with no recipient. It receives the master's video and tone
// through the peer; its tone reaches the master through the peer; the master never hears of the
// viewer's ClientId; /metrics counts the leg (kvs_storage_viewers_*), which ends as `left` once
// the viewer closes.
// Run by run-browser.sh inside a network namespace of its own (KVS_NETNS_IP).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CREDS } from './server.mjs';
import { REGION, runMaster, storageSuite, waitFor } from './browser-kit.mjs';

const WIDTH = 320;
const HEIGHT = 240;
const MASTER_HZ = 440;
const VIEWER_HZ = 660;
const VIEWER_ID = 'chromium-storage-viewer-1';
const ACTIVE = 'kvs_storage_viewers_active';
const JOINED = 'kvs_storage_viewers_joined_total';
const LEFT = 'kvs_storage_viewers_ended_total{reason="left"}';
const SESSIONS = 'kvs_storage_sessions_active';
const kit = storageSuite();

// Runs in page B: a KVS viewer with a ClientId and a tone of its own, as the SDK's storage viewer
// (examples/master.js in VIEWER role, answering with examples/answerer.js): on 'sdpOffer' a peer
// connection, the offer, the local audio, an answer sent with no recipient (a correlationId, as
// the Answerer sends it), candidates trickled with no recipient. Resolves once the WebSocket is
// open; the test then calls JoinStorageSessionAsViewer.
function runViewer({ arn, wss, region, creds, iceServers, clientId, hz }) {
  const K = window.KVSWebRTC;
  const ev = { offers: [], answers: [], states: [], errors: [], emitted: [] };
  window.evidence = ev;
  const local = window.tone(hz);

  const signaling = new K.SignalingClient({
    channelARN: arn, channelEndpoint: wss, role: K.Role.VIEWER, region, credentials: creds, clientId,
  });
  window.viewerSignaling = signaling;
  for (const name of ['sdpOffer', 'sdpAnswer', 'iceCandidate', 'statusResponse']) {
    signaling.on(name, (payload, from) => ev.emitted.push({ event: name, from: from === undefined ? null : from, payload: name === 'statusResponse' ? payload : undefined }));
  }
  const pending = [];
  signaling.on('iceCandidate', (c) => {
    const pc = window.pc;
    if (pc && pc.remoteDescription) pc.addIceCandidate(c).catch((e) => ev.errors.push(`addIceCandidate: ${e}`));
    else pending.push(c);
  });
  signaling.on('sdpOffer', async (offer, from) => {
    try {
      ev.offers.push({ from: from === undefined ? null : from, sdp: offer.sdp });
      const pc = window.peer(iceServers, ev, true);
      pc.onicecandidate = ({ candidate }) => {
        if (candidate && candidate.candidate) signaling.sendIceCandidate(candidate);
      };
      await pc.setRemoteDescription(offer);
      for (const c of pending.splice(0)) await pc.addIceCandidate(c);
      local.getTracks().forEach((track) => pc.addTrack(track, local));
      await pc.setLocalDescription(await pc.createAnswer());
      ev.answers.push(pc.localDescription.sdp);
      signaling.sendSdpAnswer(pc.localDescription, undefined, `answer-${Date.now()}`);
    } catch (e) {
      ev.errors.push(`answering: ${e}`);
    }
  });
  return window.opened(signaling);
}

// Runs in a page: the peer connection's inbound-rtp (by kind) and, on the master, outbound-rtp.
async function rtpStats() {
  const stats = await window.pc.getStats();
  const out = { inbound: {}, outbound: {} };
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' || r.type === 'outbound-rtp') {
      const codec = stats.get(r.codecId);
      out[r.type === 'inbound-rtp' ? 'inbound' : 'outbound'][r.kind] = {
        codec: codec && codec.mimeType,
        packets: r.type === 'inbound-rtp' ? r.packetsReceived : r.packetsSent,
        framesDecoded: r.framesDecoded,
        width: r.frameWidth,
        height: r.frameHeight,
      };
    }
  });
  return out;
}

// The m-sections of an SDP: [{ kind, direction, codecs }].
function sections(sdp) {
  return sdp.split(/\r?\nm=/).slice(1).map((s) => ({
    kind: s.split(' ')[0],
    direction: (s.match(/\r?\na=(sendrecv|sendonly|recvonly|inactive)/) || [])[1],
    codecs: [...s.matchAll(/a=rtpmap:\d+ ([^/\s]+)/g)].map((m) => m[1].toUpperCase()),
  }));
}

test('a Chromium viewer (KVS JS SDK) joined with JoinStorageSessionAsViewer gets the storage peer\'s offer as if from the master, the master\'s media, and talks to the master through the peer',
  { timeout: 120000 }, async (t) => {
    const T0 = Date.now();
    const at = () => `${((Date.now() - T0) / 1000).toFixed(1)}s`;
    const name = 'chromium-storage-viewer';
    const { ChannelARN, endpoints, iceServers } = await kit.storageChannel(name);
    const master = await endpoints('MASTER');
    const viewer = await endpoints('VIEWER');
    const iceServersFor = (ClientId) => iceServers(master.HTTPS, ClientId);

    const logs = [];
    const mp = await kit.page(logs, 'master', { wire: true });
    const vp = await kit.page(logs, 'viewer', { wire: true });
    const evidence = async () => {
      const of = async (p) => p.evaluate(() => ({ evidence: window.evidence, wire: window.wire, emitted: window.emitted }))
        .catch((e) => ({ error: String(e) }));
      return `\n--- master page ---\n${JSON.stringify(await of(mp), null, 1)}`
        + `\n--- viewer page ---\n${JSON.stringify(await of(vp), null, 1)}`
        + `\n--- page log ---\n${logs.join('\n')}`
        + kit.storageLog(300);
    };
    try {
      // Page A, the master, and the storage session.
      assert.equal(await mp.evaluate(runMaster, {
        arn: ChannelARN, wss: master.WSS, region: REGION, creds: CREDS, iceServers: await iceServersFor('chromium-master'),
        width: WIDTH, height: HEIGHT, hz: MASTER_HZ, hear: true,
      }), 'open');
      const joinSession = JSON.parse(await kit.boto3(`
r = client("kinesis-video-webrtc-storage", args["ep"]).join_storage_session(channelArn=args["arn"])
print(json.dumps(r["ResponseMetadata"]["HTTPStatusCode"]))
`, { ep: master.WEBRTC, arn: ChannelARN }));
      assert.equal(joinSession, 200);
      await mp.waitForFunction(() => window.pc && window.pc.connectionState === 'connected', null, { timeout: 30000 });
      const peer = await mp.evaluate(() => window.evidence.offers[0].from);
      assert.match(peer, /^kvs-storage-session-/);
      const masterOffer = Object.fromEntries(sections(await mp.evaluate(() => window.evidence.offers[0].sdp)).map((s) => [s.kind, s]));
      assert.equal(masterOffer.video.direction, 'recvonly');
      assert.equal(masterOffer.audio.direction, 'sendrecv');
      t.diagnostic(`${at()} master connected to the storage peer ${peer}`);
      const masterAudio0 = (await mp.evaluate(rtpStats)).inbound.audio?.packets ?? 0;

      // Page B, the viewer: its WebSocket open first, then the join.
      const joined0 = await kit.metric(JOINED);
      const active0 = await kit.metric(ACTIVE);
      const left0 = await kit.metric(LEFT);
      assert.equal(await vp.evaluate(runViewer, {
        arn: ChannelARN, wss: viewer.WSS, region: REGION, creds: CREDS, iceServers: await iceServersFor(VIEWER_ID),
        clientId: VIEWER_ID, hz: VIEWER_HZ,
      }), 'open');
      t.diagnostic(`${at()} viewer open`);
      assert.deepEqual(await vp.evaluate(() => window.evidence.offers), [], 'an offer before JoinStorageSessionAsViewer');
      const join = JSON.parse(await kit.boto3(`
r = client("kinesis-video-webrtc-storage", args["ep"]).join_storage_session_as_viewer(channelArn=args["arn"], clientId=args["id"])
status = r.pop("ResponseMetadata")["HTTPStatusCode"]
print(json.dumps([status, r]))
`, { ep: viewer.WEBRTC, arn: ChannelARN, id: VIEWER_ID }));
      assert.deepEqual(join, [200, {}]);
      t.diagnostic(`${at()} JoinStorageSessionAsViewer returned`);
      await waitFor('the join to be counted', async () => (await kit.metric(JOINED)) === joined0 + 1, 5000);

      // The storage peer's offer, as if from the master: no senderClientId on the wire nor from
      // the SDK; H.264 video sendonly, Opus audio sendrecv.
      await vp.waitForFunction(() => window.evidence.offers.length > 0, null, { timeout: 15000 });
      t.diagnostic(`${at()} viewer offered`);
      const offer = await vp.evaluate(() => window.evidence.offers[0]);
      assert.equal(offer.from, null);
      const offerSections = sections(offer.sdp);
      assert.deepEqual(offerSections.map((s) => s.kind).sort(), ['audio', 'video']);
      const byKind = Object.fromEntries(offerSections.map((s) => [s.kind, s]));
      assert.equal(byKind.video.direction, 'sendonly');
      assert.ok(byKind.video.codecs.includes('H264'), byKind.video.codecs.join(' '));
      assert.equal(byKind.audio.direction, 'sendrecv');
      assert.ok(byKind.audio.codecs.includes('OPUS'), byKind.audio.codecs.join(' '));

      await vp.waitForFunction(() => window.pc && window.pc.connectionState === 'connected', null, { timeout: 30000 });
      t.diagnostic(`${at()} viewer peer connection connected`);
      const answer = Object.fromEntries(sections(await vp.evaluate(() => window.evidence.answers[0])).map((s) => [s.kind, s]));
      assert.equal(answer.video.direction, 'recvonly');
      assert.equal(answer.audio.direction, 'sendrecv');
      await waitFor('the leg in the gauge', async () => (await kit.metric(ACTIVE)) === active0 + 1, 10000);

      // The master's media at the viewer: its 320x240 pattern, decoded, and its 440 Hz tone.
      const got = await waitFor('the master\'s media at the viewer', async () => {
        const s = await vp.evaluate(rtpStats);
        return s.inbound.video?.framesDecoded >= 30 && s.inbound.audio?.packets > 50 && s;
      }, 20000);
      t.diagnostic(`${at()} viewer received: ${JSON.stringify(got.inbound)}`);
      assert.equal(got.inbound.video.codec, 'video/H264');
      assert.equal(got.inbound.audio.codec, 'audio/opus');
      assert.deepEqual([got.inbound.video.width, got.inbound.video.height], [WIDTH, HEIGHT]);
      const viewerHeard = await waitFor('the master\'s tone at the viewer', async () => {
        const h = await vp.evaluate(() => window.heard && window.heard());
        return h && Math.abs(h.hz - MASTER_HZ) <= 12 && h.db > -70 && h;
      }, 10000);
      t.diagnostic(`${at()} viewer hears ${JSON.stringify(viewerHeard)}`);

      // The viewer's tone at the master, through the storage peer.
      const a1 = (await mp.evaluate(rtpStats)).inbound.audio?.packets ?? 0;
      await new Promise((r) => setTimeout(r, 2000));
      const a2 = (await mp.evaluate(rtpStats)).inbound.audio?.packets ?? 0;
      t.diagnostic(`${at()} master's inbound audio packets: ${masterAudio0} before the viewer, ${a1}, then ${a2} 2 s later`);
      assert.ok(a2 - a1 >= 50, `master's inbound audio grew by ${a2 - a1} in 2 s`);
      const masterHeard = await waitFor('the viewer\'s tone at the master', async () => {
        const h = await mp.evaluate(() => window.heard && window.heard());
        return h && Math.abs(h.hz - VIEWER_HZ) <= 12 && h.db > -70 && h;
      }, 10000);
      t.diagnostic(`${at()} master hears ${JSON.stringify(masterHeard)}`);

      // Page B's wire: the offer and the peer's candidates came without senderClientId; all it
      // sent (the answer first, then candidates) went without recipientClientId.
      const vWire = await vp.evaluate(() => window.wire);
      const vReceived = vWire.received.filter((m) => m.messageType);
      assert.equal(vReceived[0].messageType, 'SDP_OFFER');
      assert.ok(vReceived.some((m) => m.messageType === 'ICE_CANDIDATE'), JSON.stringify(vReceived));
      for (const m of vReceived) {
        assert.equal('senderClientId' in m, false, JSON.stringify(m));
        assert.ok(['SDP_OFFER', 'ICE_CANDIDATE'].includes(m.messageType), JSON.stringify(m));
      }
      assert.equal(vWire.received.filter((m) => m.messageType === 'SDP_OFFER').length, 1);
      assert.equal(vWire.sent[0].action, 'SDP_ANSWER');
      assert.ok(vWire.sent.some((m) => m.action === 'ICE_CANDIDATE'));
      for (const m of vWire.sent) assert.equal('recipientClientId' in m, false, JSON.stringify(m));
      const vEv = await vp.evaluate(() => window.evidence);
      assert.deepEqual(vEv.errors, []);
      assert.deepEqual(vEv.emitted.filter((e) => e.event === 'statusResponse'), []);

      // Page A never heard of the viewer: every frame and every event is the storage peer's.
      const aWire = await mp.evaluate(() => window.wire);
      const aReceived = aWire.received.filter((m) => m.messageType);
      assert.ok(aReceived.length > 0);
      assert.deepEqual([...new Set(aReceived.map((m) => m.senderClientId))], [peer], JSON.stringify(aReceived));
      assert.deepEqual([...new Set(aReceived.map((m) => m.messageType))].sort(), ['ICE_CANDIDATE', 'SDP_OFFER']);
      assert.equal(aWire.received.filter((m) => JSON.stringify(m).includes(VIEWER_ID)).length, 0);
      const emitted = await mp.evaluate(() => window.emitted);
      assert.deepEqual([...new Set(emitted.map((e) => e.from))], [peer], JSON.stringify(emitted));
      assert.equal(emitted.filter((e) => e.event === 'sdpOffer').length, 1);
      assert.deepEqual(await mp.evaluate(() => Object.keys(window.pcs)), [peer]);
      assert.deepEqual(await mp.evaluate(() => window.evidence.errors), []);

      // Page B leaves: its SignalingClient and its peer connection close. The leg ends as `left`;
      // the session goes on.
      await vp.evaluate(() => {
        window.viewerSignaling.close();
        window.pc.close();
      });
      t.diagnostic(`${at()} viewer closed`);
      await waitFor('the leg to end as left', async () => (await kit.metric(LEFT)) === left0 + 1, 15000);
      await waitFor('the gauge back', async () => (await kit.metric(ACTIVE)) === active0, 15000);
      t.diagnostic(`${at()} viewer's leg ended (left)`);
      assert.equal(await kit.metric(JOINED), joined0 + 1);
      assert.equal(await kit.metric(SESSIONS), 1, 'the viewer\'s leaving ended the storage session');
      assert.equal(await mp.evaluate(() => window.pc.connectionState), 'connected');
    } catch (e) {
      e.message += await evidence();
      throw e;
    } finally {
      await vp.context().close();
      await mp.evaluate(() => clearInterval(window.drawTimer)).catch(() => {});
      await mp.context().close();
    }
  });
