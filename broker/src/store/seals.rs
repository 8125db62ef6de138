//! Sealed content (store layer): a publisher's gated HTML encrypted under a per-item key, so the
//! page, a scraper or a disabled script holds only ciphertext until the broker releases the key in
//! the `unlock` of a session whose credited work met the quota.
//!
//! Format (what WebCrypto decrypts, docs/SDK.md): AES-256-GCM with a random 96-bit nonce and the
//! 128-bit tag appended to the ciphertext; the associated data is
//! `minepass-sealed-v1 \n site \n content \n version`, so a ciphertext opens only in the gate of its
//! own item and version. The sealed string is `mp1.<version>.<nonce>.<ciphertext>` (base64url).
//!
//! Each seal is a new version with a new key, sealed under the KEK; earlier versions stay live (a
//! page that embeds their ciphertext keeps opening) until a seal retires them.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use minepass::protocol::ContentKey;
use rand::RngCore;

use super::{Ledger, StoreError, now_ms, on_backend, postgres, sqlite};

/// Largest gated HTML a seal takes.
pub const MAX_SEALED_BYTES: usize = 1 << 20;

/// One sealed version of a content item, as a page embeds or fetches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub version: u32,
    /// `mp1.<version>.<nonce>.<ciphertext>`, base64url.
    pub text: String,
}

fn associated_data(site: &str, content: &str, version: u32) -> String {
    format!("minepass-sealed-v1\n{site}\n{content}\n{version}")
}

fn key_purpose(content_id: i64, version: u32) -> String {
    format!("content-key/{content_id}/{version}")
}

fn sealed_text(version: u32, nonce: &[u8], ciphertext: &[u8]) -> String {
    format!("mp1.{version}.{}.{}", B64.encode(nonce), B64.encode(ciphertext))
}

/// Encrypts `html` for one item version: (key, nonce, ciphertext ‖ tag).
pub fn encrypt(site: &str, content: &str, version: u32, html: &[u8]) -> ([u8; 32], [u8; 12], Vec<u8>) {
    let mut key = [0u8; 32];
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut key);
    rand::thread_rng().fill_bytes(&mut nonce);
    let ciphertext = Aes256Gcm::new(&key.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload { msg: html, aad: associated_data(site, content, version).as_bytes() },
        )
        .expect("AES-GCM encryption of at most 1 MiB cannot fail");
    (key, nonce, ciphertext)
}

/// Opens a sealed string with the item key, as the SDK does (tests, and a check after sealing).
pub fn decrypt(site: &str, content: &str, text: &str, key: &[u8; 32]) -> Result<Vec<u8>> {
    let mut parts = text.split('.');
    let (Some("mp1"), Some(version), Some(nonce), Some(ciphertext), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("not a sealed string");
    };
    let version: u32 = version.parse().context("bad version")?;
    let nonce = B64.decode(nonce).context("bad nonce")?;
    anyhow::ensure!(nonce.len() == 12, "bad nonce");
    let ciphertext = B64.decode(ciphertext).context("bad ciphertext")?;
    Aes256Gcm::new(key.into())
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload { msg: &ciphertext, aad: associated_data(site, content, version).as_bytes() },
        )
        .map_err(|_| anyhow::anyhow!("the key does not open this sealed content"))
}

impl Ledger {
    /// Seals `html` as a new version of a site's content item (which must exist); with
    /// `retire_previous`, earlier versions stop opening at once (a leaked key, say).
    pub async fn seal_content(
        &self,
        site_key: &str,
        content_key: &str,
        html: &str,
        retire_previous: bool,
    ) -> Result<Sealed, StoreError> {
        if html.is_empty() || html.len() > MAX_SEALED_BYTES {
            return Err(StoreError::Invalid("bad_html"));
        }
        let content_id = on_backend!(self, sites::content_id(site_key, content_key))?
            .ok_or(StoreError::NotFound("content"))?;
        // The version is part of the associated data, so it is chosen before encrypting; two seals at
        // once collide on the primary key and the loser takes the next number.
        for _ in 0..8 {
            let next = on_backend!(self, seals::next_version(content_id))?;
            let version = u32::try_from(next).map_err(|_| StoreError::Conflict("too_many_versions"))?;
            let (key, nonce, ciphertext) = encrypt(site_key, content_key, version, html.as_bytes());
            let sealed_key = self.vault.seal(&key_purpose(content_id, version), &key);
            let row = (&sealed_key[..], &nonce[..], &ciphertext[..]);
            if on_backend!(self, seals::insert(content_id, next, row, retire_previous, now_ms()))? {
                return Ok(Sealed { version, text: sealed_text(version, &nonce, &ciphertext) });
            }
        }
        Err(StoreError::Conflict("concurrent_seals"))
    }

    /// The newest live sealed version of a content item, if it is sealed (public: ciphertext only).
    pub async fn current_seal(&self, site_key: &str, content_key: &str) -> Result<Option<Sealed>> {
        let row = on_backend!(self, seals::current(site_key, content_key))?;
        Ok(row.map(|(version, nonce, ciphertext)| {
            let version = version as u32;
            Sealed { version, text: sealed_text(version, &nonce, &ciphertext) }
        }))
    }

    /// The keys of every live version of a content item (empty if it is not sealed). Only the
    /// session layer calls this, for an `unlock` after the quota's credit has committed.
    pub async fn content_keys(&self, content_id: i64) -> Result<Vec<ContentKey>> {
        let rows = on_backend!(self, seals::live_keys(content_id))?;
        rows.into_iter()
            .map(|(version, sealed)| {
                let version = version as u32;
                let key = self.vault.open_key(&key_purpose(content_id, version), &sealed)?;
                Ok(ContentKey { version, key: B64.encode(key) })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::vault::Vault;

    #[test]
    fn a_ciphertext_opens_with_its_key_in_its_own_items_gate_only() {
        let (key, nonce, ciphertext) = encrypt("site_a", "article", 3, b"<p>gated</p>");
        let text = sealed_text(3, &nonce, &ciphertext);
        assert_eq!(decrypt("site_a", "article", &text, &key).unwrap(), b"<p>gated</p>");
        assert!(decrypt("site_a", "other", &text, &key).is_err(), "spliced into another gate");
        assert!(decrypt("site_b", "article", &text, &key).is_err());
        assert!(decrypt("site_a", "article", &text.replacen("mp1.3.", "mp1.4.", 1), &key).is_err());
        assert!(decrypt("site_a", "article", &text, &[0; 32]).is_err());
        assert!(!String::from_utf8_lossy(&ciphertext).contains("gated"));
    }

    #[tokio::test]
    async fn reseal_adds_a_version_and_keeps_or_retires_the_old_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite"), Arc::new(Vault::ephemeral())).await.unwrap();
        let site = ledger.add_site("S").await.unwrap();
        ledger.put_content(&site.key, "article", "A", 1).await.unwrap();
        let content_id =
            ledger.content(ledger.site_by_key(&site.key).await.unwrap().unwrap().id).await.unwrap()[0].id;
        assert!(ledger.content_keys(content_id).await.unwrap().is_empty(), "not sealed yet");
        assert!(ledger.current_seal(&site.key, "article").await.unwrap().is_none());
        assert!(ledger.seal_content(&site.key, "nope", "<p>x</p>", false).await.is_err());
        assert!(ledger.seal_content(&site.key, "article", "", false).await.is_err());

        let first = ledger.seal_content(&site.key, "article", "<p>one</p>", false).await.unwrap();
        let second = ledger.seal_content(&site.key, "article", "<p>two</p>", false).await.unwrap();
        assert_eq!((first.version, second.version), (1, 2));
        assert_eq!(ledger.current_seal(&site.key, "article").await.unwrap(), Some(second.clone()));
        let keys = ledger.content_keys(content_id).await.unwrap();
        assert_eq!(keys.iter().map(|k| k.version).collect::<Vec<_>>(), [1, 2]);
        let key_of = |keys: &[ContentKey], v: u32| -> [u8; 32] {
            B64.decode(&keys.iter().find(|k| k.version == v).unwrap().key).unwrap().try_into().unwrap()
        };
        assert_eq!(decrypt(&site.key, "article", &first.text, &key_of(&keys, 1)).unwrap(), b"<p>one</p>");
        assert_eq!(decrypt(&site.key, "article", &second.text, &key_of(&keys, 2)).unwrap(), b"<p>two</p>");

        let third = ledger.seal_content(&site.key, "article", "<p>three</p>", true).await.unwrap();
        let keys = ledger.content_keys(content_id).await.unwrap();
        assert_eq!(keys.iter().map(|k| k.version).collect::<Vec<_>>(), [third.version]);
    }
}
