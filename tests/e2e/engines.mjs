// The SDK's core scenarios in all three engines a visitor's browser or webview runs: Chromium (Blink),
// Firefox ESR (Gecko) and WebKitGTK (WebKit, the engine of every iOS webview), each through its own
// WebDriver server (webdriver.mjs) against the real broker binary. `cargo xtask test` runs this file:
//
//   MINEPASS_BROKER=target/debug/minepass-broker node tests/e2e/engines.mjs [engine-or-name-filter]
//
// The deeper Chromium-only checks (every response and frame, CSP, cross-origin, crash resume) are in
// sdk.mjs, which needs Chromium's DevTools protocol. Facts per engine (version, kernel build, workers,
// rate) go to target/e2e-engines.json for the README's support table.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { assert, sleep, startBroker, verifyToken } from './harness.mjs';
import { ENGINES, missing, startDriver } from './webdriver.mjs';
import { answer, clickGate, dialogOpen, eventsOf, open, pageState, until } from './sdk-page.mjs';

const filter = process.argv[2] || '';

const scenarios = {
  async 'nothing is fetched, started or connected before consent, nor after a no'({ session, broker }) {
    await open(session, broker);
    await clickGate(session);
    await dialogOpen(session);
    await sleep(500);
    let state = await session.evaluate(pageState);
    assert(state.downloads.length === 0 && state.workers === 0 && state.sockets === 0, `with the dialog open: ${JSON.stringify(state)}`);
    await answer(session, false);
    await sleep(500);
    state = await session.evaluate(pageState);
    assert(state.downloads.length === 0 && state.workers === 0 && state.sockets === 0, `after no: ${JSON.stringify(state)}`);
    const [consent] = await eventsOf(session, 'consent');
    assert(consent?.detail.given === false, 'a consent event says no');
  },

  async 'consent, mining and unlock; the token verifies once'({ session, broker, facts }) {
    await open(session, broker);
    await clickGate(session);
    await dialogOpen(session);
    await answer(session, true);
    const [unlock] = await until(session, () => {
      const events = window.__mp.events.filter((e) => e.type === 'unlock');
      return events.length ? events : null;
    }, 120_000, 'the unlock');
    await until(session, () => document.querySelector('minepass-gate').unlocked === true, 5000, 'the gate open');
    const first = await verifyToken(broker, unlock.detail.token);
    assert(first.ok === true && first.claims.content === 'demo-article', `verify: ${JSON.stringify(first)}`);
    const second = await verifyToken(broker, unlock.detail.token);
    assert(second.ok === false, 'a token verifies once');
    const state = await session.evaluate(pageState);
    assert(state.errors.length === 0, `page errors: ${state.errors}`);
    facts.kernel = await session.evaluate(() => MinePass.supported);
    facts.unlockSeconds = Math.round((unlock.at - (await firstEventAt(session, 'start'))) / 100) / 10;
  },

  async 'with two workers the rate shown is the sum over them'({ session, broker, facts }) {
    await open(session, broker);
    await session.evaluate(() => void MinePass.start({ content: 'long-read', threads: 2 }));
    await dialogOpen(session);
    await answer(session, true);
    // The probe keeps the second worker where it adds half a worker (WebKit on a loaded 2-core CI box
    // sometimes does not): the sum is checked over whatever runs.
    const settled = await until(session, () => window.__mp.events.find((e) => e.type === 'workers' && e.detail.settled), 60_000, 'the worker count settled');
    const count = settled.detail.count;
    assert(count >= 1 && count <= 2, `settled at ${count}`);
    await sleep(2000);
    const before = await session.evaluate(() => [MinePass.hashes, performance.now()]);
    await sleep(6000);
    const [hashes, at, shown, workers] = await session.evaluate(() => [MinePass.hashes, performance.now(), MinePass.hashrate, window.__mp.workers.filter((w) => w.alive).length]);
    assert(workers === count, `workers: ${workers}, settled at ${count}`);
    const counted = ((hashes - before[0]) * 1000) / (at - before[1]);
    // Counting one worker's report as the client's rate showed half of this.
    const ratio = shown / counted;
    assert(ratio > 0.7 && ratio < 1.4, `shown ${shown.toFixed(0)} H/s, counted ${counted.toFixed(0)} H/s`);
    facts.twoWorkerMhs = Math.round(counted / 1e4) / 100;
  },

  async 'the worker count settles at what the device sustains, not what it reports'({ session, broker, facts }) {
    await open(session, broker);
    const reported = await session.evaluate(() => navigator.hardwareConcurrency);
    await session.evaluate(() => void MinePass.start({ content: 'long-read' }));
    await dialogOpen(session);
    await answer(session, true);
    const settled = await until(session, () => window.__mp.events.find((e) => e.type === 'workers' && e.detail.settled), 60_000, 'the worker count settled');
    const { count, max } = settled.detail;
    Object.assign(facts, { reportedThreads: reported, maxWorkers: max, settledWorkers: count });
    // A worker stays only if it adds half a worker's rate: never more workers than real cores.
    assert(count >= 1 && count <= Math.min(max, cpus().length), `settled at ${count} of ${max} on ${cpus().length} cores`);
  },

  async 'stop ends every worker within a second and no share is sent after'({ session, broker }) {
    await open(session, broker);
    await session.evaluate(() => void MinePass.start({ content: 'long-read' }));
    await dialogOpen(session);
    await answer(session, true);
    await until(session, () => window.__mp.events.some((e) => e.type === 'share'), 60_000, 'an accepted share');
    const clicked = await session.evaluate(() => {
      document.querySelector('[data-minepass="bar"]').shadowRoot.querySelector('button').click();
      return performance.now();
    });
    await sleep(1500);
    const [alive, latest, lateSubmits] = await session.evaluate((clicked) => {
      const log = window.__mp;
      return [log.workers.filter((w) => w.alive).length, Math.max(...log.workers.map((w) => w.at ?? Infinity)), log.submits.filter((t) => t > clicked).length];
    }, clicked);
    assert(alive === 0, `${alive} workers still alive`);
    assert(latest - clicked <= 1000, `the last worker ended ${Math.round(latest - clicked)} ms after the click`);
    assert(lateSubmits === 0, `${lateSubmits} shares sent after the stop`);
    assert((await session.evaluate(() => MinePass.consent)) === null, 'the stop bar revokes consent');
  },

  async 'charging only is promised only where the browser reports charging'({ session, broker, facts }) {
    await open(session, broker);
    const battery = await session.evaluate(() => typeof navigator.getBattery === 'function');
    facts.batteryApi = battery;
    await session.evaluate(() => void MinePass.init({ requireCharging: true }));
    await clickGate(session);
    if (battery) {
      await dialogOpen(session);
      const { dialog } = await session.evaluate(pageState);
      assert(/only while charging/.test(dialog), `the dialog: ${dialog}`);
      await answer(session, false);
      return;
    }
    await until(session, () => /cannot tell whether it is/.test(document.querySelector('minepass-gate').shadowRoot.querySelector('.status').textContent), 5000, 'the gate says why');
    const state = await session.evaluate(pageState);
    assert(state.dialog === null, 'a dialog promised what it cannot keep');
    assert(state.downloads.length === 0 && state.workers === 0 && state.sockets === 0, JSON.stringify(state));
    const [error] = await eventsOf(session, 'error');
    assert(error?.detail.code === 'charging_unknown', `error: ${JSON.stringify(error?.detail)}`);
  },
};

async function firstEventAt(session, type) {
  return session.evaluate((type) => window.__mp.events.find((e) => e.type === type)?.at ?? NaN, type);
}

// --- Runner --------------------------------------------------------------------------------------

let passed = 0;
let failed = 0;
const report = {};
for (const engine of Object.keys(ENGINES)) {
  const names = Object.keys(scenarios).filter((name) => engine.includes(filter) || name.includes(filter));
  if (!names.length) continue;
  const why = missing(engine);
  if (why) {
    // `cargo xtask test` installs every driver: a missing one there is a failure, not a skip.
    failed++;
    console.log(`test ${engine}: the engine ... FAILED\n    ${why}`);
    continue;
  }
  const driver = await startDriver(engine);
  const facts = (report[engine] = { engine: ENGINES[engine].label });
  try {
    for (const name of names) {
      const broker = await startBroker();
      const began = Date.now();
      let session;
      try {
        session = await driver.session();
        facts.version ??= session.capabilities.browserVersion;
        await scenarios[name]({ session, broker, facts });
        passed++;
        console.log(`test ${engine}: ${name} ... ok (${((Date.now() - began) / 1000).toFixed(1)} s)`);
      } catch (error) {
        failed++;
        console.log(`test ${engine}: ${name} ... FAILED\n    ${error.stack || error}`);
      } finally {
        await session?.close();
        broker.stop();
      }
    }
  } finally {
    driver.stop();
  }
}
mkdirSync('target', { recursive: true });
writeFileSync('target/e2e-engines.json', `${JSON.stringify(report, null, 1)}\n`);
console.log(JSON.stringify(report));
console.log(`test result: ${failed ? 'FAILED' : 'ok'}. ${passed} passed; ${failed} failed`);
process.exit(failed ? 1 : 0);
