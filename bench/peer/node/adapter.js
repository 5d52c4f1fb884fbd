// The Node queues of the peer benchmark (BullMQ, Kue 0.11.6): the same command line as adapters.py.
//
//   node adapter.js enqueue SYSTEM URL N [--bulk]     -> {"seconds": t} (or {"unsupported": true})
//   node adapter.js work SYSTEM URL CONCURRENCY MODE  -> prints "ready", works until SIGTERM
//   node adapter.js latency SYSTEM URL SAMPLES        -> [ms, ...]
//
// run.py sets NODE_PATH to its cache's node_modules (installed with npm ci from the lock file).
'use strict';

const QUEUE = 'bench';
const [role, system, url, arg, mode] = process.argv.slice(2);
const nowMs = () => performance.timeOrigin + performance.now();
const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

function ioredis() {
  const IORedis = require('ioredis');
  return new IORedis(url, { maxRetriesPerRequest: null });
}

// -- BullMQ ---------------------------------------------------------------------------------
const bullmq = {
  async enqueue(n, bulk) {
    const { Queue } = require('bullmq');
    const q = new Queue(QUEUE, { connection: ioredis() });
    const t0 = process.hrtime.bigint();
    if (bulk) {
      for (let start = 0; start < n; start += 500) {
        const batch = [];
        for (let i = start; i < Math.min(n, start + 500); i++) batch.push({ name: 'job', data: { i } });
        await q.addBulk(batch);
      }
    } else {
      for (let i = 0; i < n; i++) await q.add('job', { i });
    }
    const t = seconds(t0);
    await q.close();
    return t;
  },
  async work(concurrency, mode) {
    const { Worker } = require('bullmq');
    const client = ioredis();
    const worker = new Worker(QUEUE, async (job) => {
      if (mode === 'incr') await client.incr('bench:done');
      else if (mode === 'latency') await client.rpush('bench:lat', nowMs() - job.data.t);
    }, { connection: ioredis(), concurrency });
    await worker.waitUntilReady();
    return async () => { await worker.close(); client.disconnect(); };
  },
  async producer() {
    const { Queue } = require('bullmq');
    const q = new Queue(QUEUE, { connection: ioredis() });
    return { produce: () => q.add('job', { t: nowMs() }), close: () => q.close() };
  },
};

// -- Kue 0.11.6 -------------------------------------------------------------------------------
function kueQueue() {
  const kue = require('kue');
  return kue.createQueue({ prefix: 'q', redis: url });
}

function save(job) {
  return new Promise((resolve, reject) => job.save((err) => (err ? reject(err) : resolve())));
}

const kueSystem = {
  async enqueue(n, bulk) {
    if (bulk) return null;
    const q = kueQueue();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await save(q.create(QUEUE, { i }));
    const t = seconds(t0);
    await new Promise((resolve) => q.shutdown(1000, resolve));
    return t;
  },
  async work(concurrency, mode) {
    const q = kueQueue();
    const client = require('kue').redis.createClient(); // a client like Kue's own, after createQueue configured it
    q.process(QUEUE, concurrency, (job, done) => {
      if (mode === 'incr') client.incr('bench:done', (err) => done(err));
      else if (mode === 'latency') client.rpush('bench:lat', nowMs() - job.data.t, (err) => done(err));
      else done();
    });
    return () => new Promise((resolve) => q.shutdown(5000, () => { client.quit(); resolve(); }));
  },
  async producer() {
    const q = kueQueue();
    return { produce: () => save(q.create(QUEUE, { t: nowMs() })), close: () => new Promise((r) => q.shutdown(1000, r)) };
  },
};

const SYSTEMS = { bullmq, kue: kueSystem };

async function main() {
  const impl = SYSTEMS[system];
  if (!impl) throw new Error(`unknown system ${system}`);
  if (role === 'enqueue') {
    const t = await impl.enqueue(Number(arg), process.argv.includes('--bulk'));
    console.log(JSON.stringify(t === null ? { unsupported: true } : { seconds: t }));
    process.exit(0);
  } else if (role === 'work') {
    const stop = await impl.work(Number(arg), mode);
    console.log('ready');
    let stopping = false;
    const onSignal = async () => {
      if (stopping) return;
      stopping = true;
      await stop();
      process.exit(0);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  } else if (role === 'latency') {
    const { produce, close } = await impl.producer();
    const client = ioredis();
    const out = [];
    for (let i = 0; i < Number(arg); i++) {
      await produce();
      const got = await client.blpop('bench:lat', 30);
      if (got === null) throw new Error('latency: no job started within 30 s');
      out.push(Number(got[1]));
    }
    console.log(JSON.stringify(out));
    await close();
    process.exit(0);
  } else {
    throw new Error(`unknown role ${role}`);
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
