// End-to-end tests of the browser SDK: Debian's Chromium (driven by playwright-core) against the real
// broker binary on 127.0.0.1 with a fresh SQLite ledger. `cargo xtask test` runs this file:
//
//   MINEPASS_BROKER=target/debug/minepass-broker node tests/e2e/sdk.mjs [name-filter]
//
// Each scenario prints `ok`/`not ok`; the last line is `test result: …` like cargo's. Screenshots go to
// docs/screenshots/.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import {
  activeWorkers,
  allow,
  assert,
  consentDialog,
  gateButton,
  launchBrowser,
  launchPersistent,
  metric,
  openPage,
  openPages,
  sleep,
  startBroker,
  startPool,
  submitsAfter,
  until,
  verifyToken,
} from './harness.mjs';

const SCREENSHOTS = 'docs/screenshots';
const filter = process.argv[2] || '';

// --- Scenarios -------------------------------------------------------------------------------------

const scenarios = {
  async 'before consent nothing is fetched, started or connected'({ browser, broker }) {
    const context = await browser.newContext();
    const page = await openPage(context, `${broker.url}/demo/`);
    await sleep(1500);
    const wasm = page.log.requests.filter((u) => u.endsWith('.wasm') || u.includes('/pkg/'));
    assert(wasm.length === 0, `requests before consent: ${wasm}`);
    assert(activeWorkers(page) === 0, 'a worker ran before consent');
    assert(page.log.sockets.length === 0, `a WebSocket opened before consent: ${page.log.sockets}`);
    // Opening the dialog is not consent either.
    await gateButton(page).click();
    const dialog = await consentDialog(page);
    assert(await dialog.evaluate((d) => d.getAttribute('aria-labelledby') === 'mp-title'), 'dialog is labelled');
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: `${SCREENSHOTS}/consent.png` });
    await sleep(500);
    assert(page.log.requests.filter((u) => u.endsWith('.wasm')).length === 0, 'wasm fetched with the dialog open');
    assert(activeWorkers(page) === 0 && page.log.sockets.length === 0, 'started with the dialog open');
    // Declining (Escape) leaves everything off.
    await page.keyboard.press('Escape');
    await sleep(500);
    assert(page.log.requests.filter((u) => u.endsWith('.wasm')).length === 0, 'wasm fetched after declining');
    assert((await page.events('consent'))[0]?.detail.given === false, 'a consent event says no');
    await context.close();
  },

  async 'consent, mining, progress and unlock; the token passes the verify API once'({ browser, broker }) {
    const context = await browser.newContext();
    const page = await openPage(context, `${broker.url}/demo/`);
    await gateButton(page).click();
    await allow(page);
    await until(async () => (await page.events('progress')).length > 0, 20_000, 'progress');
    await until(async () => (await page.events('share')).length > 0, 20_000, 'an accepted share');
    const [share] = await page.events('share');
    assert(BigInt(share.detail.credits) >= BigInt(share.detail.work), `the visitor sees their credits: ${JSON.stringify(share.detail)}`);
    await page.screenshot({ path: `${SCREENSHOTS}/mining.png` });
    const [unlock] = await until(async () => {
      const events = await page.events('unlock');
      return events.length ? events : null;
    }, 60_000, 'unlock');
    assert(unlock.detail.content === 'demo-article', 'unlocked the demo article');
    await page.locator('minepass-gate section.unlocked').waitFor({ state: 'visible' });
    await page.screenshot({ path: `${SCREENSHOTS}/unlocked.png`, fullPage: true });
    const first = await verifyToken(broker, unlock.detail.token);
    assert(first.ok === true && first.claims.content === 'demo-article', `verify: ${JSON.stringify(first)}`);
    assert(first.claims.aud === 'site_demo', 'the token is for the demo site');
    const second = await verifyToken(broker, unlock.detail.token);
    assert(second.ok === false && second.error === 'already_used', `second verify: ${JSON.stringify(second)}`);
    const wasm = page.log.requests.filter((u) => u.endsWith('.wasm'));
    assert(wasm.length >= 2, `the client and a kernel module were loaded: ${wasm}`);
    await context.close();
  },

  async 'the sealed half is in no response before the unlock and shown after it'({ browser, broker }) {
    // Phrases of the demo's gated half (broker/demo/demo-article.html), which the broker seals.
    const secrets = ['It was not in the page', 'block the script or scrape the page', 'examples/kits/ has servers'];
    const context = await browser.newContext();
    const page = await openPage(context, `${broker.url}/demo/`);
    const source = await page.content();
    assert(!secrets.some((s) => source.includes(s)), 'the gated text is in the page before consent');
    await gateButton(page).click();
    await allow(page);
    const [unlock] = await until(async () => {
      const events = await page.events('unlock');
      return events.length ? events : null;
    }, 60_000, 'unlock');
    assert(unlock.detail.sealed === true && unlock.detail.keys === undefined, `the page sees no keys: ${JSON.stringify(unlock.detail)}`);
    const shown = page.locator('minepass-gate section.unlocked');
    await shown.waitFor({ state: 'visible' });
    assert((await shown.textContent()).includes(secrets[0]), 'the decrypted half is shown');
    // Nothing the page ever received holds the text: not the HTML, JS, wasm or JSON, not a frame.
    await Promise.all(page.log.responses.map((r) => r.done));
    const leaks = page.log.responses.filter((r) => secrets.some((s) => r.body.includes(s))).map((r) => r.url);
    assert(leaks.length === 0, `gated text in responses: ${leaks}`);
    const frames = page.log.framesReceived.filter((f) => secrets.some((s) => f.payload.includes(s)));
    assert(frames.length === 0, `gated text in WebSocket frames: ${frames.map((f) => f.payload)}`);
    // The ciphertext was fetched only after the unlock, and no job or progress frame held a key.
    const unlockFrame = page.log.framesReceived.find((f) => f.payload.includes('"type":"unlock"'));
    const sealedFetch = page.log.responses.find((r) => r.url.includes('/api/v1/sealed/'));
    assert(sealedFetch && sealedFetch.at >= unlockFrame.at, 'the ciphertext was fetched before the unlock');
    const key = JSON.parse(unlockFrame.payload).keys[0].key;
    const elsewhere = page.log.framesReceived.filter((f) => f !== unlockFrame && f.payload.includes(key));
    assert(elsewhere.length === 0, 'the content key travelled outside the unlock');
    assert(page.log.errors.length === 0, `page errors: ${page.log.errors}`);
    await context.close();
  },

  async 'scripts and event handlers in sealed HTML never run, the markup is kept'({ browser, broker }) {
    // A publisher's sealed HTML with every way it could try to run code on the page (which has no CSP).
    const html = `<section class="unlocked"><p id="kept" class="note">Kept text</p>
      <script>window.__ran = 'script'</script>
      <img id="img" src="data:," onerror="window.__ran = 'onerror'" alt="">
      <a id="link" href=" javascript:window.__ran = 'link'">link</a>
      <iframe id="frame" srcdoc="<script>parent.__ran = 'srcdoc'</script>"></iframe>
      <svg><a id="svglink" href="javascript:window.__ran = 'svg'"><text>x</text></a></svg></section>`;
    const sealed = await admin(broker, 'PUT', '/sites/site_demo/content/demo-article/sealed', { html });
    assert(sealed.ok && sealed.version === 2, `sealed: ${JSON.stringify(sealed)}`);
    const context = await browser.newContext();
    const page = await openPage(context, `${broker.url}/demo/`);
    await gateButton(page).click();
    await allow(page);
    await page.locator('minepass-gate #kept').waitFor({ state: 'visible', timeout: 60_000 });
    await page.locator('minepass-gate #link').click();
    await sleep(500);
    const seen = await page.evaluate(() => {
      const gate = document.querySelector('minepass-gate');
      return {
        ran: window.__ran ?? null,
        scripts: gate.querySelectorAll('script').length,
        onerror: gate.querySelector('#img').getAttribute('onerror'),
        href: gate.querySelector('#link').getAttribute('href'),
        srcdoc: gate.querySelector('#frame').getAttribute('srcdoc'),
        svgHref: gate.querySelector('#svglink').getAttribute('href'),
        className: gate.querySelector('#kept').className,
      };
    });
    const expected = { ran: null, scripts: 0, onerror: null, href: null, srcdoc: null, svgHref: null, className: 'note' };
    assert(JSON.stringify(seen) === JSON.stringify(expected), `sealed markup as inserted: ${JSON.stringify(seen)}`);
    await context.close();
  },

  async 'revoke stops every worker within a second and no share is sent after'({ browser, broker }) {
    const { context, page } = await miningPage(browser, broker, 2);
    assert(activeWorkers(page) > 0, 'workers run while mining');
    // Timed from when the click has happened (playwright's actionability checks before it can take
    // longer than the margin on a loaded machine); frame times are recorded as they reach node.
    await page.locator('[data-minepass="bar"]').getByRole('button', { name: /Stop/ }).click();
    const revokedAt = Date.now();
    await until(() => activeWorkers(page) === 0, 1000, 'every worker to be terminated');
    await sleep(2000);
    assert(submitsAfter(page, revokedAt + 50) === 0, 'a share was sent after revoking');
    assert((await page.evaluate(() => MinePass.consent)) === null, 'consent is withdrawn');
    assert((await page.evaluate(() => MinePass.running)) === false, 'the client stopped');
    await context.close();
  },

  async 'a hidden tab pauses mining and a visible one resumes'({ browser, broker }) {
    const { context, page } = await miningPage(browser, broker, 1);
    await setVisibility(page, 'hidden');
    const hiddenAt = Date.now();
    const pauses = await until(async () => {
      const events = await page.events('pause');
      return events.some((e) => e.detail.reason === 'hidden') ? events : null;
    }, 2000, 'a pause for the hidden tab');
    assert(pauses.length > 0, 'paused');
    await sleep(2500);
    assert(submitsAfter(page, hiddenAt + 500) === 0, 'shares were sent while hidden');
    const progressWhileHidden = (await page.events('progress')).filter((e) => e.at > hiddenAt + 500);
    assert(progressWhileHidden.length === 0, 'hashing continued while hidden');
    const visibleAt = Date.now();
    await setVisibility(page, 'visible');
    await until(async () => (await page.events('start')).some((e) => e.at >= visibleAt), 3000, 'resume');
    await until(async () => (await page.events('share')).some((e) => e.at > visibleAt), 30_000, 'shares again');
    await context.close();
  },

  async 'a frozen page stops its workers and session, and comes back mining'({ browser, broker }) {
    const { context, page } = await miningPage(browser, broker, 1);
    // What Chromium does to a page in the background: hidden, then the Page Lifecycle API's freeze
    // (later resume). CDP's setWebLifecycleState is a no-op on a visible page, and headless pages
    // stay visible.
    await setVisibility(page, 'hidden', 'freeze');
    const frozenAt = Date.now();
    await until(() => activeWorkers(page) === 0, 2000, 'the workers ended');
    await until(async () => (await metric(broker, 'minepass_connections_open')) === 0, 3000, 'the session closed');
    await sleep(1500);
    assert(submitsAfter(page, frozenAt) === 0, 'shares were sent while frozen');
    await setVisibility(page, 'visible', 'resume');
    await until(async () => (await page.events('open')).length >= 2, 20_000, 'a new session after the resume');
    await until(async () => (await page.events('share')).some((e) => e.at > frozenAt), 30_000, 'shares again');
    assert(activeWorkers(page) > 0, 'no worker after the resume');
    await context.close();
  },

  async 'the demo is an installable app whose shell opens offline and says computing needs a connection'({ broker }) {
    // A real profile: Chromium does not install apps from incognito contexts (newContext's kind).
    const profile = mkdtempSync(join(tmpdir(), 'minepass-pwa-'));
    const context = await launchPersistent(profile);
    const page = await openPage(context, `${broker.url}/demo/`);
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
    const cdp = await context.newCDPSession(page);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    assert(installabilityErrors.length === 0, `installability: ${JSON.stringify(installabilityErrors)}`);
    const manifest = await cdp.send('Page.getAppManifest');
    assert(manifest.errors.length === 0, `manifest: ${JSON.stringify(manifest.errors)}`);
    // Detached: a DevTools session of our own on the page stops the offline emulation reaching it.
    await cdp.detach();
    // The precache holds the shell and the SDK's loader, never the computing code (consent first).
    const cached = await page.evaluate(async () => {
      const names = await caches.keys();
      const cache = await caches.open(names.find((n) => n.startsWith('minepass-demo-')));
      return (await cache.keys()).map((r) => new URL(r.url).pathname);
    });
    assert(cached.includes('/demo/') && cached.includes('/minepass.js'), `cached: ${cached}`);
    assert(!cached.some((p) => /\.wasm$|^\/pkg\/|worker\.js$/.test(p)), `computing code cached: ${cached}`);
    // Offline, the shell opens from the cache and the gate says why it cannot start yet.
    await context.setOffline(true);
    await page.reload();
    const status = page.locator('minepass-gate .status');
    await until(async () => /You are offline/.test(await status.textContent()), 5000, 'the offline notice');
    assert(await gateButton(page).isDisabled(), 'the unlock button is offered offline');
    assert((await page.locator('h1').textContent()).includes('computing'), 'the article shell is there');
    await context.setOffline(false);
    await until(async () => !(await gateButton(page).isDisabled()), 5000, 'the button back online');
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  },

  async 'a spent daily budget pauses mining until the next day (injected clock)'({ browser, broker }) {
    const context = await browser.newContext();
    const page = await openPage(context, `${broker.url}/demo/`);
    await page.evaluate(() => {
      window.__now = Date.now();
      setInterval(() => (window.__now += 100), 100);
      MinePass.init({ clock: () => window.__now, dailyMinutes: 0.05, content: 'long-read' }); // 3 s a day
    });
    const started = page.evaluate(() => MinePass.start());
    await allow(page);
    await started;
    await until(async () => (await page.events('start')).length > 0, 10_000, 'mining');
    await until(
      async () => (await page.events('pause')).some((e) => e.detail.reason === 'budget'),
      15_000,
      'the budget pause',
    );
    const spentAt = Date.now();
    await sleep(2500);
    const progress = (await page.events('progress')).filter((e) => e.at > spentAt + 500);
    assert(progress.length === 0, 'mining continued past the budget');
    const stored = await page.evaluate(() => localStorage.getItem('minepass.site_demo.budget'));
    assert(/^\d+:\d+$/.test(stored) && Number(stored.split(':')[1]) >= 3000, `budget stored: ${stored}`);
    // Just after the next local midnight (still within the consent's 24 hours).
    const nextDay = Date.now();
    await page.evaluate(() => {
      const midnight = new Date(window.__now);
      midnight.setHours(24, 1, 0, 0);
      window.__now = midnight.getTime();
    });
    await until(async () => (await page.events('start')).some((e) => e.at > nextDay), 5000, 'mining the next day');
    await until(async () => (await page.events('progress')).some((e) => e.at > nextDay), 10_000, 'progress again');
    await context.close();
  },

  async 'a reload keeps consent and the budget'({ browser, broker }) {
    const context = await browser.newContext();
    // A publisher page with a 3-second daily budget on a gate that never unlocks: the demo page's
    // markup is adjusted as the parser inserts it, before the async SDK script runs.
    await context.addInitScript(() => {
      new MutationObserver((records) => {
        for (const node of records.flatMap((r) => [...r.addedNodes])) {
          if (node.dataset?.site) node.dataset.dailyMinutes = '0.05';
          if (node.localName === 'minepass-gate') node.setAttribute('content', 'long-read');
        }
      }).observe(document, { childList: true, subtree: true });
    });
    const page = await openPage(context, `${broker.url}/demo/`);
    await gateButton(page).click();
    await allow(page);
    await until(
      async () => (await page.events('pause')).some((e) => e.detail.reason === 'budget'),
      20_000,
      'the budget pause',
    );
    const consent = await page.evaluate(() => MinePass.consent);
    await page.reload();
    // No dialog: the gate resumes by itself with the remembered consent, and today's budget is spent.
    await until(async () => (await page.events('pause')).some((e) => e.detail.reason === 'budget'), 10_000, 'budget');
    assert((await page.locator('[data-minepass="consent"]').count()) === 0, 'asked again after a reload');
    const after = await page.evaluate(() => MinePass.consent);
    assert(after && after.id === consent.id, 'the same consent record');
    assert((await page.events('start')).length === 0, 'mined past the budget after a reload');
    await context.close();
  },

  async 'two tabs of the same site: only one mines'({ browser, broker }) {
    const context = await browser.newContext();
    const first = await openPage(context, `${broker.url}/demo/`);
    const started = first.evaluate(() => MinePass.start({ content: 'long-read' }));
    await allow(first);
    await started;
    await until(async () => (await first.events('start')).length > 0, 10_000, 'the first tab mining');
    const second = await openPage(context, `${broker.url}/demo/`);
    await second.evaluate(() => MinePass.start({ content: 'long-read' })); // consent is already given
    await until(
      async () => (await second.events('pause')).some((e) => e.detail.reason === 'other-tab'),
      5000,
      'the second tab to wait',
    );
    await sleep(1500);
    assert((await second.events('start')).length === 0, 'the second tab mined alongside the first');
    assert(activeWorkers(second) === 0, 'the second tab started workers');
    // The first tab goes away: the second takes over.
    await first.close();
    await until(async () => (await second.events('start')).length > 0, 5000, 'the second tab to take over');
    await context.close();
  },

  async 'without WebAssembly the gate says so and offers the alternative'({ browser, broker }) {
    const context = await browser.newContext();
    // As in iOS Lockdown Mode or under a policy that disables wasm.
    await context.addInitScript(() => delete window.WebAssembly);
    const page = await openPage(context, `${broker.url}/demo/`);
    const fallback = page.locator('minepass-gate p[slot="fallback"]');
    await fallback.waitFor({ state: 'visible', timeout: 5000 });
    const status = await page.locator('minepass-gate .status').textContent();
    assert(/cannot run the computation/.test(status), `gate status: ${status}`);
    assert(!(await gateButton(page).isVisible()), 'the unlock button is still offered');
    assert((await page.evaluate(() => MinePass.supported)) === null, 'MinePass.supported is null');
    assert(activeWorkers(page) === 0 && page.log.sockets.length === 0, 'something started anyway');
    await context.close();
  },

  async 'an 8-thread claim on 2 cores: the SDK measures, runs what the cores sustain, and shows their summed rate'({ browser, broker }) {
    const context = await browser.newContext();
    const page = await openPage(context, `${broker.url}/demo/`);
    // The device says 8 threads (this box has 2 cores): the dialog promises at most 7 workers, and
    // the SDK adds them one at a time while each adds real work.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Emulation.setHardwareConcurrencyOverride', { hardwareConcurrency: 8 });
    // A quota that does not unlock (and stop) while the rate is measured.
    await page.evaluate(() => void MinePass.start({ content: 'long-read' }));
    const dialog = await consentDialog(page);
    assert(/at most 7 processor threads/.test(await dialog.textContent()), 'the dialog promises at most 7');
    await allow(page);
    const settled = await until(async () => (await page.events('workers')).find((e) => e.detail.settled), 60_000, 'the worker count settled');
    const { count, max } = settled.detail;
    // Two cores cannot make a fourth worker add half a worker's rate: 7 workers (or WebKit's 3 on 2
    // cores) was the old default.
    assert(max === 7 && count >= 1 && count <= 3, `settled at ${count} of ${max}`);
    await sleep(2000);
    assert(activeWorkers(page) === count, `workers running: ${activeWorkers(page)}, settled at ${count}`);
    const before = await page.evaluate(() => [MinePass.hashes, performance.now()]);
    await sleep(5000);
    const [hashes, at, shown] = await page.evaluate(() => [MinePass.hashes, performance.now(), MinePass.hashrate]);
    const counted = ((hashes - before[0]) * 1000) / (at - before[1]);
    // Counting one worker's report as the client's rate showed 1/count of this.
    const ratio = shown / counted;
    assert(ratio > 0.6 && ratio < 1.6, `shown ${shown.toFixed(0)} H/s, counted ${counted.toFixed(0)} H/s with ${count} workers`);
    await context.close();
  },

  async 'charging only is promised only where the browser reports charging'({ browser, broker }) {
    // Firefox, Safari and every iOS webview have no Battery API: as there, it is gone here.
    const context = await browser.newContext();
    await context.addInitScript(() => delete Navigator.prototype.getBattery);
    const page = await openPage(context, `${broker.url}/demo/`);
    await page.evaluate(() => MinePass.init({ requireCharging: true }));
    await gateButton(page).click();
    const status = page.locator('minepass-gate .status');
    await until(async () => /cannot tell whether it is/.test(await status.textContent()), 5000, 'the gate says why');
    assert((await page.locator('[data-minepass="consent"]').count()) === 0, 'a dialog promised what it cannot keep');
    const [error] = await page.events('error');
    assert(error?.detail.code === 'charging_unknown', `error event: ${JSON.stringify(error?.detail)}`);
    assert(!page.log.requests.some((u) => u.endsWith('.wasm')), 'wasm fetched');
    assert(activeWorkers(page) === 0 && page.log.sockets.length === 0, 'something started anyway');
    await context.close();
    // Where the browser reports it (Chromium), the dialog makes the promise, and keeps it: on battery
    // it waits for the charger.
    const charged = await browser.newContext();
    await charged.addInitScript(() => {
      const battery = Object.assign(new EventTarget(), { charging: false, level: 0.9 });
      Navigator.prototype.getBattery = () => Promise.resolve(battery);
    });
    const second = await openPage(charged, `${broker.url}/demo/`);
    await second.evaluate(() => MinePass.init({ requireCharging: true }));
    await gateButton(second).click();
    const dialog = await consentDialog(second);
    const text = await dialog.textContent();
    assert(/only while charging/.test(text), `the dialog: ${text}`);
    await allow(second);
    await until(async () => (await second.events('pause')).some((e) => e.detail.reason === 'not-charging'), 20_000, 'paused for the charger');
    assert((await second.evaluate(() => MinePass.hashes)) === 0, 'hashed on battery');
    await charged.close();
  },

  async 'without wasm SIMD the plain build mines and unlocks'({ browser, broker }) {
    const context = await browser.newContext();
    // A browser whose WebAssembly has no SIMD: the probe module fails validation.
    await context.addInitScript(() => {
      const validate = WebAssembly.validate.bind(WebAssembly);
      WebAssembly.validate = (bytes) => (bytes.length < 40 ? false : validate(bytes));
    });
    const page = await openPage(context, `${broker.url}/demo/`);
    await gateButton(page).click();
    await allow(page);
    await until(async () => (await page.events('unlock')).length > 0, 90_000, 'unlock with the plain build');
    const kernels = page.log.requests.filter((u) => /minepass_(simd|plain)_bg\.wasm$/.test(u));
    assert(kernels.length > 0 && kernels.every((u) => u.includes('plain')), `kernel modules: ${kernels}`);
    await context.close();
  },

  async 'after a broker crash the client reconnects and resumes without losing credit'({ browser, broker }) {
    const { context, page } = await miningPage(browser, broker, 3);
    const credited = async () => {
      const progress = (await page.events('progress')).filter((e) => e.detail.content === 'long-read');
      return BigInt(progress.at(-1).detail.done);
    };
    const before = await credited();
    assert(before > 0n, 'credit before the crash');
    await broker.restart();
    const restartedAt = Date.now();
    await until(async () => (await page.events('open')).length >= 2, 30_000, 'a second session');
    await until(async () => (await page.events('share')).some((e) => e.at > restartedAt), 30_000, 'shares again');
    const opens = await page.events('open');
    assert(opens[1].detail.session === opens[0].detail.session, 'the session was resumed by its token');
    assert((await credited()) >= before, 'credited work was lost in the crash');
    await context.close();
  },

  async 'a publisher page on another origin works with the one script tag'({ browser, broker }) {
    // The publisher's own server (another port: another origin) with the documented markup.
    const page_html = `<!doctype html><meta charset="utf-8"><title>Publisher</title>
      <script src="${broker.url}/minepass.js" data-site="site_demo" async></script>
      <p>Free part.</p><minepass-gate content="demo-article"><p class="paid">Paid part.</p></minepass-gate>`;
    const publisher = createServer((request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(page_html);
    });
    await new Promise((resolve) => publisher.listen(0, '127.0.0.1', resolve));
    try {
      const context = await browser.newContext();
      const page = await openPage(context, `http://127.0.0.1:${publisher.address().port}/`);
      await gateButton(page).click();
      await allow(page);
      const [unlock] = await until(async () => {
        const events = await page.events('unlock');
        return events.length ? events : null;
      }, 60_000, 'unlock on the publisher page');
      // The demo article is sealed: its ciphertext comes from the broker (CORS) and replaces the
      // page's own placeholder once decrypted.
      await page.locator('minepass-gate section.unlocked').waitFor({ state: 'visible' });
      assert((await verifyToken(broker, unlock.detail.token)).ok === true, 'the token verifies');
      assert(page.log.errors.length === 0, `page errors: ${page.log.errors}`);
      await context.close();
    } finally {
      publisher.close();
    }
  },

  async 'users are proven: a vouched reader mines as themselves, their bare id gets nothing, an anonymous visitor keeps theirs'({ browser, broker }) {
    // What the publisher's server does (examples/kits/): a proof for its signed-in reader.
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const mac = createHmac('sha256', broker.secret).update(`minepass-user-proof-v1\nsite_demo\nreader-42\n${exp}`);
    const proof = `${exp}.${mac.digest('hex')}`;
    const markup = (attributes) => `<!doctype html><meta charset="utf-8"><title>Publisher</title>
      <script src="${broker.url}/minepass.js" data-site="site_demo" ${attributes} async></script>
      <minepass-gate content="demo-article"></minepass-gate>`;
    const pages = {
      '/vouched': markup(`data-user="reader-42" data-user-proof="${proof}"`),
      '/claimed': markup('data-user="reader-42"'),
    };
    const publisher = createServer((request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(pages[request.url] || '');
    });
    await new Promise((resolve) => publisher.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${publisher.address().port}`;
    const unlockOf = async (page) => {
      const [unlock] = await until(async () => {
        const events = await page.events('unlock');
        return events.length ? events : null;
      }, 60_000, 'unlock');
      return verifyToken(broker, unlock.detail.token);
    };
    try {
      const vouched = await openPage(await browser.newContext(), `${origin}/vouched`);
      await gateButton(vouched).click();
      await allow(vouched);
      const claims = (await unlockOf(vouched)).claims;
      assert(claims.sub === 'reader-42', `the vouched reader's token: ${JSON.stringify(claims)}`);

      // Another visitor's page names reader-42 without the proof: refused, no session, nothing unlocked.
      const claimed = await openPage(await browser.newContext(), `${origin}/claimed`);
      await gateButton(claimed).click();
      await allow(claimed);
      const [error] = await until(async () => {
        const errors = (await claimed.events('error')).filter((e) => e.detail.code === 'bad_user_proof');
        return errors.length ? errors : null;
      }, 20_000, 'bad_user_proof');
      assert(error.detail.fatal === true, 'the refusal is fatal');
      await sleep(1000);
      assert((await claimed.events('open')).length === 0 && (await claimed.events('unlock')).length === 0, 'the claimed id got a session');
    } finally {
      publisher.close();
    }

    // No data-user: the broker issues an anonymous id; the SDK keeps it, and a reload proves it.
    const context = await browser.newContext();
    const page = await openPage(context, `${broker.url}/demo/`);
    await gateButton(page).click();
    await allow(page);
    const first = (await unlockOf(page)).claims;
    assert(/^anon_[0-9a-f]{32}$/.test(first.sub), `an anonymous id: ${first.sub}`);
    const kept = await page.evaluate(() => JSON.parse(localStorage.getItem('minepass.site_demo.identity')));
    assert(kept.user === first.sub && /^usec_/.test(kept.secret), `the identity is kept: ${JSON.stringify(kept)}`);
    const [identity] = await page.events('identity');
    assert(identity.detail.user === first.sub && identity.detail.secret === undefined, 'listeners never see the secret');
    await page.reload();
    const again = (await unlockOf(page)).claims;
    assert(again.sub === first.sub && again.jti !== first.jti, `the same visitor after a reload: ${again.sub}`);
    await context.close();
  },

  async 'the demo works under a strict Content-Security-Policy'({ browser, broker }) {
    const policy = (await fetch(`${broker.url}/demo/strict.html`)).headers.get('content-security-policy');
    assert(policy && policy.includes("script-src 'self' 'wasm-unsafe-eval'"), `served with CSP: ${policy}`);
    const context = await browser.newContext();
    const page = await openPage(context, `${broker.url}/demo/strict.html`);
    await gateButton(page).click();
    await allow(page);
    await until(async () => (await page.events('unlock')).length > 0, 60_000, 'unlock under CSP');
    await page.locator('minepass-gate section.unlocked').waitFor({ state: 'visible' });
    const violations = page.log.console.filter((m) => /Content.Security.Policy|Refused to/i.test(m));
    assert(violations.length === 0, `CSP violations: ${violations.join(' | ')}`);
    assert(page.log.errors.length === 0, `page errors: ${page.log.errors}`);
    await context.close();
  },
};

/** A demo page mining toward the endless quota, once `shares` of its shares were accepted. */
async function miningPage(browser, broker, shares) {
  const context = await browser.newContext();
  const page = await openPage(context, `${broker.url}/demo/`);
  const started = page.evaluate(() => MinePass.start({ content: 'long-read' }));
  await allow(page);
  await started;
  const what = `${shares} accepted share(s)`;
  await until(async () => (await page.events('share')).length >= shares, 30_000, what);
  return { context, page };
}

/**
 * Headless Chromium keeps every page visible: overrides the page's visibility and fires what the
 * browser fires when a tab is hidden or shown, with a Page Lifecycle `event` (`freeze` after hiding,
 * `resume` before showing).
 */
function setVisibility(page, state, event) {
  return page.evaluate(([state, event]) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => state === 'hidden' });
    if (event && state === 'visible') document.dispatchEvent(new Event(event));
    document.dispatchEvent(new Event('visibilitychange'));
    if (event && state === 'hidden') document.dispatchEvent(new Event(event));
  }, [state, event]);
}

/** An admin API call on the harness broker. */
async function admin(broker, method, path, body) {
  const response = await fetch(`${broker.url}/api/v1/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${broker.admin}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  const json = await response.json();
  assert(json.ok, `${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

/** Scenarios that start their own broker (with a pool, or with a ledger of their own). */
const ownBroker = {
  async 'the consent dialog says how long the unlock takes on a device like this one'({ browser }) {
    const broker = await startBroker();
    try {
      const estimateOf = async (page) => {
        const query = await page.evaluate(() => {
          const simd = MinePass.supported === 'simd';
          return `engine=blink&cores=${navigator.hardwareConcurrency}&simd=${simd}`;
        });
        const url = `${broker.url}/api/v1/estimate?site=site_demo&content=demo-article&${query}`;
        return (await (await fetch(url)).json()).estimate;
      };
      // A first visitor of this device class: nothing is known, the dialog says nothing of time.
      const first = await openPage(await browser.newContext(), `${broker.url}/demo/`);
      assert((await estimateOf(first)) === null, 'no estimate before any session');
      await gateButton(first).click();
      await consentDialog(first);
      await sleep(1000);
      assert(!(await first.locator('[data-minepass=consent] p.estimate').isVisible()), 'an estimate from nothing');
      await first.context().close();

      // Two visitors mine (10 verified shares each: enough for the broker to measure) and leave.
      const visitors = await Promise.all([miningPage(browser, broker, 10), miningPage(browser, broker, 10)]);
      const rates = await Promise.all(visitors.map(({ page }) => page.evaluate(() => MinePass.hashrate)));
      await Promise.all(visitors.map(({ context }) => context.close()));
      const next = await openPage(await browser.newContext(), `${broker.url}/demo/`);
      const known = await until(async () => {
        const estimate = await estimateOf(next);
        return estimate?.samples >= 2 ? estimate : null;
      }, 10_000, 'two samples');
      assert(known.low_s >= 1 && known.low_s <= known.high_s, `estimate: ${JSON.stringify(known)}`);

      // The next visitor's dialog states it as a range, labelled an estimate; nothing was hashed for it.
      await gateButton(next).click();
      await consentDialog(next);
      const line = next.locator('[data-minepass=consent] p.estimate');
      await line.waitFor({ state: 'visible', timeout: 5000 });
      const text = await line.textContent();
      assert(/On a device like yours this takes .+ \(an estimate from 2 recent visits/.test(text), `the dialog says: ${text}`);
      assert(activeWorkers(next) === 0 && next.log.sockets.length === 0, 'something ran for the estimate');
      assert(!next.log.requests.some((u) => u.endsWith('.wasm')), 'wasm fetched for the estimate');
      // For the log: the range next to what the visitors' own meters would have said.
      const quota = 2 ** 24;
      const shown = rates.map((rate) => quota / rate);
      console.log(`  estimate ${known.low_s}-${known.high_s} s; at the visitors' own rates ${shown.map((s) => s.toFixed(1)).join(', ')} s`);
      await next.context().close();
    } finally {
      broker.stop();
    }
  },

  async 'the partner dashboard and the operator view show a real run, with charts'({ browser }) {
    const pool = await startPool();
    const broker = await startBroker({ pools: [pool.url] });
    try {
      const partner = await admin(broker, 'POST', '/partners', { name: 'Demo Publisher Ltd' });
      await admin(broker, 'PUT', '/sites/site_demo/partner', { partner: partner.key });
      await admin(broker, 'PUT', '/economics', { block_reward_sats: 315_000_000, network_difficulty: '120000000000000' });
      // A visitor consents and mines until the pool has accepted some shares; another declines.
      const context = await browser.newContext();
      const declined = await openPage(context, `${broker.url}/demo/`);
      await gateButton(declined).click();
      await (await consentDialog(declined)).getByRole('button', { name: 'No thanks' }).click();
      const page = await openPage(context, `${broker.url}/demo/`);
      await gateButton(page).click();
      await allow(page);
      await until(() => pool.valid() >= 5, 60_000, 'pool-accepted shares');
      await until(async () => (await metric(broker, 'minepass_pool_shares_accepted_total')) >= 5, 10_000, 'answers');
      await page.close();
      // The operator books a period and settles it: the partner has a payout due.
      const [from, to] = [Date.now() - 3_600_000, Date.now() + 3_600_000].map(String);
      await admin(broker, 'POST', '/periods', { name: 'today', from, to, sats: 120_000 });
      const settled = await admin(broker, 'POST', '/periods/today/settle', { threshold_sats: 1000 });
      const mine = settled.partners.find((p) => p.partner !== 0);
      assert(mine.gross === 120_000 && mine.net === 84_000, `all work was the partner's: ${JSON.stringify(settled)}`);
      assert((await admin(broker, 'GET', '/ledger/check')).problems.length === 0, 'ledger check');

      const dashboard = await openPage(context, `${broker.url}/dashboard/`);
      await dashboard.fill('#key', partner.dashboard_key);
      await dashboard.getByRole('button', { name: 'Open the dashboard' }).click();
      await dashboard.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
      const cards = await dashboard.locator('#cards').innerText();
      assert(cards.includes('50.0 %'), `consent rate of 1 yes in 2 answers: ${cards}`);
      assert(cards.includes('84,000 sats'), `settled and pending: ${cards}`);
      for (const chart of ['#chart-rate', '#chart-verified', '#chart-miners']) {
        const path = dashboard.locator(`${chart} path`);
        assert((await path.getAttribute('d')).split('L').length > 50, `${chart}: a point per bucket over the day`);
        assert((await path.evaluate((p) => p.getBBox().height)) > 10, `${chart}: the line rises off the axis`);
      }
      assert((await dashboard.locator('#chart-settled rect').count()) === 1, 'one settled period bar');
      assert((await dashboard.locator('#calc-result').innerText()).includes('per device-hour'), 'the calculator answers');
      await dashboard.screenshot({ path: `${SCREENSHOTS}/dashboard.png`, fullPage: true });

      const operator = await openPage(context, `${broker.url}/dashboard/`);
      await operator.evaluate(() => sessionStorage.clear());
      await operator.fill('#key', broker.admin);
      await operator.getByRole('button', { name: 'Open the dashboard' }).click();
      await operator.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
      const row = await operator.locator('#partners tbody tr').innerText();
      assert(row.includes('Demo Publisher Ltd') && row.includes('84,000 sats'), `operator row: ${row}`);
      await operator.screenshot({ path: `${SCREENSHOTS}/operator.png`, fullPage: true });
      assert(dashboard.log.errors.length === 0 && operator.log.errors.length === 0, 'page errors');
      await context.close();
    } finally {
      broker.stop();
      pool.stop();
    }
  },

  async 'mining for a real Stratum pool: the pool accepts the browser\'s shares, and a pool restart is survived'({
    browser,
  }) {
    const pool = await startPool();
    const broker = await startBroker({ pools: [pool.url] });
    try {
      const context = await browser.newContext();
      const page = await openPage(context, `${broker.url}/demo/`);
      await gateButton(page).click();
      await allow(page);
      const [open] = await until(async () => {
        const events = await page.events('open');
        return events.length ? events : null;
      }, 20_000, 'the session');
      assert(open.detail.mode === 'pool', `the session mines for the pool: ${JSON.stringify(open.detail)}`);
      await until(() => pool.valid() >= 3, 60_000, 'three browser shares accepted by the pool');
      assert(pool.shares.every((s) => s.valid && s.worker === 'minepass.e2e'), JSON.stringify(pool.shares));
      await until(async () => (await metric(broker, 'minepass_pool_shares_accepted_total')) >= 3, 10_000, 'metrics');

      // The pool dies: the page is told it is on gate work and keeps mining; the pool comes back.
      await pool.kill();
      await until(async () => (await page.events('mode')).some((e) => e.detail.mode === 'gate'), 20_000, 'gate mode');
      const before = pool.shares.length;
      await pool.start();
      await until(async () => (await page.events('mode')).at(-1)?.detail.mode === 'pool', 30_000, 'pool mode again');
      await until(() => pool.shares.length > before && pool.valid() > 3, 60_000, 'shares at the restarted pool');
      await until(async () => (await page.events('unlock')).length > 0, 90_000, 'the unlock (all verified work counts)');
      assert(page.log.errors.length === 0, `page errors: ${page.log.errors}`);
      await context.close();
    } finally {
      broker.stop();
      pool.stop();
    }
  },
};

// --- Runner ----------------------------------------------------------------------------------------

const browser = await launchBrowser();
let passed = 0;
let failed = 0;
for (const [name, scenario] of [...Object.entries(scenarios), ...Object.entries(ownBroker)]) {
  if (!name.includes(filter)) continue;
  // Scenarios that start their own broker get a stub with nothing to stop.
  const broker = name in ownBroker ? { stop() {} } : await startBroker();
  const began = Date.now();
  try {
    await scenario({ browser, broker });
    passed++;
    console.log(`test ${name} ... ok (${((Date.now() - began) / 1000).toFixed(1)} s)`);
  } catch (error) {
    failed++;
    console.log(`test ${name} ... FAILED\n    ${error.stack || error}`);
    for (const page of openPages) {
      const events = await page.evaluate(() => window.__events.map((e) => e.type).join(' ')).catch(() => '(closed)');
      console.log(`    page ${page.url()}\n      events: ${events}\n      errors: ${page.log.errors.join(' | ')}`);
      console.log(`      console: ${page.log.console.slice(-10).join(' | ')}\n      sockets: ${page.log.sockets}`);
    }
  } finally {
    openPages.length = 0;
    broker.stop();
  }
}
await browser.close();
console.log(`test result: ${failed ? 'FAILED' : 'ok'}. ${passed} passed; ${failed} failed`);
process.exit(failed ? 1 : 0);
