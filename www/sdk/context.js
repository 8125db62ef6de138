// What the SDK knows of its page: the script tag's settings, the publisher's options, what it keeps
// in localStorage (consent, the anonymous identity) and the one number of threads the dialog promises.
// The bundle is one classic script, so `document.currentScript` is read while it first runs.

const script = document.currentScript;
export const base = new URL('.', (script && script.src) || location.href);
export const data = (script && script.dataset) || {};

export const options = {
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
  // Proof of work only (no coin mined): app hosts ask for it by default (./host.js, docs/HOST.md).
  gateOnly: data.gateOnly === 'true',
  content: undefined,
  clock: undefined,
};

export const now = () => (options.clock ? options.clock() : Date.now());
export const key = (what) => `minepass.${options.site}.${what}`;

export const storage = {
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

export function currentConsent() {
  const record = storage.get('consent');
  return record && typeof record.expires_at === 'number' && record.expires_at > now() ? record : null;
}

/** Records a yes (from the dialog or the app host's own prompt) for `consentHours`. */
export function recordConsent(id) {
  const given = now();
  storage.set('consent', { id, given_at: given, expires_at: given + options.consentHours * 3600e3 });
}

// Who mines: the publisher's vouched user, else the anonymous identity the broker issued on a
// first visit ({user, secret}, kept here: the broker stores no copy), else nobody yet (the broker
// issues one in its welcome).
export function identity() {
  if (options.user) return { user: options.user, userProof: options.userProof };
  const kept = storage.get('identity');
  if (kept && typeof kept.user === 'string' && typeof kept.secret === 'string') {
    return { user: kept.user, userSecret: kept.secret };
  }
  return {};
}

const cores = () => navigator.hardwareConcurrency || 1;
/**
 * The most worker threads the SDK may run: the visitor's or publisher's choice, else all cores but
 * one, at least one. The one source of this number: the dialog promises it and the client takes it as
 * its ceiling (it measures how many of these the device really sustains).
 */
export const threads = () => Math.min(Math.max(options.threads ?? cores() - 1, 1), cores());
