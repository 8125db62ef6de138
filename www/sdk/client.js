// The client after consent: Rust compiled to wasm (the broker session, the visitor's limits, the
// workers), loaded from the same place as this script, and its events turned into the SDK's.
import { base, currentConsent, identity, options, storage, threads } from './context.js';
import { emit } from './events.js';
import { firstGateContent, gatesExist } from './gate.js';
import { host } from './host.js';
import { unlockDetail } from './sealed.js';
import { t } from './strings.js';
import { deviceClass, wasmBuild } from './support.js';
import { updateBar } from './ui.js';

/** The running client and what the page shows of it. */
export const run = { client: null, loading: null, lastPause: null, hashrate: 0, credits: 0n, onUnlockAll: null };

// Module workers must be same-origin. On a publisher's page with the broker on another origin, a
// same-origin blob module imports the broker's worker (served with CORS); such pages need
// `worker-src blob:` if they set a CSP.
function workerUrl() {
  const url = new URL('worker.js', base).href;
  if (base.origin === location.origin) return url;
  const source = `import ${JSON.stringify(url)};`;
  return URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
}

/** Loads the client's wasm and makes a client; null when it cannot run or consent went meanwhile. */
export async function load() {
  const build = wasmBuild();
  if (!build) {
    emit('error', { code: 'wasm_unavailable', message: t().unavailable, fatal: true });
    return null;
  }
  const glue = await import(new URL('pkg/minepass_client.js', base).href);
  await glue.default({ module_or_path: new URL('pkg/minepass_client_bg.wasm', base) });
  const broker = new URL('ws', base);
  broker.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  const consent = currentConsent();
  if (!consent) return null; // revoked while loading
  const clientOptions = {
    broker: broker.href,
    workerUrl: workerUrl(),
    build,
    site: options.site,
    ...identity(),
    content: options.content ?? firstGateContent(),
    consent,
    // The number the dialog promised is the client's ceiling.
    threads: threads(),
    throttle: options.throttle,
    dailyMinutes: options.dailyMinutes,
    requireCharging: options.requireCharging,
    respectSaveData: options.respectSaveData,
    gateOnly: options.gateOnly,
    // The class the broker files this session's measured rate under (the next visitor's estimate).
    engine: deviceClass().engine,
    cores: deviceClass().cores,
  };
  const made = new glue.Client(clientOptions, onClientEvent, options.clock ? () => options.clock() : undefined);
  // What an app host reported before the client existed (power, network).
  if (host.channel) made.hostFacts(host.facts());
  made.build = build;
  return made;
}

function onClientEvent(type, detail) {
  if (type === 'identity') {
    storage.set('identity', { user: detail.user, secret: detail.secret });
    detail = { user: detail.user }; // the secret stays with the SDK
  }
  // The broker no longer accepts the kept anonymous identity: the next start begins a new one.
  if (type === 'error' && detail.code === 'bad_user_proof' && !options.user) storage.remove('identity');
  if (type === 'unlock') detail = unlockDetail(detail);
  if (type === 'pause') run.lastPause = detail.reason;
  if (type === 'start') run.lastPause = null;
  if (type === 'progress') run.hashrate = detail.hashrate;
  // The visitor's credits at this site (one per expected hash of verified work), on the stop bar.
  if (detail?.credits) run.credits = BigInt(detail.credits);
  if (type === 'stop') {
    run.client = null;
    run.hashrate = 0;
  }
  updateBar();
  emit(type, detail || {});
  // Every gate on the page is open: nothing left to compute for.
  if (type === 'unlock' && gatesExist() && firstGateContent() === undefined) run.onUnlockAll?.();
}
