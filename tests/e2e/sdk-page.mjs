// The demo page with the SDK, driven through classic WebDriver in any of the three engines
// (webdriver.mjs): a recorder installed in the page, its state, and the visitor's clicks. Shared by
// the engine tests (engines.mjs) and the SDK benchmark (bench-sdk.mjs).
import { sleep } from './harness.mjs';

// --- In the page ---------------------------------------------------------------------------------

// Installed after the page loads (classic WebDriver has no init scripts): the SDK does nothing
// before the visitor's click, so nothing it does is missed. Records workers (and their
// termination), sockets, submitted shares, the SDK's events and page errors.
export function record() {
  const log = (window.__mp = { events: [], workers: [], sockets: 0, submits: [], errors: [] });
  addEventListener('error', (event) => log.errors.push(String(event.message)));
  addEventListener('unhandledrejection', (event) => log.errors.push(String(event.reason)));
  const NativeWorker = window.Worker;
  window.Worker = class extends NativeWorker {
    constructor(...args) {
      super(...args);
      const entry = { alive: true, at: null };
      log.workers.push(entry);
      const terminate = this.terminate.bind(this);
      this.terminate = () => {
        entry.alive = false;
        entry.at = performance.now();
        terminate();
      };
    }
  };
  const NativeSocket = window.WebSocket;
  window.WebSocket = class extends NativeSocket {
    constructor(...args) {
      super(...args);
      log.sockets++;
      const send = this.send.bind(this);
      this.send = (data) => {
        if (String(data).includes('"submit"')) log.submits.push(performance.now());
        send(data);
      };
    }
  };
  MinePass.on('*', (type, detail) => log.events.push({ type, detail, at: performance.now() }));
}

export function pageState() {
  const dialog = document.querySelector('[data-minepass="consent"]')?.shadowRoot?.querySelector('dialog');
  return {
    downloads: performance.getEntriesByType('resource').map((e) => e.name).filter((u) => /\.wasm$|\/pkg\//.test(u)),
    workers: window.__mp.workers.length,
    alive: window.__mp.workers.filter((w) => w.alive).length,
    sockets: window.__mp.sockets,
    dialog: dialog?.open ? dialog.textContent : null,
    status: document.querySelector('minepass-gate')?.shadowRoot?.querySelector('.status')?.textContent ?? null,
    events: window.__mp.events.map((e) => e.type),
    errors: window.__mp.errors,
  };
}

export async function open(session, broker) {
  await session.goto(`${broker.url}/demo/`);
  await until(session, () => typeof MinePass === 'object' && customElements.get('minepass-gate') !== undefined, 10_000, 'the SDK');
  await session.evaluate(record);
}

export async function until(session, probe, ms, what, ...args) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await session.evaluate(probe, ...args);
    if (value) return value;
    if (Date.now() > end) {
      const state = await session.evaluate(pageState).catch((e) => String(e));
      throw new Error(`timed out after ${ms} ms waiting for ${what}; page: ${JSON.stringify(state)}`);
    }
    await sleep(200);
  }
}

export const clickGate = (session) =>
  session.evaluate(() => document.querySelector('minepass-gate').shadowRoot.querySelector('button').click());
export const answer = (session, yes) =>
  session.evaluate((yes) => {
    const dialog = document.querySelector('[data-minepass="consent"]').shadowRoot.querySelector('dialog');
    dialog.querySelector(yes ? 'button.primary' : 'button:not(.primary)').click();
  }, yes);
export const dialogOpen = (session) =>
  until(session, () => document.querySelector('[data-minepass="consent"]')?.shadowRoot?.querySelector('dialog')?.open, 5000, 'the consent dialog');
export const eventsOf = (session, type) => session.evaluate((type) => window.__mp.events.filter((e) => e.type === type), type);
