// Starts the real kvs-signaling binary on port 0 and tells the tests where it is.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const ACCOUNT = '111111111111';
export const CREDS = { accessKeyId: 'AKIDNODETEST', secretAccessKey: 'node-test-secret' };

// credentials: undefined → one account (CREDS, ACCOUNT); null → open mode (no --credentials);
// a string → that credentials.toml. log: a KVS_LOG filter; when given, the server's stderr is
// kept (the last 4000 lines) in `logs` instead of passed through.
export async function startServer(extra = [], { listen = '127.0.0.1:0', credentials, log } = {}) {
  const bin = process.env.KVS_BIN || join(root, 'target', 'debug', 'kvs-signaling');
  const dir = mkdtempSync(join(tmpdir(), 'kvs-node-'));
  const credsFile = join(dir, 'credentials.toml');
  writeFileSync(
    credsFile,
    credentials ?? `[[credentials]]\naccess_key_id = "${CREDS.accessKeyId}"\nsecret_access_key = "${CREDS.secretAccessKey}"\naccount_id = "${ACCOUNT}"\n`,
  );
  const auth = credentials === null ? [] : ['--credentials', credsFile];
  const child = spawn(bin, ['serve', '--listen', listen, '--store', 'memory', '--data-dir', dir, ...auth, ...extra], {
    stdio: ['ignore', 'pipe', log ? 'pipe' : 'inherit'],
    env: { ...process.env, KVS_LOG: log ?? 'warn' },
  });
  const logs = [];
  if (log) {
    createInterface({ input: child.stderr }).on('line', (line) => {
      logs.push(line);
      if (logs.length > 4000) logs.shift();
    });
  }
  const lines = createInterface({ input: child.stdout });
  const [port, tlsPort] = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited with ${code} before ready`)));
    lines.on('line', (line) => {
      const m = line.match(/listening on http:\/\/[^\s]+:(\d+)/);
      const t = line.match(/listening on https:\/\/[^\s]+:(\d+)/);
      if (m) resolve([Number(m[1]), t ? Number(t[1]) : undefined]);
    });
  });
  return {
    port,
    tlsPort,
    dataDir: dir,
    logs,
    endpoint: `http://${listen.split(':')[0]}:${port}`,
    tlsEndpoint: tlsPort && (listen.startsWith('127.') ? `https://localhost:${tlsPort}` : `https://${listen.split(':')[0]}:${tlsPort}`),
    stop: () => new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGTERM');
    }),
  };
}
