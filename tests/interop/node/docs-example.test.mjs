// The Jest example of docs/testing-with-kvs-signaling.md, run as it is written under a minimal
// stand-in for Jest's `beforeEach`/`test`/`expect` (Jest is not a dependency here), against a
// server in open mode. Only the server's URL differs from the page, through the `KVS_URL`
// variable the example reads. Run twice: the second run starts empty only if the reset works.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const doc = readFileSync(join(here, '..', '..', '..', 'docs', 'testing-with-kvs-signaling.md'), 'utf8');
const blocks = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);

const SHIM = `
const assert = require('node:assert/strict');
const hooks = [], tests = [];
globalThis.beforeEach = (fn) => hooks.push(fn);
globalThis.test = (name, fn) => tests.push([name, fn]);
globalThis.expect = (got) => ({
  toEqual: (want) => assert.deepStrictEqual(got, want),
  toBe: (want) => assert.strictEqual(got, want),
});
require(process.argv[2]);
(async () => {
  for (const [name, fn] of tests) {
    for (const h of hooks) await h();
    await fn();
    console.log('passed: ' + name);
  }
})().catch((e) => { console.error(e); process.exit(1); });
`;

let server;
const example = join(here, `docs-example-${process.pid}.cjs`);
const shim = join(here, `docs-jest-shim-${process.pid}.cjs`);
before(async () => {
  server = await startServer([], { credentials: null });
});
after(async () => {
  rmSync(example, { force: true });
  rmSync(shim, { force: true });
  await server.stop();
});

test('the Jest example of docs/testing-with-kvs-signaling.md passes, twice in a row', () => {
  assert.equal(blocks.length, 1, 'one ```js block expected');
  writeFileSync(example, blocks[0]);
  writeFileSync(shim, SHIM);
  for (let i = 0; i < 2; i++) {
    const out = execFileSync(process.execPath, [shim, example], {
      cwd: here,
      env: { ...process.env, KVS_URL: server.endpoint },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(out.trim(), 'passed: every test starts from an empty server');
  }
});
