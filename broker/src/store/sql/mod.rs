//! The store's SQL, written once and compiled per backend: `Db` is the backend's sqlx database and
//! `PG` says whether it is PostgreSQL, for the few places the dialects differ. Placeholders are `$N`
//! (sqlx's SQLite driver takes them too); values are i64, bool, text, bytes and [`WorkColumn`].
//!
//! [`WorkColumn`]: crate::store::column::WorkColumn

pub(crate) mod consent;
pub(crate) mod keys;
pub(crate) mod rates;
pub(crate) mod rewards;
pub(crate) mod seals;
pub(crate) mod settings;
pub(crate) mod shares;
pub(crate) mod sites;

pub(crate) use super::{Db, PG};

use sqlx::Transaction;

/// This backend's connections.
pub(crate) type Conns = crate::store::Connections<Db>;

/// A write transaction that holds the database's write lock from its first statement, so what it
/// reads stays true until it commits: SQLite's `BEGIN IMMEDIATE` (a deferred transaction that read
/// first would fail with "busy" on its first write instead of waiting). On PostgreSQL the
/// statements lock what they depend on ([`LOCK_BALANCE`], the books' advisory lock).
pub(crate) async fn begin_write(db: &Conns) -> sqlx::Result<Transaction<'static, Db>> {
    if PG { db.write.begin().await } else { db.write.begin_with("BEGIN IMMEDIATE").await }
}

/// Appended to the `SELECT` of a user's balance (`w`) that a spend will change: a row lock on
/// PostgreSQL (`NO KEY UPDATE`, and of `w` only, so that it does not block the key-share locks a
/// committer's foreign-key checks take on the user's row); on SQLite the write transaction already
/// excludes other writers.
pub(crate) const LOCK_BALANCE: &str = if PG { " FOR NO KEY UPDATE OF w" } else { "" };
