// The app host bridge end to end (docs/HOST.md): the real desktop host (hosts/desktop: wry + tao, the
// system webview, WebKitGTK here) under Xvfb shows the demo page of the real broker, which proxies a
// real Stratum pool. The host grants consent from its own UI, reports power and its lifecycle, and
// receives the unlock token; the broker and the pool say what really happened.
//
//   MINEPASS_HOST=target/host/debug/minepass-host node tests/e2e/host.mjs
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ENDLESS_WORK, QUICK_WORK, assert, metric, putContent, sleep, startBroker, startPool, until, verifyToken } from './harness.mjs';

const HOST = process.env.MINEPASS_HOST || 'target/host/debug/minepass-host';

/** The host process: `host.messages` are its stdout lines, `host.say(line)` writes one to its stdin. */
function startHost(url, args, display) {
  const child = spawn(HOST, [url, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, DISPLAY: display, GDK_BACKEND: 'x11', WEBKIT_DISABLE_COMPOSITING_MODE: '1' },
  });
  const host = { child, lines: [] };
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      host.lines.push(JSON.parse(line));
    } catch {}
  });
  host.say = (line) => {
    child.stdin.write(`${line}\n`);
    return host.lines.length;
  };
  /** The first page message of `type` after line `from`, waited for up to `ms`. */
  host.page = (type, from = 0, ms = 30_000, test = () => true) =>
    until(() => host.lines.slice(from).find((l) => l.page?.type === type && test(l.page)), ms, `the page's ${type}`);
  host.stop = () => {
    child.stdin.end();
    setTimeout(() => child.kill('SIGKILL'), 2000).unref();
  };
  return host;
}

const results = [];
async function main() {
  if (!existsSync(HOST)) throw new Error(`${HOST} is not built (cargo xtask test builds it)`);
  const display = `:${500 + Math.floor(Math.random() * 400)}`;
  const xvfb = spawn('Xvfb', [display, '-screen', '0', '1280x900x24', '-nolisten', 'tcp'], { stdio: 'ignore' });
  const pool = await startPool();
  const broker = await startBroker({ pools: [pool.url] });
  // Nothing unlocks until the pause and background checks are done.
  await putContent(broker, 'demo-article', ENDLESS_WORK);
  let host;
  try {
    await sleep(300);
    host = startHost(`${broker.url}/demo/`, ['--charging-only'], display);
    const ready = (await host.page('ready', 0, 60_000)).page;
    assert(ready.channel === 'ipc', `wry's channel: ${ready.channel}`);
    assert(ready.promises?.gateOnly === true, `an app host defaults to proof of work only: ${JSON.stringify(ready.promises)}`);
    results.push(['the SDK finds the host channel and announces itself (gate mode by default)', 'ok']);

    // Before the host reports power, "only while charging" could not be kept in WebKit; now it can.
    host.say('plug');
    const granted = host.say('grant');
    await host.page('start', granted);
    await host.page('progress', granted, 30_000, (p) => p.detail?.hashrate > 0);
    const statusAt = host.say('status');
    const status = (await host.page('status', statusAt)).page;
    assert(status.running && status.mode === 'gate', `status: ${JSON.stringify(status)}`);
    await until(async () => (await metric(broker, 'minepass_shares_accepted_total')) > 0, 30_000, 'an accepted share');
    results.push(['the host grants consent from its own UI and the page computes', 'ok']);

    const unplugged = host.say('unplug');
    const pause = (await host.page('pause', unplugged, 5000)).page;
    assert(pause.detail.reason === 'not-charging', `pause: ${JSON.stringify(pause)}`);
    const hashesAt = async () => {
      const at = host.say('status');
      return (await host.page('status', at)).page.hashes;
    };
    const before = await hashesAt();
    await sleep(1500);
    const after = await hashesAt();
    assert(after === before, `no hashing while unplugged: ${before} → ${after}`);
    const plugged = host.say('plug');
    await host.page('start', plugged, 5000);
    results.push(['"unplugged" pauses the workers, "plugged" resumes them', 'ok']);

    const sentAt = host.say('background');
    const sent = await until(() => host.lines.slice(sentAt).find((l) => l.host?.type === 'lifecycle'), 5000, 'the message sent');
    const stop = await host.page('stop', sentAt, 5000);
    const stopMs = stop.t - sent.t;
    assert(stopMs < 1000, `workers stopped ${stopMs} ms after "background"`);
    const idle = await hashesAt();
    assert(idle === 0, `nothing runs in the background (hashes ${idle})`);
    const sessions = await until(
      async () => ((await metric(broker, 'minepass_connections_open')) === 0 ? 'closed' : null),
      5000,
      'the broker session to close',
    );
    results.push([`"background" stops the workers and the session (stop after ${stopMs} ms)`, sessions && 'ok']);

    // Back in the foreground with a quota it can meet: the host receives the unlock token.
    await putContent(broker, 'demo-article', QUICK_WORK);
    const foreground = host.say('foreground');
    await host.page('start', foreground, 15_000);
    const unlock = (await host.page('unlock', foreground, 120_000)).page;
    assert(unlock.detail.content === 'demo-article' && unlock.detail.token, `unlock: ${JSON.stringify(unlock)}`);
    assert(!('keys' in unlock.detail), 'content keys never leave the page');
    const verified = await verifyToken(broker, unlock.detail.token);
    assert(verified.ok === true && verified.claims.content === 'demo-article', `verify: ${JSON.stringify(verified)}`);
    results.push(['"foreground" resumes, and the host receives a token the broker verifies', 'ok']);

    // Proof of work only: the broker had pool work the whole time, and the pool got nothing.
    assert((await metric(broker, 'minepass_upstream_connections')) >= 1, 'the broker is connected to the pool');
    assert((await metric(broker, 'minepass_pool_shares_submitted_total')) === 0, 'no share was forwarded');
    assert(pool.shares.length === 0, `${pool.shares.length} shares reached the pool from a gate-only host`);
    results.push(['gate mode: no share of the app reached the pool', 'ok']);

    const bad = host.say('{"type":"power","charging":"yes"}');
    const error = (await host.page('error', bad, 5000)).page;
    assert(error.code === 'bad_message', `bad message: ${JSON.stringify(error)}`);
    results.push(['a malformed host message gets bad_message and changes nothing', 'ok']);
  } finally {
    host?.stop();
    broker.stop();
    pool.stop();
    xvfb.kill('SIGTERM');
  }
}

const started = Date.now();
main().then(
  () => {
    for (const [name] of results) console.log(`test ${name} ... ok`);
    console.log(`test result: ok. ${results.length} passed; 0 failed (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    process.exit(0);
  },
  (error) => {
    for (const [name] of results) console.log(`test ${name} ... ok`);
    console.log(`test the app host bridge ... FAILED\n${error.stack || error}`);
    console.log(`test result: FAILED. ${results.length} passed; 1 failed`);
    process.exit(1);
  },
);
