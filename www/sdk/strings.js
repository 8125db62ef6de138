// The SDK's words: English plus the browser's language when we have it. Every promise the dialog
// makes is built here from the numbers in ./context.js, so the words and the limits cannot drift.
import { data } from './context.js';

export const STRINGS = {
  en: {
    title: 'Unlock with your device’s computing power',
    body: (o) =>
      `${o.name} asks to use your device’s processor for proof-of-work computations (SHA-256) while ` +
      `this page is open and visible. ${o.gateOnly ? 'No cryptocurrency is mined: the work only proves the wait.' : 'The results may also be used to mine cryptocurrency that pays the publisher.'} ` +
      `It uses CPU and battery and can make your device warm.`,
    limits: (o) =>
      `At most ${o.minutes} minutes a day, on at most ${o.threads} processor ${o.threads === 1 ? 'thread' : 'threads'} (fewer if your device gains nothing from more)` +
      `${o.throttle ? `, resting ${Math.round(o.throttle * 100)}% of the time` : ''}` +
      `${o.charging ? ', only while charging' : ''}. It pauses when you switch tabs.`,
    reward: (o) => `In return: ${o.reward}.`,
    around: (d) => `about ${d}`,
    estimate: (range, n) =>
      `On a device like yours this takes ${range} (an estimate from ${n} recent ${n === 1 ? 'visit' : 'visits'} with similar devices).`,
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
      metered: 'Paused: the connection is metered.',
      hot: 'Paused: the device is hot.',
      background: 'Stopped while the app is in the background.',
      offline: 'Connecting…',
      'no-work': 'Waiting for work: the broker’s mining pool is unavailable.',
    },
    defaultReward: 'access to this content without ads',
  },
  de: {
    title: 'Mit der Rechenleistung Ihres Geräts freischalten',
    body: (o) =>
      `${o.name} bittet darum, den Prozessor Ihres Geräts für Proof-of-Work-Berechnungen (SHA-256) zu ` +
      `nutzen, solange diese Seite geöffnet und sichtbar ist. ${o.gateOnly ? 'Es wird keine Kryptowährung geschürft: Die Arbeit belegt nur die Wartezeit.' : 'Die Ergebnisse können auch zum Schürfen von Kryptowährung für den Anbieter dienen.'} ` +
      `Das beansprucht Prozessor und Akku und kann Ihr Gerät erwärmen.`,
    limits: (o) =>
      `Höchstens ${o.minutes} Minuten am Tag, auf höchstens ${o.threads} Prozessor-Threads (weniger, wenn Ihr Gerät von mehr nichts hat)` +
      `${o.throttle ? `, mit ${Math.round(o.throttle * 100)} % Pausen` : ''}` +
      `${o.charging ? ', nur beim Laden' : ''}. Beim Wechsel des Tabs wird pausiert.`,
    reward: (o) => `Dafür erhalten Sie: ${o.reward}.`,
    around: (d) => `etwa ${d}`,
    estimate: (range, n) =>
      `Auf einem Gerät wie Ihrem dauert das ${range} (geschätzt aus ${n} ${n === 1 ? 'Besuch' : 'Besuchen'} mit ähnlichen Geräten).`,
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
      metered: 'Pausiert: Die Verbindung ist getaktet.',
      hot: 'Pausiert: Das Gerät ist heiß.',
      background: 'Angehalten, solange die App im Hintergrund ist.',
      offline: 'Verbinde…',
      'no-work': 'Warte auf Arbeit: Der Mining-Pool des Brokers ist nicht erreichbar.',
    },
    defaultReward: 'Zugang zu diesem Inhalt ohne Werbung',
  },
};
export const language = () => {
  const wanted = [data.lang, ...(navigator.languages || [navigator.language])].filter(Boolean);
  for (const tag of wanted) {
    const short = String(tag).toLowerCase().split('-')[0];
    if (STRINGS[short]) return short;
  }
  return 'en';
};
export const t = () => STRINGS[language()];
