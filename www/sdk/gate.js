// <minepass-gate content="ID">: progress, ETA, the consent button; the content shown once unlocked.
// Its light DOM is the publisher's; sealed content stays ciphertext until the unlock brings its keys.
import { currentConsent, options } from './context.js';
import { emit, off, on } from './events.js';
import { host } from './host.js';
import { MinePass } from './api.js';
import { openSealed, sealedKeys } from './sealed.js';
import { t } from './strings.js';
import { cannotRun, cannotRunMessage } from './support.js';
import { el, formatDuration, style } from './ui.js';

export const gatesExist = () => document.querySelector('minepass-gate') !== null;
export function firstGateContent() {
  for (const gate of document.querySelectorAll('minepass-gate')) {
    if (!gate.unlocked) return gate.getAttribute('content') || undefined;
  }
  return undefined;
}

export class Gate extends HTMLElement {
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
      // In an app the app asks, in its own UI: say so while it does.
      if (host.ownsConsent() && !currentConsent()) this.status.textContent = s.hostConsent;
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
    on('host', this.onLine);
    this.showConnection();
    this.handler = (type, detail) => this.onEvent(type, detail);
    on('*', this.handler);
    // Consent already given (an earlier visit): resume without asking.
    if (currentConsent() && !cannotRun()) this.button.click();
  }
  disconnectedCallback() {
    off('*', this.handler);
    removeEventListener('online', this.onLine);
    removeEventListener('offline', this.onLine);
    off('host', this.onLine);
  }
  // Offline and not yet computing: the button waits for the network, and says so.
  showConnection() {
    if (this.unlocked || MinePass.running || cannotRun()) return;
    const offline = host.offline();
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
