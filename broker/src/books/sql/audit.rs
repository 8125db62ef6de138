//! What `ledger check` reads.

use anyhow::Result;
use futures_util::TryStreamExt;
use sqlx::Row;

use super::Conns;
use crate::books::EntryRow;
use crate::books::check::Share;
use crate::store::column::WorkColumn;

/// Every entry with its stored chain, in id order.
pub(crate) async fn entries(db: &Conns) -> Result<Vec<(EntryRow, String)>> {
    let rows =
        sqlx::query("SELECT id, kind, period_id, reverses, memo, created_at, chain FROM entries ORDER BY id")
            .fetch_all(&db.read)
            .await?;
    Ok(rows
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
        .collect())
}

/// Every posting as (entry, account, amount), in id order.
pub(crate) async fn postings(db: &Conns) -> Result<Vec<(i64, String, i64)>> {
    Ok(sqlx::query_as("SELECT entry_id, account, amount FROM postings ORDER BY id")
        .fetch_all(&db.read)
        .await?)
}

/// Paid payouts with the partner posting of their payment entry:
/// (payout, partner, amount, posting account, posting amount).
pub(crate) async fn paid_payouts(db: &Conns) -> Result<Vec<(i64, i64, i64, Option<String>, Option<i64>)>> {
    Ok(sqlx::query_as(
        "SELECT o.id, o.partner_id, o.amount_sats, p.account, p.amount FROM payouts o
         LEFT JOIN postings p ON p.entry_id = o.paid_entry AND p.account LIKE 'partner:%'
         WHERE o.paid_entry IS NOT NULL",
    )
    .fetch_all(&db.read)
    .await?)
}

/// Streams every share (with its pool submission) to `visit`, in id order, without holding the
/// whole log in memory.
pub(crate) async fn each_share(db: &Conns, mut visit: impl FnMut(Share)) -> Result<()> {
    let mut rows = sqlx::query(
        "SELECT s.id, s.header, s.target, s.work, p.pool_target, p.pool_work FROM shares s
         LEFT JOIN pool_submissions p ON p.share_id = s.id ORDER BY s.id",
    )
    .fetch(&db.read);
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
