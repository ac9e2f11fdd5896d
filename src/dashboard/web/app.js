// The wstrace dashboard: one page, hash routes, data from this node's admin
// API. The overview is fed by /api/samples (the last 15 minutes) and then
// /api/samples/stream (Server-Sent Events, one sample per second).
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const view = () => $('#view');
const api = async (path) => {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'onclick' || k === 'onsubmit' || k === 'oninput') e[k] = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const fmt = {
  int: (n) => (n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en-US')),
  ms: (n) => (n === null || n === undefined ? '–' : n < 1 ? `${(n * 1000).toFixed(0)} µs` : `${n.toFixed(n < 10 ? 2 : 0)} ms`),
  bytes: (n) => {
    if (n === null || n === undefined) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
  },
  age: (s) => (s < 60 ? `${s.toFixed(0)} s` : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`),
};

// --- overview ---------------------------------------------------------------

const overview = {
  samples: [],
  charts: [],
  capacity: 900,
};

const CHARTS = [
  { id: 'connections', title: 'Connections', series: [['connections', (s) => s.connections]] },
  { id: 'messages', title: 'Messages per second', series: [['in', (s) => rate(s, s.messages_in)], ['out', (s) => rate(s, s.messages_out)]] },
  { id: 'bytes', title: 'Bytes per second', series: [['in', (s) => rate(s, s.bytes_in)], ['out', (s) => rate(s, s.bytes_out)]] },
  { id: 'latency', title: 'Delivery latency (ms)', series: [['p50', (s) => s.delivery_p50_ms], ['p99', (s) => s.delivery_p99_ms]] },
  { id: 'drops', title: 'Drops per second, by reason', series: 'drops' },
  { id: 'rtt', title: 'Heartbeat RTT (ms)', series: [['p50', (s) => s.rtt_p50_ms], ['p99', (s) => s.rtt_p99_ms]] },
  { id: 'threads', title: 'Sockets per thread', series: 'threads' },
  { id: 'cluster', title: 'Cluster link (1 = up)', series: [['link', (s) => (s.cluster_link === null ? null : s.cluster_link === 'up' ? 1 : 0)]] },
];
const COLORS = ['#6e8ef5', '#f59e0b', '#4cc38a', '#e5484d', '#8b5cf6', '#14b8a6', '#ec4899', '#64748b'];

function rate(s, n) {
  return s.interval_ms > 0 ? (n * 1000) / s.interval_ms : 0;
}

function seriesOf(def, samples) {
  if (def.series === 'drops') {
    const reasons = [...new Set(samples.flatMap((s) => Object.keys(s.drops)))].sort();
    return (reasons.length ? reasons : ['none']).map((r) => [r, (s) => rate(s, s.drops[r] || 0)]);
  }
  if (def.series === 'threads') {
    const n = Math.max(1, ...samples.map((s) => s.sockets_per_thread.length));
    return [...Array(n).keys()].map((i) => [`thread ${i}`, (s) => s.sockets_per_thread[i] ?? null]);
  }
  return def.series;
}

function sums(samples) {
  const t = { messages_in: 0, messages_out: 0, bytes_in: 0, bytes_out: 0, drops: 0 };
  for (const s of samples) {
    t.messages_in += s.messages_in;
    t.messages_out += s.messages_out;
    t.bytes_in += s.bytes_in;
    t.bytes_out += s.bytes_out;
    for (const n of Object.values(s.drops)) t.drops += n;
  }
  return t;
}

function tile(key, label, value) {
  return el('div', { class: 'tile' }, el('div', { class: 'label' }, label), el('div', { class: 'value', 'data-stat': key }, value));
}

function renderTiles() {
  const box = $('#tiles');
  if (!box) return;
  const s = overview.samples;
  const last = s[s.length - 1];
  const t = sums(s);
  box.replaceChildren(
    tile('connections', 'Connections', fmt.int(last?.connections)),
    tile('messages_in', 'Messages in, 15 min', fmt.int(t.messages_in)),
    tile('messages_out', 'Messages out, 15 min', fmt.int(t.messages_out)),
    tile('bytes_out', 'Bytes out, 15 min', fmt.bytes(t.bytes_out)),
    tile('drops', 'Drops, 15 min', fmt.int(t.drops)),
    tile('delivery_p99', 'Delivery p99, last s', fmt.ms(last?.delivery_p99_ms ?? null)),
    tile('rtt_p50', 'Heartbeat RTT p50', fmt.ms(lastValue(s, 'rtt_p50_ms'))),
    tile('cluster', 'Cluster link', last?.cluster_link ?? 'standalone'),
  );
}

function lastValue(samples, key) {
  for (let i = samples.length - 1; i >= 0; i--) if (samples[i][key] !== null) return samples[i][key];
  return null;
}

function drawCharts() {
  const s = overview.samples;
  const labels = s.map((x) => new Date(x.t).toLocaleTimeString('en-GB'));
  for (const c of overview.charts) {
    const series = seriesOf(c.def, s);
    c.chart.data.labels = labels;
    c.chart.data.datasets = series.map(([name, f], i) => ({
      label: name, data: s.map(f), borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length],
      borderWidth: 1.5, pointRadius: 0, spanGaps: false, tension: 0.2,
    }));
    c.chart.update('none');
  }
}

async function showOverview() {
  view().replaceChildren(
    el('h2', {}, 'Overview ', el('span', { class: 'muted' }, '— the last 15 minutes, one sample per second')),
    el('div', { class: 'tiles', id: 'tiles' }),
    el('div', { class: 'charts' }, CHARTS.map((d) => el('div', { class: 'chart', 'data-chart': d.id }, el('h3', {}, d.title), el('canvas')))),
  );
  renderTiles();
  overview.charts = CHARTS.map((def) => {
    const canvas = $(`[data-chart="${def.id}"] canvas`);
    const chart = typeof Chart === 'function'
      ? new Chart(canvas, {
        type: 'line',
        data: { labels: [], datasets: [] },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false, normalized: true,
          interaction: { mode: 'index', intersect: false },
          scales: { x: { ticks: { maxTicksLimit: 6, autoSkip: true } }, y: { beginAtZero: true } },
          plugins: { legend: { labels: { boxWidth: 10 } } },
        },
      })
      : { data: {}, update() {} };
    return { def, chart };
  });
  drawCharts();
}

function onSample(sample) {
  const s = overview.samples;
  if (s.length && s[s.length - 1].t >= sample.t) return;
  s.push(sample);
  if (s.length > overview.capacity) s.splice(0, s.length - overview.capacity);
  if (route().page === 'overview') {
    renderTiles();
    drawCharts();
  }
}

async function startSamples() {
  const first = await api('/api/samples');
  overview.capacity = first.capacity;
  for (const s of first.samples) onSample(s);
  const live = $('#live');
  const connect = () => {
    const es = new EventSource('/api/samples/stream');
    es.onopen = () => { live.textContent = '● live'; live.className = 'up'; };
    es.onmessage = (e) => onSample(JSON.parse(e.data));
    es.onerror = () => { live.textContent = '○ reconnecting'; live.className = ''; };
  };
  connect();
}

// --- connections --------------------------------------------------------------

const PAGE = 50;

async function showConnections(q) {
  const params = new URLSearchParams(q);
  const offset = Number(params.get('offset') || 0);
  const form = el('form', { class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const k of ['user', 'channel', 'peer']) {
      const v = $(`[name=${k}]`, form).value.trim();
      if (v) p.set(k, v);
    }
    location.hash = `#/connections?${p}`;
  } },
  ['user', 'channel', 'peer'].map((k) => el('input', { name: k, placeholder: k, value: params.get(k) || '' })),
  el('button', {}, 'Filter'));
  const query = new URLSearchParams();
  for (const k of ['user', 'channel', 'peer']) if (params.get(k)) query.set(k, params.get(k));
  query.set('limit', String(PAGE));
  query.set('offset', String(offset));
  const data = await api(`/api/connections?${query}`);
  const rows = data.connections.map((c) => el('tr', { class: 'link', 'data-connection': c.id, onclick: () => { location.hash = `#/connections/${c.id}`; } },
    el('td', {}, c.id), el('td', {}, c.user_id || ''), el('td', {}, c.peer), el('td', {}, c.state),
    el('td', {}, fmt.age(c.connected_seconds)), el('td', {}, c.subscriptions), el('td', {}, fmt.ms(c.rtt_ms || null)),
    el('td', {}, fmt.bytes(c.queued_bytes)), el('td', {}, c.messages_dropped), el('td', {}, fmt.int(c.messages_received)),
    el('td', {}, fmt.int(c.messages_sent)), el('td', {}, c.thread)));
  const nav = (o) => {
    const p = new URLSearchParams(params);
    p.set('offset', String(o));
    return `#/connections?${p}`;
  };
  view().replaceChildren(
    el('h2', {}, `Connections `, el('span', { class: 'muted', id: 'conn-total' }, `${data.total} matching`), data.partial ? el('span', { class: 'error' }, ' (partial: a thread did not answer)') : null),
    form,
    el('table', { id: 'connections' },
      el('thead', {}, el('tr', {}, ['id', 'user', 'peer', 'state', 'age', 'subs', 'rtt', 'queued', 'drops', 'in', 'out', 'thread'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)),
    el('div', { class: 'pager' },
      offset > 0 ? el('a', { href: nav(Math.max(0, offset - PAGE)) }, '← previous') : null,
      el('span', { class: 'muted' }, data.total ? `${offset + 1}–${Math.min(offset + PAGE, data.total)} of ${data.total}` : 'none'),
      offset + PAGE < data.total ? el('a', { href: nav(offset + PAGE) }, 'next →') : null),
  );
}

function kv(obj, keys) {
  return el('dl', { class: 'kv' }, keys.flatMap(([k, label, f]) => [el('dt', {}, label), el('dd', {}, f ? f(obj[k]) : String(obj[k] ?? ''))]));
}

async function showConnection(id) {
  const r = await fetch(`/api/connections/${encodeURIComponent(id)}`, { cache: 'no-store' });
  if (r.status === 404) {
    view().replaceChildren(el('h2', {}, `Connection ${id}`), el('p', {}, 'Not open any more. Its trace, once exported, is under Traces.'));
    return;
  }
  const { connection: c } = await r.json();
  view().replaceChildren(
    el('h2', {}, `Connection ${c.id}`, c.user_id ? ` — ${c.user_id}` : ''),
    kv(c, [['peer', 'peer'], ['state', 'state'], ['connected_seconds', 'age', fmt.age], ['subscriptions', 'subscriptions'],
      ['rtt_ms', 'heartbeat RTT', (v) => fmt.ms(v || null)], ['queued_bytes', 'queued', fmt.bytes],
      ['kernel_queued_bytes', 'in the kernel', fmt.bytes], ['messages_received', 'messages in'], ['messages_sent', 'messages out'],
      ['bytes_received', 'bytes in', fmt.bytes], ['bytes_sent', 'bytes out', fmt.bytes], ['errors', 'errors'],
      ['messages_dropped', 'dropped'], ['compression', 'compression'], ['thread', 'thread'], ['span_id', 'connection span'],
      ['sampled', 'sampled']]),
    el('p', {}, el('a', { href: `#/traces/${c.trace_id}`, id: 'conn-trace' }, `trace ${c.trace_id}`),
      el('span', { class: 'muted' }, ' (the upgrade now; the connection span when it ends)')),
    el('h2', {}, 'Span events so far'),
    c.events.length
      ? el('table', { id: 'conn-events' }, el('thead', {}, el('tr', {}, el('th', {}, 'time'), el('th', {}, 'event'), el('th', {}, 'attributes'))),
        el('tbody', {}, c.events.map((e) => el('tr', {}, el('td', {}, new Date(e.time_unix_nano / 1e6).toISOString()), el('td', {}, e.name), el('td', {}, JSON.stringify(e.attributes))))))
      : el('p', { class: 'muted' }, 'none (timeouts, protocol errors, slow-consumer drops and token refreshes appear here)'),
  );
}

// --- channels -------------------------------------------------------------------

let lastChannels = null;

async function showChannels() {
  const data = await api('/api/channels');
  const now = performance.now();
  const rates = new Map();
  if (lastChannels) {
    const dt = (now - lastChannels.at) / 1000;
    for (const c of data.channels) {
      const before = lastChannels.offsets.get(c.name);
      if (before !== undefined && c.offset !== undefined && dt > 0) rates.set(c.name, (c.offset - before) / dt);
    }
  }
  lastChannels = { at: now, offsets: new Map(data.channels.map((c) => [c.name, c.offset])) };
  view().replaceChildren(
    el('h2', {}, 'Channels ', el('span', { class: 'muted' }, `${data.total ?? data.channels.length} — refreshed every 2 s; rate from the offsets`)),
    el('table', { id: 'channels' },
      el('thead', {}, el('tr', {}, ['channel', 'subscribers', 'messages/s', 'offset', 'epoch', 'history', 'history bytes'].map((h) => el('th', {}, h)))),
      el('tbody', {}, data.channels.map((c) => el('tr', { 'data-channel': c.name },
        el('td', {}, c.name), el('td', {}, c.subscribers), el('td', {}, rates.has(c.name) ? rates.get(c.name).toFixed(1) : '–'),
        el('td', {}, c.offset ?? '–'), el('td', {}, c.epoch ?? '–'), el('td', {}, c.history?.entries ?? '–'),
        el('td', {}, c.history ? fmt.bytes(c.history.bytes) : '–'))))),
  );
}

// --- traces -----------------------------------------------------------------------

function groupTraces(spans) {
  const byTrace = new Map();
  for (const s of spans) {
    if (!byTrace.has(s.trace_id)) byTrace.set(s.trace_id, []);
    byTrace.get(s.trace_id).push(s);
  }
  return [...byTrace.entries()].map(([id, list]) => {
    const ids = new Set(list.map((s) => s.span_id));
    const root = list.find((s) => !s.parent_span_id || !ids.has(s.parent_span_id)) || list[0];
    const start = Math.min(...list.map((s) => s.start_unix_nano));
    const end = Math.max(...list.map((s) => s.end_unix_nano));
    const channel = list.map((s) => s.attributes['messaging.destination.name']).find(Boolean) || '';
    return { id, root, spans: list.length, start, duration_ms: (end - start) / 1e6, error: list.some((s) => s.status.code === 'ERROR'), channel };
  }).sort((a, b) => b.start - a.start);
}

async function showTraces(q) {
  const params = new URLSearchParams(q);
  const data = await api('/api/traces?limit=2000');
  const f = { name: params.get('name') || '', status: params.get('status') || '', min: Number(params.get('min_ms') || 0), channel: params.get('channel') || '' };
  const traces = groupTraces(data.spans).filter((t) => (!f.name || t.root.name.includes(f.name))
    && (!f.status || (f.status === 'error') === t.error) && t.duration_ms >= f.min && (!f.channel || t.channel.includes(f.channel)));
  const form = el('form', { class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const k of ['name', 'status', 'min_ms', 'channel']) {
      const v = $(`[name=${k}]`, form).value.trim();
      if (v) p.set(k, v);
    }
    location.hash = `#/traces?${p}`;
  } },
  el('input', { name: 'name', placeholder: 'root span name', value: f.name }),
  el('select', { name: 'status' }, el('option', { value: '' }, 'any status'), el('option', { value: 'ok', selected: f.status === 'ok' }, 'ok'), el('option', { value: 'error', selected: f.status === 'error' }, 'error')),
  el('input', { name: 'min_ms', placeholder: 'min ms', size: 6, value: params.get('min_ms') || '' }),
  el('input', { name: 'channel', placeholder: 'channel', value: f.channel }),
  el('button', {}, 'Filter'));
  view().replaceChildren(
    el('h2', {}, 'Recent traces ', el('span', { class: 'muted' }, `${traces.length} — from this node's span buffer (--trace-buffer)`)),
    form,
    el('table', { id: 'traces' },
      el('thead', {}, el('tr', {}, ['started', 'root span', 'spans', 'duration', 'channel', 'status', 'trace id'].map((h) => el('th', {}, h)))),
      el('tbody', {}, traces.slice(0, 500).map((t) => el('tr', { class: 'link', 'data-trace': t.id, onclick: () => { location.hash = `#/traces/${t.id}`; } },
        el('td', {}, new Date(t.start / 1e6).toLocaleTimeString('en-GB')), el('td', {}, t.root.name), el('td', {}, t.spans),
        el('td', {}, fmt.ms(t.duration_ms)), el('td', {}, t.channel), el('td', { class: t.error ? 'bad' : '' }, t.error ? 'error' : 'ok'),
        el('td', { class: 'muted' }, t.id))))),
  );
}

function attrsText(a) {
  return Object.entries(a).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n');
}

async function showTrace(id) {
  const data = await api(`/api/traces?trace_id=${encodeURIComponent(id)}&limit=10000`);
  const spans = data.spans;
  if (!spans.length) {
    view().replaceChildren(el('h2', {}, `Trace ${id}`), el('p', {}, `No span of this trace is in the span buffer of ${data.nodes ? 'any node that answered' : 'this node'} (yet, or any more).`));
    return;
  }
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent_span_id && byId.has(s.parent_span_id)) {
      if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
      children.get(s.parent_span_id).push(s);
    } else {
      roots.push(s);
    }
  }
  const order = [];
  const walk = (s, depth) => {
    order.push([s, depth]);
    for (const c of (children.get(s.span_id) || []).sort((a, b) => a.start_unix_nano - b.start_unix_nano)) walk(c, depth + 1);
  };
  for (const r of roots.sort((a, b) => a.start_unix_nano - b.start_unix_nano)) walk(r, 0);
  const t0 = Math.min(...spans.map((s) => s.start_unix_nano));
  const t1 = Math.max(...spans.map((s) => s.end_unix_nano));
  const total = Math.max(1, t1 - t0);
  // With --redis the server asks every node of the cluster for its spans.
  const clustered = Array.isArray(data.nodes);
  const rows = order.map(([s, depth]) => {
    const left = ((s.start_unix_nano - t0) / total) * 100;
    const width = Math.max(0.2, ((s.end_unix_nano - s.start_unix_nano) / total) * 100);
    const detail = el('div', { class: 'span-detail', hidden: true },
      el('div', {}, `${s.kind} · ${s.status.code}${s.status.message ? `: ${s.status.message}` : ''} · span ${s.span_id}${s.parent_span_id ? ` · parent ${s.parent_span_id}` : ''} · +${((s.start_unix_nano - t0) / 1e6).toFixed(3)} ms`),
      el('pre', {}, attrsText(s.attributes)),
      s.events.length ? el('div', {}, el('strong', {}, 'events'), el('pre', {}, s.events.map((e) => `+${((e.time_unix_nano - t0) / 1e6).toFixed(3)} ms ${e.name} ${JSON.stringify(e.attributes)}`).join('\n'))) : null,
      s.links.length ? el('div', {}, el('strong', {}, 'links'), s.links.map((l) => el('div', {}, el('a', { href: `#/traces/${l.trace_id}` }, `${l.trace_id}/${l.span_id}`)))) : null);
    const row = el('div', { class: 'span-row', 'data-span-id': s.span_id, onclick: () => { detail.hidden = !detail.hidden; } },
      el('div', { class: 'span-name', style: `padding-left:${0.5 + depth * 1.1}rem`, title: `${s.name} on ${s.node || 'this node'}` },
        s.name, clustered ? el('span', { class: 'span-node' }, s.node) : null),
      el('div', { class: 'span-track' }, el('div', { class: `span-bar kind-${s.kind} status-${s.status.code}`, style: `left:${left}%;width:${width}%` })),
      el('div', { class: 'span-dur' }, fmt.ms(s.duration_ms)), detail);
    return row;
  });
  view().replaceChildren(
    el('h2', {}, `Trace ${id} `, el('span', { class: 'muted' }, `${spans.length} spans, ${fmt.ms(total / 1e6)}`)),
    el('p', { class: 'muted', id: 'trace-nodes' }, clustered
      ? (data.error ? `${data.error}; the other nodes' spans are in your OTLP backend.`
        : `Spans from ${data.nodes.length} node${data.nodes.length === 1 ? '' : 's'} (${data.nodes.join(', ')})${data.missing ? `; ${data.missing} did not answer within 2 s` : ''}.`)
      : 'Spans this node recorded (it runs alone).'),
    el('div', { class: 'waterfall', id: 'waterfall' }, rows),
  );
}

// --- routing --------------------------------------------------------------------------

function route() {
  const h = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = h.split('?');
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'connections') return parts[1] ? { page: 'connection', id: parts[1] } : { page: 'connections', query };
  if (parts[0] === 'channels') return { page: 'channels' };
  if (parts[0] === 'traces') return parts[1] ? { page: 'trace', id: parts[1] } : { page: 'traces', query };
  return { page: 'overview' };
}

let refreshTimer;
async function render() {
  clearInterval(refreshTimer);
  const r = route();
  const nav = { overview: 'overview', connections: 'connections', connection: 'connections', channels: 'channels', traces: 'traces', trace: 'traces' }[r.page];
  document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', a.dataset.nav === nav));
  try {
    if (r.page === 'overview') await showOverview();
    else if (r.page === 'connections') await showConnections(r.query);
    else if (r.page === 'connection') await showConnection(r.id);
    else if (r.page === 'channels') {
      await showChannels();
      refreshTimer = setInterval(() => showChannels().catch(showError), 2000);
    } else if (r.page === 'traces') await showTraces(r.query);
    else await showTrace(r.id);
    document.body.dataset.ready = r.page;
  } catch (e) {
    showError(e);
  }
}

function showError(e) {
  view().replaceChildren(el('p', { class: 'error' }, String(e.message || e)));
}

// For scripts and tests: how many samples the overview holds.
window.dashboard = { samples: () => overview.samples.length };

window.addEventListener('hashchange', () => { delete document.body.dataset.ready; render(); });
(async () => {
  try {
    const s = await api('/api/stats');
    $('#node').textContent = `${s.node_id} · v${s.version} · ${s.threads} threads`;
  } catch (e) {
    $('#node').textContent = String(e.message || e);
  }
  startSamples().catch((e) => { $('#live').textContent = `○ ${e.message}`; });
  render();
})();
