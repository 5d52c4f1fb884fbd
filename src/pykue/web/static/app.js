// pykue dashboard: plain JavaScript over Kue's JSON API, live through /events (SSE).
'use strict';
const STATES = ['inactive', 'active', 'delayed', 'complete', 'failed'];
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

let countdown = null;
let openSeq = 0; // answers to an older openJob() are dropped: the newest click wins
function closeJob() {
  $('detail').hidden = true;
  view.open = null;
  clearInterval(countdown);
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
        await refreshStats();
        await refreshList();
        if (view.open && !$('detail').hidden) await openJob(view.open);
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
  await refresh();
  live();
  setInterval(refresh, 5000); // a safety net; events drive the page
}
main();
