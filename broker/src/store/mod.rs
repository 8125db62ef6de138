//! The store: the ledger database and everything written to it except the books. SQLite (the
//! embedded default: one file, zero configuration) or PostgreSQL (one ledger shared by a fleet of
//! brokers), chosen by a [`Location`]; the statements are written once in `sql/` and compiled for
//! each backend (`sqlite/`, `postgres/`), with the few dialect differences behind `PG`.
//!
//! Durability: SQLite runs in WAL mode with `synchronous = FULL`; PostgreSQL with its defaults
//! (`fsync`, `synchronous_commit = on`). Shares are written by one committer task per broker in
//! batches (group commit): every share of a batch is acknowledged only after the batch's
//! transaction has committed, so an acknowledged credit survives a crash, and one fsync covers many
//! shares.
//!
//! Races between writers (two brokers, a broker and the CLI) are decided by the database: unique
//! keys, `ON CONFLICT`, and write transactions that take their locks first (`BEGIN IMMEDIATE` on
//! SQLite, row locks `FOR UPDATE` or the books' advisory lock on PostgreSQL).

pub mod column;
pub mod committer;
mod consent;
mod error;
mod keys;
mod postgres;
mod rates;
pub mod rewards;
pub mod seals;
mod settings;
mod shares;
mod sites;
mod sqlite;
mod types;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Database, Pool};

pub use committer::Committer;
pub use consent::{CONSENT_ANSWERS_PER_VISITOR, ConsentCount};
pub use error::StoreError;
pub(crate) use error::is_unique_violation;
pub use types::*;

use crate::vault::{KeySource, Loaded, Vault};

/// Where the ledger lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (created on first open).
    Sqlite(PathBuf),
    /// A PostgreSQL database, `postgres://user@host:port/database`.
    Postgres(String),
}

impl Location {
    /// `postgres://…` or `postgresql://…`, `sqlite://<path>`, or a plain path (SQLite).
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_owned())
        } else {
            Location::Sqlite(PathBuf::from(text.strip_prefix("sqlite://").unwrap_or(text)))
        }
    }

    /// What to print: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let credentials = &url[scheme + 3..at];
                    let user = credentials.split(':').next().unwrap_or_default();
                    format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
                }
                _ => url.clone(),
            },
        }
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::Sqlite(path.to_owned())
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::Sqlite(path)
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Location {
        Location::Sqlite(path.clone())
    }
}

/// A backend's connections: readers, and the writer the share committer and the books write
/// through. On SQLite the writer is one connection, so commits never wait for a pooled connection
/// behind a burst of reads (SQLite has one writer at a time anyway); on PostgreSQL both are the
/// same pool.
#[derive(Debug)]
pub(crate) struct Connections<DB: Database> {
    pub(crate) read: Pool<DB>,
    pub(crate) write: Pool<DB>,
}

impl<DB: Database> Clone for Connections<DB> {
    fn clone(&self) -> Self {
        Connections { read: self.read.clone(), write: self.write.clone() }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(Connections<sqlx::Sqlite>),
    Postgres(Connections<sqlx::Postgres>),
}

/// A handle to the ledger database (cheap to clone).
#[derive(Clone)]
pub struct Ledger {
    pub(crate) db: Backend,
    /// The key-encryption key: what the ledger stores secret (signing seeds, content keys, site
    /// secrets) it stores sealed under this.
    pub(crate) vault: Arc<Vault>,
}

/// Runs `module::function(connections, args…)` of the calling module's `sqlite`/`postgres`
/// instantiation for this ledger's backend, and awaits it.
macro_rules! on_backend {
    ($ledger:expr, $($path:ident)::+ ($($arg:expr),* $(,)?)) => {
        match &$ledger.db {
            $crate::store::Backend::Sqlite(db) => sqlite::sql::$($path)::+(db, $($arg),*).await,
            $crate::store::Backend::Postgres(db) => postgres::sql::$($path)::+(db, $($arg),*).await,
        }
    };
}
pub(crate) use on_backend;

impl Ledger {
    /// Opens the ledger at `location` with the key-encryption key from `source` (generating the
    /// default key file for a new ledger); says whether a key was generated.
    pub async fn open_with_key(
        location: impl Into<Location>,
        source: &KeySource,
    ) -> Result<(Ledger, Loaded)> {
        let db = connect(&location.into()).await?;
        let check = vault_check(&db).await?;
        let (vault, loaded) = Vault::load(source, check.is_some())?;
        let ledger = Ledger::bind(db, Arc::new(vault), check).await?;
        Ok((ledger, loaded))
    }

    /// Opens (creating if needed) the ledger at `location`, applies pending migrations, and binds
    /// `vault`: a ledger refuses any key but the one it was first opened with.
    pub async fn open(location: impl Into<Location>, vault: Arc<Vault>) -> Result<Ledger> {
        let db = connect(&location.into()).await?;
        let check = vault_check(&db).await?;
        Ledger::bind(db, vault, check).await
    }

    async fn bind(db: Backend, vault: Arc<Vault>, check: Option<Vec<u8>>) -> Result<Ledger> {
        let ledger = Ledger { db, vault };
        match check {
            Some(check) => ledger.vault.verify_check(&check)?,
            None => {
                let value = hex::encode(ledger.vault.check_value());
                on_backend!(ledger, settings::insert_if_absent(VAULT_CHECK_SETTING, &value))?;
                // Another process may have bound the ledger first: its key must then be ours.
                let check = vault_check(&ledger.db).await?.context("kek_check vanished")?;
                ledger.vault.verify_check(&check)?;
            }
        }
        on_backend!(ledger, shares::backfill_user_work())?;
        ledger.prepare_share_partitions().await?;
        // Ledgers from before the vault kept the resume-token key in plaintext; it is now derived
        // from the KEK (`Broker::new`), so the old one only has to go.
        on_backend!(ledger, settings::erase("resume_key"))?;
        Ok(ledger)
    }

    /// The key-encryption key this ledger is bound to.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Which backend this ledger is on (`sqlite` or `postgres`).
    pub fn backend_name(&self) -> &'static str {
        match self.db {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// The setting that holds the KEK's check value.
const VAULT_CHECK_SETTING: &str = "kek_check";

async fn vault_check(db: &Backend) -> Result<Option<Vec<u8>>> {
    let check = match db {
        Backend::Sqlite(db) => sqlite::sql::settings::get(db, VAULT_CHECK_SETTING).await?,
        Backend::Postgres(db) => postgres::sql::settings::get(db, VAULT_CHECK_SETTING).await?,
    };
    check.map(|c| hex::decode(c).context("corrupt kek_check setting")).transpose()
}

/// Connections after migrations.
async fn connect(location: &Location) -> Result<Backend> {
    match location {
        Location::Sqlite(path) => {
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
            let read = SqlitePoolOptions::new().max_connections(4).connect_with(options.clone()).await?;
            sqlx::migrate!("./migrations/sqlite").run(&read).await.context("applying ledger migrations")?;
            let write = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
            Ok(Backend::Sqlite(Connections { read, write }))
        }
        Location::Postgres(url) => {
            let options = PgConnectOptions::from_str(url).context("parsing the PostgreSQL URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .with_context(|| format!("connecting to {}", location.display()))?;
            // Brokers starting together each try; the migrator's advisory lock lets one apply.
            sqlx::migrate!("./migrations/postgres").run(&pool).await.context("applying ledger migrations")?;
            Ok(Backend::Postgres(Connections { read: pool.clone(), write: pool }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_print_without_passwords() {
        assert_eq!(Location::parse("data/ledger.sqlite"), Location::Sqlite("data/ledger.sqlite".into()));
        assert_eq!(Location::parse("sqlite:///var/l.sqlite"), Location::Sqlite("/var/l.sqlite".into()));
        let url = "postgres://broker:s3cret@db.internal:5432/ledger";
        assert_eq!(Location::parse(url), Location::Postgres(url.into()));
        assert_eq!(Location::parse(url).display(), "postgres://broker@db.internal:5432/ledger");
        assert_eq!(Location::parse("postgresql://db/ledger").display(), "postgresql://db/ledger");
    }
}
