// The SDK's events: `MinePass.on(type, fn)` listeners, and `*` listeners that see every event (the
// gate elements and the app host bridge are such listeners).

const listeners = new Map();

export function on(type, fn) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(fn);
}

export function off(type, fn) {
  listeners.get(type)?.delete(fn);
}

export function emit(type, detail = {}) {
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
