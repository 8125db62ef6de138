// MinePass web worker: one wasm kernel instance searching its own range of nonce positions.
//
// Protocol (all messages are plain objects with a `type`):
//   in  {type:'init', build:'simd'|'plain'}            -> out {type:'ready', kernel} | {type:'error'}
//   in  {type:'mine', job, run, header, target, start, end, batch?, throttle?}  (job and run are echoed)
//        -> out {type:'progress', job, run, hashes, ms, busy, position}  after the first batch, then every
//                                                        ~250 ms (busy: ms spent hashing since the last one)
//               {type:'found', job, run, nonces}                    whenever a batch finds shares
//               {type:'done', …, position} (range searched) | {type:'stopped', …, position}
//      A new 'mine' replaces the running one. `throttle` (0 ≤ t < 1) is the idle share of time:
//      the worker rests so that over the run, rest = busy·t/(1−t).
//   in  {type:'stop'}        stops the mine loop between two batches -> out {type:'stopped', …}
//   in  {type:'bench', kind:'kernel'|'sha2', ms} -> out {type:'bench', hashes, ms}  ('sha2': plain build only)
// The page may also terminate the worker at any time: nothing here needs cleaning up.
'use strict';

let wasm = null;
// Each 'mine' or 'stop' starts a new generation; a loop runs only while its generation is current.
let generation = 0;

// A macrotask that lets queued messages (a stop) run between batches, without setTimeout's 4 ms clamp.
const yieldToEvents = () =>
  new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = resolve;
    channel.port2.postMessage(0);
  });
const rest = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function init(build) {
  const module = await import(`./pkg/minepass_${build}.js`);
  await module.default();
  wasm = module;
}

async function mine({ job, run, header, target, start, end, batch = 1 << 16, throttle = 0 }) {
  const mine = ++generation;
  const idleRatio = Math.min(Math.max(throttle, 0), 0.95) / (1 - Math.min(Math.max(throttle, 0), 0.95));
  const scanner = new wasm.Scanner(header, target);
  let position = start;
  try {
    let reportedAt = performance.now();
    let hashes = 0;
    let busySinceReport = 0;
    let reported = false; // the first batch is reported at once: the page learns hashing began
    let busyTotal = 0;
    let idleTotal = 0;
    // V8 has no on-stack replacement for wasm: short first calls let it tier the kernel up.
    let size = 1024;
    while (position < end && generation === mine) {
      const n = Math.min(size, end - position);
      const began = performance.now();
      const report = scanner.scan(position >>> 0, n);
      const busy = performance.now() - began;
      position += n;
      hashes += report.hashes;
      busySinceReport += busy;
      size = Math.min(size * 2, batch);
      if (report.nonces.length > 0) postMessage({ type: 'found', job, run, nonces: Array.from(report.nonces) });
      const now = performance.now();
      if (!reported || now - reportedAt >= 250) {
        postMessage({ type: 'progress', job, run, hashes, ms: now - reportedAt, busy: busySinceReport, position });
        hashes = 0;
        busySinceReport = 0;
        reportedAt = now;
        reported = true;
      }
      // Throttle by account, not per batch: rest what the whole run owes, so timer slack (a rest
      // always lasts a little longer than asked) does not add up to a lower duty cycle.
      busyTotal += busy;
      const owed = busyTotal * idleRatio - idleTotal;
      if (owed > 0) {
        const began = performance.now();
        await rest(owed);
        idleTotal += performance.now() - began;
      } else {
        await yieldToEvents();
      }
    }
    postMessage({ type: 'progress', job, run, hashes, ms: performance.now() - reportedAt, busy: busySinceReport, position });
    postMessage({ type: generation === mine ? 'done' : 'stopped', job, run, position });
  } finally {
    scanner.free();
  }
}

function bench({ kind, ms }) {
  const header = crypto.getRandomValues(new Uint8Array(80));
  // Difficulty-1-like target (top 32 bits zero): virtually no hits, so this times hashing alone.
  const target = new Uint8Array(32).fill(0xff);
  target.fill(0, 28);
  const scanner = kind === 'sha2' ? new wasm.Sha2Scanner(header, target) : new wasm.Scanner(header, target);
  const scan = (s, n) => scanner.scan(s, n);
  try {
    // V8 has no on-stack replacement for wasm: many short calls let it tier the kernel up first.
    let position = 0;
    const warmUntil = performance.now() + 600;
    while (performance.now() < warmUntil) {
      scan(position, 1024);
      position += 1024;
    }
    const batch = 1 << 16;
    let hashes = 0;
    let now;
    const t0 = performance.now();
    do {
      if (position + batch > 2 ** 32) position = 0;
      hashes += scan(position, batch).hashes;
      position += batch;
      now = performance.now();
    } while (now - t0 < ms);
    return { hashes, ms: now - t0 };
  } finally {
    scanner.free();
  }
}

onmessage = async ({ data }) => {
  try {
    switch (data.type) {
      case 'init':
        await init(data.build);
        postMessage({ type: 'ready', kernel: wasm.kernelName() });
        break;
      case 'mine':
        await mine(data);
        break;
      case 'stop':
        generation++;
        break;
      case 'bench':
        postMessage({ type: 'bench', ...bench(data) });
        break;
      default:
        throw new Error(`unknown message type ${data.type}`);
    }
  } catch (error) {
    postMessage({ type: 'error', message: String(error && error.message ? error.message : error) });
  }
};
