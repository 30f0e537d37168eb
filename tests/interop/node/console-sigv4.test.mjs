// The console's in-browser SigV4 signer (crates/server/console/sigv4.js) against the AWS SigV4
// test suite's documented get-vanilla and post-vanilla examples and against node:crypto, on both
// of its paths: crypto.subtle and the pure-JS SHA-256/HMAC fallback used outside secure contexts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import vm from 'node:vm';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'crates', 'server', 'console', 'sigv4.js');
vm.runInThisContext(readFileSync(SRC, 'utf8'), { filename: SRC });
const S = globalThis.KvsSigV4;

// From the AWS SigV4 test suite (aws-sig-v4-test-suite: get-vanilla, post-vanilla).
const SUITE = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  region: 'us-east-1',
  service: 'service',
  date: new Date(Date.UTC(2015, 7, 30, 12, 36, 0)),
  host: 'example.amazonaws.com',
  path: '/',
};

for (const subtle of [true, false]) {
  const path = subtle ? 'crypto.subtle' : 'pure-JS fallback';

  test(`get-vanilla from the AWS SigV4 test suite (${path})`, async () => {
    const out = await S.sign({ ...SUITE, method: 'GET', subtle });
    assert.equal(out.canonicalRequest, [
      'GET', '/', '', 'host:example.amazonaws.com', 'x-amz-date:20150830T123600Z', '',
      'host;x-amz-date', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    ].join('\n'));
    assert.equal(out.stringToSign, [
      'AWS4-HMAC-SHA256', '20150830T123600Z', '20150830/us-east-1/service/aws4_request',
      'bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63',
    ].join('\n'));
    assert.equal(out.authorization,
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, '
      + 'SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31');
    assert.equal(out.headers['x-amz-date'], '20150830T123600Z');
    assert.equal(out.headers.host, undefined, 'the browser sets Host itself');
  });

  test(`post-vanilla from the AWS SigV4 test suite (${path})`, async () => {
    const out = await S.sign({ ...SUITE, method: 'POST', subtle });
    assert.equal(out.signature, '5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b');
  });

  test(`sha256 and hmac agree with node:crypto (${path})`, async () => {
    const inputs = ['', 'abc', 'a'.repeat(55), 'a'.repeat(56), 'a'.repeat(64), 'é€😀', randomBytes(1000), randomBytes(4097)];
    for (const d of inputs) {
      const want = createHash('sha256').update(d).digest('hex');
      assert.equal(S.hex(await S.sha256(d, subtle)), want, `sha256 of ${d.length} bytes`);
    }
    // (WebCrypto refuses an empty HMAC key; a SigV4 key is never empty: "AWS4" + secret.)
    for (const key of ['key', 'k'.repeat(64), 'k'.repeat(65), randomBytes(200)]) {
      for (const d of ['', 'The quick brown fox jumps over the lazy dog', randomBytes(300)]) {
        const want = createHmac('sha256', key).update(d).digest('hex');
        assert.equal(S.hex(await S.hmac(key, d, subtle)), want, `hmac key ${key.length} data ${d.length}`);
      }
    }
  });

  test(`the console's sign-in request matches a node:crypto signer (${path})`, async () => {
    const date = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
    const body = '{}';
    const o = { accessKeyId: 'AKIDCONSOLE', secretAccessKey: 'se/cr+et', region: 'us-west-2', service: 'kinesisvideo', host: '192.0.2.10:8443', date, method: 'POST', path: '/console/api/session', body, subtle };
    const out = await S.sign({ ...o, headers: { 'content-type': 'application/json' } });
    const h = (d) => createHash('sha256').update(d).digest('hex');
    const mac = (k, d) => createHmac('sha256', k).update(d).digest();
    const creq = ['POST', '/console/api/session', '', 'content-type:application/json', 'host:192.0.2.10:8443',
      'x-amz-date:20240102T030405Z', '', 'content-type;host;x-amz-date', h(body)].join('\n');
    assert.equal(out.canonicalRequest, creq);
    const sts = ['AWS4-HMAC-SHA256', '20240102T030405Z', '20240102/us-west-2/kinesisvideo/aws4_request', h(creq)].join('\n');
    let k = mac('AWS4se/cr+et', '20240102');
    for (const part of ['us-west-2', 'kinesisvideo', 'aws4_request']) k = mac(k, part);
    assert.equal(out.signature, createHmac('sha256', k).update(sts).digest('hex'));
  });
}
