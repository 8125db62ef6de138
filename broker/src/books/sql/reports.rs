//! The dashboards' reads.

use anyhow::Result;

use super::Conns;
use crate::store::column::WorkColumn;

/// Shares of a partner's sites (`None`: every site) in [from, to), in time order:
/// (created_at, session, work, pool work if the pool accepted it).
pub(crate) async fn shares(
    db: &Conns,
    partner: Option<i64>,
    (from, to): (i64, i64),
) -> Result<Vec<(i64, String, WorkColumn, Option<WorkColumn>)>> {
    Ok(sqlx::query_as(
        "SELECT s.created_at, s.session, s.work, CASE WHEN a.outcome = 'accepted' THEN p.pool_work END
         FROM shares s JOIN sites st ON st.id = s.site_id
         LEFT JOIN pool_submissions p ON p.share_id = s.id LEFT JOIN pool_answers a ON a.share_id = s.id
         WHERE ($1 IS NULL OR st.partner_id = $1) AND s.created_at >= $2 AND s.created_at < $3
         ORDER BY s.created_at",
    )
    .bind(partner)
    .bind(from)
    .bind(to)
    .fetch_all(&db.read)
    .await?)
}

/// A partner's net per settled period (period, source, net), what its payable account holds,
/// and its payouts (due, paid).
pub(crate) async fn statement(
    db: &Conns,
    partner: i64,
    account: &str,
) -> Result<(Vec<(String, String, i64)>, i64, (i64, i64))> {
    let settled = sqlx::query_as(
        "SELECT pe.name, pe.source, CAST(-SUM(p.amount) AS BIGINT) FROM postings p JOIN entries e ON e.id = p.entry_id
         JOIN periods pe ON pe.id = e.period_id
         WHERE p.account = $1 AND e.kind IN ('settlement', 'reversal')
         GROUP BY pe.id, pe.name, pe.source, pe.starts_at ORDER BY pe.starts_at, pe.id",
    )
    .bind(account)
    .fetch_all(&db.read)
    .await?;
    let owed: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(-SUM(amount), 0) AS BIGINT) FROM postings WHERE account = $1",
    )
    .bind(account)
    .fetch_one(&db.read)
    .await?;
    let payouts: (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(CASE WHEN paid_entry IS NULL THEN amount_sats END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN paid_entry IS NOT NULL THEN amount_sats END), 0) AS BIGINT)
         FROM payouts WHERE partner_id = $1",
    )
    .bind(partner)
    .fetch_one(&db.read)
    .await?;
    Ok((settled, owed, payouts))
}
