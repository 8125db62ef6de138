// MinePass SDK loader: the only file a page loads before the visitor agrees.
//
//   <script src="https://BROKER/minepass.js" data-site="SITE_KEY" async></script>
//   <minepass-gate content="ID">…shown once unlocked…</minepass-gate>
//
// Before consent this file fetches nothing, starts no worker and opens no socket. After a yes it loads
// the client (Rust compiled to wasm: the broker session, the workers, the visitor's limits) from the
// same place as this script. docs/SDK.md describes the API, docs/HOST.md the app host bridge. The
// modules here are bundled into one classic script, `pkg/minepass.js`, by `cargo xtask build`.
import { MinePass, watchPage } from './api.js';
import { Gate } from './gate.js';
import { connectHost } from './host.js';

// Loaded twice (two tags, or a tag and a bundle): the first one stays in charge.
if (!(window.MinePass && window.MinePass.version)) {
  window.MinePass = MinePass;
  watchPage();
  connectHost();
  if (!customElements.get('minepass-gate')) customElements.define('minepass-gate', Gate);
}
