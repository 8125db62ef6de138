// Sealed content: the gated HTML is ciphertext until the unlock brings its keys (AES-256-GCM, bound to
// site, item and version; docs/SDK.md).
import { base, options } from './context.js';

// Keys stay in this closure: page listeners get the unlock without them.
export const sealedKeys = new Map();
export function unlockDetail(detail) {
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
export async function openSealed(gate, content, keys) {
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
