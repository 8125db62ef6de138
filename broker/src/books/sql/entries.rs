//! Entries and postings: appended under the books' lock, chained.

use anyhow::{Result, bail};
use sqlx::Transaction;

use super::Db;
use crate::books::{EntryRow, chain_hash};
use crate::store::now_ms;

/// Appends one balanced entry with its postings; returns its id. The caller holds the books' lock
/// ([`super::begin_books`]), so the head read here is the head.
pub(crate) async fn append(
    tx: &mut Transaction<'_, Db>,
    kind: &str,
    period_id: Option<i64>,
    reverses: Option<i64>,
    memo: &str,
    postings: &[(String, i64)],
) -> Result<i64> {
    let sum: i128 = postings.iter().map(|(_, a)| i128::from(*a)).sum();
    if sum != 0 {
        bail!("unbalanced entry ({sum} sats)");
    }
    let previous: Option<(i64, String)> =
        sqlx::query_as("SELECT id, chain FROM entries ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    let (previous_id, previous_chain) = previous.unwrap_or((0, String::new()));
    let entry = EntryRow {
        id: previous_id + 1,
        kind: kind.to_owned(),
        period_id,
        reverses,
        memo: memo.to_owned(),
        created_at: now_ms(),
    };
    let chain = chain_hash(&previous_chain, &entry, postings);
    sqlx::query(
        "INSERT INTO entries (id, kind, period_id, reverses, memo, created_at, chain) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.id)
    .bind(&entry.kind)
    .bind(entry.period_id)
    .bind(entry.reverses)
    .bind(&entry.memo)
    .bind(entry.created_at)
    .bind(chain)
    .execute(&mut **tx)
    .await?;
    for (account, amount) in postings {
        sqlx::query("INSERT INTO postings (entry_id, account, amount) VALUES ($1, $2, $3)")
            .bind(entry.id)
            .bind(account)
            .bind(amount)
            .execute(&mut **tx)
            .await?;
    }
    Ok(entry.id)
}
