//! Periods of earnings, their settlement, and account balances.

use std::collections::HashMap;

use anyhow::Result;
use sqlx::{Row, Transaction};

use super::{Conns, Db, PG, SETTLED, begin_books};
use crate::books::settlement::{self, PartnerInput, Settlement};
use crate::books::{BooksError, OPERATOR, Period, Source, payable, sats};
use crate::store::column::WorkColumn;
use crate::store::now_ms;

/// Pool-accepted work per partner (`OPERATOR` for sites without one) over answers in [from, to).
pub(crate) async fn pool_work_by_partner(db: &Conns, from: i64, to: i64) -> Result<Vec<(i64, u128)>> {
    const FROM: &str = "FROM pool_answers a JOIN pool_submissions p ON p.share_id = a.share_id
         JOIN sites st ON st.id = p.site_id
         WHERE a.outcome = 'accepted' AND a.answered_at >= $1 AND a.answered_at < $2";
    let sql = if PG {
        // NUMERIC sums in the database.
        format!("SELECT COALESCE(st.partner_id, 0), SUM(p.pool_work) {FROM} GROUP BY 1")
    } else {
        format!("SELECT COALESCE(st.partner_id, 0), p.pool_work {FROM}")
    };
    let rows: Vec<(i64, WorkColumn)> = sqlx::query_as(&sql).bind(from).bind(to).fetch_all(&db.read).await?;
    let mut work: HashMap<i64, u128> = HashMap::new();
    for (partner, pool_work) in rows {
        *work.entry(partner).or_default() += pool_work.0;
    }
    let mut work: Vec<(i64, u128)> = work.into_iter().collect();
    work.sort();
    Ok(work)
}

/// Inserts a period and its earnings entry (the asset against `income:mining`).
pub(crate) async fn record(
    db: &Conns,
    name: &str,
    (from, to): (i64, i64),
    earnings: u64,
    source: Source,
) -> Result<i64> {
    let mut tx = begin_books(db).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO periods (name, starts_at, ends_at, earnings_sats, source, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(name)
    .bind(from)
    .bind(to)
    .bind(sats(earnings)?)
    .bind(source.as_str())
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await?;
    let asset = match source {
        Source::Recorded => "assets:wallet",
        Source::Estimate => "assets:receivable",
    };
    let memo = format!("{} earnings of period {name}", source.as_str());
    let postings = [(asset.to_owned(), sats(earnings)?), ("income:mining".to_owned(), -sats(earnings)?)];
    super::entries::append(&mut tx, "earnings", Some(id), None, &memo, &postings).await?;
    tx.commit().await?;
    Ok(id)
}

pub(crate) async fn all(db: &Conns) -> Result<Vec<Period>> {
    let rows = sqlx::query(&format!(
        "SELECT p.id, p.name, p.starts_at, p.ends_at, p.earnings_sats, p.source, {SETTLED}
             FROM periods p ORDER BY p.starts_at, p.id"
    ))
    .fetch_all(&db.read)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Period {
            id: r.get(0),
            name: r.get(1),
            starts_at: r.get(2),
            ends_at: r.get(3),
            earnings_sats: r.get::<i64, _>(4) as u64,
            source: Source::parse(r.get(5)),
            settled: r.get(6),
        })
        .collect())
}

/// Balances of every account, in satoshis.
pub(crate) async fn balances(db: &Conns) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT account, CAST(SUM(amount) AS BIGINT) FROM postings GROUP BY account ORDER BY account",
    )
    .fetch_all(&db.read)
    .await?)
}

/// Settles `period` under the books' lock: the settled check, the partners' carried balances, the
/// split and every row it makes happen in one transaction no other books writer interleaves with,
/// so however many brokers or CLIs race, the period settles once and the others get
/// `AlreadySettled`.
pub(crate) async fn settle(
    db: &Conns,
    period: &Period,
    partners: &[PartnerInput],
    threshold: u64,
) -> Result<Settlement, BooksError> {
    let mut tx = begin_books(db).await?;
    let settled: bool = sqlx::query_scalar(&format!("SELECT {SETTLED} FROM periods p WHERE p.id = $1"))
        .bind(period.id)
        .fetch_one(&mut *tx)
        .await?;
    if settled {
        return Err(BooksError::AlreadySettled);
    }
    let mut inputs = Vec::with_capacity(partners.len());
    for input in partners {
        let carried = if input.partner == OPERATOR { 0 } else { carried(&mut tx, input.partner).await? };
        inputs.push(PartnerInput { carried, ..input.clone() });
    }
    let result = settlement::settle(period.earnings_sats, &inputs, threshold).map_err(anyhow::Error::from)?;
    let mut postings = vec![("income:mining".to_owned(), sats(period.earnings_sats)?)];
    let mut commission = sats(result.commission)?;
    for share in &result.partners {
        if share.partner == OPERATOR {
            // The operator's own sites: their net is commission income too.
            commission += sats(share.net)?;
        } else if share.net > 0 {
            postings.push((payable(share.partner), -sats(share.net)?));
        }
    }
    postings.push(("income:commission".to_owned(), -commission));
    let memo = format!("settlement of period {} (threshold {threshold} sats)", period.name);
    let entry =
        super::entries::append(&mut tx, "settlement", Some(period.id), None, &memo, &postings).await?;
    for share in result.partners.iter().filter(|s| s.partner != OPERATOR && s.payout > 0) {
        sqlx::query(
            "INSERT INTO payouts (partner_id, period_id, amount_sats, due_entry, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(share.partner)
        .bind(period.id)
        .bind(sats(share.payout)?)
        .bind(entry)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(result)
}

/// A partner's payable balance not yet made due as a payout: what carries over.
async fn carried(tx: &mut Transaction<'_, Db>, partner: i64) -> Result<u64> {
    let balance: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM postings WHERE account = $1",
    )
    .bind(payable(partner))
    .fetch_one(&mut **tx)
    .await?;
    let due: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount_sats), 0) AS BIGINT) FROM payouts WHERE partner_id = $1 AND paid_entry IS NULL",
    )
    .bind(partner)
    .fetch_one(&mut **tx)
    .await?;
    // Payable balances are credits (negative).
    Ok(u64::try_from(-balance - due).unwrap_or(0))
}
