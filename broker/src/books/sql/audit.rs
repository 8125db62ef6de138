//! What `ledger check` reads: everything in one read-only transaction, so that the check sees one
//! state of the ledger while brokers keep committing (separate reads would find credits "differing"
//! from shares committed in between).

use anyhow::Result;
use futures_util::TryStreamExt;
use sqlx::{Row, Transaction};

use super::{Conns, Db, PG};
use crate::books::EntryRow;
use crate::books::check::{Share, Snapshot, StoredRollupDay};
use crate::books::retention::{Rollup, decode_ids};
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
    let spends = sqlx::query_as("SELECT user_id, price FROM credit_spends").fetch_all(&mut *tx).await?;
    let totals = sqlx::query_as("SELECT user_id, earned, spent FROM user_work").fetch_all(&mut *tx).await?;
    let rollup_days =
        sqlx::query("SELECT day, shares, work, forwarded, digest, chain FROM share_rollup_days ORDER BY day")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                let day = StoredRollupDay {
                    day: row.get(0),
                    shares: row.get::<i64, _>(1) as u64,
                    work: row.try_get::<WorkColumn, _>(2).ok().map(|w| w.0),
                    forwarded: decode_ids(&row.get::<Vec<u8>, _>(3)),
                    digest: row.get(4),
                };
                (day, row.get(5))
            })
            .collect();
    let rollups = sqlx::query(
        "SELECT day, site_id, user_id, content_id, shares, work FROM share_rollups
         ORDER BY day, site_id, user_id, content_id",
    )
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| {
        let rollup = Rollup {
            site_id: row.get(1),
            user_id: row.get(2),
            content_id: row.get(3),
            shares: row.get::<i64, _>(4) as u64,
            // A malformed value fails the day's chain and totals.
            work: row.try_get::<WorkColumn, _>(5).map(|w| w.0).unwrap_or(0),
        };
        (row.get(0), rollup)
    })
    .collect();
    let unmatched_submissions = sqlx::query_scalar(
        "SELECT p.share_id FROM pool_submissions p
         WHERE NOT EXISTS (SELECT 1 FROM shares s WHERE s.id = p.share_id) ORDER BY p.share_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    each_share(&mut tx, visit).await?;
    tx.commit().await?;
    Ok(Snapshot {
        entries,
        postings,
        balances,
        paid_payouts,
        spends,
        totals,
        rollup_days,
        rollups,
        unmatched_submissions,
    })
}

/// Streams every raw share (with its pool submission) to `visit`, without holding the log in
/// memory.
async fn each_share(tx: &mut Transaction<'_, Db>, mut visit: impl FnMut(Share)) -> Result<()> {
    let select = format!(
        "SELECT {SHARE_COLUMNS} FROM shares s LEFT JOIN pool_submissions p ON p.share_id = s.id ORDER BY s.id"
    );
    let mut rows = sqlx::query(&select).fetch(&mut **tx);
    while let Some(row) = rows.try_next().await? {
        visit(share_of(&row));
    }
    Ok(())
}

/// What [`share_of`] reads, from `shares s LEFT JOIN pool_submissions p` (the check and retention,
/// which reads one day's partition the same way).
pub(crate) const SHARE_COLUMNS: &str =
    "s.id, s.job_at, s.site_id, s.user_id, s.content_id, s.header, s.target, s.work,
     p.pool_target, p.pool_work, p.site_id";

/// A share row as selected with [`SHARE_COLUMNS`].
pub(crate) fn share_of(row: &<Db as sqlx::Database>::Row) -> Share {
    let pool = row.get::<Option<Vec<u8>>, _>(8).map(|target| {
        (target, row.try_get::<WorkColumn, _>(9).ok().map(|w| w.0), row.get::<Option<i64>, _>(10))
    });
    Share {
        id: row.get(0),
        job_at: row.get(1),
        site_id: row.get(2),
        user_id: row.get(3),
        content_id: row.get(4),
        header: row.get(5),
        target: row.get(6),
        work: row.try_get::<WorkColumn, _>(7).ok().map(|w| w.0),
        pool,
    }
}
