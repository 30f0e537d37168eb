// The kvs-signaling web console: a hash-routed page over the console API of docs/console.md.
// No framework and no build step; every page registers what it opens (timers, event streams,
// sockets, peer connections) in `cleanups`, run when the route changes.
(() => {
  'use strict';
  const main = document.getElementById('main');
  let who = null;
  let cleanups = [];
  const onLeave = (fn) => cleanups.push(fn);

  // --- small helpers --------------------------------------------------------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) if (kid != null && kid !== false) el.append(kid);
    return el;
  }
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const clock = (ms) => { const d = new Date(ms); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`; };
  const ago = (ms) => { const s = Math.max(0, Math.round((Date.now() - ms) / 1000)); return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`; };
  const stName = (arn) => { const m = /:stream\/([^/]+)\//.exec(arn || ''); return m ? m[1] : arn || ''; };
  const chName = (arn) => { const m = /:channel\/([^/]+)\//.exec(arn || ''); return m ? m[1] : arn || ''; };
  const table = (id, cols, label) => {
    const tbody = h('tbody');
    const t = h('table', { id }, h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col', class: /^(size|latency|masters|viewers|TTL)/i.test(c) ? 'num' : null, text: c })))), tbody);
    return { wrap: h('div', { class: 'scroll', role: 'region', 'aria-label': label, tabindex: '0' }, t), tbody };
  };
  const setMsg = (el, text, kind) => { el.textContent = text || ''; el.className = 'msg' + (kind ? ' ' + kind : ''); };
  const b64 = (s) => { const b = new TextEncoder().encode(s); let bin = ''; for (const x of b) bin += String.fromCharCode(x); return btoa(bin); };
  const unb64 = (s) => new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));
  const errType = (t) => String(t).split(':')[0].split('#').pop();

  class ApiError extends Error {}
  async function api(path, { method = 'GET', body, headers } = {}) {
    const init = { method, credentials: 'same-origin', headers: { ...(headers || {}) } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      init.headers['content-type'] = init.headers['content-type'] || 'application/json';
    }
    const r = await fetch(path, init);
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
    if (!r.ok) {
      const type = errType((data && (data.__type || data.code)) || r.headers.get('x-amzn-ErrorType') || `HTTP ${r.status}`);
      const e = new ApiError(`${type}: ${(data && (data.message || data.Message)) || r.statusText || 'request failed'}`);
      e.type = type;
      e.status = r.status;
      if (r.status === 403 && who && who.mode === 'credentials' && type === 'AccessDeniedException' && path !== '/console/api/session') {
        who.signedIn = false; // the session expired: back to the sign-in form
        setTimeout(route, 0);
      }
      throw e;
    }
    return data;
  }
  const awsCall = (op, body) => api(`/console/api/call/${op}`, { method: 'POST', body });

  // --- header, sign-in ------------------------------------------------------------------
  function renderWho() {
    const el = document.getElementById('who');
    el.replaceChildren();
    if (!who) return;
    if (who.mode === 'credentials' && !who.signedIn) { el.append(h('span', { text: 'not signed in' })); return; }
    el.append(h('span', { id: 'who-account', text: `account ${who.account ?? '—'}` }));
    if (who.accessKeyId) el.append(h('span', { class: 'mono', text: who.accessKeyId }));
    if (who.region) el.append(h('span', { text: who.region }));
    if (who.node) el.append(h('span', { text: `node ${who.node}` }));
    if (who.mode === 'open') el.append(h('span', { text: 'open mode' }));
    if (who.mode === 'credentials') {
      el.append(h('button', {
        type: 'button', id: 'sign-out', text: 'Sign out',
        onclick: async () => {
          try { await api('/console/api/session', { method: 'DELETE' }); } catch (_) { /* signed out anyway */ }
          who = { ...who, signedIn: false, account: null, accessKeyId: null };
          renderWho();
          route();
        },
      }));
    }
  }

  function signInPage() {
    const msg = h('div', { class: 'msg', role: 'alert' });
    const key = h('input', { name: 'accessKeyId', id: 'si-key', required: true, autocomplete: 'username', spellcheck: 'false' });
    const secret = h('input', { name: 'secret', id: 'si-secret', type: 'password', required: true, autocomplete: 'current-password' });
    const region = h('input', { name: 'region', id: 'si-region', required: true, value: (who && who.region) || 'us-west-2' });
    const btn = h('button', { class: 'primary', type: 'submit', text: 'Sign in' });
    const form = h('form', {
      class: 'signin', id: 'signin',
      onsubmit: async (ev) => {
        ev.preventDefault();
        btn.disabled = true;
        setMsg(msg, 'signing in…');
        try {
          const body = '{}';
          const signed = await window.KvsSigV4.sign({
            method: 'POST', host: location.host, path: '/console/api/session', body,
            headers: { 'content-type': 'application/json' },
            accessKeyId: key.value.trim(), secretAccessKey: secret.value, region: region.value.trim(), service: 'kinesisvideo',
          });
          who = await api('/console/api/session', { method: 'POST', body, headers: signed.headers });
          secret.value = '';
          renderWho();
          route();
        } catch (e) {
          setMsg(msg, e.message, 'bad');
          btn.disabled = false;
        }
      },
    },
    h('label', { for: 'si-key' }, 'Access key id', key),
    h('label', { for: 'si-secret' }, 'Secret access key', secret),
    h('label', { for: 'si-region' }, 'Region', region),
    h('div', null, btn), msg,
    h('p', { class: 'muted', text: 'The secret stays in this page: it signs one request (SigV4) and is not stored or sent.' }));
    main.replaceChildren(h('h1', { text: 'Sign in' }), form);
    key.focus();
  }

  // --- channels ---------------------------------------------------------------------------
  function channelsPage() {
    const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite', id: 'channels-msg' });
    const name = h('input', { id: 'new-name', name: 'name', required: true, pattern: '[a-zA-Z0-9_.\\-]{1,256}', autocomplete: 'off' });
    const ttl = h('input', { id: 'new-ttl', name: 'ttl', type: 'number', min: '5', max: '120', value: '60', required: true });
    const fail = (e, what) => setMsg(msg, e.type === 'VersionMismatchException' ? 'version conflict: someone changed this channel; reload' : (what ? `${what}: ` : '') + e.message, 'bad');
    const create = h('form', {
      class: 'inline', id: 'create-channel',
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await awsCall('CreateSignalingChannel', { ChannelName: name.value.trim(), ChannelType: 'SINGLE_MASTER', SingleMasterConfiguration: { MessageTtlSeconds: Number(ttl.value) } });
          setMsg(msg, `created ${name.value.trim()}`, 'ok');
          name.value = '';
          refresh();
        } catch (e) { fail(e); }
      },
    }, h('label', { for: 'new-name' }, 'Channel name', name), h('label', { for: 'new-ttl' }, 'Message TTL (s)', ttl),
    h('button', { class: 'primary', type: 'submit', text: 'Create channel' }));
    const t = table('channels', ['Name', 'ARN', 'Status', 'TTL', 'Version', 'Tags', 'Created', 'Masters', 'Viewers', 'Actions'], 'Channels');
    const empty = h('p', { class: 'muted', hidden: true, text: 'No channels yet.' });
    const updated = h('span', { class: 'muted' });
    main.replaceChildren(h('h1', { text: 'Signaling channels' }), create, msg, h('div', { class: 'bar' }, h('h2', { text: 'Channels' }), updated), t.wrap, empty);

    const rows = new Map();
    const set = (el, v) => { if (el.textContent !== String(v)) el.textContent = v; };
    function makeRow(ch) {
      const r = { ch };
      const c = () => h('td');
      r.name = h('td', null, h('a', { href: `#/channel/${encodeURIComponent(ch.arn)}`, text: ch.name }));
      r.arn = h('td', { class: 'wrap mono', text: ch.arn });
      [r.status, r.ttl, r.version, r.tags, r.created, r.masters, r.viewers] = [c(), h('td', { class: 'num' }), h('td', { class: 'mono' }), h('td', { class: 'wrap' }), c(), h('td', { class: 'num' }), h('td', { class: 'num' })];
      const label = (what) => `${what} of ${ch.name}`;
      r.ttlInput = h('input', { type: 'number', min: '5', max: '120', value: String(ch.ttl), 'aria-label': label('new TTL (seconds)'), oninput: () => { if (r.editVersion == null) r.editVersion = r.ch.version; } });
      const updateTtl = async () => {
        try {
          await awsCall('UpdateSignalingChannel', { ChannelARN: ch.arn, CurrentVersion: r.editVersion ?? r.ch.version, SingleMasterConfiguration: { MessageTtlSeconds: Number(r.ttlInput.value) } });
          setMsg(msg, `${ch.name}: TTL set to ${r.ttlInput.value}s`, 'ok');
          refresh();
        } catch (e) { fail(e, ch.name); }
        r.editVersion = null;
      };
      r.tagInput = h('input', { placeholder: 'key=value', 'aria-label': label('tag (key=value)') });
      const tag = async () => {
        const [k, ...v] = r.tagInput.value.split('=');
        if (!k.trim()) { setMsg(msg, 'a tag is key=value', 'bad'); return; }
        try {
          await awsCall('TagResource', { ResourceARN: ch.arn, Tags: [{ Key: k.trim(), Value: v.join('=').trim() }] });
          setMsg(msg, `${ch.name}: tagged ${k.trim()}`, 'ok');
          r.tagInput.value = '';
          refresh();
        } catch (e) { fail(e, ch.name); }
      };
      let armed = null;
      const del = h('button', {
        type: 'button', class: 'danger', text: 'Delete', 'aria-label': label('delete'),
        onclick: async () => {
          if (!armed) {
            del.textContent = 'Confirm delete';
            del.setAttribute('aria-label', label('confirm delete'));
            armed = setTimeout(() => { armed = null; del.textContent = 'Delete'; del.setAttribute('aria-label', label('delete')); }, 5000);
            return;
          }
          clearTimeout(armed);
          try {
            await awsCall('DeleteSignalingChannel', { ChannelARN: ch.arn });
            setMsg(msg, `deleted ${ch.name}`, 'ok');
            refresh();
          } catch (e) { fail(e, ch.name); }
        },
      });
      const actions = h('td', null, h('div', { class: 'row-actions' },
        r.ttlInput, h('button', { type: 'button', text: 'Update TTL', 'aria-label': label('update TTL'), onclick: updateTtl }),
        r.tagInput, h('button', { type: 'button', text: 'Tag', 'aria-label': label('add tag'), onclick: tag }),
        del));
      r.tr = h('tr', { 'data-arn': ch.arn, 'data-name': ch.name }, r.name, r.arn, r.status, r.ttl, r.version, r.tags, r.created, r.masters, r.viewers, actions);
      return r;
    }
    function fill(r, ch) {
      r.ch = ch;
      set(r.status, ch.status); set(r.ttl, ch.ttl); set(r.version, ch.version);
      set(r.created, ch.created ? new Date(ch.created * 1000).toLocaleString() : '');
      set(r.masters, ch.masters ?? 0); set(r.viewers, ch.viewers ?? 0);
      const tags = JSON.stringify(ch.tags || {});
      if (r.tagsJson !== tags) {
        r.tagsJson = tags;
        r.tags.replaceChildren(...Object.entries(ch.tags || {}).map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`,
          h('button', {
            type: 'button', text: '×', 'aria-label': `remove tag ${k} of ${ch.name}`, title: `untag ${k}`,
            onclick: async () => {
              try {
                await awsCall('UntagResource', { ResourceARN: ch.arn, TagKeyList: [k] });
                setMsg(msg, `${ch.name}: untagged ${k}`, 'ok');
                refresh();
              } catch (e) { fail(e, ch.name); }
            },
          }))));
      }
      if (r.editVersion == null && document.activeElement !== r.ttlInput) r.ttlInput.value = String(ch.ttl);
    }
    async function refresh() {
      try {
        const { channels } = await api('/console/api/channels');
        const seen = new Set();
        channels.sort((a, b) => a.name.localeCompare(b.name));
        let prev = null;
        for (const ch of channels) {
          seen.add(ch.arn);
          let r = rows.get(ch.arn);
          if (!r) { r = makeRow(ch); rows.set(ch.arn, r); }
          fill(r, ch);
          const want = prev ? prev.nextSibling : t.tbody.firstChild;
          if (want !== r.tr) t.tbody.insertBefore(r.tr, want);
          prev = r.tr;
        }
        for (const [arn, r] of rows) if (!seen.has(arn)) { r.tr.remove(); rows.delete(arn); }
        empty.hidden = channels.length > 0;
        updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
      } catch (e) { if (!(e instanceof ApiError && e.status === 403)) setMsg(msg, e.message, 'bad'); }
    }
    refresh();
    const timer = setInterval(refresh, 3000);
    onLeave(() => clearInterval(timer));
  }

  // --- live view of one channel -----------------------------------------------------------
  function livePage(arn) {
    const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite', id: 'live-msg' });
    const state = h('span', { id: 'live-state', class: 'muted', text: 'connecting…' });
    const payloads = h('input', { type: 'checkbox', id: 'show-payloads', onchange: () => connect() });
    const post = async (path, body, done) => {
      try { setMsg(msg, done(await api(path, { method: 'POST', body: { ChannelARN: arn, ...body } })), 'ok'); } catch (e) { setMsg(msg, e.message, 'bad'); }
    };
    const conns = table('connections', ['Role', 'Client id', 'Since', 'From', 'Node', ''], 'Connections');
    const held = table('held', ['Recipient', 'Type', 'Size', 'Sender', 'Expires in'], 'Held messages');
    const events = table('events', ['Time', 'Node', 'Event'], 'Channel events');
    const log = table('messages', ['Time', 'Node', 'Type', 'Size', 'From → to', 'Outcome', 'Payload'], 'Messages, newest first');
    const summary = h('div', { class: 'summary', id: 'message-summary', 'aria-live': 'off' });
    main.replaceChildren(
      h('p', null, h('a', { href: '#/channels', text: '← Channels' })),
      h('h1', null, 'Live view: ', h('span', { id: 'live-name', text: chName(arn) })),
      h('p', { class: 'mono muted', text: arn }),
      h('div', { class: 'bar' },
        h('button', { type: 'button', id: 'send-goaway', text: 'Send GO_AWAY', onclick: () => post('/console/api/channel/goaway', {}, (r) => `GO_AWAY sent to ${r.connections} connection(s)`) }),
        h('button', { type: 'button', id: 'rotate-turn', text: 'Rotate TURN secret', onclick: () => post('/console/api/channel/reconnect-ice', {}, (r) => `TURN secret rotated; RECONNECT_ICE_SERVER sent to ${r.connections} connection(s)`) }),
        h('label', { class: 'check', for: 'show-payloads' }, payloads, 'show payloads'),
        state),
      msg,
      h('h2', { text: 'Connections' }), conns.wrap,
      h('h2', { text: 'Held messages' }), held.wrap,
      ...storageSection(arn, msg),
      h('h2', { text: 'GO_AWAY and other events' }), events.wrap,
      h('h2', { text: 'Messages' }), summary, log.wrap);

    const connMap = new Map();
    let heldList = [];
    const counts = {};
    const connKey = (c) => `${c.role}|${c.clientId ?? ''}|${c.node ?? ''}`;
    function renderConns() {
      conns.tbody.replaceChildren(...[...connMap.values()].sort((a, b) => (a.role === b.role ? (a.since || 0) - (b.since || 0) : a.role === 'MASTER' ? -1 : 1)).map((c) => {
        const since = h('td', { 'data-since': c.since, text: c.since ? `${clock(c.since)} (${ago(c.since)})` : '—' });
        return h('tr', { 'data-role': c.role, 'data-client-id': c.clientId ?? '' },
          h('td', { text: c.role }), h('td', { class: 'mono', text: c.clientId ?? '' }), since,
          h('td', { class: 'mono', text: c.from ?? '' }), h('td', { text: c.node ?? '' }),
          h('td', null, h('button', {
            type: 'button', class: 'danger', text: 'Disconnect', 'aria-label': `disconnect ${c.role.toLowerCase()} ${c.clientId ?? ''}`,
            onclick: () => post('/console/api/channel/disconnect', { Role: c.role, ClientId: c.clientId ?? undefined }, () => `disconnected ${c.role} ${c.clientId ?? ''}`),
          })));
      }));
      if (!connMap.size) conns.tbody.append(h('tr', null, h('td', { colspan: '6', class: 'muted', text: 'nobody connected' })));
    }
    function renderHeld() {
      held.tbody.replaceChildren(...heldList.map((m) => h('tr', { 'data-type': m.type },
        h('td', { class: 'mono', text: m.recipient }), h('td', { text: m.type }), h('td', { class: 'num', text: m.size }),
        h('td', { class: 'mono', text: m.sender }), h('td', { class: 'num', 'data-expires': m.expiresAt, text: remaining(m.expiresAt) }))));
      if (!heldList.length) held.tbody.append(h('tr', null, h('td', { colspan: '5', class: 'muted', text: 'none' })));
    }
    const remaining = (at) => `${Math.max(0, Math.ceil((at - Date.now()) / 1000))}s`;
    function event(at, node, text, cls) {
      events.tbody.prepend(h('tr', null, h('td', { text: clock(at || Date.now()) }), h('td', { text: node ?? '' }), h('td', { class: cls, text })));
      while (events.tbody.childElementCount > 200) events.tbody.lastChild.remove();
    }
    function message(m) {
      const key = `${m.type} ${m.outcome}`;
      counts[key] = (counts[key] || 0) + 1;
      summary.replaceChildren(...Object.entries(counts).sort().map(([k, n]) => h('span', null, `${k}: `, h('strong', { text: n }))));
      let payload = '';
      if (m.payload != null) {
        try { payload = unb64(m.payload); } catch (_) { payload = m.payload; }
        if (payload.length > 400) payload = payload.slice(0, 400) + '…';
      }
      const cls = m.outcome === 'relayed' ? 'ok' : m.outcome === 'held' ? 'warn' : 'bad';
      log.tbody.prepend(h('tr', { 'data-type': m.type, 'data-outcome': m.outcome },
        h('td', { text: clock(m.at) }), h('td', { text: m.node ?? '' }), h('td', { text: m.type }), h('td', { class: 'num', text: m.size }),
        h('td', { class: 'mono', text: `${m.from} → ${m.to ?? ''}` }),
        h('td', { class: cls, text: m.outcome + (m.reason ? ` (${m.reason})` : '') }),
        h('td', { class: 'wrap mono', text: payload })));
      while (log.tbody.childElementCount > 500) log.tbody.lastChild.remove();
    }

    let es = null;
    function connect() {
      if (es) es.close();
      const url = `/console/api/live?channel=${encodeURIComponent(arn)}${payloads.checked ? '&payloads=1' : ''}`;
      es = new EventSource(url);
      const on = (type, fn) => es.addEventListener(type, (ev) => { try { fn(JSON.parse(ev.data)); } catch (e) { setMsg(msg, `bad ${type} event: ${e.message}`, 'bad'); } });
      es.onopen = () => { state.textContent = payloads.checked ? 'live (with payloads)' : 'live'; state.className = 'ok'; };
      es.onerror = () => { state.textContent = 'reconnecting…'; state.className = 'warn'; };
      on('snapshot', (d) => {
        // A snapshot may not know when or from where (the nodes' roll call says): keep what we knew.
        const before = new Map(connMap);
        connMap.clear();
        for (const c of d.connections || []) {
          const old = before.get(connKey(c));
          connMap.set(connKey(c), { ...c, since: c.since ?? (old && old.since), from: c.from ?? (old && old.from) });
        }
        heldList = d.held || [];
        renderConns();
        renderHeld();
      });
      on('connected', (c) => { connMap.set(connKey(c), c); renderConns(); event(c.since, c.node, `${c.role} ${c.clientId ?? ''} connected from ${c.from ?? '?'}`, 'ok'); });
      on('disconnected', (c) => {
        for (const [k, v] of connMap) if (v.role === c.role && (v.clientId ?? '') === (c.clientId ?? '') && (c.node == null || v.node === c.node)) connMap.delete(k);
        renderConns();
        event(Date.now(), c.node, `${c.role} ${c.clientId ?? ''} disconnected${c.reason ? ` (${c.reason})` : ''}`);
      });
      on('message', message);
      on('goaway', (g) => event(g.at, g.node, `GO_AWAY sent to ${g.connections} connection(s)`, 'warn'));
      on('held', (d) => { heldList = d.held || []; renderHeld(); });
      on('lagged', (d) => event(Date.now(), null, `the view fell behind: ${d.missed} event(s) missed`, 'bad'));
    }
    renderConns();
    renderHeld();
    connect();
    const tick = setInterval(() => {
      for (const td of held.tbody.querySelectorAll('[data-expires]')) td.textContent = remaining(Number(td.dataset.expires));
      for (const td of conns.tbody.querySelectorAll('[data-since]')) { const s = Number(td.dataset.since); td.textContent = `${clock(s)} (${ago(s)})`; }
    }, 1000);
    onLeave(() => { clearInterval(tick); if (es) es.close(); });
  }

  // --- streams (WebRTC ingestion's recordings) ---------------------------------------------
  function streamsPage() {
    const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite', id: 'streams-msg' });
    const name = h('input', { id: 'new-stream-name', name: 'name', required: true, pattern: '[a-zA-Z0-9_.\\-]{1,256}', autocomplete: 'off' });
    const hours = h('input', { id: 'new-stream-retention', name: 'retention', type: 'number', min: '0', max: '87600', value: '24', required: true });
    const fail = (e, what) => setMsg(msg, e.type === 'VersionMismatchException' ? 'version conflict: someone changed this stream; reload' : (what ? `${what}: ` : '') + e.message, 'bad');
    const create = h('form', {
      class: 'inline', id: 'create-stream',
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await awsCall('CreateStream', { StreamName: name.value.trim(), DataRetentionInHours: Number(hours.value), MediaType: 'video/h264,audio/opus' });
          setMsg(msg, `created stream ${name.value.trim()}`, 'ok');
          name.value = '';
          refresh();
        } catch (e) { fail(e); }
      },
    }, h('label', { for: 'new-stream-name' }, 'Stream name', name), h('label', { for: 'new-stream-retention' }, 'Retention (hours)', hours),
    h('button', { class: 'primary', type: 'submit', text: 'Create stream' }));
    const t = table('streams', ['Name', 'ARN', 'Status', 'Retention (h)', 'Version', 'Created', 'Actions'], 'Streams');
    const empty = h('p', { class: 'muted', hidden: true, text: 'No streams yet. A stream bound to a channel (its live view, "Media storage") records what the master sends.' });
    main.replaceChildren(h('h1', { text: 'Video streams' }), create, msg, h('h2', { text: 'Streams' }), t.wrap, empty);
    async function refresh() {
      try {
        const list = [];
        let token;
        do {
          const page = await awsCall('ListStreams', token ? { NextToken: token } : {});
          list.push(...(page.StreamInfoList || []));
          token = page.NextToken;
        } while (token);
        t.tbody.replaceChildren(...list.map((st) => {
          const label = (what) => `${what} of ${st.StreamName}`;
          const delta = h('input', { type: 'number', min: '1', value: '1', 'aria-label': label('hours to add or remove') });
          const retention = (op) => async () => {
            try {
              await awsCall('UpdateDataRetention', { StreamARN: st.StreamARN, CurrentVersion: st.Version, Operation: op, DataRetentionChangeInHours: Number(delta.value) });
              setMsg(msg, `${st.StreamName}: retention ${op === 'INCREASE_DATA_RETENTION' ? 'increased' : 'decreased'} by ${delta.value}h`, 'ok');
              refresh();
            } catch (e) { fail(e, st.StreamName); }
          };
          const del = h('button', {
            type: 'button', class: 'danger', text: 'Delete', 'aria-label': label('delete'),
            onclick: async () => {
              if (del.dataset.armed !== '1') { del.dataset.armed = '1'; del.textContent = 'Confirm delete'; del.setAttribute('aria-label', label('confirm delete')); return; }
              try { await awsCall('DeleteStream', { StreamARN: st.StreamARN, CurrentVersion: st.Version }); setMsg(msg, `deleted stream ${st.StreamName}`, 'ok'); refresh(); } catch (e) { fail(e, st.StreamName); }
            },
          });
          return h('tr', { 'data-name': st.StreamName },
            h('td', { text: st.StreamName }), h('td', { class: 'wrap mono', text: st.StreamARN }), h('td', { text: st.Status }),
            h('td', { class: 'num', text: st.DataRetentionInHours }), h('td', { class: 'mono', text: st.Version }),
            h('td', { text: st.CreationTime ? new Date(st.CreationTime * 1000).toLocaleString() : '' }),
            h('td', null, h('div', { class: 'row-actions' }, delta,
              h('button', { type: 'button', text: '+ hours', 'aria-label': label('increase retention'), onclick: retention('INCREASE_DATA_RETENTION') }),
              h('button', { type: 'button', text: '− hours', 'aria-label': label('decrease retention'), onclick: retention('DECREASE_DATA_RETENTION') }),
              del)));
        }));
        empty.hidden = list.length > 0;
      } catch (e) { if (!(e instanceof ApiError && e.status === 403)) setMsg(msg, e.message, 'bad'); }
    }
    refresh();
  }

  // --- a channel's media storage: its stream, its storage sessions, what is recorded --------
  function storageSection(arn, msg) {
    const status = h('span', { id: 'storage-status', text: '…' });
    const select = h('select', { id: 'storage-stream', 'aria-label': 'stream to record into' });
    const recorded = h('dl', { class: 'kv', id: 'storage-recorded' });
    const sessions = table('storage-sessions', ['Session', 'Node', 'Since', 'State', 'Master', 'Viewers'], 'Storage sessions');
    const set = async (enabled) => {
      try {
        const streamArn = enabled ? select.value : (current && current.StreamARN);
        if (!streamArn) { setMsg(msg, 'create a stream first (Streams page)', 'bad'); return; }
        await awsCall('UpdateMediaStorageConfiguration', { ChannelARN: arn, MediaStorageConfiguration: { StreamARN: streamArn, Status: enabled ? 'ENABLED' : 'DISABLED' } });
        setMsg(msg, enabled ? `recording into ${stName(streamArn)} while a storage session runs` : 'media storage disabled', 'ok');
        refresh();
      } catch (e) { setMsg(msg, e.message, 'bad'); }
    };
    let current = null;
    const fact = (k, v) => [h('dt', { text: k }), h('dd', { text: v })];
    async function refresh() {
      try {
        const [cfg, list] = await Promise.all([
          awsCall('DescribeMediaStorageConfiguration', { ChannelARN: arn }),
          awsCall('ListStreams', {}),
        ]);
        current = cfg.MediaStorageConfiguration || {};
        status.textContent = current.Status === 'ENABLED' ? `ENABLED → ${current.StreamARN}` : 'DISABLED';
        status.className = current.Status === 'ENABLED' ? 'ok mono' : 'muted';
        const keep = select.value || current.StreamARN;
        select.replaceChildren(...(list.StreamInfoList || []).map((st) => h('option', { value: st.StreamARN, text: `${st.StreamName} (${st.DataRetentionInHours}h)` })));
        if (keep) select.value = keep;
      } catch (e) { setMsg(msg, e.message, 'bad'); }
      try {
        const s = await api(`/console/api/storage?channel=${encodeURIComponent(arn)}`);
        const r = s.recording;
        recorded.replaceChildren(...(r ? [
          ...fact('Fragments', String(r.fragments)), ...fact('Recorded', `${(r.durationMillis / 1000).toFixed(1)} s`),
          ...fact('Size', `${(r.bytes / 1024).toFixed(0)} KiB`),
          ...fact('From', r.earliest ? new Date(r.earliest).toLocaleString() : '—'), ...fact('To', r.latest ? new Date(r.latest).toLocaleString() : '—'),
        ] : fact('Recorded', 'nothing (no stream bound)')));
        sessions.tbody.replaceChildren(...(s.sessions || []).map((x) => h('tr', { 'data-session': x.sessionId },
          h('td', { class: 'mono', text: x.sessionId }), h('td', { text: x.node ?? '' }), h('td', { text: x.since ? `${clock(x.since)} (${ago(x.since)})` : '' }),
          h('td', { text: x.state ?? '' }), h('td', { class: 'mono', text: x.master ?? '' }),
          h('td', { class: 'viewers', text: (x.viewers || []).map((v) => `${v.clientId} (${v.state})`).join(', ') || '—' }))));
        if (!(s.sessions || []).length) sessions.tbody.append(h('tr', null, h('td', { colspan: '6', class: 'muted', text: 'no storage session (JoinStorageSession starts one)' })));
      } catch (e) { setMsg(msg, e.message, 'bad'); }
    }
    refresh();
    const timer = setInterval(refresh, 3000);
    onLeave(() => clearInterval(timer));
    return [
      h('h2', { text: 'Media storage' }),
      h('p', null, 'Status: ', status),
      h('div', { class: 'bar' }, select,
        h('button', { type: 'button', id: 'storage-enable', text: 'Record into this stream', onclick: () => set(true) }),
        h('button', { type: 'button', id: 'storage-disable', text: 'Disable', onclick: () => set(false) })),
      recorded, sessions.wrap,
    ];
  }

  // --- API inspector ----------------------------------------------------------------------
  function inspectorPage() {
    const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite' });
    const filter = h('input', { id: 'inspector-filter', type: 'search', placeholder: 'channel name or ARN', oninput: applyFilter });
    const count = h('span', { class: 'muted', id: 'inspector-count' });
    const t = table('calls', ['Time', 'Operation', 'Access key id', 'Channel', 'Status', 'Error code', 'Latency'], 'API calls, newest first');
    main.replaceChildren(h('h1', { text: 'API inspector' }),
      h('div', { class: 'bar' }, h('label', { for: 'inspector-filter' }, 'Filter by channel', filter), count), msg, t.wrap);
    const seen = new Set();
    let ready = false;
    const early = [];
    function matches(tr) { const f = filter.value.trim().toLowerCase(); return !f || tr.dataset.channel.toLowerCase().includes(f); }
    function applyFilter() {
      let n = 0;
      for (const tr of t.tbody.children) { tr.hidden = !matches(tr); if (!tr.hidden) n++; }
      count.textContent = `${n} of ${t.tbody.childElementCount} calls`;
    }
    function add(c) {
      if (seen.has(c.seq)) return;
      seen.add(c.seq);
      const ok = c.status < 400;
      const tr = h('tr', { 'data-seq': c.seq, 'data-channel': c.channel || '', 'data-operation': c.operation, 'data-error': c.errorCode || '' },
        h('td', { text: `${new Date(c.at).toLocaleDateString()} ${clock(c.at)}` }), h('td', { text: c.operation }),
        h('td', { class: 'mono', text: c.accessKeyId || '' }), h('td', { title: c.channel || '', text: c.channel ? chName(c.channel) : '' }),
        h('td', { class: `num ${ok ? 'ok' : 'bad'}`, text: c.status }), h('td', { class: ok ? '' : 'bad', text: c.errorCode || '' }),
        h('td', { class: 'num', text: `${typeof c.latencyMs === 'number' ? (c.latencyMs < 10 ? c.latencyMs.toFixed(2) : c.latencyMs < 100 ? c.latencyMs.toFixed(1) : Math.round(c.latencyMs)) : '?'} ms` }));
      tr.hidden = !matches(tr);
      let before = t.tbody.firstChild;
      while (before && Number(before.dataset.seq) > c.seq) before = before.nextSibling;
      t.tbody.insertBefore(tr, before);
      while (t.tbody.childElementCount > 1000) { seen.delete(Number(t.tbody.lastChild.dataset.seq)); t.tbody.lastChild.remove(); }
    }
    const es = new EventSource('/console/api/inspector/stream');
    es.addEventListener('call', (ev) => { const c = JSON.parse(ev.data); if (ready) { add(c); applyFilter(); } else early.push(c); });
    es.onerror = () => setMsg(msg, 'live stream interrupted; reconnecting…', 'warn');
    es.onopen = () => setMsg(msg, '');
    onLeave(() => es.close());
    api('/console/api/inspector').then(({ calls }) => {
      for (const c of calls) add(c);
      for (const c of early) add(c);
      ready = true;
      applyFilter();
    }, (e) => setMsg(msg, e.message, 'bad'));
  }

  // --- try a call -------------------------------------------------------------------------
  function callPage() {
    const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite', id: 'call-msg' });
    const channel = h('select', { id: 'call-channel', required: true });
    const role = h('select', { id: 'call-role', onchange: () => { clientId.disabled = role.value !== 'VIEWER'; } },
      h('option', { value: 'MASTER', text: 'master' }), h('option', { value: 'VIEWER', text: 'viewer' }));
    const clientId = h('input', { id: 'call-client-id', value: `viewer-${Math.random().toString(36).slice(2, 8)}`, disabled: true, pattern: '[a-zA-Z0-9_.\\-]{1,256}' });
    const relay = h('input', { type: 'checkbox', id: 'call-relay' });
    const pattern = h('input', { type: 'checkbox', id: 'call-pattern' });
    const start = h('button', { class: 'primary', type: 'submit', id: 'call-start', text: 'Start' });
    const stop = h('button', { type: 'button', id: 'call-stop', text: 'Hang up', disabled: true, onclick: () => { hangUp(); setMsg(msg, 'hung up'); } });
    const sigState = h('dd', { id: 'call-signaling', text: 'closed' });
    const callState = h('dd', { id: 'call-state', text: 'new' });
    const iceState = h('dd', { id: 'call-ice', text: '—' });
    const pair = h('dd', { id: 'call-pair', text: '—' });
    const peer = h('dd', { id: 'call-peer', text: '—' });
    const localVideo = h('video', { id: 'local-video', autoplay: true, playsinline: true, muted: true, 'aria-label': 'local video' });
    const remoteVideo = h('video', { id: 'remote-video', autoplay: true, playsinline: true, muted: true, 'aria-label': 'remote video' });
    const logList = h('ol', { id: 'call-log', class: 'mono', reversed: true });
    const form = h('form', { class: 'inline', id: 'call-form', onsubmit: (ev) => { ev.preventDefault(); begin(); } },
      h('label', { for: 'call-channel' }, 'Channel', channel), h('label', { for: 'call-role' }, 'Role', role),
      h('label', { for: 'call-client-id' }, 'Client id (viewer)', clientId),
      h('label', { class: 'check', for: 'call-relay' }, relay, 'relay only (TURN)'),
      h('label', { class: 'check', for: 'call-pattern' }, pattern, 'test pattern instead of the camera'),
      start, stop);
    main.replaceChildren(h('h1', { text: 'Try a call' }),
      h('p', { class: 'muted', text: 'Open this page in two tabs: start a master in one and a viewer in the other, on the same channel.' }),
      form, msg,
      h('div', { class: 'panel' }, h('dl', { class: 'kv' },
        h('dt', { text: 'signaling' }), sigState, h('dt', { text: 'connection state' }), callState,
        h('dt', { text: 'ICE state' }), iceState, h('dt', { text: 'peer' }), peer, h('dt', { text: 'selected pair' }), pair)),
      h('div', { class: 'videos' }, h('figure', null, localVideo, h('figcaption', { text: 'local' })), h('figure', null, remoteVideo, h('figcaption', { text: 'remote' }))),
      h('h2', { text: 'Signaling log' }), logList);

    const log = (text, cls) => { logList.prepend(h('li', { class: cls, text: `${clock(Date.now())} ${text}` })); while (logList.childElementCount > 100) logList.lastChild.remove(); };
    const play = (v, stream) => { v.srcObject = stream; const p = v.play(); if (p) p.catch(() => {}); };
    api('/console/api/channels').then(({ channels }) => {
      channel.replaceChildren(...channels.filter((c) => c.status === 'ACTIVE').sort((a, b) => a.name.localeCompare(b.name)).map((c) => h('option', { value: c.arn, text: c.name })));
      if (!channels.length) setMsg(msg, 'no channels: create one on the Channels page first', 'warn');
    }, (e) => setMsg(msg, e.message, 'bad'));

    let ws = null, pc = null, remoteId = null, stream = null, stopPattern = null, statsTimer = null, pending = [];
    function hangUp() {
      if (statsTimer) clearInterval(statsTimer);
      statsTimer = null;
      if (ws) { ws.onclose = null; ws.close(); }
      if (pc) pc.close();
      if (stream) stream.getTracks().forEach((tr) => tr.stop());
      if (stopPattern) stopPattern();
      ws = pc = stream = stopPattern = null;
      pending = [];
      sigState.textContent = 'closed';
      start.disabled = false;
      stop.disabled = true;
    }
    onLeave(hangUp);

    function testPattern() {
      const c = h('canvas', { width: 640, height: 480 });
      const g = c.getContext('2d');
      const t0 = Date.now();
      const draw = () => {
        const t = (Date.now() - t0) / 1000;
        const hue = (t * 40) % 360;
        g.fillStyle = `hsl(${hue},60%,35%)`;
        g.fillRect(0, 0, 640, 480);
        g.fillStyle = '#fff';
        g.fillRect((t * 160) % 640, 0, 40, 480);
        g.font = 'bold 40px sans-serif';
        g.fillText(`kvs-signaling ${role.value.toLowerCase()}`, 30, 90);
        g.fillText(new Date().toLocaleTimeString(), 30, 150);
      };
      draw();
      const timer = setInterval(draw, 66);
      stopPattern = () => clearInterval(timer);
      return c.captureStream(15);
    }
    async function media() {
      if (!pattern.checked && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
        try {
          return await Promise.race([
            navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false }),
            new Promise((_, rej) => setTimeout(() => rej(new Error('no answer')), 5000)),
          ]);
        } catch (e) { log(`camera unavailable (${e.name || e.message}): using a test pattern`, 'warn'); }
      } else if (!pattern.checked) log('no camera access on this page (not a secure context): using a test pattern', 'warn');
      return testPattern();
    }
    const send = (action, payload) => {
      const m = { action, messagePayload: b64(JSON.stringify(payload)) };
      if (role.value === 'MASTER') m.recipientClientId = remoteId;
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m));
    };
    function newPc(iceServers) {
      if (pc) pc.close();
      pending = [];
      const p = new RTCPeerConnection({ iceServers, iceTransportPolicy: relay.checked ? 'relay' : 'all' });
      stream.getTracks().forEach((tr) => p.addTrack(tr, stream));
      p.onicecandidate = ({ candidate }) => { if (candidate && p === pc) send('ICE_CANDIDATE', candidate.toJSON ? candidate.toJSON() : candidate); };
      p.ontrack = (ev) => play(remoteVideo, ev.streams[0] || new MediaStream([ev.track]));
      p.onconnectionstatechange = () => { callState.textContent = p.connectionState; callState.className = p.connectionState === 'connected' ? 'ok' : /failed|closed/.test(p.connectionState) ? 'bad' : ''; log(`connection ${p.connectionState}`);
        if (p.connectionState === 'connected') setMsg(msg, 'in a call', 'ok');
        else if (p.connectionState === 'failed') setMsg(msg, 'the call failed (no ICE path); try again, or without relay only', 'bad');
      };
      p.oniceconnectionstatechange = () => { iceState.textContent = p.iceConnectionState; };
      callState.textContent = p.connectionState;
      pc = p;
      if (!statsTimer) statsTimer = setInterval(stats, 1000);
      return p;
    }
    async function addCandidate(c) {
      if (!pc || !pc.remoteDescription) { pending.push(c); return; }
      try { await pc.addIceCandidate(c); } catch (e) { log(`bad candidate: ${e.message}`, 'bad'); }
    }
    async function flush() { const p = pending; pending = []; for (const c of p) await addCandidate(c); }
    async function stats() {
      if (!pc) return;
      const s = await pc.getStats();
      let sel = null;
      s.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) sel = s.get(r.selectedCandidatePairId); });
      if (!sel) s.forEach((r) => { if (r.type === 'candidate-pair' && (r.selected || (r.nominated && r.state === 'succeeded'))) sel = r; });
      if (!sel) return;
      const l = s.get(sel.localCandidateId), r = s.get(sel.remoteCandidateId);
      if (!l || !r) return;
      const d = (c) => `${c.candidateType} ${c.address || c.ip}:${c.port} ${c.protocol}${c.relayProtocol ? ` (relay over ${c.relayProtocol})` : ''}`;
      const text = `local ${d(l)} ⇄ remote ${d(r)}`;
      if (pair.textContent !== text) { pair.textContent = text; log(`selected pair: ${text}`); }
      pair.dataset.localType = l.candidateType;
      pair.dataset.remoteType = r.candidateType;
    }
    async function onMessage(ev, iceServers) {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { log('unparseable frame', 'bad'); return; }
      const type = m.messageType;
      let payload = null;
      if (m.messagePayload) { try { payload = JSON.parse(unb64(m.messagePayload)); } catch (_) { log(`${type}: undecodable payload`, 'bad'); return; } }
      log(`← ${type}${m.senderClientId ? ` from ${m.senderClientId}` : ''}`);
      try {
        if (type === 'SDP_OFFER' && role.value === 'MASTER') {
          remoteId = m.senderClientId;
          peer.textContent = remoteId || '(unknown viewer)';
          const p = newPc(iceServers);
          await p.setRemoteDescription(payload);
          await p.setLocalDescription(await p.createAnswer());
          send('SDP_ANSWER', p.localDescription.toJSON());
          log(`→ SDP_ANSWER to ${remoteId}`);
          await flush();
        } else if (type === 'SDP_ANSWER' && role.value === 'VIEWER' && pc) {
          await pc.setRemoteDescription(payload);
          await flush();
        } else if (type === 'ICE_CANDIDATE') {
          if (role.value === 'MASTER' && m.senderClientId !== remoteId) return;
          await addCandidate(payload);
        } else if (type === 'GO_AWAY') {
          log('GO_AWAY: the server asks to reconnect; hanging up', 'warn');
          setMsg(msg, 'GO_AWAY received: start again', 'warn');
          hangUp();
        } else if (type === 'RECONNECT_ICE_SERVER') {
          log('RECONNECT_ICE_SERVER: new ICE servers needed for the next call', 'warn');
        } else if (type === 'STATUS_RESPONSE') {
          const st = m.statusResponse || {};
          log(`status: ${st.errorType}: ${st.description}`, 'bad');
        }
      } catch (e) { log(`${type}: ${e.message}`, 'bad'); }
    }
    async function begin() {
      hangUp();
      if (!channel.value) { setMsg(msg, 'choose a channel', 'bad'); return; }
      start.disabled = true;
      stop.disabled = false;
      callState.textContent = 'new';
      pair.textContent = '—';
      delete pair.dataset.localType;
      delete pair.dataset.remoteType;
      try {
        const body = { ChannelARN: channel.value, Role: role.value };
        if (role.value === 'VIEWER') body.ClientId = clientId.value.trim();
        const { url, iceServers } = await api('/console/api/signaling-url', { method: 'POST', body });
        stream = await media();
        play(localVideo, stream);
        ws = new WebSocket(url);
        sigState.textContent = 'connecting';
        ws.onopen = async () => {
          sigState.textContent = 'open';
          log(`signaling open as ${role.value.toLowerCase()}`);
          setMsg(msg, role.value === 'MASTER' ? 'waiting for a viewer…' : 'calling the master…');
          if (role.value === 'VIEWER') {
            remoteId = null;
            peer.textContent = 'the master';
            const p = newPc(iceServers);
            await p.setLocalDescription(await p.createOffer());
            send('SDP_OFFER', p.localDescription.toJSON());
            log('→ SDP_OFFER to the master');
          }
        };
        ws.onmessage = (ev) => onMessage(ev, iceServers);
        ws.onclose = (ev) => { sigState.textContent = `closed (${ev.code})`; log(`signaling closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`, 'warn'); };
        ws.onerror = () => log('signaling error', 'bad');
      } catch (e) {
        setMsg(msg, e.message, 'bad');
        hangUp();
      }
    }
  }

  // --- router -----------------------------------------------------------------------------
  function route(focus) {
    for (const fn of cleanups.splice(0)) { try { fn(); } catch (_) { /* already gone */ } }
    const hash = location.hash || '#/channels';
    const page = hash.split('/')[1] || 'channels';
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (a.dataset.nav === page || (page === 'channel' && a.dataset.nav === 'channels')) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    if (!who) return;
    if (who.mode === 'credentials' && !who.signedIn) { document.title = 'Sign in · kvs-signaling'; signInPage(); return; }
    if (hash.startsWith('#/channel/')) { document.title = 'Live view · kvs-signaling'; livePage(decodeURIComponent(hash.slice('#/channel/'.length))); }
    else if (page === 'streams') { document.title = 'Streams · kvs-signaling'; streamsPage(); }
    else if (page === 'inspector') { document.title = 'API inspector · kvs-signaling'; inspectorPage(); }
    else if (page === 'call') { document.title = 'Try a call · kvs-signaling'; callPage(); }
    else { document.title = 'Channels · kvs-signaling'; channelsPage(); }
    if (focus) main.focus({ preventScroll: true });
  }
  window.addEventListener('hashchange', () => route(true));

  api('/console/api/whoami').then((w) => { who = w; renderWho(); route(); }, (e) => {
    main.replaceChildren(h('h1', { text: 'Console unavailable' }), h('p', { class: 'bad', text: e.message }));
  });
})();
