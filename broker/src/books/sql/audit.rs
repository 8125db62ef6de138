//! What `ledger check` reads: everything in one read-only transaction, so that the check sees one
//! state of the ledger while brokers keep committing (separate reads would find credits "differing"
//! from shares committed in between).

use anyhow::Result;
use futures_util::TryStreamExt;
use sqlx::{Row, Transaction};

use super::{Conns, Db, PG};
use crate::books::EntryRow;
use crate::books::check::{Share, Snapshot};
use crate::store::column::WorkColumn;

/// Reads the snapshot and streams every share (with its pool submission) to `visit`, in id order.
pub(crate) async fn snapshot(db: &Conns, visit: impl FnMut(Share)) -> Result<Snapshot> {
    // SQLite: a deferred transaction's first read fixes its WAL snapshot.
    let isolation = if PG { "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" } else { "BEGIN" };
    let mut tx = db.read.begin_with(isolation).await?;
    let rows =
        sqlx::query("SELECT id, kind, period_id, reverses, memo, created_at, chain FROM entries ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
    let entries = rows
        .iter()
        .map(|row| {
            let entry = EntryRow {
                id: row.get(0),
                kind: row.get(1),
                period_id: row.get(2),
                reverses: row.get(3),
                memo: row.get(4),
                created_at: row.get(5),
            };
            (entry, row.get(6))
        })
        .collect();
    let postings = sqlx::query_as("SELECT entry_id, account, amount FROM postings ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    let balances = sqlx::query_as(
        "SELECT account, CAST(SUM(amount) AS BIGINT) FROM postings GROUP BY account ORDER BY account",
    )
    .fetch_all(&mut *tx)
    .await?;
    let paid_payouts = sqlx::query_as(
        "SELECT o.id, o.partner_id, o.amount_sats, p.account, p.amount FROM payouts o
         LEFT JOIN postings p ON p.entry_id = o.paid_entry AND p.account LIKE 'partner:%'
         WHERE o.paid_entry IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    let share_work = sqlx::query_as("SELECT user_id, work FROM shares").fetch_all(&mut *tx).await?;
    let spends = sqlx::query_as("SELECT user_id, price FROM credit_spends").fetch_all(&mut *tx).await?;
    let totals = sqlx::query_as("SELECT user_id, earned, spent FROM user_work").fetch_all(&mut *tx).await?;
    each_share(&mut tx, visit).await?;
    tx.commit().await?;
    Ok(Snapshot { entries, postings, balances, paid_payouts, share_work, spends, totals })
}

/// Streams every share (with its pool submission) to `visit`, without holding the log in memory.
async fn each_share(tx: &mut Transaction<'_, Db>, mut visit: impl FnMut(Share)) -> Result<()> {
    let mut rows = sqlx::query(
        "SELECT s.id, s.header, s.target, s.work, p.pool_target, p.pool_work FROM shares s
         LEFT JOIN pool_submissions p ON p.share_id = s.id ORDER BY s.id",
    )
    .fetch(&mut **tx);
    while let Some(row) = rows.try_next().await? {
        let pool = row
            .get::<Option<Vec<u8>>, _>(4)
            .map(|target| (target, row.try_get::<WorkColumn, _>(5).ok().map(|w| w.0)));
        visit(Share {
            id: row.get(0),
            header: row.get(1),
            target: row.get(2),
            work: row.try_get::<WorkColumn, _>(3).ok().map(|w| w.0),
            pool,
        });
    }
    Ok(())
}
