// pykue dashboard: plain JavaScript over Kue's JSON API, live through /events (SSE).
// The view (state, type, page, size, order, open job) is kept in the URL: links and reloads restore it.
'use strict';
const STATES = ['inactive', 'active', 'delayed', 'complete', 'failed'];
const SIZES = [10, 20, 50];
const SEARCH_LIMIT = 1000;
const $ = (id) => document.getElementById(id);
const view = { state: 'active', type: '', order: 'asc', from: 0, size: 20, open: null, readOnly: false, down: false, stream: null };

class Unavailable extends Error {}

// The server answers 503 while Redis is down: a banner says so, and the live dot goes grey.
function down(message) {
  view.down = Boolean(message);
  $('banner').hidden = !message;
  $('banner').textContent = message ? `Redis is unavailable: the page is not up to date (${message})` : '';
  if (message) $('live').classList.remove('on');
  else if (view.stream && view.stream.readyState === EventSource.OPEN) $('live').classList.add('on');
}

async function api(method, path) {
  let res;
  try {
    res = await fetch(path, { method, credentials: 'same-origin' });
  } catch (e) {
    throw new Unavailable(`the dashboard does not answer: ${e.message}`);
  }
  if (res.status === 204) return null;
  let body;
  try {
    body = await res.json();
  } catch (e) {
    throw new Error(`${res.status} ${res.statusText}`);
  }
  if (res.status === 503) throw new Unavailable(body && body.error ? body.error : res.statusText);
  // Kue answers errors as {"error": message}, often with HTTP 200; a failed job's JSON has an error too
  const failure = body && !Array.isArray(body) && body.error !== undefined && body.id === undefined;
  if (!res.ok || failure) throw new Error(failure ? body.error : res.statusText);
  return body;
}

function when(ms) {
  return ms ? new Date(Number(ms)).toLocaleString() : '';
}

async function refreshStats() {
  const stats = await api('GET', '/stats');
  const counts = {};
  if (view.type) {
    await Promise.all(STATES.map(async (s) => { counts[s] = (await api('GET', `/jobs/${encodeURIComponent(view.type)}/${s}/stats`)).count; }));
  } else {
    for (const s of STATES) counts[s] = stats[s + 'Count'];
  }
  const nav = $('states');
  nav.replaceChildren(...STATES.map((s) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.state = s;
    b.className = s === view.state ? 'on' : '';
    b.append(s, Object.assign(document.createElement('b'), { textContent: counts[s] }));
    b.onclick = () => { view.state = s; view.from = 0; refresh(); };
    return b;
  }));
  const types = await api('GET', '/job/types');
  const sel = $('type');
  const known = new Set([...sel.options].map((o) => o.value));
  for (const t of types.sort()) if (!known.has(t)) sel.append(new Option(t, t));
}

let listSeq = 0;
async function refreshList() {
  const seq = ++listSeq;
  const to = view.from + view.size - 1;
  const path = view.type
    ? `/jobs/${encodeURIComponent(view.type)}/${view.state}/${view.from}..${to}/${view.order}`
    : `/jobs/${view.state}/${view.from}..${to}/${view.order}`;
  const jobs = await api('GET', path);
  if (seq !== listSeq) return; // the view changed meanwhile
  const rows = jobs.map((j) => {
    const tr = document.createElement('tr');
    tr.dataset.id = j.id;
    const cells = [j.id, j.type, '', j.priority, '', `${j.attempts.made}/${j.attempts.max}`, when(j.created_at)];
    for (const c of cells) tr.append(Object.assign(document.createElement('td'), { textContent: c }));
    tr.children[2].append(Object.assign(document.createElement('span'), { className: 'state ' + j.state, textContent: j.state }));
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('div');
    fill.style.width = `${Number(j.progress) || 0}%`;
    bar.append(fill);
    tr.children[4].append(bar);
    tr.onclick = () => openJob(j.id);
    return tr;
  });
  $('jobs').tBodies[0].replaceChildren(...rows);
  $('empty').hidden = rows.length > 0;
  $('page').textContent = ` ${view.from + 1}–${view.from + rows.length} `;
  $('prev').disabled = view.from === 0;
  $('next').disabled = rows.length < view.size;
}

// -- the view in the URL ---------------------------------------------------------
function fromUrl() {
  const p = new URLSearchParams(location.search);
  view.state = STATES.includes(p.get('state')) ? p.get('state') : 'active';
  view.type = p.get('type') || '';
  view.size = SIZES.includes(Number(p.get('size'))) ? Number(p.get('size')) : 20;
  view.order = p.get('order') === 'desc' ? 'desc' : 'asc';
  const page = Math.floor(Number(p.get('page')));
  view.from = page > 1 ? (page - 1) * view.size : 0;
  const job = p.get('job');
  view.open = job && /^\d+$/.test(job) ? job : null;
  const sel = $('type');
  if (view.type && ![...sel.options].some((o) => o.value === view.type)) sel.append(new Option(view.type, view.type));
  sel.value = view.type;
  $('order').value = view.order;
  $('size').value = String(view.size);
}

// A new view is a new history entry (back works); the same view is not pushed twice.
function toUrl() {
  const p = new URLSearchParams({ state: view.state });
  if (view.type) p.set('type', view.type);
  if (view.from) p.set('page', String(Math.floor(view.from / view.size) + 1));
  if (view.size !== 20) p.set('size', String(view.size));
  if (view.order !== 'asc') p.set('order', view.order);
  if (view.open) p.set('job', view.open);
  const url = `${location.pathname}?${p}`;
  if (url === location.pathname + location.search) return;
  if (location.search) history.pushState(null, '', url);
  else history.replaceState(null, '', url); // the first visit: no entry for the bare page
}

let countdown = null;
let openSeq = 0; // answers to an older openJob() are dropped: the newest click wins
function closeJob() {
  $('detail').hidden = true;
  view.open = null;
  clearInterval(countdown);
  toUrl();
}

// A job that cannot be shown closes the panel: it must never show one job under another's id.
async function openJob(id) {
  const seq = ++openSeq;
  let job;
  try {
    job = await api('GET', `/job/${encodeURIComponent(id)}`);
  } catch (e) {
    if (seq !== openSeq) return;
    if (e instanceof Unavailable) throw e;
    closeJob();
    $('find-message').textContent = e.message;
    return;
  }
  if (seq !== openSeq) return;
  view.open = String(job.id);
  toUrl();
  $('find-message').textContent = '';
  $('detail').hidden = false;
  $('d-id').textContent = job.id;
  $('d-type').textContent = job.type;
  $('d-state').textContent = job.state;
  $('d-state').className = 'state ' + job.state;
  $('d-priority').textContent = job.priority;
  $('d-attempts').textContent = `${job.attempts.made} made, ${job.attempts.remaining} left of ${job.attempts.max}`;
  $('d-bar').style.width = (Number(job.progress) || 0) + '%';
  $('d-data').textContent = JSON.stringify(job.data, null, 2);
  $('d-result-box').hidden = job.result === undefined;
  $('d-result').textContent = JSON.stringify(job.result, null, 2);
  $('d-error-box').hidden = !job.error;
  $('d-error').textContent = job.error || '';
  const times = [['created', job.created_at], ['promote at', job.promote_at], ['started', job.started_at],
    ['updated', job.updated_at], ['failed', job.failed_at], ['duration', job.duration && job.duration + ' ms'],
    ['worker', job.workerId]];
  $('d-times').replaceChildren(...times.filter(([, v]) => v).flatMap(([k, v]) => [
    Object.assign(document.createElement('dt'), { textContent: k }),
    Object.assign(document.createElement('dd'), { textContent: /^\d{13}$/.test(String(v)) ? when(v) : v })]));
  clearInterval(countdown);
  const cd = $('d-countdown');
  cd.hidden = job.state !== 'delayed';
  if (job.state === 'delayed') {
    const tick = () => { cd.textContent = `runs in ${Math.max(0, (Number(job.promote_at) - Date.now()) / 1000).toFixed(1)} s`; };
    tick();
    countdown = setInterval(tick, 200);
  }
  $('a-retry').hidden = job.state !== 'failed';
  $('a-requeue').hidden = job.state === 'inactive';
  const log = await api('GET', `/job/${encodeURIComponent(job.id)}/log`);
  if (seq !== openSeq) return;
  $('d-log').replaceChildren(...log.map((l) => Object.assign(document.createElement('li'), { textContent: l })));
}

async function act(what) {
  const id = view.open;
  if (!id) return;
  try {
    if (what === 'retry') {
      await api('POST', `/job/${id}/retry`);
    } else if (what === 'requeue') {
      const running = $('d-state').textContent === 'active';
      if (running && !window.confirm(`Job ${id} is running: re-queue it and discard that run's outcome?`)) return;
      await api('PUT', `/job/${id}/state/inactive`);
    } else if (what === 'remove') {
      if (!window.confirm(`Remove job ${id}? This cannot be undone.`)) return;
      await api('DELETE', `/job/${id}`);
      closeJob();
    } else if (what === 'priority') {
      const p = window.prompt('New priority (low 10, normal 0, medium -5, high -10, critical -15)', '0');
      if (p === null) return;
      await api('PUT', `/job/${id}/priority/${encodeURIComponent(p)}`);
    }
    $('d-message').textContent = `${what}: done`;
  } catch (e) {
    $('d-message').textContent = `${what}: ${e.message}`;
  }
  refresh();
}

let pending = null;
let again = false;
function refresh() {
  // one refresh at a time; a request made meanwhile runs once more after it, on the new view
  if (pending) {
    again = true;
    return pending;
  }
  pending = (async () => {
    do {
      again = false;
      try {
        toUrl();
        await refreshStats();
        await refreshList();
        if (view.open) await openJob(view.open);
        await refreshChart();
        if (view.down) down(null);
      } catch (e) {
        if (e instanceof Unavailable) down(e.message);
        else console.error(e);
      }
    } while (again);
    pending = null;
  })();
  return pending;
}

// -- bulk actions, search in the data, the throughput chart ------------------------------
async function bulk(kind) {
  const scope = view.type ? `of type "${view.type}"` : 'of every type';
  const question = kind === 'retry'
    ? `Retry every failed job ${scope} (attempts reset)?`
    : `Remove every complete job ${scope}? This cannot be undone.`;
  if (!window.confirm(question)) return;
  const params = new URLSearchParams(kind === 'retry' ? {} : { state: 'complete' });
  if (view.type) params.set('type', view.type);
  const msg = $('bulk-message');
  let total = 0;
  try {
    // the server works in bounded batches and stops after a bounded number: ask again while it says more
    for (let round = 0; round < 100; round++) {
      const r = await api('POST', `/bulk/${kind}?${params}`);
      total += kind === 'retry' ? r.retried : r.removed;
      msg.textContent = `${kind}: ${total} so far…`;
      if (!r.more) break;
    }
    msg.textContent = kind === 'retry' ? `retried ${total} failed job(s)` : `removed ${total} complete job(s)`;
  } catch (e) {
    msg.textContent = `${kind}: ${e.message}`;
  }
  refresh();
}

async function searchData(text) {
  if (!text) return;
  const params = new URLSearchParams({ q: text, state: view.state, limit: String(SEARCH_LIMIT) });
  if (view.type) params.set('type', view.type);
  try {
    const r = await api('GET', `/search/data?${params}`);
    const of = view.type ? ` of type ${view.type}` : '';
    $('search-note').textContent = `${r.jobs.length} match(es) for "${text}" in the data of the last ${r.scanned} `
      + `${r.state} job(s)${of}; only the last ${r.limit} of a state are searched`;
    $('search-results').replaceChildren(...r.jobs.map((j) => {
      const li = Object.assign(document.createElement('li'), { textContent: `#${j.id} ${j.type} (${j.state})` });
      li.dataset.id = j.id;
      li.onclick = () => openJob(j.id);
      return li;
    }));
  } catch (e) {
    $('search-note').textContent = `search: ${e.message}`;
  }
}

const SVG = 'http://www.w3.org/2000/svg';
async function refreshChart() {
  const h = await api('GET', '/history');
  const W = 600, H = 80, bw = W / h.minutes.length;
  const peak = Math.max(1, ...h.minutes.map((m) => m.complete + m.failed));
  const bars = [];
  h.minutes.forEach((m, i) => {
    const hc = (m.complete / peak) * (H - 4), hf = (m.failed / peak) * (H - 4);
    for (const [cls, height, y] of [['complete', hc, H - hc], ['failed', hf, H - hc - hf]]) {
      if (!height) continue;
      const r = document.createElementNS(SVG, 'rect');
      for (const [k, v] of Object.entries({ x: i * bw + 1, y, width: bw - 2, height, class: cls })) r.setAttribute(k, v);
      const title = document.createElementNS(SVG, 'title');
      title.textContent = `${new Date(m.at).toLocaleTimeString()}: ${m.complete} complete, ${m.failed} failed`;
      r.append(title);
      bars.push(r);
    }
  });
  const chart = $('chart');
  chart.replaceChildren(...bars);
  const complete = h.minutes.reduce((a, m) => a + m.complete, 0), failed = h.minutes.reduce((a, m) => a + m.failed, 0);
  chart.dataset.complete = complete;
  chart.dataset.failed = failed;
  $('chart-caption').textContent = `last hour, per minute (all types): ${complete} complete, ${failed} failed runs `
    + `(green, red); counted by this dashboard since ${when(h.since)}`;
}

let timer = null;
function soon() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 150);
}

function live() {
  const es = new EventSource('/events');
  view.stream = es;
  es.onopen = () => { if (!view.down) $('live').classList.add('on'); };
  es.onerror = () => $('live').classList.remove('on');
  es.onmessage = () => soon();
}

async function main() {
  let cfg;
  try {
    cfg = await api('GET', '/config');
  } catch (e) {
    down(e.message);
    setTimeout(main, 2000);
    return;
  }
  view.readOnly = cfg.readOnly;
  fromUrl();
  window.onpopstate = () => { fromUrl(); if (!view.open) $('detail').hidden = true; refresh(); };
  document.body.classList.toggle('read-only', cfg.readOnly);
  $('type').onchange = (e) => { view.type = e.target.value; view.from = 0; refresh(); };
  $('order').onchange = (e) => { view.order = e.target.value; refresh(); };
  $('size').onchange = (e) => { view.size = Number(e.target.value); view.from = 0; refresh(); };
  $('prev').onclick = () => { view.from = Math.max(0, view.from - view.size); refresh(); };
  $('next').onclick = () => { view.from += view.size; refresh(); };
  $('find').onsubmit = (e) => { e.preventDefault(); openJob($('find-id').value.trim()); };
  $('a-retry').onclick = () => act('retry');
  $('a-requeue').onclick = () => act('requeue');
  $('a-remove').onclick = () => act('remove');
  $('a-priority').onclick = () => act('priority');
  $('a-close').onclick = closeJob;
  $('b-retry').onclick = () => bulk('retry');
  $('b-remove').onclick = () => bulk('remove');
  $('search').onsubmit = (e) => { e.preventDefault(); searchData($('search-text').value.trim()); };
  await refresh();
  live();
  setInterval(refresh, 5000); // a safety net; events drive the page
}
main();
