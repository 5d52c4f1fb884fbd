// Node Kue 0.11.6 driven by pykue's interop tests. Every command prints JSON lines.
//   node kue-tool.js create TYPE DATA OPTIONS [watch]   -> {"id":N} then events if watch
//   node kue-tool.js get ID                             -> Job.get(ID).toJSON() + raw hash
//   node kue-tool.js log ID TEXT | logs ID | counts TYPE
//   node kue-tool.js work TYPE MODE [CONCURRENCY]       -> "ready", then a line per job
//       MODE ok | log | fail | slow (3 s) | hang (never calls done: kill it to make a dead worker)
//       | popped (Kue's real BLPOP + zpop + Job.get, then stops before job.active(): {"popped":ID})
//   node kue-tool.js state ID STATE                     -> Job.get(ID).state(STATE), as kue.app does
//   node kue-tool.js creator | processor                -> the seed's 7-job_creator/processor
//   node kue-tool.js app PORT                           -> kue.app (the JSON API) on PORT
'use strict';
const kue = require('kue');

if (!process.env.REDIS_URL) {
  console.error('kue-tool: set REDIS_URL (e.g. redis://127.0.0.1:PORT/0)');
  process.exit(2);
}
// KUE_CHECK_INTERVAL (ms): Kue's promotion and TTL checker period (1000); a huge one leaves both to pykue.
const promotion = process.env.KUE_CHECK_INTERVAL ? { interval: Number(process.env.KUE_CHECK_INTERVAL) } : undefined;
const queue = kue.createQueue({ prefix: process.env.KUE_PREFIX || 'q', redis: process.env.REDIS_URL, promotion });
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const [cmd, ...args] = process.argv.slice(2);
const bye = (code) => queue.shutdown(1000, () => process.exit(code || 0));
process.on('SIGTERM', () => bye(0));

function watch(job, done) {
  for (const ev of ['enqueue', 'start', 'promotion', 'progress', 'failed attempt', 'failed', 'complete', 'remove']) {
    job.on(ev, (...a) => {
      out({ event: ev, id: job.id, args: a });
      if (ev === 'complete' || ev === 'failed') done();
    });
  }
}

const commands = {
  create() {
    const [type, data, opts, watching] = args;
    const o = JSON.parse(opts || '{}');
    const job = queue.create(type, JSON.parse(data || '{}'));
    if (o.priority !== undefined) job.priority(o.priority);
    if (o.attempts) job.attempts(o.attempts);
    if (o.backoff === 'function') job.backoff(function (attempts, delay) { return 50; });
    else if (o.backoff) job.backoff(o.backoff);
    if (o.delay) job.delay(o.delay);
    if (o.ttl) job.ttl(o.ttl);
    if (o.removeOnComplete) job.removeOnComplete(true);
    if (watching) watch(job, () => setTimeout(() => bye(0), 50));
    job.save((err) => {
      if (err) { out({ error: String(err) }); return bye(1); }
      out({ id: job.id });
      if (!watching) bye(0);
    });
  },
  get() {
    kue.Job.get(args[0], (err, job) => {
      if (err) { out({ error: String(err.message || err) }); return bye(0); }
      queue.client.hgetall(queue.client.getKey('job:' + args[0]), (e, raw) => {
        out({ json: job.toJSON(), raw, backoff: typeof job._backoff === 'function' ? 'function' : job._backoff });
        bye(0);
      });
    });
  },
  log() {
    kue.Job.get(args[0], (err, job) => { job.log(args[1]); setTimeout(() => bye(0), 100); });
  },
  logs() {
    kue.Job.log(args[0], (err, logs) => { out(logs); bye(0); });
  },
  counts() {
    const states = ['inactive', 'active', 'complete', 'failed', 'delayed'];
    const res = {};
    let n = states.length;
    for (const s of states) {
      queue.cardByType(args[0], s, (err, c) => { res[s] = c; if (--n === 0) { out(res); bye(0); } });
    }
  },
  work() {
    const [type, mode, conc] = args;
    if (mode === 'popped') kue.Job.prototype.active = function () { out({ popped: this.id }); };
    queue.process(type, Number(conc || 1), (job, done) => {
      out({ worked: job.id, data: job.data, priority: job.priority(), attempts: job._attempts });
      if (mode === 'log') job.log('node saw %s', job.id);
      if (mode === 'fail') return done(new Error('node says no ' + job.id));
      if (mode === 'slow') return setTimeout(done, 3000);
      if (mode === 'hang') return;
      done(null, { by: 'node', id: job.id });
    });
    out('ready');
  },
  state() {
    kue.Job.get(args[0], (err, job) => {
      if (err) { out({ error: String(err.message || err) }); return bye(1); }
      job.state(args[1], (e) => { out({ state: args[1], error: e ? String(e) : null }); bye(e ? 1 : 0); });
    });
  },
  creator() {
    const jobs = require('./seed-jobs.json');
    let left = jobs.length;
    const settle = () => { if (--left === 0) setTimeout(() => bye(0), 50); };
    for (const data of jobs) {
      const job = queue.create('push_notification_code_2', data);
      job.on('complete', () => { console.log(`Notification job #${job.id} completed`); settle(); })
        .on('failed', (err) => { console.log(`Notification job #${job.id} failed: ${err}`); settle(); })
        .on('progress', (p) => console.log(`Notification job #${job.id} ${p}% complete`));
      job.save((err) => { if (!err) console.log(`Notification job created: ${job.id}`); });
    }
  },
  processor() {
    const blacklisted = ['4153518780', '4153518781'];
    function sendNotification(phoneNumber, message, job, done) {
      job.progress(0, 100);
      if (blacklisted.includes(phoneNumber)) return done(new Error(`Phone number ${phoneNumber} is blacklisted`));
      job.progress(50, 100);
      console.log(`Sending notification to ${phoneNumber}, with message: ${message}`);
      done();
    }
    queue.process('push_notification_code_2', 2, (job, done) =>
      sendNotification(job.data.phoneNumber, job.data.message, job, done));
    console.log('ready');
  },
  app() {
    kue.app.listen(Number(args[0]), () => out('ready'));
  },
};
commands[cmd]();
