//! Broker-wide settings that must survive a restart, and the operator's admin tokens.

use anyhow::Result;

use super::{Ledger, hash_secret, now_ms, on_backend, postgres, random_token, sqlite};

impl Ledger {
    /// The setting `name`, created with `make()` on first use (the first writer wins a race, also
    /// between brokers sharing the ledger).
    pub async fn setting_or_insert(&self, name: &str, make: impl FnOnce() -> String) -> Result<String> {
        on_backend!(self, settings::insert_if_absent(name, &make()))?;
        Ok(self.setting(name).await?.unwrap_or_default())
    }

    /// A broker-wide setting, if set.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        on_backend!(self, settings::get(name))
    }

    pub async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        on_backend!(self, settings::set(name, value))
    }

    /// Creates an admin API token; returns it (only its hash is stored).
    pub async fn add_admin_token(&self, label: &str) -> Result<String> {
        let token = random_token("admin_", 32);
        on_backend!(self, settings::add_admin_token(&hash_secret(&token), label, now_ms()))?;
        Ok(token)
    }

    /// Whether `token` is a current (not revoked) admin token.
    pub async fn is_admin_token(&self, token: &str) -> Result<bool> {
        on_backend!(self, settings::is_admin_token(&hash_secret(token)))
    }

    /// Revokes every admin token; returns how many were current.
    pub async fn revoke_admin_tokens(&self) -> Result<u64> {
        on_backend!(self, settings::revoke_admin_tokens(now_ms()))
    }

    /// How many admin tokens were ever created (revoked ones included).
    pub async fn admin_tokens_created(&self) -> Result<i64> {
        on_backend!(self, settings::admin_tokens_created())
    }
}
