// The app host bridge (docs/HOST.md): a native app that shows this page in a webview runs MinePass with
// the app in charge of what a page cannot know (power, network, the app's lifecycle) and of consent,
// asked in the app's own UI. One protocol, version 1, over whichever channel the platform gives:
// every message is a JSON string of an object `{"minepass": 1, "type": …}`.
//
// Page → host: the platform's channel (detected below). Host → page: the host runs
// `MinePass.host.receive(message)` in the page (evaluateJavascript, evaluateJavaScript,
// injectJavaScript, runJavaScript…), or answers over a two-way channel (Android's
// addWebMessageListener, a Capacitor plugin). On a page without a host nothing here runs, and
// `receive` ignores everything: a page script cannot pose as a host to skip the consent dialog.
import { currentConsent, options, threads } from './context.js';
import { emit, on } from './events.js';
import { MinePass, answered, comeBack, suspend } from './api.js';
import { run } from './client.js';
import { promises } from './ui.js';
import { wasmBuild } from './support.js';

export const HOST_PROTOCOL = 1;

const w = window;
// [name, the channel's object if this platform has it, send a string over it]. First match wins.
const CHANNELS = [
  // iOS and macOS WKWebView: userContentController.add(handler, name: "minepass").
  ['webkit', () => w.webkit?.messageHandlers?.minepass, (c, m) => c.postMessage(m)],
  // Android WebView (androidx.webkit): WebViewCompat.addWebMessageListener(webView, "minepassHost", …).
  ['android', () => w.minepassHost, (c, m) => c.postMessage(m)],
  // Android WebView: addJavascriptInterface(object, "MinePassAndroid") with a @JavascriptInterface postMessage(String).
  ['android-interface', () => w.MinePassAndroid, (c, m) => c.postMessage(m)],
  // React Native: react-native-webview.
  ['react-native', () => w.ReactNativeWebView, (c, m) => c.postMessage(m)],
  // Flutter: webview_flutter's addJavaScriptChannel('MinePassFlutter'), or flutter_inappwebview's handler "minepass".
  ['flutter', () => w.MinePassFlutter, (c, m) => c.postMessage(m)],
  ['flutter-inappwebview', () => w.flutter_inappwebview?.callHandler && w.flutter_inappwebview, (c, m) => c.callHandler('minepass', m)],
  // Capacitor: a plugin registered as "MinePass" with a post({message}) method and "message" events.
  ['capacitor', () => w.Capacitor?.Plugins?.MinePass, (c, m) => c.post({ message: m })],
  // wry / tao desktop and mobile hosts (and Tauri): window.ipc.postMessage.
  ['ipc', () => w.ipc?.postMessage && w.ipc, (c, m) => c.postMessage(m)],
];

/** What the host said, and how to reach it. `channel` is null on an ordinary web page. */
export const host = {
  channel: null,
  send: null,
  /** Proof of work only unless the host says `mode: "mine"` (app-store rules, docs/HOST.md). */
  mode: 'gate',
  /** `{charging, level, thermal}` as the host last reported (null fields: not known). */
  power: null,
  network: null,
  lifecycle: 'foreground',
  pendingConsent: null,

  /** The facts the client applies (src/client/browser/ `hostFacts`). */
  facts() {
    return {
      charging: this.power?.charging ?? null,
      level: this.power?.level ?? null,
      thermal: this.power?.thermal ?? null,
      metered: this.network?.metered ?? null,
    };
  },
  offline() {
    return this.network?.online === false || navigator.onLine === false;
  },
  /** The app asks for consent in its own UI (always, once a host is there). */
  ownsConsent() {
    return this.channel !== null;
  },
  /**
   * Asks the host for consent with the SDK's promises and the unlock estimate (when the broker has one
   * within its 2 s); resolves to the host's answer.
   */
  async askConsent(estimate) {
    this.pendingConsent?.(false);
    const known = await estimate;
    return new Promise((resolve) => {
      this.pendingConsent = resolve;
      post('consent-request', { promises: promises(), estimate: known });
    });
  },
  api: {
    /** Handles one host message (a JSON string or an object); answers errors over the channel. */
    receive(message) {
      if (!host.channel) return false;
      let parsed = message;
      try {
        if (typeof message === 'string') parsed = JSON.parse(message);
      } catch {
        post('error', { code: 'bad_message', message: 'not JSON' });
        return false;
      }
      const problem = check(parsed);
      if (problem) {
        post('error', { code: 'bad_message', message: problem });
        return false;
      }
      handle(parsed);
      return true;
    },
    get channel() {
      return host.channel;
    },
  },
};

function post(type, detail = {}) {
  if (!host.send) return;
  try {
    host.send(JSON.stringify({ minepass: HOST_PROTOCOL, type, ...detail }));
  } catch (error) {
    console.error('MinePass host channel failed', error);
  }
}

const BOOL_OR_NULL = (v) => v == null || typeof v === 'boolean';
const TYPES = {
  hello: (m) =>
    ((m.mode == null || m.mode === 'gate' || m.mode === 'mine') && BOOL_OR_NULL(m.requireCharging)) ||
    'mode must be "gate" or "mine", requireCharging a boolean',
  consent: (m) => typeof m.granted === 'boolean' || 'granted must be a boolean',
  power: (m) =>
    (BOOL_OR_NULL(m.charging) &&
      (m.level == null || (typeof m.level === 'number' && m.level >= 0 && m.level <= 1)) &&
      (m.thermal == null || ['nominal', 'fair', 'serious', 'critical'].includes(m.thermal))) ||
    'charging: boolean, level: 0-1, thermal: nominal|fair|serious|critical',
  network: (m) => (BOOL_OR_NULL(m.online) && BOOL_OR_NULL(m.metered)) || 'online, metered: booleans',
  lifecycle: (m) => ['foreground', 'background', 'suspend'].includes(m.state) || 'state must be foreground|background|suspend',
  user: (m) => (typeof m.id === 'string' && typeof m.proof === 'string') || 'id and proof must be strings',
  start: (m) => m.content == null || typeof m.content === 'string' || 'content must be a string',
  stop: () => true,
  status: () => true,
};

/** Why a message is not one of protocol 1's, or null. */
function check(m) {
  if (!m || typeof m !== 'object') return 'not an object';
  if (m.minepass !== HOST_PROTOCOL) return `unsupported protocol ${m.minepass} (this SDK speaks ${HOST_PROTOCOL})`;
  const valid = TYPES[m.type];
  if (!valid) return `unknown type ${m.type}`;
  const answer = valid(m);
  return answer === true ? null : answer;
}

function handle(m) {
  switch (m.type) {
    case 'hello':
      // Mining for coin is the host's explicit choice; it cannot be switched on while running.
      host.mode = m.mode || 'gate';
      if (!run.client) {
        options.gateOnly = host.mode === 'gate';
        // The app's own rule (it knows the power state, so the promise can be kept).
        if (m.requireCharging != null) options.requireCharging = m.requireCharging;
      }
      post('status', status());
      break;
    case 'consent':
      if (host.pendingConsent) {
        const resolve = host.pendingConsent;
        host.pendingConsent = null;
        resolve(m.granted);
      } else if (m.granted) {
        // Granted from the app's own settings: start as if the visitor pressed the gate's button.
        if (!currentConsent()) answered(true);
        MinePass.start();
      } else {
        MinePass.revoke();
      }
      break;
    case 'power':
      host.power = { charging: m.charging ?? null, level: m.level ?? null, thermal: m.thermal ?? null };
      run.client?.hostFacts(host.facts());
      break;
    case 'network':
      host.network = { online: m.online ?? null, metered: m.metered ?? null };
      run.client?.hostFacts(host.facts());
      emit('host', { network: host.network });
      break;
    case 'lifecycle':
      host.lifecycle = m.state;
      if (m.state === 'foreground') comeBack();
      else suspend(); // the workers end now: a backgrounded app must not compute
      break;
    case 'user':
      if (!run.client) Object.assign(options, { user: m.id, userProof: m.proof });
      break;
    case 'start':
      if (m.content) options.content = m.content;
      MinePass.start();
      break;
    case 'stop':
      MinePass.stop();
      break;
    case 'status':
      post('status', status());
      break;
  }
}

function status() {
  return {
    running: run.client !== null,
    paused: run.lastPause,
    consent: currentConsent() !== null,
    hashes: MinePass.hashes,
    hashrate: run.hashrate,
    mode: options.gateOnly ? 'gate' : 'mine',
    threads: threads(),
  };
}

// The SDK's events the host hears: everything the page hears, minus what stays in the page (keys of
// sealed content never leave the SDK; the anonymous identity's secret neither).
const FORWARDED = ['consent', 'start', 'pause', 'progress', 'hashing', 'unlock', 'credits', 'workers', 'stop', 'error', 'identity'];

/** Detects the platform's channel and announces the SDK to the host; nothing on an ordinary page. */
export function connectHost() {
  for (const [name, find, send] of CHANNELS) {
    let channel = null;
    try {
      channel = find();
    } catch {}
    if (!channel) continue;
    host.channel = name;
    host.send = (message) => send(channel, message);
    // App hosts default to proof of work only; `hello {mode: "mine"}` may lift it before a start.
    options.gateOnly = true;
    break;
  }
  if (!host.channel) return;
  // Two-way channels answer on their own object.
  if (host.channel === 'android') w.minepassHost.onmessage = (event) => host.api.receive(event.data);
  if (host.channel === 'capacitor') w.Capacitor.Plugins.MinePass.addListener?.('message', (e) => host.api.receive(e.message));
  on('*', (type, detail) => {
    if (FORWARDED.includes(type)) post(type, { detail });
  });
  post('ready', { sdk: MinePass.version, site: options.site, supported: wasmBuild(), channel: host.channel, promises: promises() });
}
