// `window.MinePass`: the page's API (docs/SDK.md), and the page lifecycle that stops and resumes it.
import { base, currentConsent, key, options, recordConsent, storage } from './context.js';
import { emit, off, on } from './events.js';
import { load, run } from './client.js';
import { host } from './host.js';
import { t } from './strings.js';
import { firstGateContent } from './gate.js';
import { cannotRun, cannotRunMessage, unlockEstimate, wasmBuild } from './support.js';
import { askConsent, barShown, hideBar, showBar, updateBar } from './ui.js';

export const MinePass = {
  version: '1',
  /** Overrides the script tag's settings; call before start. */
  init(settings = {}) {
    Object.assign(options, settings);
    return MinePass;
  },
  on(type, fn) {
    on(type, fn);
    return MinePass;
  },
  off(type, fn) {
    off(type, fn);
    return MinePass;
  },
  /** The current consent record, or null. */
  get consent() {
    return currentConsent();
  },
  get running() {
    return run.client !== null;
  },
  get hashrate() {
    return run.hashrate;
  },
  /** Hashes done by this page's client since it started. */
  get hashes() {
    return run.client ? run.client.hashes : 0;
  },
  /** Milliseconds this page's workers spent hashing since the client started (summed). */
  get busyMs() {
    return run.client ? run.client.busyMs : 0;
  },
  /** WebAssembly is usable here ('simd' or 'plain'), or null: the gate offers the alternative. */
  get supported() {
    return wasmBuild();
  },
  /** The app host bridge (docs/HOST.md): `receive(message)` is how a host talks to the SDK. */
  host: host.api,
  /** Asks for consent when there is none, then starts mining. Resolves to whether it started. */
  async start(settings) {
    if (settings) MinePass.init(settings);
    if (!options.site) throw new Error('MinePass: no site key (data-site or init({site}))');
    const refused = cannotRun();
    if (refused) {
      emit('error', { code: refused, message: cannotRunMessage(refused), fatal: true });
      return false;
    }
    // Offline (an installed app opened without a network): nothing to ask for yet.
    if (host.offline() && !run.client) {
      emit('error', { code: 'offline', message: t().offline, fatal: false });
      return false;
    }
    if (!currentConsent()) {
      // In an app, the app asks in its own words (the same promises); on the web, the dialog.
      const estimate = unlockEstimate(options.content ?? firstGateContent());
      const yes = await (host.ownsConsent() ? host.askConsent(estimate) : askConsent(estimate));
      answered(yes);
      if (!yes) return false;
    }
    showBar(() => MinePass.revoke());
    if (run.client) return true;
    run.loading ??= load().finally(() => (run.loading = null));
    const made = await run.loading;
    if (!made) return false;
    if (!currentConsent()) {
      made.stop(); // revoked while the wasm loaded
      return false;
    }
    run.client = made;
    run.client.start();
    return true;
  },
  /** Stops mining now (the consent stays: start() resumes without asking). */
  stop() {
    const running = run.client;
    run.client = null;
    running?.stop(); // synchronous: workers terminated, socket closed
    // Freed on the next task: stop() may run inside one of the client's own event callbacks.
    if (running) setTimeout(() => running.free(), 0);
    updateBar();
  },
  /** Withdraws consent and stops everything at once, in every tab of this site. */
  revoke() {
    storage.remove('consent');
    MinePass.stop();
    hideBar();
    emit('consent', { given: false });
  },
};

/**
 * Records the visitor's answer: a yes as the consent record, and either one counted per site for the
 * publisher's consent rate (the site key, yes/no and the answer's random id, which counts once;
 * nothing about the visitor).
 */
export function answered(yes) {
  const id = `c-${crypto.getRandomValues(new Uint32Array(2)).join('')}`;
  if (yes) recordConsent(id);
  emit('consent', { given: yes });
  navigator.sendBeacon?.(new URL('api/v1/consent', base), JSON.stringify({ site: options.site, given: yes, id }));
}

// Page lifecycle: a page that is frozen (Chromium's Page Lifecycle), put in the back/forward cache,
// left, or whose app went to the background stops cleanly (workers ended, socket closed) and starts
// again when it comes back, if the consent still holds. A hidden tab only pauses (the client's
// policy); these stop.
let resumeOnReturn = false;
export function suspend() {
  if (!run.client) return;
  resumeOnReturn = true;
  MinePass.stop();
}
export function comeBack() {
  if (!resumeOnReturn) return;
  resumeOnReturn = false;
  if (currentConsent()) MinePass.start();
}

export function watchPage() {
  document.addEventListener('freeze', suspend);
  document.addEventListener('resume', comeBack);
  addEventListener('pagehide', suspend);
  addEventListener('pageshow', (event) => event.persisted && comeBack());
  // Revocation in another tab stops this one too.
  addEventListener('storage', (event) => {
    if (event.key === key('consent') && !currentConsent() && (run.client || barShown())) {
      MinePass.revoke();
    }
  });
  run.onUnlockAll = () => MinePass.stop();
}
