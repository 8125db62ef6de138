// The SDK benchmark's browser part (run by `cargo xtask bench-sdk`; a benchmark, not a test). Against
// the real broker at its default settings, on the demo page in Debian's Chromium:
// - consent click -> first hash and -> first accepted share (median of 3 fresh visitors);
// - the throttle's duty cycle, one worker: the share of wall time the worker spends hashing (what the
//   throttle controls), and the hash rate at each setting over the rate unthrottled just before it
//   (what the visitor's CPU sees; noisier on a shared 2-core machine).
// - a phone-like profile (when xtask could make a CPU-capped cgroup, MINEPASS_PHONE_CGROUP): Chromium
//   confined to half a CPU and reporting 8 cores, at the demo's default quota (2^28 hashes): consent ->
//   first share -> unlock, the workers it settled at, and the ETA the gate showed at 10 s and 30 s
//   against the real remaining time;
// - per engine (Chromium, Firefox ESR, WebKitGTK through WebDriver): consent -> first accepted share.
// Prints one JSON line.
import { writeFileSync } from 'node:fs';
import { allow, gateButton, launchBrowser, openPage, putContent, sleep, startBroker, until } from './harness.mjs';
import { answer, clickGate, dialogOpen, open, until as untilInPage } from './sdk-page.mjs';
import { ENGINES, missing, startDriver } from './webdriver.mjs';

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const browser = await launchBrowser();
const broker = await startBroker({ quick: false });

async function firstHashAndShare() {
  const context = await browser.newContext();
  const page = await openPage(context, `${broker.url}/demo/`);
  await gateButton(page).click();
  await allow(page);
  const consent = await until(async () => (await page.events('consent')).find((e) => e.detail.given), 5000, 'consent');
  const hash = await until(async () => (await page.events('hashing'))[0], 30_000, 'the first hash');
  const share = await until(async () => (await page.events('share'))[0], 60_000, 'the first share');
  await context.close();
  return { hash: hash.at - consent.at, share: share.at - consent.at };
}

/**
 * Hashes per second of one worker at `throttle`, over `ms` after a warm-up, on a page that already has
 * consent. Each throttled window is compared with an unthrottled one measured just before it on the
 * same page, so both see the same machine load.
 */
async function measure(page, throttle, ms) {
  const before = (await page.events('hashing')).length;
  await page.evaluate((t) => MinePass.start({ content: 'long-read', threads: 1, throttle: t }), throttle);
  await until(async () => (await page.events('hashing')).length > before, 30_000, 'hashing');
  await sleep(1500);
  const sample = () => page.evaluate(() => [performance.now(), MinePass.hashes, MinePass.busyMs]);
  const first = await sample();
  await sleep(ms);
  const last = await sample();
  await page.evaluate(() => MinePass.stop());
  const wall = last[0] - first[0];
  return { rate: ((last[1] - first[1]) * 1000) / wall, duty: (last[2] - first[2]) / wall };
}

const visits = [];
for (let i = 0; i < 3; i++) visits.push(await firstHashAndShare());

const context = await browser.newContext();
const page = await openPage(context, `${broker.url}/demo/`);
const consented = page.evaluate(() => MinePass.start({ content: 'long-read', threads: 1 }));
await allow(page);
await consented;
await page.evaluate(() => MinePass.stop());
const throttle = [];
const unthrottled = [];
for (const setting of [0.25, 0.5, 0.75]) {
  const full = await measure(page, 0, 4000);
  const throttled = await measure(page, setting, 4000);
  unthrottled.push(full.rate);
  const round = (x) => Math.round(x * 1000) / 1000;
  throttle.push({
    setting,
    expected_duty: 1 - setting,
    measured_duty: round(throttled.duty),
    hashrate_ratio: round(throttled.rate / full.rate),
  });
}
await context.close();
const full = median(unthrottled);
await browser.close();

/**
 * The demo as a phone would run it: Chromium in the CPU-capped cgroup (a wrapper puts itself there and
 * execs the browser, so every Chromium process inherits it), `navigator.hardwareConcurrency` 8 (CDP),
 * the demo's default quota. The ETA the gate shows is compared with when the unlock really came.
 */
async function phone(cgroupProcs) {
  const wrapper = '/tmp/minepass-phone-chromium.sh';
  const chromiumPath = process.env.MINEPASS_CHROMIUM || '/usr/bin/chromium';
  writeFileSync(wrapper, `#!/bin/sh\necho $$ > ${cgroupProcs}\nexec ${chromiumPath} "$@"\n`, { mode: 0o755 });
  const phoneBroker = await startBroker({ quick: false });
  await putContent(phoneBroker, 'demo-article', String(2 ** 28)); // the demo's default quota
  const phoneBrowser = await launchBrowser({ executablePath: wrapper });
  try {
    const context = await phoneBrowser.newContext();
    const before = async (page) => {
      const cdp = await context.newCDPSession(page);
      await cdp.send('Emulation.setHardwareConcurrencyOverride', { hardwareConcurrency: 8 });
    };
    const page = await openPage(context, `${phoneBroker.url}/demo/`, { before });
    await gateButton(page).click();
    const dialog = await page.locator('[data-minepass="consent"] dialog').textContent();
    await allow(page);
    const events = async (type) => page.events(type);
    const consent = await until(async () => (await events('consent')).find((e) => e.detail.given), 5000, 'consent');
    const share = await until(async () => (await events('share'))[0], 120_000, 'the first share');
    const etaAt = async (seconds) => {
      await until(async () => Date.now() >= consent.at + seconds * 1000, seconds * 1000 + 5000, `${seconds} s`);
      const progress = (await events('progress')).filter((e) => e.detail.eta_s != null).at(-1);
      return progress ? { at: progress.at, eta_s: progress.detail.eta_s } : null;
    };
    const eta10 = await etaAt(10);
    const eta30 = await etaAt(30);
    const unlock = await until(async () => (await events('unlock'))[0], 900_000, 'the unlock');
    const workers = (await events('workers')).at(-1)?.detail;
    const error = (eta) => {
      if (!eta) return null;
      const real = (unlock.at - eta.at) / 1000;
      return { shown_s: Math.round(eta.eta_s), real_s: Math.round(real), error_pct: Math.round((100 * (eta.eta_s - real)) / real) };
    };
    await context.close();
    return {
      cpu_quota: 0.5,
      reported_cores: 8,
      promised_threads: Number(dialog.match(/at most (\d+) processor/)?.[1]),
      workers_settled: workers?.count ?? null,
      consent_to_first_share_ms: share.at - consent.at,
      consent_to_unlock_s: Math.round((unlock.at - consent.at) / 100) / 10,
      eta_at_10s: error(eta10),
      eta_at_30s: error(eta30),
    };
  } finally {
    await phoneBrowser.close();
    phoneBroker.stop();
  }
}

/** Consent click -> first accepted share in `engine` through its WebDriver server (one visitor). */
async function firstShareIn(engine) {
  const why = missing(engine);
  if (why) return { skipped: why };
  const driver = await startDriver(engine);
  try {
    const session = await driver.session();
    try {
      await open(session, broker);
      await clickGate(session);
      await dialogOpen(session);
      await answer(session, true);
      const ms = await untilInPage(
        session,
        () => {
          const events = window.__mp.events;
          const consent = events.find((e) => e.type === 'consent' && e.detail.given);
          const share = events.find((e) => e.type === 'share');
          return consent && share ? Math.round(share.at - consent.at) : null;
        },
        120_000,
        'the first share',
      );
      const kernel = await session.evaluate(() => MinePass.supported);
      return { consent_to_first_share_ms: ms, kernel, browser: ENGINES[engine].label };
    } finally {
      await session.close();
    }
  } finally {
    driver.stop();
  }
}

const engines = {};
for (const engine of Object.keys(ENGINES)) engines[engine] = await firstShareIn(engine);
broker.stop();
const phoneResult = process.env.MINEPASS_PHONE_CGROUP
  ? await phone(process.env.MINEPASS_PHONE_CGROUP)
  : { skipped: 'no CPU-capped cgroup (xtask makes one when it runs as root)' };
console.log(
  JSON.stringify({
    engines,
    phone: phoneResult,
    consent_to_first_hash_ms: Math.round(median(visits.map((v) => v.hash))),
    consent_to_first_share_ms: Math.round(median(visits.map((v) => v.share))),
    unthrottled_mhs: Math.round(full / 1e4) / 100,
    throttle,
    // Duty-cycle error in points (measured − expected) and relative to the expected duty.
    throttle_max_error_points: Math.max(...throttle.map((t) => Math.abs(t.measured_duty - t.expected_duty))),
    throttle_max_error_relative: Math.max(
      ...throttle.map((t) => Math.abs(t.measured_duty - t.expected_duty) / t.expected_duty),
    ),
  }),
);
