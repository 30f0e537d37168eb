// The web console (docs/console.md) in Debian's Chromium against the real server: every page
// loads with no console error, the console and the AWS SDK see each other's channels, the live
// view shows connections and relayed messages from real WebSocket clients, the inspector shows
// SDK calls and their errors, two tabs call each other through the server (host and relay-only),
// and with --credentials signing in works, a wrong secret is refused and accounts stay apart.
// Run by run-browser.sh inside a network namespace of its own (KVS_NETNS_IP). Screenshots go to
// artifacts/console-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import {
  KinesisVideoClient,
  CreateSignalingChannelCommand,
  DescribeSignalingChannelCommand,
  UpdateSignalingChannelCommand,
  ListTagsForResourceCommand,
  ListSignalingChannelsCommand,
} from '@aws-sdk/client-kinesis-video';
import { startServer } from './server.mjs';
import { gotoSettled, launchChromium } from './browser-kit.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ART = join(HERE, 'artifacts');
const IP = process.env.KVS_NETNS_IP;
const REGION = 'us-east-1';
const A = { accessKeyId: 'AKIDCONSOLEA', secretAccessKey: 'console-secret-a/+A', account: '111111111111' };
const B = { accessKeyId: 'AKIDCONSOLEB', secretAccessKey: 'console-secret-b', account: '222222222222' };
const TWO_ACCOUNTS = [A, B].map((c) => `[[credentials]]\naccess_key_id = "${c.accessKeyId}"\nsecret_access_key = "${c.secretAccessKey}"\naccount_id = "${c.account}"\n`).join('\n');
// Chromium logs an HTTP error answer to fetch() as a console error; tests that provoke one on
// purpose (a version conflict, a wrong secret) allow exactly that message.
const HTTP_ERROR = (status) => new RegExp(`Failed to load resource: the server responded with a status of ${status}`);

let open; // open mode
let creds; // --credentials with accounts A and B
let browser;

before(async () => {
  assert.ok(IP, 'run through run-browser.sh (a network namespace with KVS_NETNS_IP)');
  mkdirSync(ART, { recursive: true });
  open = await startServer(['--tls-listen', `${IP}:0`, '--go-away-grace', '2s', '--allow-open-non-loopback'], { listen: `${IP}:0`, credentials: null });
  creds = await startServer(['--tls-listen', `${IP}:0`], { listen: `${IP}:0`, credentials: TWO_ACCOUNTS });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await open?.stop();
  await creds?.stop();
});

const sdk = (server, credentials = { accessKeyId: 'AKIDOPEN', secretAccessKey: 'open' }) => new KinesisVideoClient({ region: REGION, endpoint: server.endpoint, credentials });

// One browser context per test; every console error and page error is a failure unless allowed.
async function context(opts = {}) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 }, ...opts });
  const problems = [];
  const allowed = [];
  const watch = (p, who) => {
    p.on('console', (m) => { if (m.type() === 'error' && !allowed.some((re) => re.test(m.text()))) problems.push(`[${who}] console error: ${m.text()}`); });
    p.on('pageerror', (e) => problems.push(`[${who}] pageerror: ${e.message}`));
  };
  return {
    ctx,
    allow: (re) => allowed.push(re),
    async page(url, who = 'page') {
      const p = await ctx.newPage();
      watch(p, who);
      await gotoSettled(p, url);
      return p;
    },
    async done() {
      await ctx.close();
      assert.deepEqual(problems, [], 'no console errors or page errors');
    },
  };
}

// boto3, from the Python suite's venv (scripts/test.sh runs that suite, and so makes the venv,
// before this one): the issue names boto3 as the client the console must agree with.
const VENV_PYTHON = join(dirname(fileURLToPath(import.meta.url)), '..', '.venv', 'bin', 'python');
const boto3 = (server, code) => execFileSync(VENV_PYTHON, ['-c', `
import json, boto3
kv = boto3.client("kinesisvideo", endpoint_url=${JSON.stringify(server.endpoint)}, region_name=${JSON.stringify(REGION)},
                  aws_access_key_id="AKIDBOTO3", aws_secret_access_key="open")
${code}
`], { encoding: 'utf8', timeout: 60000 }).trim();

const text = (p, sel) => p.locator(sel).textContent();
const waitText = (p, sel, want, timeout = 15000) => p.waitForFunction(
  ([s, w]) => { const el = document.querySelector(s); return el && el.textContent.includes(w); }, [sel, want], { timeout },
);
const shot = (p, name, fullPage = true) => p.screenshot({ path: join(ART, `console-${name}.png`), fullPage });

test('channels: the console and the SDK see each other; TTL update, version conflict, tags, delete', async () => {
  const c = await context();
  const kv = sdk(open);
  const p = await c.page(`${open.tlsEndpoint}/console#/channels`, 'channels');
  await p.waitForSelector('#create-channel');
  await p.fill('#new-name', 'console-made');
  await p.fill('#new-ttl', '30');
  await p.getByRole('button', { name: 'Create channel' }).click();
  const row = p.locator('#channels tr[data-name="console-made"]');
  await row.waitFor();
  // Created in the console: the SDK sees it.
  let info = (await kv.send(new DescribeSignalingChannelCommand({ ChannelName: 'console-made' }))).ChannelInfo;
  assert.equal(info.SingleMasterConfiguration.MessageTtlSeconds, 30);
  assert.equal(await row.getAttribute('data-arn'), info.ChannelARN);
  // Created by the SDK: the console shows it (its table refreshes every few seconds).
  await kv.send(new CreateSignalingChannelCommand({ ChannelName: 'sdk-made', Tags: [{ Key: 'from', Value: 'sdk' }] }));
  await p.locator('#channels tr[data-name="sdk-made"]').waitFor({ timeout: 10000 });
  assert.match(await text(p, '#channels tr[data-name="sdk-made"]'), /from=sdk/);
  // The same both ways with boto3.
  const seen = JSON.parse(boto3(open, 'print(json.dumps(kv.describe_signaling_channel(ChannelName="console-made")["ChannelInfo"]["ChannelARN"]))'));
  assert.equal(seen, info.ChannelARN);
  boto3(open, 'kv.create_signaling_channel(ChannelName="boto3-made")');
  await p.locator('#channels tr[data-name="boto3-made"]').waitFor({ timeout: 10000 });

  // Update the TTL (with CurrentVersion from the row).
  await row.locator('input[type="number"]').fill('45');
  await row.getByRole('button', { name: 'update TTL of console-made' }).click();
  await waitText(p, '#channels-msg', 'TTL set to 45');
  info = (await kv.send(new DescribeSignalingChannelCommand({ ChannelName: 'console-made' }))).ChannelInfo;
  assert.equal(info.SingleMasterConfiguration.MessageTtlSeconds, 45);
  await waitText(p, '#channels tr[data-name="console-made"] td:nth-child(5)', info.Version);

  // Someone else changes the channel while it is being edited: a conflict, shown as one.
  c.allow(HTTP_ERROR(400));
  await row.locator('input[type="number"]').fill('50');
  await kv.send(new UpdateSignalingChannelCommand({ ChannelARN: info.ChannelARN, CurrentVersion: info.Version, SingleMasterConfiguration: { MessageTtlSeconds: 20 } }));
  await row.getByRole('button', { name: 'update TTL of console-made' }).click();
  await waitText(p, '#channels-msg', 'version conflict: someone changed this channel; reload');
  info = (await kv.send(new DescribeSignalingChannelCommand({ ChannelName: 'console-made' }))).ChannelInfo;
  assert.equal(info.SingleMasterConfiguration.MessageTtlSeconds, 20, 'the conflicting update changed nothing');

  // Tag and untag.
  await row.getByRole('textbox', { name: 'tag (key=value) of console-made' }).fill('team=video');
  await row.getByRole('button', { name: 'add tag of console-made' }).click();
  await waitText(p, '#channels tr[data-name="console-made"]', 'team=video');
  let tags = await kv.send(new ListTagsForResourceCommand({ ResourceARN: info.ChannelARN }));
  assert.deepEqual(tags.Tags, { team: 'video' });
  await shot(p, 'channels');
  await p.setViewportSize({ width: 390, height: 800 });
  await shot(p, 'channels-narrow', false);
  const scrolls = await p.$eval('#channels', (t) => t.parentElement.scrollWidth > t.parentElement.clientWidth && getComputedStyle(t.parentElement).overflowX === 'auto');
  assert.ok(scrolls, 'in a narrow window the table scrolls horizontally inside its box');
  await p.setViewportSize({ width: 1280, height: 900 });
  await row.getByRole('button', { name: 'remove tag team of console-made' }).click();
  await waitText(p, '#channels-msg', 'untagged team');
  tags = await kv.send(new ListTagsForResourceCommand({ ResourceARN: info.ChannelARN }));
  assert.deepEqual(tags.Tags ?? {}, {});

  // Delete (two clicks: Delete, then Confirm delete).
  await row.getByRole('button', { name: 'delete of console-made' }).click();
  await row.getByRole('button', { name: 'confirm delete of console-made' }).click();
  await row.waitFor({ state: 'detached', timeout: 10000 });
  await assert.rejects(kv.send(new DescribeSignalingChannelCommand({ ChannelName: 'console-made' })), { name: 'ResourceNotFoundException' });

  // Keyboard: from the top, Tab reaches the skip link, then the navigation, with a visible focus ring.
  await p.reload();
  await p.waitForSelector('#create-channel');
  const focused = () => p.evaluate(() => ({ text: document.activeElement.textContent, outline: getComputedStyle(document.activeElement).outlineStyle }));
  await p.keyboard.press('Tab');
  assert.equal((await focused()).text, 'Skip to content');
  await p.keyboard.press('Tab');
  const nav = await focused();
  assert.equal(nav.text, 'Channels');
  assert.notEqual(nav.outline, 'none');
  await c.done();
});

test('channels page in dark mode', async () => {
  const c = await context({ colorScheme: 'dark' });
  const p = await c.page(`${open.endpoint}/console#/channels`, 'dark');
  await p.locator('#channels tr[data-name="sdk-made"]').waitFor();
  const bg = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(20, 23, 27)');
  await shot(p, 'channels-dark');
  await c.done();
});

test('streams and media storage: a stream made and changed in the console, bound to a channel from its live view; boto3 agrees', async () => {
  const c = await context();
  const kv = sdk(open);
  const p = await c.page(`${open.endpoint}/console#/streams`, 'streams');
  await p.waitForSelector('#create-stream');
  await p.fill('#new-stream-name', 'console-stream');
  await p.fill('#new-stream-retention', '2');
  await p.getByRole('button', { name: 'Create stream' }).click();
  const row = p.locator('#streams tr[data-name="console-stream"]');
  await row.waitFor();
  assert.equal(await row.locator('td').nth(3).textContent(), '2');
  await row.getByLabel('hours to add or remove of console-stream').fill('3');
  await row.getByRole('button', { name: 'increase retention of console-stream' }).click();
  await waitText(p, '#streams-msg', 'retention increased by 3h');
  await p.waitForFunction(() => document.querySelector('#streams tr[data-name="console-stream"] td:nth-child(4)')?.textContent === '5');
  const described = JSON.parse(boto3(open, 'print(json.dumps(kv.describe_stream(StreamName="console-stream")["StreamInfo"], default=str))'));
  assert.equal(described.DataRetentionInHours, 5);
  await shot(p, 'streams');

  // The live view's media storage: bind the stream, see it from boto3, no session yet.
  const { ChannelARN } = await kv.send(new CreateSignalingChannelCommand({ ChannelName: 'storage-chan' }));
  await p.goto(`${open.endpoint}/console#/channel/${encodeURIComponent(ChannelARN)}`);
  await waitText(p, '#storage-status', 'DISABLED');
  await p.locator('#storage-stream option', { hasText: 'console-stream' }).waitFor({ state: 'attached' });
  await p.selectOption('#storage-stream', described.StreamARN);
  await p.getByRole('button', { name: 'Record into this stream' }).click();
  await waitText(p, '#storage-status', `ENABLED → ${described.StreamARN}`);
  const cfg = JSON.parse(boto3(open, `print(json.dumps(kv.describe_media_storage_configuration(ChannelARN=${JSON.stringify(ChannelARN)})["MediaStorageConfiguration"]))`));
  assert.deepEqual(cfg, { StreamARN: described.StreamARN, Status: 'ENABLED' });
  await waitText(p, '#storage-sessions', 'no storage session');
  await waitText(p, '#storage-recorded', 'Fragments0');
  await p.getByRole('button', { name: 'Disable' }).click();
  await waitText(p, '#storage-status', 'DISABLED');
  assert.equal(JSON.parse(boto3(open, `print(json.dumps(kv.describe_media_storage_configuration(ChannelARN=${JSON.stringify(ChannelARN)})["MediaStorageConfiguration"]["Status"]))`)), 'DISABLED');

  // Delete the stream from the streams page (two clicks).
  await p.goto(`${open.endpoint}/console#/streams`);
  const del = p.locator('#streams tr[data-name="console-stream"]').getByRole('button', { name: 'delete of console-stream' });
  await del.click();
  await p.locator('#streams tr[data-name="console-stream"]').getByRole('button', { name: 'confirm delete of console-stream' }).click();
  await waitText(p, '#streams-msg', 'deleted stream console-stream');
  const left = JSON.parse(boto3(open, 'print(json.dumps([s["StreamName"] for s in kv.list_streams()["StreamInfoList"] if s["Status"] != "DELETING"]))'));
  assert.ok(!left.includes('console-stream'), JSON.stringify(left));
  await c.done();
});

async function signalingUrl(server, ChannelARN, Role, ClientId) {
  const r = await fetch(`${server.endpoint}/console/api/signaling-url`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ChannelARN, Role, ClientId }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()).url;
}

function client(url) {
  const ws = new WebSocket(url, { rejectUnauthorized: false });
  const got = [];
  const waiters = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    got.push(m);
    for (const w of waiters.splice(0)) w();
  });
  return {
    ws,
    opened: new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }),
    closed: new Promise((resolve) => ws.once('close', (code) => resolve(code))),
    send: (action, payload, recipientClientId) => ws.send(JSON.stringify({ action, recipientClientId, messagePayload: Buffer.from(JSON.stringify(payload)).toString('base64') })),
    async next(type, timeout = 10000) {
      const end = Date.now() + timeout;
      for (;;) {
        const i = got.findIndex((m) => m.messageType === type);
        if (i >= 0) return got.splice(i, 1)[0];
        if (Date.now() > end) throw new Error(`no ${type}; got ${JSON.stringify(got)}`);
        await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
      }
    },
  };
}

test('live view: connections, held and relayed messages with payloads, disconnect, TURN rotation, GO_AWAY', async () => {
  const c = await context();
  const kv = sdk(open);
  const { ChannelARN } = await kv.send(new CreateSignalingChannelCommand({ ChannelName: 'live-chan' }));
  const p = await c.page(`${open.tlsEndpoint}/console#/channel/${encodeURIComponent(ChannelARN)}`, 'live');
  await waitText(p, '#live-state', 'live');
  await p.getByLabel('show payloads').check();
  await waitText(p, '#live-state', 'live (with payloads)');

  const viewer = client(await signalingUrl(open, ChannelARN, 'VIEWER', 'viewer-1'));
  await viewer.opened;
  await p.locator('#connections tr[data-role="VIEWER"][data-client-id="viewer-1"]').waitFor();
  // No master yet: the viewer's candidate is held, with its TTL counting down.
  viewer.send('ICE_CANDIDATE', { candidate: 'candidate:1 1 udp 1 192.0.2.10 9 typ host', sdpMid: '0', sdpMLineIndex: 0 });
  await p.locator('#held tr[data-type="ICE_CANDIDATE"]').waitFor();
  await p.locator('#messages tr[data-type="ICE_CANDIDATE"][data-outcome="held"]').waitFor();
  const ttl1 = Number((await text(p, '#held tr[data-type="ICE_CANDIDATE"] td:last-child')).replace('s', ''));
  await p.waitForTimeout(2100);
  const ttl2 = Number((await text(p, '#held tr[data-type="ICE_CANDIDATE"] td:last-child')).replace('s', ''));
  assert.ok(ttl1 > 0 && ttl2 < ttl1, `the remaining TTL counts down (${ttl1}s, then ${ttl2}s)`);

  const master = client(await signalingUrl(open, ChannelARN, 'MASTER'));
  await master.opened;
  await p.locator('#connections tr[data-role="MASTER"]').waitFor();
  const held = await master.next('ICE_CANDIDATE');
  assert.equal(held.senderClientId, 'viewer-1');
  viewer.send('SDP_OFFER', { type: 'offer', sdp: 'v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\n' });
  const offer = await master.next('SDP_OFFER');
  assert.equal(offer.senderClientId, 'viewer-1');
  const relayed = p.locator('#messages tr[data-type="SDP_OFFER"][data-outcome="relayed"]');
  await relayed.waitFor();
  const line = await relayed.textContent();
  assert.match(line, /viewer-1 → MASTER/);
  assert.match(line, /v=0/, 'payloads are shown when asked for');
  await shot(p, 'live');

  // Disconnect the viewer from its row.
  await p.getByRole('button', { name: 'disconnect viewer viewer-1' }).click();
  await viewer.closed;
  await p.locator('#connections tr[data-role="VIEWER"]').waitFor({ state: 'detached' });
  // Rotate the TURN secret: RECONNECT_ICE_SERVER to the master.
  await p.getByRole('button', { name: 'Rotate TURN secret' }).click();
  await waitText(p, '#live-msg', 'TURN secret rotated');
  await master.next('RECONNECT_ICE_SERVER');
  // GO_AWAY to the channel's connections.
  await p.getByRole('button', { name: 'Send GO_AWAY' }).click();
  await waitText(p, '#live-msg', 'GO_AWAY sent to 1 connection');
  await master.next('GO_AWAY');
  await waitText(p, '#events', 'GO_AWAY sent');
  await master.closed;
  await p.locator('#connections tr[data-role="MASTER"]').waitFor({ state: 'detached' });
  await c.done();
});

test('inspector: SDK calls and their errors, live and filtered by channel', async () => {
  const c = await context();
  const kv = sdk(open);
  const missing = (name) => `arn:aws:kinesisvideo:${REGION}:000000000000:channel/${name}/1234567890123`;
  await assert.rejects(kv.send(new DescribeSignalingChannelCommand({ ChannelARN: missing('missing-before') })), { name: 'ResourceNotFoundException' });
  const p = await c.page(`${open.tlsEndpoint}/console#/inspector`, 'inspector');
  // From the initial list ...
  await p.locator('#calls tr[data-operation="DescribeSignalingChannel"][data-error="ResourceNotFoundException"]').first().waitFor();
  // ... and live from the stream.
  await kv.send(new ListSignalingChannelsCommand({}));
  await assert.rejects(kv.send(new DescribeSignalingChannelCommand({ ChannelARN: missing('missing-live') })), { name: 'ResourceNotFoundException' });
  const live = p.locator(`#calls tr[data-channel="${missing('missing-live')}"]`);
  await live.waitFor();
  const cells = await live.locator('td').allTextContents();
  assert.equal(cells[1], 'DescribeSignalingChannel');
  assert.equal(cells[2], 'AKIDOPEN');
  assert.equal(cells[3], 'missing-live');
  assert.equal(cells[4], '404');
  assert.equal(cells[5], 'ResourceNotFoundException');
  assert.match(cells[6], /^\d+(\.\d+)? ms$/);
  await p.locator('#calls tr[data-operation="ListSignalingChannels"]').first().waitFor();
  // Newest first.
  const first = await p.locator('#calls tbody tr').first().getAttribute('data-channel');
  assert.equal(first, missing('missing-live'));
  // A boto3 call and its error, live.
  const code = boto3(open, `
try:
    kv.describe_signaling_channel(ChannelName="boto3-missing")
except kv.exceptions.ResourceNotFoundException as e:
    print(e.response["Error"]["Code"])`);
  assert.equal(code, 'ResourceNotFoundException');
  const fromBoto3 = p.locator('#calls tr[data-channel="boto3-missing"]');
  await fromBoto3.waitFor();
  const boto3Cells = await fromBoto3.locator('td').allTextContents();
  assert.deepEqual(boto3Cells.slice(1, 6), ['DescribeSignalingChannel', 'AKIDBOTO3', 'boto3-missing', '404', 'ResourceNotFoundException']);
  await shot(p, 'inspector');
  await p.getByLabel('Filter by channel').fill('missing-live');
  const visible = await p.$$eval('#calls tbody tr', (rows) => rows.filter((r) => !r.hidden).map((r) => r.dataset.channel));
  assert.ok(visible.length >= 1);
  assert.ok(visible.every((ch) => ch.includes('missing-live')), JSON.stringify(visible));
  await c.done();
});

async function startCall(p, { channel, role, relay, pattern }) {
  await p.locator('#call-channel option', { hasText: channel }).first().waitFor({ state: 'attached' });
  await p.selectOption('#call-channel', { label: channel });
  await p.selectOption('#call-role', role);
  await p.setChecked('#call-relay', relay);
  await p.setChecked('#call-pattern', pattern);
  await p.click('#call-start');
  await waitText(p, '#call-signaling', 'open');
}

test('try a call: a master tab and a viewer tab connect, directly and relay-only', async () => {
  const c = await context({ viewport: { width: 1100, height: 900 } });
  const kv = sdk(open);
  await kv.send(new CreateSignalingChannelCommand({ ChannelName: 'call-chan' }));
  const mp = await c.page(`${open.tlsEndpoint}/console#/call`, 'master');
  const vp = await c.page(`${open.tlsEndpoint}/console#/call`, 'viewer');
  for (const relay of [false, true]) {
    await startCall(mp, { channel: 'call-chan', role: 'MASTER', relay, pattern: true });
    // The viewer asks for the camera (headless Chromium has none) and falls back to the pattern.
    await startCall(vp, { channel: 'call-chan', role: 'VIEWER', relay, pattern: relay });
    try {
      for (const p of [mp, vp]) await waitText(p, '#call-state', 'connected', 30000);
      for (const p of [mp, vp]) {
        await p.waitForSelector('#call-pair[data-local-type]', { timeout: 10000 });
        await p.waitForFunction(() => document.getElementById('remote-video').videoWidth > 0, null, { timeout: 15000 });
      }
    } catch (e) {
      for (const p of [mp, vp]) console.error(await text(p, 'main'));
      throw e;
    }
    const types = await Promise.all([mp, vp].map((p) => p.$eval('#call-pair', (el) => el.dataset.localType)));
    if (relay) assert.deepEqual(types, ['relay', 'relay'], 'relay-only: both sides use their TURN allocation');
    else assert.ok(!types.includes('relay'), `direct: ${types}`);
    assert.match(await text(vp, '#call-pair'), relay ? /local relay .* udp/ : /local (host|srflx|prflx) /);
    await shot(mp, relay ? 'call-master-relay' : 'call-master');
    await shot(vp, relay ? 'call-viewer-relay' : 'call-viewer');
    for (const p of [mp, vp]) await p.click('#call-stop');
  }
  await c.done();
});

test('with --credentials: sign in (both signing paths), a wrong secret is refused, accounts stay apart', async () => {
  await sdk(creds, A).send(new CreateSignalingChannelCommand({ ChannelName: 'a-chan' }));
  await sdk(creds, B).send(new CreateSignalingChannelCommand({ ChannelName: 'b-chan' }));
  // Without a session the console API refuses.
  const r = await fetch(`${creds.endpoint}/console/api/channels`);
  assert.equal(r.status, 403);
  assert.equal((await r.json()).__type, 'AccessDeniedException');

  const signIn = async (p, who, secret) => {
    await p.fill('#si-key', who.accessKeyId);
    await p.fill('#si-secret', secret);
    await p.fill('#si-region', REGION);
    await p.getByRole('button', { name: 'Sign in' }).click();
  };
  for (const [endpoint, who, mine, theirs, secure] of [
    [creds.endpoint, A, 'a-chan', 'b-chan', false], // http on a non-loopback address: the pure-JS signer
    [creds.tlsEndpoint, B, 'b-chan', 'a-chan', true], // https: crypto.subtle
  ]) {
    const c = await context();
    const p = await c.page(`${endpoint}/console#/channels`, `signin-${who.accessKeyId}`);
    await p.waitForSelector('#signin');
    assert.equal(await p.evaluate(() => window.isSecureContext), secure);
    if (!secure) await shot(p, 'signin');
    c.allow(HTTP_ERROR(403));
    await signIn(p, who, 'not-the-secret');
    await p.waitForFunction(() => /\w+Exception: /.test(document.querySelector('#signin [role=alert]').textContent));
    assert.match(await text(p, '#signin [role=alert]'), /SignatureDoesNotMatch|InvalidSignature|AccessDenied/);
    assert.equal(await p.locator('#who-account').count(), 0);
    await signIn(p, who, who.secretAccessKey);
    await waitText(p, '#who-account', who.account);
    await p.locator(`#channels tr[data-name="${mine}"]`).waitFor();
    await p.waitForTimeout(3500); // a refresh later, still only this account's channels
    assert.equal(await p.locator(`#channels tr[data-name="${theirs}"]`).count(), 0);
    // The secret is nowhere: not stored, not in the URL, not in the page.
    const traces = await p.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }, location.href, document.cookie, document.documentElement.outerHTML]));
    assert.ok(!traces.includes(who.secretAccessKey), 'the secret is not kept anywhere');
    const cookie = (await c.ctx.cookies()).find((k) => k.name === 'kvs_console');
    assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict' && cookie.path === '/console', JSON.stringify(cookie));
    // The session survives a reload; the inspector shows only this account's calls.
    await p.goto(`${endpoint}/console#/inspector`);
    await waitText(p, '#who-account', who.account);
    await p.locator('#calls tbody tr').first().waitFor();
    const keys = await p.$$eval('#calls tbody tr td:nth-child(3)', (tds) => [...new Set(tds.map((td) => td.textContent))]);
    assert.deepEqual(keys.filter((k) => k && k !== who.accessKeyId), [], `only ${who.accessKeyId}'s calls: ${keys}`);
    await p.getByRole('button', { name: 'Sign out' }).click();
    await p.waitForSelector('#signin');
    await c.done();
  }
});
