// SigV4 for the console's sign-in (docs/console.md): signs one request in the browser so the
// secret access key never leaves it. SHA-256 and HMAC come from crypto.subtle in a secure
// context; elsewhere (plain http on a non-loopback host, where crypto.subtle is absent) from the
// small pure-JS implementation below. Exposes globalThis.KvsSigV4.
(function (root) {
  'use strict';
  const enc = new TextEncoder();
  const bytes = (d) => (typeof d === 'string' ? enc.encode(d) : new Uint8Array(d));
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

  // --- pure-JS SHA-256 (FIPS 180-4) and HMAC (RFC 2104) -------------------------------
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  function sha256Sync(data) {
    const m = bytes(data);
    const len = m.length;
    const padded = new Uint8Array(((len + 9 + 63) >> 6) << 6);
    padded.set(m);
    padded[len] = 0x80;
    const dv = new DataView(padded.buffer);
    dv.setUint32(padded.length - 8, Math.floor(len / 0x20000000));
    dv.setUint32(padded.length - 4, (len << 3) >>> 0);
    const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    const w = new Uint32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let off = 0; off < padded.length; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + i * 4);
      for (let i = 16; i < 64; i++) {
        const a = w[i - 15], b = w[i - 2];
        w[i] = (rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3)) + w[i - 7] + (rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10)) + w[i - 16];
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 64; i++) {
        const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    const out = new Uint8Array(32);
    const odv = new DataView(out.buffer);
    h.forEach((v, i) => odv.setUint32(i * 4, v));
    return out;
  }
  function hmacSync(key, data) {
    let k = bytes(key);
    if (k.length > 64) k = sha256Sync(k);
    const ipad = new Uint8Array(64), opad = new Uint8Array(64);
    for (let i = 0; i < 64; i++) { ipad[i] = (k[i] || 0) ^ 0x36; opad[i] = (k[i] || 0) ^ 0x5c; }
    const m = bytes(data);
    const inner = new Uint8Array(64 + m.length);
    inner.set(ipad); inner.set(m, 64);
    const outer = new Uint8Array(96);
    outer.set(opad); outer.set(sha256Sync(inner), 64);
    return sha256Sync(outer);
  }

  // --- the two paths behind one async interface -----------------------------------------
  const subtle = () => (root.crypto && root.crypto.subtle) || null;
  const useSubtle = (opt) => (opt === undefined ? !!(subtle() && root.isSecureContext !== false) : opt);
  async function sha256(data, opt) {
    if (!useSubtle(opt)) return sha256Sync(data);
    return new Uint8Array(await subtle().digest('SHA-256', bytes(data)));
  }
  async function hmac(key, data, opt) {
    if (!useSubtle(opt)) return hmacSync(key, data);
    const k = await subtle().importKey('raw', bytes(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return new Uint8Array(await subtle().sign('HMAC', k, bytes(data)));
  }

  // RFC 3986 encoding as SigV4 wants it (unreserved characters kept, the rest %XX).
  const uriEncode = (s, keepSlash) => encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(keepSlash ? /%2F/g : /$^/, '/');
  const amzDate = (d) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

  // sign({method, host, path, query: {k: v}, headers: {name: value}, body, accessKeyId,
  //       secretAccessKey, region, service, date: Date, subtle: bool|undefined})
  // → {headers (the signed ones plus Authorization), authorization, signature, canonicalRequest,
  //    stringToSign}. `host` is signed; `x-amz-date` is added unless present.
  async function sign(o) {
    const opt = o.subtle;
    const date = o.date || new Date();
    const t = amzDate(date);
    const day = t.slice(0, 8);
    const body = o.body || '';
    const headers = {};
    for (const [k, v] of Object.entries(o.headers || {})) headers[k.toLowerCase()] = String(v).trim().replace(/\s+/g, ' ');
    headers.host = headers.host || o.host;
    if (!headers['x-amz-date']) headers['x-amz-date'] = t;
    const payloadHash = headers['x-amz-content-sha256'] || hex(await sha256(body, opt));
    const names = Object.keys(headers).sort();
    const query = Object.entries(o.query || {})
      .map(([k, v]) => [uriEncode(k), uriEncode(String(v))])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`).join('&');
    const canonicalRequest = [
      o.method || 'GET', uriEncode(o.path || '/', true), query,
      names.map((n) => `${n}:${headers[n]}\n`).join(''), names.join(';'), payloadHash,
    ].join('\n');
    const scope = `${day}/${o.region}/${o.service}/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', t, scope, hex(await sha256(canonicalRequest, opt))].join('\n');
    let key = await hmac('AWS4' + o.secretAccessKey, day, opt);
    key = await hmac(key, o.region, opt);
    key = await hmac(key, o.service, opt);
    key = await hmac(key, 'aws4_request', opt);
    const signature = hex(await hmac(key, stringToSign, opt));
    const authorization = `AWS4-HMAC-SHA256 Credential=${o.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
    const out = { ...headers, authorization };
    delete out.host; // the browser sets Host itself
    return { headers: out, authorization, signature, canonicalRequest, stringToSign };
  }

  root.KvsSigV4 = { sign, sha256, hmac, sha256Sync, hmacSync, hex, amzDate };
})(typeof globalThis !== 'undefined' ? globalThis : window);
