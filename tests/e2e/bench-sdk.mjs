// The SDK benchmark's browser part (run by `cargo xtask bench-sdk`; a benchmark, not a test). Against
// the real broker at its default settings, on the demo page in Debian's Chromium:
// - consent click -> first hash and -> first accepted share (median of 3 fresh visitors);
// - the throttle's duty cycle, one worker: the share of wall time the worker spends hashing (what the
//   throttle controls), and the hash rate at each setting over the rate unthrottled just before it
//   (what the visitor's CPU sees; noisier on a shared 2-core machine).
// Prints one JSON line.
import { allow, gateButton, launchBrowser, openPage, sleep, startBroker, until } from './harness.mjs';

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
broker.stop();
console.log(
  JSON.stringify({
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
