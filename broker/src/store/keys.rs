//! Unlock-token signing keys, stored sealed under the KEK, and single-use token records.

use anyhow::Result;

use super::{Ledger, now_ms, on_backend, postgres, sqlite};

fn seed_purpose(kid: &str) -> String {
    format!("signing-key/{kid}")
}

impl Ledger {
    /// Signing keys as (kid, seed, created_at, retired_at), oldest first, opened with the KEK.
    pub async fn signing_keys(&self) -> Result<Vec<(String, [u8; 32], i64, Option<i64>)>> {
        let rows = on_backend!(self, keys::sealed())?;
        rows.into_iter()
            .map(|(kid, sealed, created, retired)| {
                let seed = self.vault.open_key(&seed_purpose(&kid), &sealed)?;
                Ok((kid, seed, created, retired))
            })
            .collect()
    }

    /// Seals the plaintext seeds of a ledger from before keys were sealed, erases the plaintext
    /// (overwritten in the file: `secure_delete`, then the WAL is truncated) and retires those keys,
    /// since a copy may survive in old backups. Returns how many there were.
    pub async fn seal_legacy_signing_keys(&self) -> Result<u64> {
        let rows = on_backend!(self, keys::legacy())?;
        if rows.is_empty() {
            return Ok(0);
        }
        let sealed: Vec<(String, Vec<u8>)> =
            rows.iter().map(|(kid, seed)| (kid.clone(), self.vault.seal(&seed_purpose(kid), seed))).collect();
        on_backend!(self, keys::seal_legacy(&sealed, now_ms()))?;
        Ok(rows.len() as u64)
    }

    /// Makes `kid` the active signing key and retires the previous one (it stays published until
    /// the tokens it signed have expired).
    pub async fn rotate_signing_key(&self, kid: &str, seed: &[u8; 32]) -> Result<()> {
        let sealed = self.vault.seal(&seed_purpose(kid), seed);
        on_backend!(self, keys::rotate(kid, &sealed, now_ms()))
    }

    /// Makes `kid` the active signing key unless one is active (first start: brokers starting
    /// together on a new ledger make one between them); true if it did.
    pub async fn add_first_signing_key(&self, kid: &str, seed: &[u8; 32]) -> Result<bool> {
        let sealed = self.vault.seal(&seed_purpose(kid), seed);
        on_backend!(self, keys::insert_if_none_active(kid, &sealed, now_ms()))
    }

    /// Records that a token was verified; false if it already had been (single use, decided by the
    /// ledger's unique key, so also across brokers).
    pub async fn consume_token(&self, jti: &str, site_id: i64) -> Result<bool> {
        on_backend!(self, keys::consume_token(jti, site_id, now_ms()))
    }
}
