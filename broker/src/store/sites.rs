//! Sites (a publisher's key, secret and limits) and their content items.

use anyhow::{Context, Result};

use super::{
    CONSENT_MAX_HOURS, Content, Ledger, NewSite, Site, StoreError, hash_secret, is_valid_content_key,
    is_valid_label, now_ms, on_backend, postgres, random_token, sqlite,
};

fn secret_purpose(site_key: &str) -> String {
    format!("site-secret/{site_key}")
}

impl Ledger {
    /// Creates a site with a fresh key and secret.
    pub async fn add_site(&self, name: &str) -> Result<NewSite, StoreError> {
        self.add_site_with_key(&random_token("site_", 12), name).await
    }

    /// Creates a site with a chosen public key and a fresh secret.
    pub async fn add_site_with_key(&self, key: &str, name: &str) -> Result<NewSite, StoreError> {
        self.add_site_if_absent(key, name).await?.ok_or(StoreError::Conflict("site_exists"))
    }

    /// Creates a site with a chosen public key (the demo site's is fixed) unless one has it: brokers
    /// starting together on a new ledger make it once between them.
    pub async fn add_site_if_absent(&self, key: &str, name: &str) -> Result<Option<NewSite>, StoreError> {
        if !is_valid_label(name) {
            return Err(StoreError::Invalid("bad_name"));
        }
        let site = NewSite { key: key.to_owned(), secret: random_token("secret_", 32) };
        let sealed = self.vault.seal(&secret_purpose(&site.key), site.secret.as_bytes());
        let inserted =
            on_backend!(self, sites::insert(key, name, &hash_secret(&site.secret), &sealed, now_ms()))?;
        Ok(inserted.then_some(site))
    }

    /// Replaces a site's secret (the old one stops working for the verify and credits APIs and for
    /// user proofs at once); returns the new one, shown once.
    pub async fn rotate_site_secret(&self, key: &str) -> Result<NewSite, StoreError> {
        let site = NewSite { key: key.to_owned(), secret: random_token("secret_", 32) };
        let sealed = self.vault.seal(&secret_purpose(&site.key), site.secret.as_bytes());
        if !on_backend!(self, sites::set_secret(key, &hash_secret(&site.secret), &sealed))? {
            return Err(StoreError::NotFound("site"));
        }
        Ok(site)
    }

    /// A site's secret (the key of its user proofs), if the ledger keeps it.
    pub fn site_secret(&self, site: &Site) -> Result<Option<String>> {
        let Some(sealed) = &site.sealed_secret else { return Ok(None) };
        let secret = self.vault.open(&secret_purpose(&site.key), sealed)?;
        Ok(Some(String::from_utf8(secret).context("corrupt site secret")?))
    }

    /// Sets the longest consent lifetime a site accepts (1 h to 1 year).
    pub async fn set_consent_max_hours(&self, key: &str, hours: u32) -> Result<(), StoreError> {
        if !CONSENT_MAX_HOURS.contains(&hours) {
            return Err(StoreError::Invalid("bad_consent_max_hours"));
        }
        if !on_backend!(self, sites::set_consent_max_hours(key, i64::from(hours)))? {
            return Err(StoreError::NotFound("site"));
        }
        Ok(())
    }

    pub async fn set_site_enabled(&self, key: &str, enabled: bool) -> Result<(), StoreError> {
        if !on_backend!(self, sites::set_enabled(key, enabled))? {
            return Err(StoreError::NotFound("site"));
        }
        Ok(())
    }

    /// Adds (or updates the quota and title of) a content item of a site.
    pub async fn put_content(
        &self,
        site_key: &str,
        content_key: &str,
        title: &str,
        required: u128,
    ) -> Result<(), StoreError> {
        if !is_valid_content_key(content_key) {
            return Err(StoreError::Invalid("bad_content_id"));
        }
        if !is_valid_label(title) {
            return Err(StoreError::Invalid("bad_title"));
        }
        if required == 0 {
            return Err(StoreError::Invalid("bad_required_work"));
        }
        let site = self.site_by_key(site_key).await?.ok_or(StoreError::NotFound("site"))?;
        Ok(on_backend!(self, sites::put_content(site.id, content_key, title, required, now_ms()))?)
    }

    /// Gives a site to a partner (see `assign_site`).
    pub(crate) async fn set_site_partner(&self, key: &str, partner_id: i64) -> Result<(), StoreError> {
        if !on_backend!(self, sites::set_partner(key, partner_id))? {
            return Err(StoreError::NotFound("site"));
        }
        Ok(())
    }

    pub async fn site_by_key(&self, key: &str) -> Result<Option<Site>> {
        on_backend!(self, sites::by_key(key))
    }

    /// The site whose secret this is, if any (secrets are compared by their SHA-256).
    pub async fn site_by_secret(&self, secret: &str) -> Result<Option<Site>> {
        on_backend!(self, sites::by_secret_hash(&hash_secret(secret)))
    }

    /// All sites, oldest first.
    pub async fn sites(&self) -> Result<Vec<Site>> {
        on_backend!(self, sites::all())
    }

    pub async fn content(&self, site_id: i64) -> Result<Vec<Content>> {
        on_backend!(self, sites::content(site_id))
    }
}
