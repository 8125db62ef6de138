// MinePass SDK loader: the only file a page loads before the visitor agrees.
//
//   <script src="https://BROKER/minepass.js" data-site="SITE_KEY" async></script>
//   <minepass-gate content="ID">…shown once unlocked…</minepass-gate>
//
// Before consent this file fetches nothing, starts no worker and opens no socket. After a yes it loads
// the client (Rust compiled to wasm: the broker session, the workers, the visitor's limits) from the
// same place as this script. docs/SDK.md describes the API.
(() => {
  'use strict';
  if (window.MinePass && window.MinePass.version) return; // loaded twice

  const script = document.currentScript;
  const base = new URL('.', (script && script.src) || location.href);
  const data = (script && script.dataset) || {};

  // --- Strings: English plus the browser's language when we have it. ---
  const STRINGS = {
    en: {
      title: 'Unlock with your device’s computing power',
      body: (o) =>
        `${o.name} asks to use your device’s processor for proof-of-work computations (SHA-256) while ` +
        `this page is open and visible. The results may also be used to mine cryptocurrency that pays ` +
        `the publisher. It uses CPU and battery and can make your device warm.`,
      limits: (o) =>
        `At most ${o.minutes} minutes a day, on at most ${o.threads} processor ${o.threads === 1 ? 'thread' : 'threads'} (fewer if your device gains nothing from more)` +
        `${o.throttle ? `, resting ${Math.round(o.throttle * 100)}% of the time` : ''}` +
        `${o.charging ? ', only while charging' : ''}. It pauses when you switch tabs.`,
      reward: (o) => `In return: ${o.reward}.`,
      stopHow: 'You can stop at any time with the “Stop” button at the bottom of the page. Nothing runs until you agree.',
      allow: 'Allow',
      deny: 'No thanks',
      unlockButton: 'Unlock with computing power',
      gateIntro: 'This part unlocks after a few minutes of computing in your browser, instead of ads or payment.',
      mining: 'Computing…',
      eta: (s) => `about ${s} left`,
      unlocked: 'Unlocked. Thank you!',
      sealedFailed: 'The unlocked part could not be opened here. Reload the page to try again.',
      unavailable: 'Your browser cannot run the computation (WebAssembly is disabled, for example in Lockdown Mode).',
      chargingUnknown: 'This site computes only while your device is charging, and this browser cannot tell whether it is. Nothing runs here.',
      offline: 'You are offline: computing needs a connection to the site. It can start once you are back online.',
      declined: 'You declined. Nothing runs.',
      bar: (rate) => `Computing for this site${rate ? ` · ${rate}` : ''}`,
      credits: 'credits',
      idle: 'Computing allowed · not running',
      stop: 'Stop',
      paused: {
        'other-tab': 'Paused: another tab of this site is computing.',
        budget: 'Paused: today’s limit is reached. It continues tomorrow.',
        'save-data': 'Paused: your browser asks to save data.',
        'not-charging': 'Paused: waiting for the charger.',
        'charging-unknown': 'Stopped: this browser cannot tell whether the device is charging.',
        'low-battery': 'Paused: the battery is low.',
        hidden: 'Paused while the tab is hidden.',
        offline: 'Connecting…',
        'no-work': 'Waiting for work: the broker’s mining pool is unavailable.',
      },
      defaultReward: 'access to this content without ads',
    },
    de: {
      title: 'Mit der Rechenleistung Ihres Geräts freischalten',
      body: (o) =>
        `${o.name} bittet darum, den Prozessor Ihres Geräts für Proof-of-Work-Berechnungen (SHA-256) zu ` +
        `nutzen, solange diese Seite geöffnet und sichtbar ist. Die Ergebnisse können auch zum Schürfen ` +
        `von Kryptowährung für den Anbieter dienen. Das beansprucht Prozessor und Akku und kann Ihr Gerät erwärmen.`,
      limits: (o) =>
        `Höchstens ${o.minutes} Minuten am Tag, auf höchstens ${o.threads} Prozessor-Threads (weniger, wenn Ihr Gerät von mehr nichts hat)` +
        `${o.throttle ? `, mit ${Math.round(o.throttle * 100)} % Pausen` : ''}` +
        `${o.charging ? ', nur beim Laden' : ''}. Beim Wechsel des Tabs wird pausiert.`,
      reward: (o) => `Dafür erhalten Sie: ${o.reward}.`,
      stopHow: 'Sie können jederzeit mit der Schaltfläche „Stopp“ unten auf der Seite aufhören. Vor Ihrer Zustimmung läuft nichts.',
      allow: 'Erlauben',
      deny: 'Nein, danke',
      unlockButton: 'Mit Rechenleistung freischalten',
      gateIntro: 'Dieser Teil wird nach einigen Minuten Rechnen in Ihrem Browser freigeschaltet – statt Werbung oder Bezahlung.',
      mining: 'Rechne…',
      eta: (s) => `noch etwa ${s}`,
      unlocked: 'Freigeschaltet. Danke!',
      sealedFailed: 'Der freigeschaltete Teil konnte hier nicht geöffnet werden. Laden Sie die Seite neu.',
      unavailable: 'Ihr Browser kann die Berechnung nicht ausführen (WebAssembly ist deaktiviert, z. B. im Blockierungsmodus).',
      chargingUnknown: 'Diese Seite rechnet nur, während Ihr Gerät lädt, und dieser Browser kann das nicht feststellen. Hier läuft nichts.',
      offline: 'Sie sind offline: Das Rechnen braucht eine Verbindung zur Seite. Es kann beginnen, sobald Sie wieder online sind.',
      declined: 'Sie haben abgelehnt. Es läuft nichts.',
      bar: (rate) => `Rechne für diese Seite${rate ? ` · ${rate}` : ''}`,
      credits: 'Guthaben',
      idle: 'Rechnen erlaubt · läuft nicht',
      stop: 'Stopp',
      paused: {
        'other-tab': 'Pausiert: Ein anderer Tab dieser Seite rechnet.',
        budget: 'Pausiert: Das heutige Limit ist erreicht. Morgen geht es weiter.',
        'save-data': 'Pausiert: Ihr Browser möchte Daten sparen.',
        'not-charging': 'Pausiert: Warte auf das Ladegerät.',
        'charging-unknown': 'Angehalten: Dieser Browser kann nicht feststellen, ob das Gerät lädt.',
        'low-battery': 'Pausiert: Der Akku ist schwach.',
        hidden: 'Pausiert, solange der Tab verborgen ist.',
        offline: 'Verbinde…',
        'no-work': 'Warte auf Arbeit: Der Mining-Pool des Brokers ist nicht erreichbar.',
      },
      defaultReward: 'Zugang zu diesem Inhalt ohne Werbung',
    },
  };
  const language = () => {
    const wanted = [data.lang, ...(navigator.languages || [navigator.language])].filter(Boolean);
    for (const tag of wanted) {
      const short = String(tag).toLowerCase().split('-')[0];
      if (STRINGS[short]) return short;
    }
    return 'en';
  };
  const t = () => STRINGS[language()];

  // --- SIMD detection: the smallest module using a simd128 instruction. ---
  const SIMD_PROBE = new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
  ]);
  const wasmBuild = () => {
    try {
      if (typeof WebAssembly !== 'object' || typeof WebAssembly.validate !== 'function') return null;
      return WebAssembly.validate(SIMD_PROBE) ? 'simd' : 'plain';
    } catch {
      return null;
    }
  };

  // What keeps the SDK from running on this device, as an error code, or null. Checked before the
  // dialog: it makes only promises this browser lets the SDK keep ("only while charging" needs the
  // Battery API, which Firefox, Safari and every iOS webview lack; the client's policy refuses the
  // same case once running: `charging-unknown`).
  function cannotRun() {
    if (!wasmBuild()) return 'wasm_unavailable';
    if (options.requireCharging && typeof navigator.getBattery !== 'function') return 'charging_unknown';
    return null;
  }
  const cannotRunMessage = (code) => (code === 'charging_unknown' ? t().chargingUnknown : t().unavailable);

  // --- State. ---
  const options = {
    site: data.site || '',
    // A publisher-vouched user: the publisher's id and the proof its server minted (docs/SDK.md).
    user: data.user || '',
    userProof: data.userProof || '',
    name: data.name || location.hostname,
    reward: data.reward || '',
    threads: data.threads ? Number(data.threads) : undefined,
    throttle: data.throttle ? Number(data.throttle) : 0,
    dailyMinutes: data.dailyMinutes ? Number(data.dailyMinutes) : 30,
    requireCharging: data.requireCharging === 'true',
    respectSaveData: data.respectSaveData !== 'false',
    consentHours: data.consentHours ? Number(data.consentHours) : 24,
    content: undefined,
    clock: undefined,
  };
  const listeners = new Map();
  let client = null;
  let loading = null;
  let lastPause = null;
  let hashrate = 0;

  const now = () => (options.clock ? options.clock() : Date.now());
  const key = (what) => `minepass.${options.site}.${what}`;
  const storage = {
    get(name) {
      try {
        return JSON.parse(localStorage.getItem(key(name)));
      } catch {
        return null;
      }
    },
    set(name, value) {
      try {
        localStorage.setItem(key(name), JSON.stringify(value));
      } catch {}
    },
    remove(name) {
      try {
        localStorage.removeItem(key(name));
      } catch {}
    },
  };

  function emit(type, detail = {}) {
    for (const fn of listeners.get(type) || []) {
      try {
        fn(detail);
      } catch (error) {
        console.error('MinePass listener failed', error);
      }
    }
    for (const fn of listeners.get('*') || []) {
      try {
        fn(type, detail);
      } catch {}
    }
  }

  function currentConsent() {
    const record = storage.get('consent');
    return record && typeof record.expires_at === 'number' && record.expires_at > now() ? record : null;
  }

  // Who mines: the publisher's vouched user, else the anonymous identity the broker issued on a
  // first visit ({user, secret}, kept here: the broker stores no copy), else nobody yet (the broker
  // issues one in its welcome).
  function identity() {
    if (options.user) return { user: options.user, userProof: options.userProof };
    const kept = storage.get('identity');
    if (kept && typeof kept.user === 'string' && typeof kept.secret === 'string') {
      return { user: kept.user, userSecret: kept.secret };
    }
    return {};
  }

  const cores = () => navigator.hardwareConcurrency || 1;
  const threads = () => Math.min(Math.max(options.threads ?? cores() - 1, 1), cores());

  // --- Styles (constructable sheets: no inline <style>, so a strict CSP needs no style exception). ---
  const CSS = `
    :host { all: initial; font: 15px/1.45 system-ui, sans-serif; color: #1d2430; }
    .box { border: 1px solid #c8d0dc; border-radius: 10px; padding: 16px; background: #f7f9fc; }
    button { font: inherit; border-radius: 8px; padding: 8px 14px; border: 1px solid #1f5fbf; cursor: pointer; }
    button.primary { background: #1f5fbf; color: #fff; }
    button:focus-visible { outline: 3px solid #f2a900; outline-offset: 2px; }
    progress { width: 100%; height: 12px; margin: 10px 0 4px; }
    .status { color: #4a5568; font-size: 14px; min-height: 1.4em; }
    dialog { max-width: 34em; border: none; border-radius: 12px; padding: 22px; box-shadow: 0 12px 40px #0005; }
    dialog::backdrop { background: #0008; }
    h2 { font-size: 19px; margin: 0 0 10px; }
    p { margin: 0 0 10px; }
    .actions { display: flex; gap: 10px; justify-content: flex-end; margin-top: 14px; }
    .bar { position: fixed; right: 12px; bottom: 12px; z-index: 2147483647; display: flex; gap: 10px;
           align-items: center; background: #1d2430; color: #fff; border-radius: 999px; padding: 6px 8px 6px 14px;
           box-shadow: 0 4px 16px #0004; font-size: 14px; }
    .bar button { background: #fff; color: #1d2430; border-color: #fff; padding: 4px 12px; }
    [hidden] { display: none !important; }
  `;
  let sheet = null;
  function style(root) {
    try {
      sheet ??= new CSSStyleSheet();
      if (!sheet.cssRules.length) sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch {
      const element = document.createElement('style'); // older engines (allowed unless style-src forbids it)
      element.textContent = CSS;
      root.append(element);
    }
  }

  const el = (tag, props = {}, children = []) => {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  };

  // --- Consent dialog: fixed wording, keyboard and screen-reader accessible. ---
  function askConsent() {
    return new Promise((resolve) => {
      const s = t();
      const host = el('div');
      host.setAttribute('data-minepass', 'consent');
      const root = host.attachShadow({ mode: 'open' });
      style(root);
      const facts = {
        name: options.name,
        minutes: options.dailyMinutes,
        threads: threads(),
        throttle: options.throttle,
        charging: options.requireCharging,
        reward: options.reward || s.defaultReward,
      };
      const allow = el('button', { className: 'primary', textContent: s.allow, type: 'button' });
      const deny = el('button', { textContent: s.deny, type: 'button' });
      const dialog = el('dialog', {}, [
        el('h2', { id: 'mp-title', textContent: s.title }),
        el('div', { id: 'mp-desc' }, [
          el('p', { textContent: s.body(facts) }),
          el('p', { textContent: s.limits(facts) }),
          el('p', { textContent: s.reward(facts) }),
          el('p', { textContent: s.stopHow }),
        ]),
        el('div', { className: 'actions' }, [deny, allow]),
      ]);
      dialog.setAttribute('aria-labelledby', 'mp-title');
      dialog.setAttribute('aria-describedby', 'mp-desc');
      dialog.lang = language();
      root.append(dialog);
      document.body.append(host);
      const answer = (yes) => {
        dialog.close();
        host.remove();
        resolve(yes);
      };
      allow.addEventListener('click', () => answer(true));
      deny.addEventListener('click', () => answer(false));
      dialog.addEventListener('cancel', (event) => {
        event.preventDefault();
        answer(false); // Escape declines
      });
      dialog.showModal();
      deny.focus(); // the safe choice has focus: Enter does not opt in by accident
    });
  }

  // --- The visible stop control, shown whenever consent is active. ---
  let bar = null;
  let credits = 0n;
  function showBar() {
    if (bar) return;
    const s = t();
    const host = el('div');
    host.setAttribute('data-minepass', 'bar');
    const root = host.attachShadow({ mode: 'open' });
    style(root);
    const label = el('span', { textContent: s.bar('') });
    const stop = el('button', { textContent: s.stop, type: 'button' });
    stop.setAttribute('aria-label', `${s.stop}: ${s.bar('')}`);
    stop.addEventListener('click', () => MinePass.revoke());
    root.append(el('div', { className: 'bar', role: 'region' }, [label, stop]));
    root.firstElementChild.setAttribute('aria-label', 'MinePass');
    document.body.append(host);
    bar = { host, label };
  }
  function hideBar() {
    bar?.host.remove();
    bar = null;
  }

  const formatRate = (h) =>
    h >= 1e6 ? `${(h / 1e6).toFixed(1)} MH/s` : h >= 1e3 ? `${(h / 1e3).toFixed(0)} kH/s` : h > 0 ? `${h.toFixed(0)} H/s` : '';
  const formatDuration = (seconds) => {
    if (!isFinite(seconds)) return '';
    if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  };

  // Module workers must be same-origin. On a publisher's page with the broker on another origin, a
  // same-origin blob module imports the broker's worker (served with CORS); such pages need
  // `worker-src blob:` if they set a CSP.
  function workerUrl() {
    const url = new URL('worker.js', base).href;
    if (base.origin === location.origin) return url;
    const source = `import ${JSON.stringify(url)};`;
    return URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  }

  // --- Loading the client after consent. ---
  async function load() {
    const build = wasmBuild();
    if (!build) {
      emit('error', { code: 'wasm_unavailable', message: t().unavailable, fatal: true });
      return null;
    }
    // The client (session, limits, workers) on this thread; the workers load the kernel build.
    const glue = await import(new URL('pkg/minepass_client.js', base).href);
    await glue.default({ module_or_path: new URL('pkg/minepass_client_bg.wasm', base) });
    const broker = new URL('ws', base);
    broker.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
    const consent = currentConsent();
    if (!consent) return null; // revoked while loading
    const clientOptions = {
      broker: broker.href,
      workerUrl: workerUrl(),
      build,
      site: options.site,
      ...identity(),
      content: options.content ?? firstGateContent(),
      consent,
      throttle: options.throttle,
      dailyMinutes: options.dailyMinutes,
      requireCharging: options.requireCharging,
      respectSaveData: options.respectSaveData,
    };
    // The number the dialog promised is the client's ceiling: one source for it.
    clientOptions.threads = threads();
    const made = new glue.Client(clientOptions, onClientEvent, options.clock ? () => options.clock() : undefined);
    made.build = build;
    return made;
  }

  function onClientEvent(type, detail) {
    if (type === 'identity') {
      storage.set('identity', { user: detail.user, secret: detail.secret });
      detail = { user: detail.user }; // the secret stays with the SDK
    }
    // The broker no longer accepts the kept anonymous identity: the next start begins a new one.
    if (type === 'error' && detail.code === 'bad_user_proof' && !options.user) storage.remove('identity');
    if (type === 'unlock') detail = unlockDetail(detail);
    if (type === 'pause') lastPause = detail.reason;
    if (type === 'start') lastPause = null;
    if (type === 'progress') hashrate = detail.hashrate;
    // The visitor's credits at this site (one per expected hash of verified work), on the stop bar.
    if (detail?.credits) credits = BigInt(detail.credits);
    if (type === 'stop') {
      client = null;
      hashrate = 0;
    }
    updateBar();
    emit(type, detail || {});
    // Every gate on the page is open: nothing left to compute for.
    if (type === 'unlock' && gatesExist() && firstGateContent() === undefined) MinePass.stop();
  }

  // --- Sealed content: the gated HTML is ciphertext until the unlock brings its keys. ---
  // Keys stay in this closure: page listeners get the unlock without them.
  const sealedKeys = new Map();
  function unlockDetail(detail) {
    const { keys, ...rest } = detail;
    if (keys?.length) sealedKeys.set(detail.content, keys);
    return { ...rest, sealed: Boolean(keys?.length) };
  }
  const base64url = (text) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
  // The ciphertext embedded by the publisher (`sealed="…"` or a `<template data-minepass-sealed>`),
  // else the newest version from the broker (fetched only now, after the unlock).
  async function sealedText(gate, content, fresh) {
    const embedded = gate.getAttribute('sealed') || gate.querySelector(':scope > template[data-minepass-sealed]')?.content.textContent;
    if (embedded?.trim()) return embedded.trim();
    const url = new URL(`api/v1/sealed/${encodeURIComponent(options.site)}/${encodeURIComponent(content)}`, base);
    const response = await fetch(url, { credentials: 'omit', cache: fresh ? 'reload' : 'default' });
    if (!response.ok) throw new Error(`sealed content: HTTP ${response.status}`);
    return (await response.json()).sealed;
  }
  async function openSealed(gate, content, keys) {
    const keyOf = (text) => keys.find((k) => String(k.version) === String(text).split('.')[1]);
    let text = await sealedText(gate, content, false);
    // A cached copy of a version retired since: ask the broker past the cache once.
    if (!keyOf(text)) text = await sealedText(gate, content, true);
    const [tag, version, iv, ciphertext, extra] = String(text).split('.');
    if (tag !== 'mp1' || extra !== undefined) throw new Error('not a MinePass sealed string');
    const entry = keyOf(text);
    if (!entry) throw new Error(`no key for sealed version ${version} (retired?)`);
    const key = await crypto.subtle.importKey('raw', base64url(entry.key), 'AES-GCM', false, ['decrypt']);
    const additionalData = new TextEncoder().encode(`minepass-sealed-v1\n${options.site}\n${content}\n${version}`);
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: base64url(iv), additionalData }, key, base64url(ciphertext));
    return inertFragment(new TextDecoder().decode(plain));
  }
  // Sealed HTML is markup, never code: parsed in an inert document (nothing loads or runs there),
  // then scripts, frames' srcdoc, event-handler attributes and javascript: URLs are dropped, so
  // nothing in it executes even on a page without a CSP.
  function inertFragment(html) {
    const doc = new DOMParser().parseFromString(`<!doctype html><body>${html}`, 'text/html');
    doc.body.querySelectorAll('script, base, meta, link, object, embed, animate, set').forEach((node) => node.remove());
    for (const node of doc.body.querySelectorAll('*')) {
      for (const { name, value } of [...node.attributes]) {
        const url = /^(href|src|action|formaction|xlink:href|data)$/i.test(name) && /^javascript:/i.test(value.replace(/[\u0000-\u0020]/g, ''));
        if (/^on/i.test(name) || /^srcdoc$/i.test(name) || url) node.removeAttribute(name);
      }
    }
    const fragment = document.createDocumentFragment();
    fragment.append(...[...doc.body.childNodes].map((node) => document.adoptNode(node)));
    return fragment;
  }

  function updateBar() {
    if (!bar) return;
    const s = t();
    if (!client) bar.label.textContent = s.idle;
    else bar.label.textContent = lastPause ? s.paused[lastPause] || lastPause : s.bar(formatRate(hashrate));
    if (credits) bar.label.textContent += ` · ${formatRate(Number(credits)).replace(/\s*H\/s/, '')} ${s.credits}`;
  }

  // --- The public API. ---
  const MinePass = {
    version: '1',
    /** Overrides the script tag's settings; call before start. */
    init(settings = {}) {
      Object.assign(options, settings);
      return MinePass;
    },
    on(type, fn) {
      if (!listeners.has(type)) listeners.set(type, new Set());
      listeners.get(type).add(fn);
      return MinePass;
    },
    off(type, fn) {
      listeners.get(type)?.delete(fn);
      return MinePass;
    },
    /** The current consent record, or null. */
    get consent() {
      return currentConsent();
    },
    get running() {
      return client !== null;
    },
    get hashrate() {
      return hashrate;
    },
    /** Hashes done by this page's client since it started. */
    get hashes() {
      return client ? client.hashes : 0;
    },
    /** Milliseconds this page's workers spent hashing since the client started (summed). */
    get busyMs() {
      return client ? client.busyMs : 0;
    },
    /** WebAssembly is usable here ('simd' or 'plain'), or null: the gate offers the alternative. */
    get supported() {
      return wasmBuild();
    },
    /** Asks for consent when there is none, then starts mining. Resolves to whether it started. */
    async start(settings) {
      if (settings) MinePass.init(settings);
      if (!options.site) throw new Error('MinePass: no site key (data-site or init({site}))');
      const refused = cannotRun();
      if (refused) {
        emit('error', { code: refused, message: cannotRunMessage(refused), fatal: true });
        return false;
      }
      // Offline (an installed app opened without a network): nothing to ask for yet.
      if (navigator.onLine === false && !client) {
        emit('error', { code: 'offline', message: t().offline, fatal: false });
        return false;
      }
      if (!currentConsent()) {
        const yes = await askConsent();
        emit('consent', { given: yes });
        // The answer is counted per site for the publisher's consent rate: the site key, yes/no and
        // the answer's random id (it counts once), nothing about the visitor.
        const id = `c-${crypto.getRandomValues(new Uint32Array(2)).join('')}`;
        navigator.sendBeacon?.(new URL('api/v1/consent', base), JSON.stringify({ site: options.site, given: yes, id }));
        if (!yes) return false;
        const given = now();
        storage.set('consent', { id, given_at: given, expires_at: given + options.consentHours * 3600e3 });
      }
      showBar();
      if (client) return true;
      loading ??= load().finally(() => (loading = null));
      const made = await loading;
      if (!made) return false;
      if (!currentConsent()) {
        made.stop(); // revoked while the wasm loaded
        return false;
      }
      client = made;
      client.start();
      return true;
    },
    /** Stops mining now (the consent stays: start() resumes without asking). */
    stop() {
      const running = client;
      client = null;
      running?.stop(); // synchronous: workers terminated, socket closed
      // Freed on the next task: stop() may run inside one of the client's own event callbacks.
      if (running) setTimeout(() => running.free(), 0);
      updateBar();
    },
    /** Withdraws consent and stops everything at once, in every tab of this site. */
    revoke() {
      storage.remove('consent');
      MinePass.stop();
      hideBar();
      emit('consent', { given: false });
    },
  };
  window.MinePass = MinePass;

  // Page lifecycle: a page that is frozen (Chromium's Page Lifecycle), put in the back/forward cache
  // or left stops cleanly (workers ended, socket closed) and starts again when it comes back, if the
  // consent still holds. A hidden tab only pauses (the client's policy); these stop.
  let resumeOnReturn = false;
  const suspend = () => {
    if (!client) return;
    resumeOnReturn = true;
    MinePass.stop();
  };
  const comeBack = () => {
    if (!resumeOnReturn) return;
    resumeOnReturn = false;
    if (currentConsent()) MinePass.start();
  };
  document.addEventListener('freeze', suspend);
  document.addEventListener('resume', comeBack);
  addEventListener('pagehide', suspend);
  addEventListener('pageshow', (event) => event.persisted && comeBack());

  // Revocation in another tab stops this one too.
  addEventListener('storage', (event) => {
    if (event.key === key('consent') && !currentConsent() && (client || bar)) MinePass.revoke();
  });

  // --- <minepass-gate content="ID">: progress, ETA, the consent button; content shown once unlocked. ---
  const gatesExist = () => document.querySelector('minepass-gate') !== null;
  function firstGateContent() {
    for (const gate of document.querySelectorAll('minepass-gate')) {
      if (!gate.unlocked) return gate.getAttribute('content') || undefined;
    }
    return undefined;
  }

  class Gate extends HTMLElement {
    connectedCallback() {
      if (this.shadowRoot) return;
      const s = t();
      const root = this.attachShadow({ mode: 'open' });
      style(root);
      this.unlocked = false;
      this.button = el('button', { className: 'primary', textContent: s.unlockButton, type: 'button' });
      this.progress = el('progress', { max: 1, value: 0 });
      this.progress.hidden = true;
      this.status = el('div', { className: 'status' });
      this.status.setAttribute('role', 'status');
      this.status.setAttribute('aria-live', 'polite');
      this.panel = el('div', { className: 'box', part: 'panel' }, [
        el('p', { textContent: s.gateIntro }),
        this.button,
        this.progress,
        this.status,
      ]);
      this.content = el('div', { hidden: true }, [el('slot')]);
      this.fallback = el('div', { hidden: true }, [el('slot', { name: 'fallback' })]);
      root.append(this.panel, this.fallback, this.content);
      this.button.addEventListener('click', () => {
        options.content = this.getAttribute('content') || undefined;
        MinePass.start().then((started) => {
          if (!started && !this.unlocked) {
            const refused = cannotRun();
            this.status.textContent = refused ? cannotRunMessage(refused) : s.declined;
          }
        });
      });
      if (cannotRun()) this.showUnavailable(cannotRun());
      this.onLine = () => this.showConnection();
      addEventListener('online', this.onLine);
      addEventListener('offline', this.onLine);
      this.showConnection();
      this.handler = (type, detail) => this.onEvent(type, detail);
      MinePass.on('*', this.handler);
      // Consent already given (an earlier visit): resume without asking.
      if (currentConsent() && !cannotRun()) this.button.click();
    }
    disconnectedCallback() {
      MinePass.off('*', this.handler);
      removeEventListener('online', this.onLine);
      removeEventListener('offline', this.onLine);
    }
    // Offline and not yet computing: the button waits for the network, and says so.
    showConnection() {
      if (this.unlocked || MinePass.running || cannotRun()) return;
      const offline = navigator.onLine === false;
      this.button.disabled = offline;
      if (offline) this.status.textContent = t().offline;
      else if (this.status.textContent === t().offline) this.status.textContent = '';
    }
    showUnavailable(code) {
      this.button.hidden = true;
      this.status.textContent = cannotRunMessage(code);
      this.fallback.hidden = false;
    }
    onEvent(type, detail) {
      const s = t();
      const mine = detail && detail.content === this.getAttribute('content');
      if (type === 'progress' && mine) {
        const required = Number(detail.required);
        this.progress.hidden = false;
        this.progress.value = required > 0 ? Math.min(Number(detail.done) / required, 1) : 0;
        this.button.hidden = true;
        const eta = detail.eta_s != null ? s.eta(formatDuration(detail.eta_s)) : '';
        this.status.textContent = `${s.mining} ${Math.floor(this.progress.value * 100)}% ${eta}`.trim();
      } else if (type === 'pause' && !this.unlocked) {
        this.status.textContent = s.paused[detail.reason] || detail.reason;
      } else if (type === 'start' && !this.unlocked) {
        this.button.hidden = true;
        this.progress.hidden = false;
        this.status.textContent = s.mining;
      } else if (type === 'unlock' && mine && !this.unlocked) {
        this.unlocked = true;
        this.token = detail.token;
        const keys = sealedKeys.get(detail.content);
        const reveal = () => {
          this.panel.hidden = true;
          this.content.hidden = false;
          this.dispatchEvent(new CustomEvent('minepass-unlock', { detail, bubbles: true }));
        };
        if (!keys) return reveal();
        this.status.textContent = s.unlocked;
        openSealed(this, detail.content, keys).then(
          (fragment) => {
            this.replaceChildren(fragment);
            reveal();
          },
          (error) => {
            this.status.textContent = s.sealedFailed;
            emit('error', { code: 'sealed_unavailable', message: String(error?.message || error), fatal: false });
          },
        );
      } else if (type === 'consent' && !detail.given && !this.unlocked) {
        this.button.hidden = false;
        this.status.textContent = '';
      } else if (type === 'error' && (detail.code === 'wasm_unavailable' || detail.code === 'charging_unknown')) {
        this.showUnavailable(detail.code);
      } else if (type === 'error' && detail.code === 'offline' && !this.unlocked) {
        this.showConnection();
      } else if (type === 'error' && detail.fatal && !this.unlocked) {
        this.status.textContent = detail.message || detail.code;
      }
    }
  }
  if (!customElements.get('minepass-gate')) customElements.define('minepass-gate', Gate);
})();
