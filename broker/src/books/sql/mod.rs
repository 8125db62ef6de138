//! The books' SQL, written once and compiled per backend (see `store/sql/mod.rs`).
//!
//! Every transaction that appends to the books starts with [`begin_books`], which serialises them:
//! the chain head it reads stays the head until it commits, and what it checks (a period not yet
//! settled, an entry not yet reversed) stays true. SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
//! transaction-scoped advisory lock, so brokers and CLIs racing on one ledger queue on it.

pub(crate) mod audit;
pub(crate) mod entries;
pub(crate) mod partners;
pub(crate) mod payouts;
pub(crate) mod periods;
pub(crate) mod reports;
pub(crate) mod retention;

pub(crate) use super::{Db, PG};

use sqlx::Transaction;

pub(crate) type Conns = crate::store::Connections<Db>;

/// The advisory lock key of the books ("MPBOOKS" in ASCII).
const BOOKS_LOCK: i64 = 0x004d_5042_4f4f_4b53;

/// A write transaction holding the books' lock.
pub(crate) async fn begin_books(db: &Conns) -> sqlx::Result<Transaction<'static, Db>> {
    if PG {
        let mut tx = db.write.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(BOOKS_LOCK).execute(&mut *tx).await?;
        Ok(tx)
    } else {
        db.write.begin_with("BEGIN IMMEDIATE").await
    }
}

/// Whether period `p` has a settlement that was not reversed (an SQL expression).
pub(crate) const SETTLED: &str =
    "EXISTS (SELECT 1 FROM entries e WHERE e.period_id = p.id AND e.kind = 'settlement'
    AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.reverses = e.id))";
