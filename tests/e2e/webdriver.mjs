// The three engines a visitor's browser or webview runs, driven by their own W3C WebDriver servers
// (the classic protocol: the one all three speak): Chromium by Debian's chromedriver, Firefox ESR by
// geckodriver, WebKitGTK's MiniBrowser by WebKitWebDriver under Xvfb. The client is the few
// endpoints the engine tests need, over fetch.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM_FLAGS } from './harness.mjs';

const MINIBROWSER = '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const GECKODRIVER = process.env.GECKODRIVER || join(homedir(), '.cargo/bin/geckodriver');

/** The engines, with how to start their driver and a session. */
export const ENGINES = {
  chromium: {
    label: 'Chromium',
    driver: (port) => ['/usr/bin/chromedriver', [`--port=${port}`]],
    capabilities: {
      browserName: 'chrome',
      'goog:chromeOptions': { binary: process.env.MINEPASS_CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_FLAGS },
    },
  },
  firefox: {
    label: 'Firefox ESR',
    driver: (port) => [GECKODRIVER, ['--port', String(port), '--host', '127.0.0.1']],
    capabilities: { browserName: 'firefox', 'moz:firefoxOptions': { binary: '/usr/bin/firefox-esr', args: ['-headless'] } },
  },
  webkit: {
    label: 'WebKitGTK',
    display: true,
    driver: (port) => ['/usr/bin/WebKitWebDriver', [`--port=${port}`, '--host=127.0.0.1']],
    capabilities: { 'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] } },
  },
};

/** Why an engine cannot run here, or null. */
export function missing(engine) {
  const [program] = ENGINES[engine].driver(0);
  if (!existsSync(program)) return `${program} is not installed`;
  if (engine === 'webkit' && !existsSync(MINIBROWSER)) return `${MINIBROWSER} is not installed`;
  return null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts `engine`'s driver (and an Xvfb display for WebKit); `driver.session()` opens a browser with a
 * fresh profile, `driver.stop()` ends everything it started.
 */
export async function startDriver(engine) {
  const spec = ENGINES[engine];
  const children = [];
  const env = { ...process.env };
  if (spec.display) {
    const display = 90 + Math.floor(Math.random() * 400);
    children.push(spawn('Xvfb', [`:${display}`, '-screen', '0', '1280x900x24', '-nolisten', 'tcp'], { stdio: 'ignore' }));
    env.DISPLAY = `:${display}`;
  }
  const port = await freePort();
  const [program, args] = spec.driver(port);
  children.push(spawn(program, args, { stdio: 'ignore', env }));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const status = await (await fetch(`${url}/status`)).json();
      if (status.value?.ready !== false) break;
    } catch {}
    if (i > 100) throw new Error(`${program} did not start`);
    await sleep(100);
  }
  return {
    async session() {
      const value = await call(url, 'POST', '/session', { capabilities: { alwaysMatch: spec.capabilities } });
      const session = new Session(url, value.sessionId, value.capabilities);
      await session.call('POST', '/timeouts', { script: 180_000, pageLoad: 60_000 });
      return session;
    },
    stop() {
      for (const child of children.reverse()) child.kill('SIGTERM');
    },
  };
}

async function call(url, method, path, body) {
  const response = await fetch(url + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (json.value?.error) throw new Error(`WebDriver ${method} ${path}: ${json.value.error}: ${json.value.message}`);
  return json.value;
}

class Session {
  constructor(url, id, capabilities) {
    this.url = url;
    this.id = id;
    this.capabilities = capabilities;
  }
  call(method, path, body) {
    return call(this.url, method, `/session/${this.id}${path}`, body);
  }
  goto(url) {
    return this.call('POST', '/url', { url });
  }
  /** Runs `fn(...args)` in the page (it may be async) and returns its JSON-able result. */
  async evaluate(fn, ...args) {
    const script = `const done = arguments[arguments.length - 1];
      Promise.resolve().then(() => (${fn}).apply(null, Array.prototype.slice.call(arguments, 0, -1)))
        .then((value) => done({ value }), (error) => done({ error: String(error && error.stack || error) }));`;
    const result = await this.call('POST', '/execute/async', { script, args });
    if (result && result.error) throw new Error(`in the page: ${result.error}`);
    return result?.value;
  }
  close() {
    return this.call('DELETE', '').catch(() => {});
  }
}
