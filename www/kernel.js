// Loading the kernel: wasm feature detection and web workers that each hold one kernel instance.
// Shared by the demo and the benchmark (and, later, the SDK).

// The smallest module using a simd128 instruction: (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt)
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

/** 'simd', 'plain', or null when WebAssembly is unavailable (disabled, iOS Lockdown Mode). */
export function wasmBuild() {
  if (typeof WebAssembly !== 'object' || typeof WebAssembly.validate !== 'function') return null;
  return WebAssembly.validate(SIMD_PROBE) ? 'simd' : 'plain';
}

/** Starts a worker and waits until its kernel is loaded; rejects with the worker's error. */
export function startWorker(build) {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => {
      if (data.type === 'ready') resolve({ worker, kernel: data.kernel });
      else {
        worker.terminate();
        reject(new Error(data.message || `unexpected ${data.type}`));
      }
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(event.message || 'worker failed to start'));
    };
    worker.postMessage({ type: 'init', build });
  });
}

/** The next message of `type` from a worker (or its error). */
export function nextMessage(worker, type) {
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => {
      if (data.type === type) resolve(data);
      else if (data.type === 'error') reject(new Error(data.message));
    };
  });
}
