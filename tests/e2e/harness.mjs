// Shared by the SDK's end-to-end tests (sdk.mjs) and its benchmark (bench-sdk.mjs): the real broker
// binary on 127.0.0.1 with a fresh ledger, Debian's Chromium, and pages that record what they do.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const BROKER = process.env.MINEPASS_BROKER || 'target/debug/minepass-broker';
const CHROMIUM = process.env.MINEPASS_CHROMIUM || '/usr/bin/chromium';
// Quotas small enough to unlock in seconds on one worker of a CI machine.
export const QUICK_WORK = String(1 << 24);
export const ENDLESS_WORK = String(2n ** 60n);

/**
 * A broker process with a fresh ledger; resolves once it listens. `quick` makes shares small and
 * frequent (tests); without it the broker runs at its defaults (benchmarks). `broker.restart()`
 * SIGKILLs the process and starts a new one on the same address and ledger.
 */
export async function startBroker({ quick = true, pools = [] } = {}) {
  const data = mkdtempSync(join(tmpdir(), 'minepass-e2e-'));
  const tuning = quick ? ['--share-interval-ms', '1000', '--min-share-work', '65536'] : [];
  for (const pool of pools) tuning.push('--pool', pool);
  const broker = { data, secret: '', admin: '', url: '' };
  const launch = (listen) =>
    new Promise((resolve, reject) => {
      const child = spawn(BROKER, ['serve', '--listen', listen, '--data', data, ...tuning], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, RUST_LOG: 'warn' },
      });
      broker.child = child;
      child.once('exit', (code) => reject(new Error(`broker exited with ${code}`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        const secret = line.match(/site secret:\s+(\S+)/);
        if (secret) broker.secret = secret[1];
        const admin = line.match(/admin API token \(shown once\): (\S+)/);
        if (admin) broker.admin = admin[1];
        const url = line.match(/listening on (http:\/\/[^/]+)\//);
        if (url) {
          broker.url = url[1];
          resolve();
        }
      });
    });
  await launch('127.0.0.1:0');
  broker.restart = async () => {
    const exited = new Promise((resolve) => broker.child.once('exit', resolve));
    broker.child.kill('SIGKILL');
    await exited;
    await launch(broker.url.replace('http://', ''));
  };
  broker.stop = () => {
    broker.child.kill('SIGTERM');
    rmSync(data, { recursive: true, force: true });
  };
  // The demo article with a quick quota, and a content item that never unlocks.
  await putContent(broker, 'demo-article', QUICK_WORK);
  await putContent(broker, 'long-read', ENDLESS_WORK);
  return broker;
}

/**
 * The real third-party Stratum pool of the upstream tests (`tests/pool/pool.cjs`, npm
 * stratum-pool-sha256) on a loopback port: `pool.shares` collects its share events, `pool.restart()`
 * kills it and starts it again on the same port.
 */
export async function startPool({ difficulty = '0.00000095367431640625' } = {}) {
  const port = await freePort();
  const pool = { port, url: `stratum+tcp://minepass.e2e:x@127.0.0.1:${port}`, shares: [] };
  const launch = () =>
    new Promise((resolve, reject) => {
      const child = spawn('node', ['tests/pool/pool.cjs', '--port', String(port), '--diff', difficulty], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      pool.child = child;
      child.once('exit', (code) => reject(new Error(`pool exited with ${code}`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (!line.startsWith('@pool ')) return;
        const event = JSON.parse(line.slice(6));
        if (event.event === 'started') resolve();
        if (event.event === 'share') pool.shares.push(event);
      });
    });
  await launch();
  pool.valid = () => pool.shares.filter((s) => s.valid).length;
  pool.kill = async () => {
    const exited = new Promise((resolve) => pool.child.once('exit', resolve));
    pool.child.kill('SIGKILL');
    await exited;
  };
  pool.start = launch;
  pool.stop = () => pool.child.kill('SIGKILL');
  return pool;
}

// A port for the pool, which listens on every address: below Linux's ephemeral range (32768 and up),
// so the local end of an outgoing connection cannot take it between choosing and binding.
function freePort() {
  return new Promise((resolve) => {
    const attempt = () => {
      const port = 20000 + Math.floor(Math.random() * 12000);
      const server = createServer();
      server.once('error', attempt);
      server.listen(port, () => server.close(() => resolve(port)));
    };
    attempt();
  });
}

/** The value of one unlabelled metric from the broker's `/metrics`. */
export async function metric(broker, name) {
  const text = await (await fetch(`${broker.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

export async function putContent(broker, id, work) {
  const response = await fetch(`${broker.url}/api/v1/admin/sites/site_demo/content/${id}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${broker.admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title: id, required_work: work }),
  });
  if (response.status !== 200) throw new Error(`content ${id}: HTTP ${response.status}`);
}

export async function verifyToken(broker, token) {
  const response = await fetch(`${broker.url}/api/v1/tokens/verify`, {
    method: 'POST',
    headers: { authorization: `Bearer ${broker.secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  return response.json();
}

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a truthy value or `ms` pass. */
export async function until(probe, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * A page with everything it does recorded: requests, workers, WebSocket frames (with times) and the
 * SDK's events (through `MinePass.on('*')`, installed before any page script runs).
 */
export const openPages = [];
export async function openPage(context, url, { before } = {}) {
  const page = await context.newPage();
  // Set up before the page loads (device emulation, say).
  await before?.(page);
  openPages.push(page);
  const log = { requests: [], responses: [], sockets: [], framesSent: [], framesReceived: [], workers: [], errors: [], console: [] };
  page.on('request', (request) => log.requests.push(request.url()));
  // Every body the page received (HTML, JS, wasm, JSON), for "is this text anywhere?" checks.
  page.on('response', (response) => {
    const entry = { at: Date.now(), url: response.url(), body: null };
    log.responses.push(entry);
    entry.done = response.body().then((body) => (entry.body = body), () => (entry.body = Buffer.alloc(0)));
  });
  page.on('worker', (worker) => log.workers.push(worker));
  page.on('websocket', (socket) => {
    log.sockets.push(socket.url());
    socket.on('framesent', (frame) => log.framesSent.push({ at: Date.now(), payload: String(frame.payload) }));
    socket.on('framereceived', (frame) => log.framesReceived.push({ at: Date.now(), payload: String(frame.payload) }));
  });
  page.on('pageerror', (error) => log.errors.push(String(error)));
  page.on('console', (message) => log.console.push(message.text()));
  await page.addInitScript(() => {
    window.__events = [];
    const hook = () => {
      if (!window.MinePass) return setTimeout(hook, 5);
      window.MinePass.on('*', (type, detail) => window.__events.push({ type, detail, at: Date.now() }));
    };
    hook();
  });
  await page.goto(url);
  page.log = log;
  page.events = (type) => page.evaluate((t) => window.__events.filter((e) => e.type === t), type);
  return page;
}

export async function consentDialog(page) {
  const dialog = page.locator('[data-minepass="consent"] dialog');
  await dialog.waitFor({ state: 'visible', timeout: 5000 });
  return dialog;
}

export async function allow(page) {
  const dialog = await consentDialog(page);
  await dialog.getByRole('button', { name: 'Allow' }).click();
}

export const gateButton = (page) => page.locator('minepass-gate').getByRole('button');
export const activeWorkers = (page) => page.workers().length;
export const submitsAfter = (page, time) =>
  page.log.framesSent.filter((f) => f.at > time && f.payload.includes('"submit"')).length;

/** The flags Debian's Chromium needs on this machine (headless, no network beyond loopback). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Debian's Chromium with the flags this machine needs (`executablePath`: a wrapper, say). */
export function launchBrowser({ executablePath = CHROMIUM } = {}) {
  return chromium.launch({ executablePath, args: CHROMIUM_FLAGS });
}

/** The same with a real (non-incognito) profile in `dir`: a browser context of its own. */
export function launchPersistent(dir) {
  return chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
}
