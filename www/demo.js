// The kernel demo: N workers mine disjoint nonce ranges of random headers; the page sums their
// progress into a live hash rate and re-verifies every reported share with WebCrypto.
import { wasmBuild, startWorker } from './kernel.js';

const SHARE_BITS = 22; // expected hashes per share: 2^22
const $ = (id) => document.getElementById(id);
const cores = navigator.hardwareConcurrency || 1;
for (let n = 1; n <= cores; n++) $('workers').add(new Option(String(n), String(n), n === cores, n === cores));

let workers = [];
let samples = []; // [time, hashes] for the rate over the last few seconds
let total = 0;
let shares = 0;
let timer = 0;

/** 2^(256 - bits) - 1 as 32 little-endian bytes. */
function targetBytes(bits) {
  const target = new Uint8Array(32).fill(0xff);
  const full = 256 - bits;
  for (let i = Math.ceil(full / 8); i < 32; i++) target[i] = 0;
  if (full % 8) target[Math.floor(full / 8)] = (1 << (full % 8)) - 1;
  return target;
}

async function sha256d(bytes) {
  const once = await crypto.subtle.digest('SHA-256', bytes);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', once));
}

/** Little-endian 256-bit comparison: digest <= target. */
function meets(digest, target) {
  for (let i = 31; i >= 0; i--) if (digest[i] !== target[i]) return digest[i] < target[i];
  return true;
}

async function verifyShare(header, nonce, target) {
  const candidate = header.slice();
  new DataView(candidate.buffer).setUint32(76, nonce, true);
  const ok = meets(await sha256d(candidate), target);
  shares += ok ? 1 : 0;
  $('found').textContent = shares;
  const item = document.createElement('li');
  item.textContent = `nonce ${nonce.toString(16).padStart(8, '0')} ${ok ? '✓' : '✗ FAILED verification'}`;
  $('shares').prepend(item);
}

function mineRange(worker, index, count) {
  const header = crypto.getRandomValues(new Uint8Array(80));
  const target = targetBytes(SHARE_BITS);
  const span = Math.floor(2 ** 32 / count);
  worker.onmessage = ({ data }) => {
    if (data.type === 'progress') {
      total += data.hashes;
      samples.push([performance.now(), total]);
    } else if (data.type === 'found') {
      for (const nonce of data.nonces) verifyShare(header, nonce, target);
    } else if (data.type === 'done') {
      mineRange(worker, index, count); // range exhausted: a fresh header
    } else if (data.type === 'error') {
      $('status').textContent = `Worker error: ${data.message}`;
    }
  };
  worker.postMessage({ type: 'mine', job: 'demo', header, target, start: index * span, end: (index + 1) * span });
}

function showRate() {
  const now = performance.now();
  samples = samples.filter(([t]) => now - t < 3000);
  if (samples.length >= 2) {
    const [t0, h0] = samples[0];
    const [t1, h1] = samples[samples.length - 1];
    if (t1 > t0) $('rate').textContent = ((h1 - h0) / (t1 - t0) / 1000).toFixed(2);
  }
  $('hashes').textContent = total.toLocaleString();
}

async function start() {
  const build = wasmBuild();
  if (!build) {
    $('status').textContent = 'WebAssembly is disabled in this browser (for example iOS Lockdown Mode): the miner cannot run.';
    return;
  }
  $('start').disabled = true;
  const count = Number($('workers').value);
  $('status').textContent = `Loading the ${build} build in ${count} worker(s)…`;
  try {
    const started = await Promise.all(Array.from({ length: count }, () => startWorker(build)));
    workers = started.map((s) => s.worker);
    $('kernel').textContent = started[0].kernel;
    started.forEach(({ worker }, i) => mineRange(worker, i, count));
    timer = setInterval(showRate, 500);
    $('stop').disabled = false;
    $('status').textContent = `Mining with ${count} worker(s).`;
  } catch (error) {
    $('status').textContent = `Could not start: ${error.message}`;
    $('start').disabled = false;
  }
}

function stop() {
  for (const worker of workers) worker.terminate();
  workers = [];
  clearInterval(timer);
  samples = [];
  $('rate').textContent = '0.00';
  $('stop').disabled = true;
  $('start').disabled = false;
  $('status').textContent = 'Stopped: all workers terminated.';
}

$('start').addEventListener('click', start);
$('stop').addEventListener('click', stop);
