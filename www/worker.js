// MinePass web worker: one wasm kernel instance searching its own range of nonce positions.
//
// Protocol (all messages are plain objects with a `type`):
//   in  {type:'init', build:'simd'|'plain'}            -> out {type:'ready', kernel} | {type:'error'}
//   in  {type:'mine', header, target, start, count, batch} -> out {type:'progress', hashes}
//                                                            {type:'found', nonces} ... {type:'done'}
//   in  {type:'stop'}        stops a mine loop between two batches -> out {type:'stopped'}
//   in  {type:'bench', kind:'kernel'|'scalar'|'sha2', ms} -> out {type:'bench', hashes, ms}
// The page may also terminate the worker at any time: nothing here needs cleaning up.
'use strict';

let wasm = null;
let stopRequested = false;

// A macrotask that lets queued messages (a stop) run between batches, without setTimeout's 4 ms clamp.
const yieldToEvents = () =>
  new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = resolve;
    channel.port2.postMessage(0);
  });

async function init(build) {
  const module = await import(`./pkg/minepass_${build}.js`);
  await module.default();
  wasm = module;
}

async function mine({ header, target, start, count, batch = 1 << 16 }) {
  stopRequested = false;
  const scanner = new wasm.Scanner(header, target);
  try {
    const end = start + count;
    let reported = performance.now();
    let hashes = 0;
    for (let position = start; position < end && !stopRequested; ) {
      const n = Math.min(batch, end - position);
      const report = scanner.scan(position >>> 0, n);
      position += n;
      hashes += report.hashes;
      if (report.nonces.length > 0) postMessage({ type: 'found', nonces: Array.from(report.nonces) });
      const now = performance.now();
      if (now - reported >= 250) {
        postMessage({ type: 'progress', hashes });
        hashes = 0;
        reported = now;
      }
      await yieldToEvents();
    }
    postMessage({ type: 'progress', hashes });
    postMessage({ type: stopRequested ? 'stopped' : 'done' });
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
  const scan = kind === 'scalar' ? (s, n) => scanner.scanScalar(s, n) : (s, n) => scanner.scan(s, n);
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
        stopRequested = true;
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
