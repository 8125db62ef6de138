//! Payouts and corrections.

use anyhow::Result;
use sqlx::Row;

use super::{Conns, begin_books};
use crate::books::{BooksError, Payout, payable};

pub(crate) async fn select(db: &Conns, unpaid_only: bool, id: Option<i64>) -> Result<Vec<Payout>> {
    let rows = sqlx::query(
        "SELECT o.id, p.partner_key, p.name, pe.name, o.amount_sats, o.paid_entry IS NOT NULL
         FROM payouts o JOIN partners p ON p.id = o.partner_id JOIN periods pe ON pe.id = o.period_id
         WHERE (NOT $1 OR o.paid_entry IS NULL) AND ($2 IS NULL OR o.id = $2) ORDER BY o.id",
    )
    .bind(unpaid_only)
    .bind(id)
    .fetch_all(&db.read)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Payout {
            id: r.get(0),
            partner_key: r.get(1),
            partner_name: r.get(2),
            period: r.get(3),
            amount_sats: r.get::<i64, _>(4) as u64,
            paid: r.get(5),
        })
        .collect())
}

/// Records that payout `id` was paid from the wallet.
pub(crate) async fn mark_paid(db: &Conns, id: i64) -> Result<(), BooksError> {
    let mut tx = begin_books(db).await?;
    let row: Option<(i64, i64)> = sqlx::query_as("SELECT partner_id, amount_sats FROM payouts WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((partner, amount)) = row else { return Err(BooksError::NotFound) };
    let postings = [(payable(partner), amount), ("assets:wallet".to_owned(), -amount)];
    let entry =
        super::entries::append(&mut tx, "payout", None, None, &format!("payout {id} paid"), &postings)
            .await?;
    // The update decides: only one marking finds the payout unpaid; another's entry is rolled back
    // with its transaction.
    let marked = sqlx::query("UPDATE payouts SET paid_entry = $1 WHERE id = $2 AND paid_entry IS NULL")
        .bind(entry)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if marked.rows_affected() == 0 {
        return Err(BooksError::AlreadyPaid);
    }
    tx.commit().await?;
    Ok(())
}

/// A correction: a new entry with every posting of entry `id` negated.
pub(crate) async fn reverse(db: &Conns, id: i64, memo: &str) -> Result<i64, BooksError> {
    let mut tx = begin_books(db).await?;
    let entry: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT kind, period_id FROM entries WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((kind, period)) = entry else { return Err(BooksError::NotFound) };
    if kind == "reversal" {
        return Err(BooksError::NotReversible("it is itself a reversal"));
    }
    let reversed: Option<i64> = sqlx::query_scalar("SELECT id FROM entries WHERE reverses = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if reversed.is_some() {
        return Err(BooksError::AlreadyReversed);
    }
    // Payout rows are facts for the partner (exported, maybe paid): a settlement that made any
    // stays, and is corrected by a later entry instead.
    let payouts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payouts WHERE due_entry = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if payouts > 0 {
        return Err(BooksError::NotReversible(
            "it made payouts, so it cannot be reversed; correct it with a later entry",
        ));
    }
    let postings: Vec<(String, i64)> =
        sqlx::query_as("SELECT account, -amount FROM postings WHERE entry_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    let entry = super::entries::append(&mut tx, "reversal", period, Some(id), memo, &postings).await?;
    tx.commit().await?;
    Ok(entry)
}
