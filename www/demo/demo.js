// The demo publisher's own script: shows the unlock token (a real site sends it to its server). The
// event fires once the sealed second half is decrypted and in the page.
document.getElementById('gate').addEventListener('minepass-unlock', (event) => {
  const token = event.detail.token;
  const slot = document.getElementById('token');
  if (slot) slot.textContent = `${token.slice(0, 24)}…${token.slice(-12)}`;
});

// The demo is an installable app (manifest.webmanifest, sw.js): its shell and the SDK's loader work
// offline. Registering fetches only those, never the computing code (that waits for consent).
navigator.serviceWorker?.register('sw.js', { scope: './' }).catch((error) => console.warn('no service worker:', error));
