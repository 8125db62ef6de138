//! The ledger layer: SQLite through sqlx, with migrations (the same SQL is meant to run on PostgreSQL
//! when a fleet of brokers shares one ledger). Owns sites, content items, users, per-user-per-content
//! progress and the share log.
//!
//! Durability: the database runs in WAL mode with `synchronous = FULL`, and shares are written by one
//! committer task in batches (group commit): every share of a batch is acknowledged only after the
//! batch's transaction has committed, so an acknowledged credit survives a crash, and one fsync covers
//! many shares.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use crate::vault::{KeySource, Loaded, Vault};

/// A handle to the ledger database (cheap to clone).
#[derive(Clone)]
pub struct Ledger {
    /// Readers (and rare administrative writes).
    pub(crate) pool: SqlitePool,
    /// The one connection the share committer writes through, so commits never wait for a pooled
    /// connection behind a burst of reads (SQLite has one writer at a time anyway).
    pub(crate) writer: SqlitePool,
    /// The key-encryption key: what the ledger stores secret (signing seeds, content keys, site
    /// secrets) it stores sealed under this.
    pub(crate) vault: Arc<Vault>,
}

/// A site as the session layer needs it.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub enabled: bool,
    /// The longest consent lifetime a hello may present, in milliseconds.
    pub consent_max_ms: i64,
    /// The site secret sealed under the KEK (the key of user proofs); `None` for a site created
    /// before secrets were kept, until `site rotate-secret`.
    pub sealed_secret: Option<Vec<u8>>,
}

/// The consent maximum a site may set, in hours: an hour to a (leap) year.
pub const CONSENT_MAX_HOURS: std::ops::RangeInclusive<u32> = 1..=24 * 366;

/// The columns [`site_from_row`] reads.
const SITE_COLUMNS: &str = "id, site_key, name, enabled, consent_max_hours, sealed_secret";

/// A content item with its quota.
#[derive(Debug, Clone)]
pub struct Content {
    pub id: i64,
    pub key: String,
    pub title: String,
    pub required: u128,
}

/// Credentials of a newly created site: the secret is shown once and stored only hashed.
#[derive(Debug, Clone)]
pub struct NewSite {
    pub key: String,
    pub secret: String,
}

/// A verified share, ready to be written.
#[derive(Debug, Clone)]
pub struct ShareRecord {
    pub session: String,
    pub job_id: String,
    pub nonce: u32,
    pub site_id: i64,
    /// The publisher's id for the user; the ledger row is created by the first committed share, so
    /// that a hello never writes (a storm of hellos must not queue behind fsyncs).
    pub user: String,
    pub content_id: Option<i64>,
    /// The full 80-byte header, nonce included.
    pub header: [u8; 80],
    /// The target the share was judged against, 32 bytes little-endian.
    pub target: [u8; 32],
    pub work: u128,
    /// Set when the share is forwarded to the upstream pool.
    pub pool: Option<PoolSubmission>,
}

/// What the ledger keeps of a share forwarded upstream (enough to resubmit or audit it).
#[derive(Debug, Clone)]
pub struct PoolSubmission {
    /// The pool's address (no credentials).
    pub pool: String,
    pub upstream_job: String,
    /// Hex, as submitted.
    pub extranonce2: String,
    pub ntime: u32,
    /// The pool's share target, 32 bytes little-endian.
    pub pool_target: [u8; 32],
    /// Expected hashes at the pool's target: what this share is worth to the pool.
    pub pool_work: u128,
}

/// The pool's answer to a forwarded share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAnswer {
    pub share_id: i64,
    /// `accepted`, `rejected` or `unanswered`.
    pub outcome: &'static str,
    pub code: Option<i64>,
    pub reason: Option<String>,
}

/// Pool-forwarded shares and the pool's verdicts, totalled (for status and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolTotals {
    pub submitted: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub unanswered: u64,
    /// Pool work of accepted shares, in expected hashes.
    pub accepted_work: u128,
}

/// What committing one share changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credit {
    /// Credited (as share row `share_id`); progress toward the session's content item if it has one,
    /// and the user's spendable credits after this batch.
    Credited { share_id: i64, progress: Option<ContentProgress>, credits: u128 },
    /// The ledger already had this (job, nonce): nothing credited.
    Duplicate,
}

/// Progress of one user toward one content item after a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentProgress {
    pub content_id: i64,
    pub done: u128,
    pub required: u128,
    /// True exactly once: in the commit that first reached the quota.
    pub newly_unlocked: bool,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub(crate) fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    format!("{prefix}{}", hex::encode(buf))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Content keys appear in markup (`<minepass-gate content="…">`) and in the protocol: 1-64 characters
/// of ASCII letters, digits, `-`, `_` and `.`.
pub fn is_valid_content_key(key: &str) -> bool {
    (1..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Names and titles: 1-200 characters, no control characters.
pub fn is_valid_label(text: &str) -> bool {
    (1..=200).contains(&text.chars().count()) && !text.chars().any(char::is_control)
}

pub(crate) fn parse_work(text: &str) -> Result<u128> {
    text.parse().with_context(|| format!("corrupt work value {text:?} in the ledger"))
}

impl Ledger {
    /// Opens the ledger at `path` with the key-encryption key from `source` (generating the default
    /// key file for a new ledger); says whether a key was generated.
    pub async fn open_with_key(path: &Path, source: &KeySource) -> Result<(Ledger, Loaded)> {
        let (pool, writer) = connect(path).await?;
        let check = vault_check(&pool).await?;
        let (vault, loaded) = Vault::load(source, check.is_some())?;
        let ledger = Ledger::bind(pool, writer, Arc::new(vault), check).await?;
        Ok((ledger, loaded))
    }

    /// Opens (creating if needed) the SQLite ledger at `path`, applies pending migrations, and binds
    /// `vault`: a ledger refuses any key but the one it was first opened with.
    pub async fn open(path: &Path, vault: Arc<Vault>) -> Result<Ledger> {
        let (pool, writer) = connect(path).await?;
        let check = vault_check(&pool).await?;
        Ledger::bind(pool, writer, vault, check).await
    }

    async fn bind(
        pool: SqlitePool,
        writer: SqlitePool,
        vault: Arc<Vault>,
        check: Option<Vec<u8>>,
    ) -> Result<Ledger> {
        match check {
            Some(check) => vault.verify_check(&check)?,
            None => {
                sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
                    .bind(VAULT_CHECK_SETTING)
                    .bind(hex::encode(vault.check_value()))
                    .execute(&pool)
                    .await?;
                // Another process may have bound the ledger first: its key must then be ours.
                let check = vault_check(&pool).await?.context("kek_check vanished")?;
                vault.verify_check(&check)?;
            }
        }
        let ledger = Ledger { pool, writer, vault };
        ledger.backfill_user_work().await?;
        // Ledgers from before the vault kept the resume-token key in plaintext; it is now derived
        // from the KEK (`Broker::new`), so the old one only has to go.
        let erased =
            sqlx::query("DELETE FROM settings WHERE name = 'resume_key'").execute(&ledger.writer).await?;
        if erased.rows_affected() > 0 {
            // Overwritten in place (`secure_delete`); the log's older copy of the page goes too.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&ledger.writer).await?;
        }
        Ok(ledger)
    }

    /// The key-encryption key this ledger is bound to.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }
}

/// The setting that holds the KEK's check value.
const VAULT_CHECK_SETTING: &str = "kek_check";

async fn vault_check(pool: &SqlitePool) -> Result<Option<Vec<u8>>> {
    let check: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
        .bind(VAULT_CHECK_SETTING)
        .fetch_optional(pool)
        .await?;
    check.map(|c| hex::decode(c).context("corrupt kek_check setting")).transpose()
}

/// The readers' pool and the writer's connection, after migrations.
async fn connect(path: &Path) -> Result<(SqlitePool, SqlitePool)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // Erased secrets (a legacy plaintext seed once sealed) are overwritten, not just freed.
        .pragma("secure_delete", "ON")
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options.clone()).await?;
    sqlx::migrate!("./migrations").run(&pool).await.context("applying ledger migrations")?;
    let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    Ok((pool, writer))
}

impl Ledger {
    /// Users from before the rewards migration get their running total from the share log, once.
    async fn backfill_user_work(&self) -> Result<()> {
        let missing: Vec<i64> = sqlx::query_scalar(
            "SELECT u.id FROM users u WHERE NOT EXISTS (SELECT 1 FROM user_work w WHERE w.user_id = u.id)",
        )
        .fetch_all(&self.pool)
        .await?;
        for user_id in missing {
            let works: Vec<String> = sqlx::query_scalar("SELECT work FROM shares WHERE user_id = ?")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
            let mut earned = 0u128;
            for work in &works {
                earned = earned.saturating_add(parse_work(work)?);
            }
            sqlx::query("INSERT OR IGNORE INTO user_work (user_id, earned) VALUES (?, ?)")
                .bind(user_id)
                .bind(earned.to_string())
                .execute(&self.writer)
                .await?;
        }
        Ok(())
    }

    /// Creates a site with a fresh key and secret.
    pub async fn add_site(&self, name: &str) -> Result<NewSite> {
        self.add_site_with_key(&random_token("site_", 12), name).await
    }

    /// Creates a site with a chosen public key (the demo site's is fixed) and a fresh secret.
    pub async fn add_site_with_key(&self, key: &str, name: &str) -> Result<NewSite> {
        if !is_valid_label(name) {
            bail!("a site name is 1-200 printable characters");
        }
        let site = NewSite { key: key.to_owned(), secret: random_token("secret_", 32) };
        sqlx::query(
            "INSERT INTO sites (site_key, name, secret_hash, sealed_secret, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&site.key)
        .bind(name)
        .bind(hash_secret(&site.secret))
        .bind(self.vault.seal(&secret_purpose(&site.key), site.secret.as_bytes()))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(site)
    }

    /// Replaces a site's secret (the old one stops working for the verify and credits APIs and for
    /// user proofs at once); returns the new one, shown once.
    pub async fn rotate_site_secret(&self, key: &str) -> Result<NewSite> {
        let site = NewSite { key: key.to_owned(), secret: random_token("secret_", 32) };
        let done = sqlx::query("UPDATE sites SET secret_hash = ?, sealed_secret = ? WHERE site_key = ?")
            .bind(hash_secret(&site.secret))
            .bind(self.vault.seal(&secret_purpose(&site.key), site.secret.as_bytes()))
            .bind(key)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            bail!("no site with key {key}");
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
    pub async fn set_consent_max_hours(&self, key: &str, hours: u32) -> Result<()> {
        if !CONSENT_MAX_HOURS.contains(&hours) {
            bail!("the consent maximum is {}-{} hours", CONSENT_MAX_HOURS.start(), CONSENT_MAX_HOURS.end());
        }
        self.set_site_number(key, "consent_max_hours", i64::from(hours)).await
    }

    /// Sets one integer column of a site (`column` is one of ours, never input).
    async fn set_site_number(&self, key: &str, column: &'static str, value: i64) -> Result<()> {
        let done = sqlx::query(&format!("UPDATE sites SET {column} = ? WHERE site_key = ?"))
            .bind(value)
            .bind(key)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            bail!("no site with key {key}");
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
    ) -> Result<()> {
        let Some(site) = self.site_by_key(site_key).await? else { bail!("no site with key {site_key}") };
        if required == 0 {
            bail!("required work must be positive");
        }
        if !is_valid_content_key(content_key) || !is_valid_label(title) {
            bail!("a content id is 1-64 of [A-Za-z0-9._-] and a title 1-200 printable characters");
        }
        sqlx::query(
            "INSERT INTO content (site_id, content_key, title, required_work, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (site_id, content_key) DO UPDATE SET title = excluded.title, required_work = excluded.required_work",
        )
        .bind(site.id)
        .bind(content_key)
        .bind(title)
        .bind(required.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The setting `name`, created with `make()` on first use (the first writer wins a race).
    pub async fn setting_or_insert(&self, name: &str, make: impl FnOnce() -> String) -> Result<String> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }

    /// A broker-wide setting, if set.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Creates an admin API token; returns it (only its hash is stored).
    pub async fn add_admin_token(&self, label: &str) -> Result<String> {
        let token = random_token("admin_", 32);
        sqlx::query("INSERT INTO admin_tokens (token_hash, label, created_at) VALUES (?, ?, ?)")
            .bind(hash_secret(&token))
            .bind(label)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(token)
    }

    /// Whether `token` is a current (not revoked) admin token.
    pub async fn is_admin_token(&self, token: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM admin_tokens WHERE token_hash = ? AND revoked_at IS NULL")
            .bind(hash_secret(token))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Revokes every admin token; returns how many were current.
    pub async fn revoke_admin_tokens(&self) -> Result<u64> {
        let done = sqlx::query("UPDATE admin_tokens SET revoked_at = ? WHERE revoked_at IS NULL")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// How many admin tokens were ever created (revoked ones included).
    pub async fn admin_tokens_created(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens").fetch_one(&self.pool).await?)
    }

    pub async fn site_by_key(&self, key: &str) -> Result<Option<Site>> {
        let row = sqlx::query(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE site_key = ?"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(site_from_row))
    }

    /// All sites, oldest first.
    pub async fn sites(&self) -> Result<Vec<Site>> {
        let rows = sqlx::query(&format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(site_from_row).collect())
    }

    pub async fn set_site_enabled(&self, key: &str, enabled: bool) -> Result<()> {
        self.set_site_number(key, "enabled", i64::from(enabled)).await
    }

    pub async fn content(&self, site_id: i64) -> Result<Vec<Content>> {
        let rows = sqlx::query(
            "SELECT id, content_key, title, required_work FROM content WHERE site_id = ? ORDER BY id",
        )
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Content { id: r.get(0), key: r.get(1), title: r.get(2), required: parse_work(r.get(3))? })
            })
            .collect()
    }

    /// The ledger id of a site's user, created on first sight.
    pub async fn user_id(&self, site_id: i64, external_id: &str) -> Result<i64> {
        let mut tx = self.writer.begin().await?;
        let id = upsert_user(&mut tx, site_id, external_id).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Work a site's user has credited toward each content item (items without progress are absent;
    /// a user never seen has none). Read-only.
    pub async fn progress(&self, site_id: i64, external_id: &str) -> Result<Vec<(i64, u128)>> {
        let rows = sqlx::query(
            "SELECT p.content_id, p.work FROM progress p JOIN users u ON u.id = p.user_id
             WHERE u.site_id = ? AND u.external_id = ?",
        )
        .bind(site_id)
        .bind(external_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| Ok((r.get(0), parse_work(r.get(1))?))).collect()
    }

    /// A site's user's spendable credits (earned − spent); 0 for a user never seen. Read-only.
    pub async fn credits(&self, site_id: i64, external_id: &str) -> Result<u128> {
        Ok(self
            .user_credits(site_id, external_id)
            .await?
            .map_or(0, |(_, earned, spent)| earned.saturating_sub(spent)))
    }

    /// (user id, earned, spent) of a site's user, if the user has ever been credited.
    pub async fn user_credits(&self, site_id: i64, external_id: &str) -> Result<Option<(i64, u128, u128)>> {
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT u.id, w.earned, w.spent FROM users u JOIN user_work w ON w.user_id = u.id
             WHERE u.site_id = ? AND u.external_id = ?",
        )
        .bind(site_id)
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(id, earned, spent)| Ok((id, parse_work(&earned)?, parse_work(&spent)?))).transpose()
    }

    /// A user's shares as (job id, nonce, work), in commit order.
    pub async fn user_shares(&self, user_id: i64) -> Result<Vec<(String, u32, u128)>> {
        let rows = sqlx::query("SELECT job_id, nonce, work FROM shares WHERE user_id = ? ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|r| Ok((r.get(0), r.get::<i64, _>(1) as u32, parse_work(r.get(2))?))).collect()
    }

    /// Number of shares and total credited work in the share log (for tests and status).
    pub async fn share_totals(&self) -> Result<(u64, u128)> {
        let rows = sqlx::query("SELECT work FROM shares").fetch_all(&self.pool).await?;
        let mut total = 0u128;
        for row in &rows {
            total += parse_work(row.get(0))?;
        }
        Ok((rows.len() as u64, total))
    }

    /// Forwarded shares and the pool's answers, totalled; `site_id` narrows it to one site.
    pub async fn pool_totals(&self, site_id: Option<i64>) -> Result<PoolTotals> {
        let rows = sqlx::query(
            "SELECT a.outcome, p.pool_work FROM pool_submissions p JOIN shares s ON s.id = p.share_id
             LEFT JOIN pool_answers a ON a.share_id = p.share_id WHERE ?1 IS NULL OR s.site_id = ?1",
        )
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        let mut totals = PoolTotals::default();
        for row in &rows {
            totals.submitted += 1;
            match row.get::<Option<String>, _>(0).as_deref() {
                Some("accepted") => {
                    totals.accepted += 1;
                    totals.accepted_work += parse_work(row.get(1))?;
                }
                Some("rejected") => totals.rejected += 1,
                Some(_) => totals.unanswered += 1,
                None => {}
            }
        }
        Ok(totals)
    }

    /// The site whose secret this is, if any (secrets are compared by their SHA-256).
    pub async fn site_by_secret(&self, secret: &str) -> Result<Option<Site>> {
        let row = sqlx::query(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE secret_hash = ?"))
            .bind(hash_secret(secret))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(site_from_row))
    }

    /// Signing keys as (kid, seed, created_at, retired_at), oldest first, opened with the KEK.
    pub async fn signing_keys(&self) -> Result<Vec<(String, [u8; 32], i64, Option<i64>)>> {
        let rows = sqlx::query(
            "SELECT kid, sealed_seed, created_at, retired_at FROM signing_keys
             WHERE sealed_seed IS NOT NULL ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let kid: String = r.get(0);
                let seed = self.vault.open_key(&seed_purpose(&kid), &r.get::<Vec<u8>, _>(1))?;
                Ok((kid, seed, r.get(2), r.get(3)))
            })
            .collect()
    }

    /// Seals the plaintext seeds of a ledger from before keys were sealed, erases the plaintext
    /// (overwritten in the file: `secure_delete`, then the WAL is truncated) and retires those keys,
    /// since a copy may survive in old backups. Returns how many there were.
    pub async fn seal_legacy_signing_keys(&self) -> Result<u64> {
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT kid, legacy_seed FROM signing_keys WHERE legacy_seed IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tx = self.writer.begin().await?;
        for (kid, seed) in &rows {
            sqlx::query(
                "UPDATE signing_keys SET sealed_seed = ?, legacy_seed = NULL,
                 retired_at = COALESCE(retired_at, ?) WHERE kid = ?",
            )
            .bind(self.vault.seal(&seed_purpose(kid), seed))
            .bind(now_ms())
            .bind(kid)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.writer).await?;
        Ok(rows.len() as u64)
    }

    /// Makes `kid` the active signing key and retires the previous one (it stays published until
    /// the tokens it signed have expired).
    pub async fn rotate_signing_key(&self, kid: &str, seed: &[u8; 32]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL")
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO signing_keys (kid, sealed_seed, created_at) VALUES (?, ?, ?)")
            .bind(kid)
            .bind(self.vault.seal(&seed_purpose(kid), seed))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that a token was verified; false if it already had been (single use).
    pub async fn consume_token(&self, jti: &str, site_id: i64) -> Result<bool> {
        let done = sqlx::query("INSERT OR IGNORE INTO token_uses (jti, site_id, used_at) VALUES (?, ?, ?)")
            .bind(jti)
            .bind(site_id)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes a batch of shares (and pool answers) in one transaction and returns what each share
    /// credited.
    ///
    /// Set-based, so that a batch costs a handful of statements rather than several per share: one
    /// multi-row insert each of the answers, the shares (returning those that were new) and their
    /// pool submissions, then per distinct user an upsert of the user and of their credits, and one
    /// per distinct (user, content) pair.
    pub async fn commit_shares(&self, batch: &[ShareRecord], answers: &[PoolAnswer]) -> Result<Vec<Credit>> {
        let mut tx = self.writer.begin().await?;
        if !answers.is_empty() {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO pool_answers (share_id, outcome, code, reason, answered_at) ",
            );
            let now = now_ms();
            insert.push_values(answers, |mut row, answer| {
                row.push_bind(answer.share_id)
                    .push_bind(answer.outcome)
                    .push_bind(answer.code)
                    .push_bind(&answer.reason)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        if batch.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut user_ids: HashMap<(i64, &str), i64> = HashMap::new();
        for share in batch {
            let key = (share.site_id, share.user.as_str());
            if let Entry::Vacant(slot) = user_ids.entry(key) {
                slot.insert(upsert_user(&mut tx, share.site_id, &share.user).await?);
            }
        }
        let user_of = |share: &ShareRecord| user_ids[&(share.site_id, share.user.as_str())];

        let now = now_ms();
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO shares (session, job_id, nonce, site_id, user_id, content_id, header, target, work, created_at) ",
        );
        insert.push_values(batch, |mut row, share| {
            row.push_bind(&share.session)
                .push_bind(&share.job_id)
                .push_bind(i64::from(share.nonce))
                .push_bind(share.site_id)
                .push_bind(user_of(share))
                .push_bind(share.content_id)
                .push_bind(&share.header[..])
                .push_bind(&share.target[..])
                .push_bind(share.work.to_string())
                .push_bind(now);
        });
        insert.push(" RETURNING job_id, nonce, id");
        let mut new_rows: HashMap<(String, i64), i64> = insert
            .build()
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect();
        // A share is new if its row was inserted; a repeat within the batch is a duplicate.
        let ids: Vec<Option<i64>> = batch
            .iter()
            .map(|share| new_rows.remove(&(share.job_id.clone(), i64::from(share.nonce))))
            .collect();

        let forwarded: Vec<(i64, &PoolSubmission)> =
            batch.iter().zip(&ids).filter_map(|(share, id)| Some(((*id)?, share.pool.as_ref()?))).collect();
        if !forwarded.is_empty() {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO pool_submissions (share_id, pool, upstream_job, extranonce2, ntime, pool_target, pool_work, created_at) ",
            );
            insert.push_values(&forwarded, |mut row, (id, pool)| {
                row.push_bind(*id)
                    .push_bind(&pool.pool)
                    .push_bind(&pool.upstream_job)
                    .push_bind(&pool.extranonce2)
                    .push_bind(i64::from(pool.ntime))
                    .push_bind(&pool.pool_target[..])
                    .push_bind(pool.pool_work.to_string())
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }

        let mut added: HashMap<(i64, i64), u128> = HashMap::new();
        let mut last_of_pair: HashMap<(i64, i64), usize> = HashMap::new();
        let mut earned: HashMap<i64, u128> = HashMap::new();
        for (index, share) in batch.iter().enumerate() {
            if ids[index].is_none() {
                continue;
            }
            *earned.entry(user_of(share)).or_default() += share.work;
            if let Some(content_id) = share.content_id {
                let pair = (user_of(share), content_id);
                *added.entry(pair).or_default() += share.work;
                last_of_pair.insert(pair, index);
            }
        }
        let mut progress: HashMap<(i64, i64), ContentProgress> = HashMap::new();
        for (&(user_id, content_id), &work) in &added {
            progress.insert((user_id, content_id), add_progress(&mut tx, user_id, content_id, work).await?);
        }
        let mut credits: HashMap<i64, u128> = HashMap::new();
        for (&user_id, &work) in &earned {
            credits.insert(user_id, add_earned(&mut tx, user_id, work).await?);
        }
        tx.commit().await?;

        Ok(batch
            .iter()
            .enumerate()
            .map(|(index, share)| {
                let Some(share_id) = ids[index] else {
                    return Credit::Duplicate;
                };
                let progress = share.content_id.map(|content_id| {
                    let pair = (user_of(share), content_id);
                    let mut after = progress[&pair].clone();
                    // Only the pair's last share in the batch reports the unlock.
                    after.newly_unlocked &= last_of_pair[&pair] == index;
                    after
                });
                Credit::Credited { share_id, progress, credits: credits[&user_of(share)] }
            })
            .collect())
    }
}

fn site_from_row(r: &SqliteRow) -> Site {
    Site {
        id: r.get(0),
        key: r.get(1),
        name: r.get(2),
        enabled: r.get::<i64, _>(3) != 0,
        consent_max_ms: r.get::<i64, _>(4).saturating_mul(3_600_000),
        sealed_secret: r.get(5),
    }
}

fn secret_purpose(site_key: &str) -> String {
    format!("site-secret/{site_key}")
}

fn seed_purpose(kid: &str) -> String {
    format!("signing-key/{kid}")
}

async fn upsert_user(tx: &mut Transaction<'_, Sqlite>, site_id: i64, external_id: &str) -> Result<i64> {
    sqlx::query("INSERT OR IGNORE INTO users (site_id, external_id, created_at) VALUES (?, ?, ?)")
        .bind(site_id)
        .bind(external_id)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query("SELECT id FROM users WHERE site_id = ? AND external_id = ?")
        .bind(site_id)
        .bind(external_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.get(0))
}

/// Adds `work` to a user's earned credits; returns the spendable balance (earned − spent).
async fn add_earned(tx: &mut Transaction<'_, Sqlite>, user_id: i64, work: u128) -> Result<u128> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT earned, spent FROM user_work WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
    let (earned, spent) = match row {
        Some((earned, spent)) => (parse_work(&earned)?, parse_work(&spent)?),
        None => (0, 0),
    };
    let earned = earned.saturating_add(work);
    sqlx::query(
        "INSERT INTO user_work (user_id, earned) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET earned = excluded.earned",
    )
    .bind(user_id)
    .bind(earned.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(earned.saturating_sub(spent))
}

/// Adds `work` to a user's progress toward a content item; reports whether this reached the quota.
async fn add_progress(
    tx: &mut Transaction<'_, Sqlite>,
    user_id: i64,
    content_id: i64,
    work: u128,
) -> Result<ContentProgress> {
    let row = sqlx::query(
        "SELECT c.required_work, p.work, p.unlocked_at FROM content c
         LEFT JOIN progress p ON p.content_id = c.id AND p.user_id = ? WHERE c.id = ?",
    )
    .bind(user_id)
    .bind(content_id)
    .fetch_one(&mut **tx)
    .await?;
    let required = parse_work(row.get(0))?;
    let before = match row.get::<Option<String>, _>(1) {
        Some(text) => parse_work(&text)?,
        None => 0,
    };
    let unlocked = row.get::<Option<i64>, _>(2).is_some();
    let done = before.saturating_add(work);
    let newly_unlocked = !unlocked && done >= required;
    sqlx::query(
        "INSERT INTO progress (user_id, content_id, work, unlocked_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (user_id, content_id) DO UPDATE SET work = excluded.work,
             unlocked_at = COALESCE(progress.unlocked_at, excluded.unlocked_at)",
    )
    .bind(user_id)
    .bind(content_id)
    .bind(done.to_string())
    .bind(newly_unlocked.then(now_ms))
    .execute(&mut **tx)
    .await?;
    Ok(ContentProgress { content_id, done, required, newly_unlocked })
}

/// One write waiting for its batch: a share (acknowledged after commit) or a pool's answer.
// Shares are the hot path and answers the rare case: boxing the share would cost an allocation per
// share to save queue memory only on answers.
#[allow(clippy::large_enum_variant)]
enum Pending {
    Share {
        share: ShareRecord,
        ack: oneshot::Sender<Result<Credit, String>>,
    },
    Answer(PoolAnswer),
    /// Answered once everything queued before it has been committed (shutdown's drain).
    Flush(oneshot::Sender<()>),
}

/// Sends shares to the committer task and waits for their durable credit.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Pending>,
}

/// Largest batch one transaction commits.
const MAX_BATCH: usize = 512;
/// Commits slower than this are logged.
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(50);

impl Committer {
    /// Starts the committer task. It ends when every `Committer` clone has been dropped.
    pub fn spawn(ledger: Ledger) -> Committer {
        let (queue, mut incoming) = mpsc::channel::<Pending>(8192);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while incoming.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let mut shares = Vec::new();
                let mut acks = Vec::new();
                let mut answers = Vec::new();
                let mut flushed = Vec::new();
                for pending in batch.drain(..) {
                    match pending {
                        Pending::Share { share, ack } => {
                            shares.push(share);
                            acks.push(ack);
                        }
                        Pending::Answer(answer) => answers.push(answer),
                        Pending::Flush(done) => flushed.push(done),
                    }
                }
                let started = std::time::Instant::now();
                let outcome = ledger.commit_shares(&shares, &answers).await;
                let elapsed = started.elapsed();
                crate::metrics::commit_latency(elapsed, shares.len());
                // A durable ack waits for its commit: slow storage shows up here first.
                if elapsed > SLOW_COMMIT {
                    tracing::warn!("slow commit: {} shares took {elapsed:?}", shares.len());
                }
                match outcome {
                    Ok(credits) => {
                        for (ack, credit) in acks.into_iter().zip(credits) {
                            let _ = ack.send(Ok(credit));
                        }
                    }
                    Err(error) => {
                        tracing::error!(
                            "batch of {} shares and {} pool answers failed to commit: {error:#}",
                            shares.len(),
                            answers.len()
                        );
                        for ack in acks {
                            let _ = ack.send(Err(error.to_string()));
                        }
                    }
                }
                // Everything before the flush marker was in this batch (the queue is in order).
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        Committer { queue }
    }

    /// Returns once every share and answer queued before this call has been committed (or failed).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Pending::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// Queues a share and returns once its batch has committed (or failed: then nothing was credited).
    pub async fn credit(&self, share: ShareRecord) -> Result<Credit> {
        let (ack, done) = oneshot::channel();
        self.queue
            .send(Pending::Share { share, ack })
            .await
            .map_err(|_| anyhow::anyhow!("committer stopped"))?;
        done.await.map_err(|_| anyhow::anyhow!("committer stopped"))?.map_err(anyhow::Error::msg)
    }

    /// Queues a pool's answer; it is written with the next batch.
    pub async fn record_answer(&self, answer: PoolAnswer) {
        if self.queue.send(Pending::Answer(answer)).await.is_err() {
            tracing::error!("committer stopped: a pool answer was not recorded");
        }
    }
}
