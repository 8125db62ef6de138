// What this device lets the SDK do, decided before the dialog: it makes only promises the SDK can
// keep here.
import { base, options } from './context.js';
import { host } from './host.js';
import { t } from './strings.js';

// The smallest module using a simd128 instruction.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

/** The kernel build this browser runs: 'simd', 'plain', or null without WebAssembly. */
export function wasmBuild() {
  try {
    if (typeof WebAssembly !== 'object' || typeof WebAssembly.validate !== 'function') return null;
    return WebAssembly.validate(SIMD_PROBE) ? 'simd' : 'plain';
  } catch {
    return null;
  }
}

// What keeps the SDK from running on this device, as an error code, or null. "Only while charging"
// needs the charging state: the Battery API (which Firefox, Safari and every iOS webview lack) or an
// app host that reports power (./host.js). The client's policy refuses the same case once running
// (`charging-unknown`).
export function cannotRun() {
  if (!wasmBuild()) return 'wasm_unavailable';
  const knowsCharging = typeof navigator.getBattery === 'function' || host.power?.charging != null;
  if (options.requireCharging && !knowsCharging) return 'charging_unknown';
  return null;
}

export const cannotRunMessage = (code) => (code === 'charging_unknown' ? t().chargingUnknown : t().unavailable);

/**
 * The device class the broker files measured rates under and estimates by: the engine (from the user
 * agent: a statistic, not a decision), the reported cores and the kernel build.
 */
export function deviceClass() {
  const ua = navigator.userAgent;
  const engine = /Firefox\//.test(ua) ? 'gecko' : /Chrom(e|ium)\//.test(ua) ? 'blink' : /AppleWebKit\//.test(ua) ? 'webkit' : 'other';
  return { engine, cores: navigator.hardwareConcurrency || 0, simd: wasmBuild() === 'simd' };
}

/**
 * How long unlocking `content` takes on a device like this one, from the broker's rates of recent
 * sessions of its class: `{low_s, high_s, samples}`, or null (too few samples, no answer within
 * `ms`). Asked when the visitor opens the dialog; nothing is hashed to find out.
 */
export async function unlockEstimate(content, ms = 2000) {
  if (!content) return null;
  const { engine, cores, simd } = deviceClass();
  const query = new URLSearchParams({ site: options.site, content, engine, cores: String(cores), simd: String(simd) });
  try {
    const signal = AbortSignal.timeout?.(ms);
    const response = await fetch(new URL(`api/v1/estimate?${query}`, base), { credentials: 'omit', signal });
    return response.ok ? (await response.json()).estimate || null : null;
  } catch {
    return null;
  }
}
