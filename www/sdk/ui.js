// What the visitor sees outside the gate: the consent dialog and the stop bar, in shadow roots styled by
// one constructable sheet (no inline <style>, so a strict CSP needs no style exception).
import { language, t } from './strings.js';
import { options, threads } from './context.js';
import { run } from './client.js';

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
export function style(root) {
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

export const el = (tag, props = {}, children = []) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

/** What the SDK promises the visitor: the dialog shows it, an app host's own prompt gets it. */
export function promises() {
  return {
    name: options.name,
    minutes: options.dailyMinutes,
    threads: threads(),
    throttle: options.throttle,
    charging: options.requireCharging,
    reward: options.reward || t().defaultReward,
    gateOnly: options.gateOnly,
  };
}

// --- Consent dialog: fixed wording, keyboard and screen-reader accessible. ---
/** "40 s to 2 min", or "about 40 s" when the range is one value at this precision. */
function formatRange(estimate, s) {
  const [low, high] = [formatDuration(estimate.low_s), formatDuration(estimate.high_s)];
  return low === high ? s.around(low) : `${low} – ${high}`;
}

/** Asks the visitor; `estimate` (a promise of the broker's unlock estimate, or null) fills its line. */
export function askConsent(estimate) {
  return new Promise((resolve) => {
    const s = t();
    const host = el('div');
    host.setAttribute('data-minepass', 'consent');
    const root = host.attachShadow({ mode: 'open' });
    style(root);
    const facts = promises();
    // Filled when the broker answers; the dialog does not wait for it.
    const estimateLine = el('p', { className: 'estimate', hidden: true });
    estimate?.then((e) => {
      if (!e) return;
      estimateLine.textContent = s.estimate(formatRange(e, s), e.samples);
      estimateLine.hidden = false;
    });
    const allow = el('button', { className: 'primary', textContent: s.allow, type: 'button' });
    const deny = el('button', { textContent: s.deny, type: 'button' });
    const dialog = el('dialog', {}, [
      el('h2', { id: 'mp-title', textContent: s.title }),
      el('div', { id: 'mp-desc' }, [
        el('p', { textContent: s.body(facts) }),
        el('p', { textContent: s.limits(facts) }),
        el('p', { textContent: s.reward(facts) }),
        estimateLine,
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
export function showBar(onStop) {
  if (bar) return;
  const s = t();
  const host = el('div');
  host.setAttribute('data-minepass', 'bar');
  const root = host.attachShadow({ mode: 'open' });
  style(root);
  const label = el('span', { textContent: s.bar('') });
  const stop = el('button', { textContent: s.stop, type: 'button' });
  stop.setAttribute('aria-label', `${s.stop}: ${s.bar('')}`);
  stop.addEventListener('click', onStop);
  root.append(el('div', { className: 'bar', role: 'region' }, [label, stop]));
  root.firstElementChild.setAttribute('aria-label', 'MinePass');
  document.body.append(host);
  bar = { host, label };
}
export const barShown = () => bar !== null;
export function hideBar() {
  bar?.host.remove();
  bar = null;
}

export const formatRate = (h) =>
  h >= 1e6 ? `${(h / 1e6).toFixed(1)} MH/s` : h >= 1e3 ? `${(h / 1e3).toFixed(0)} kH/s` : h > 0 ? `${h.toFixed(0)} H/s` : '';
export const formatDuration = (seconds) => {
  if (!isFinite(seconds)) return '';
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
};

export function updateBar() {
  if (!bar) return;
  const s = t();
  if (!run.client) bar.label.textContent = s.idle;
  else bar.label.textContent = run.lastPause ? s.paused[run.lastPause] || run.lastPause : s.bar(formatRate(run.hashrate));
  if (run.credits) bar.label.textContent += ` · ${formatRate(Number(run.credits)).replace(/\s*H\/s/, '')} ${s.credits}`;
}

