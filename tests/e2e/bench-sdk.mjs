// The SDK benchmark's browser part (run by `cargo xtask bench-sdk`; a benchmark, not a test). Against
// the real broker at its default settings, on the demo page in Debian's Chromium:
// - consent click -> first hash and -> first accepted share (median of 3 fresh visitors);
// - the throttle's duty cycle: hashes/s at each setting over hashes/s unthrottled, one worker each.
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

/** Hashes per second of one worker at `throttle`, over `ms` after a warm-up. */
async function rate(throttle, ms) {
  const context = await browser.newContext();
  const page = await openPage(context, `${broker.url}/demo/`);
  const started = page.evaluate((t) => MinePass.start({ content: 'long-read', threads: 1, throttle: t }), throttle);
  await allow(page);
  await started;
  await until(async () => (await page.events('hashing')).length > 0, 30_000, 'hashing');
  await sleep(2000);
  const before = await page.evaluate(() => [performance.now(), MinePass.hashes]);
  await sleep(ms);
  const after = await page.evaluate(() => [performance.now(), MinePass.hashes]);
  await context.close();
  return ((after[1] - before[1]) * 1000) / (after[0] - before[0]);
}

const visits = [];
for (let i = 0; i < 3; i++) visits.push(await firstHashAndShare());

const full = await rate(0, 6000);
const throttle = [];
for (const setting of [0.25, 0.5, 0.75]) {
  const duty = (await rate(setting, 6000)) / full;
  throttle.push({ setting, expected_duty: 1 - setting, measured_duty: Math.round(duty * 1000) / 1000 });
}
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
