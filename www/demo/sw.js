// The demo's service worker: makes the demo an installable app whose shell opens offline.
//
// Precached: the app shell and the SDK's loader (`/minepass.js`), which every visit loads anyway.
// Never precached: the computing code (the client and kernel wasm, the worker), which the SDK fetches
// only after the visitor says yes; it is not cached at all, since computing needs the broker's
// connection anyway. Updates: a new VERSION installs beside the old one, takes over at once, and
// deletes the old caches; between versions the shell is refreshed from the network on every online
// visit (network first for pages, stale-while-revalidate for the shell's files).
const VERSION = '1';
const CACHE = `minepass-demo-${VERSION}`;
const SHELL = [
  '/demo/',
  '/demo/demo.css',
  '/demo/demo.js',
  '/demo/icon.svg',
  '/demo/icon-192.png',
  '/demo/icon-512.png',
  '/demo/manifest.webmanifest',
  '/minepass.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith('minepass-demo-') && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== location.origin) return;
  if (request.mode === 'navigate') {
    // The page from the network (fresh, with its headers: strict.html's CSP), else the shell.
    event.respondWith(fetch(request).catch(() => caches.match('/demo/', { cacheName: CACHE })));
    return;
  }
  if (!SHELL.includes(url.pathname)) return; // the API, the socket, the computing code: the network's
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const cached = await cache.match(request);
      const fresh = fetch(request).then((response) => {
        if (response.ok) cache.put(request, response.clone());
        return response;
      });
      if (!cached) return fresh;
      event.waitUntil(fresh.catch(() => {}));
      return cached;
    }),
  );
});
