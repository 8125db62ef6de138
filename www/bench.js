// Browser half of `cargo xtask bench`: times each kernel in one worker, then the simd kernel in
// 1..hardwareConcurrency workers at once, and posts the results to /bench/result (when served by xtask).
import { wasmBuild, startWorker, nextMessage } from './kernel.js';

const params = new URLSearchParams(location.search);
const ms = Number(params.get('ms') || 3000);
const status = document.getElementById('status');
const rows = document.getElementById('rows');

function show(name, workers, mhs) {
  const row = rows.insertRow();
  for (const value of [name, workers, mhs.toFixed(2)]) row.insertCell().textContent = value;
}

/** Runs `kind` on the `build` module in `n` workers at once for `ms`; returns total MH/s. */
async function run(build, kind, n) {
  const started = await Promise.all(Array.from({ length: n }, () => startWorker(build)));
  try {
    const results = await Promise.all(
      started.map(({ worker }) => {
        const done = nextMessage(worker, 'bench');
        worker.postMessage({ type: 'bench', kind, ms });
        return done;
      }),
    );
    return results.reduce((sum, r) => sum + r.hashes / r.ms / 1000, 0);
  } finally {
    for (const { worker } of started) worker.terminate();
  }
}

async function main() {
  const build = wasmBuild();
  if (build !== 'simd') throw new Error(`this browser has no wasm SIMD (build: ${build})`);
  const result = { userAgent: navigator.userAgent, hardwareConcurrency: navigator.hardwareConcurrency, ms };
  // A browser just started (xtask's) is still busy starting up: `settle` ms of idle keep that off the
  // first run.
  const settle = Number(params.get('settle') || 0);
  if (settle > 0) {
    status.textContent = 'Letting the browser settle…';
    await new Promise((resolve) => setTimeout(resolve, settle));
  }
  if (params.get('only') === 'simd') {
    // Quick mode for kernel tuning: the simd128 kernel in one worker, nothing else.
    result.simd_mhs = await run('simd', 'kernel', 1);
    show('simd128 kernel', 1, result.simd_mhs);
    return result;
  }
  status.textContent = 'simd128 kernel, 1 worker…';
  result.simd_mhs = await run('simd', 'kernel', 1);
  show('simd128 kernel', 1, result.simd_mhs);
  status.textContent = 'scalar kernel (plain build), 1 worker…';
  result.scalar_mhs = await run('plain', 'kernel', 1);
  show('scalar kernel', 1, result.scalar_mhs);
  status.textContent = 'sha2 crate (plain build), 1 worker…';
  result.sha2_wasm_mhs = await run('plain', 'sha2', 1);
  show('sha2 crate', 1, result.sha2_wasm_mhs);
  result.workers = [];
  for (let n = 1; n <= navigator.hardwareConcurrency; n++) {
    status.textContent = `simd128 kernel, ${n} workers…`;
    const mhs = await run('simd', 'kernel', n);
    result.workers.push({ n, mhs });
    show('simd128 kernel', n, mhs);
  }
  status.textContent = 'Done.';
  return result;
}

main()
  .catch((error) => ({ error: String(error && error.message ? error.message : error) }))
  .then((result) => {
    if (result.error) status.textContent = `Failed: ${result.error}`;
    if (params.has('report')) {
      return fetch('/bench/result', { method: 'POST', body: JSON.stringify(result) });
    }
  });
