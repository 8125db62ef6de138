//! Retention's statements (PostgreSQL only; the rules are in `books/retention.rs`).

use anyhow::Result;
use futures_util::TryStreamExt;
use sqlx::{QueryBuilder, Transaction};

use super::audit::{SHARE_COLUMNS, share_of};
use super::{Conns, Db, SETTLED};
use crate::books::check::reverify;
use crate::books::retention::{DAY_MS, DayRollup, RetainReport, RollupDay, encode_ids, rollup_chain};
use crate::store::column::WorkColumn;
use crate::store::now_ms;

/// The advisory lock key of partition changes ("MPPARTS" in ASCII); `create_share_partition`
/// (migrations/postgres/0002) takes the same one.
const PARTITIONS_LOCK: i64 = 0x004d_5050_4152_5453;

/// The share log's day partitions as (table, day), oldest first.
const DAY_PARTITIONS: &str =
    "SELECT c.relname::TEXT, (to_date(substr(c.relname, 8), 'YYYYMMDD') - DATE '1970-01-01')::BIGINT
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'shares'::regclass AND c.relname ~ '^shares_[0-9]{8}$' ORDER BY 2";

/// Rolls up every day partition that ended before `horizon` (Unix ms), oldest first, stopping at
/// the first that must stay.
pub(crate) async fn retain(db: &Conns, horizon: i64) -> Result<RetainReport> {
    let mut report = RetainReport::default();
    let partitions: Vec<(String, i64)> = sqlx::query_as(DAY_PARTITIONS).fetch_all(&db.read).await?;
    for (partition, day) in partitions {
        if (day + 1) * DAY_MS > horizon {
            break;
        }
        let mut tx = db.write.begin().await?;
        match retain_day(&mut tx, &partition, day).await {
            Ok(Ok(rolled)) => {
                tx.commit().await?;
                report.rolled_up.push(rolled);
            }
            Ok(Err(why)) => {
                report.kept = Some((day, why));
                break;
            }
            Err(error) if lock_timed_out(&error) => {
                let why = "its partition is in use by a long read (a `ledger check`?): try again later";
                report.kept = Some((day, why.to_owned()));
                break;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(report)
}

/// One day in `tx`: the checks, the rollup and its chain link, the drop. `Ok(Err(why))`: the day
/// must stay (the transaction is then dropped, rolling back).
async fn retain_day(
    tx: &mut Transaction<'_, Db>,
    partition: &str,
    day: i64,
) -> Result<Result<RollupDay, String>> {
    let (start, end) = (day * DAY_MS, (day + 1) * DAY_MS);
    // Dropping a partition takes the parent's exclusive lock, and every commit would queue behind
    // a drop waiting for a long reader; waits are bounded instead (the day is retried later).
    sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut **tx).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PARTITIONS_LOCK).execute(&mut **tx).await?;
    // No share of the day can arrive while it is read (only this partition is locked: commits of
    // today's shares go on). The name comes from the catalogue and matches shares_[0-9]{8}.
    sqlx::query(&format!("LOCK TABLE {partition} IN SHARE MODE")).execute(&mut **tx).await?;

    let unsettled: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM periods p WHERE p.starts_at < $2 AND p.ends_at > $1 AND NOT {SETTLED}"
    ))
    .bind(start)
    // Shares of jobs issued late in the day are answered by the pool the day after.
    .bind(end + DAY_MS)
    .fetch_one(&mut **tx)
    .await?;
    if unsettled > 0 {
        return Ok(Err(format!("{unsettled} unsettled period(s) overlap it or the day after")));
    }
    let strays: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM shares_default WHERE job_at >= $1 AND job_at < $2")
            .bind(start)
            .bind(end)
            .fetch_one(&mut **tx)
            .await?;
    if strays > 0 {
        return Ok(Err(format!("{strays} of its shares are in shares_default (they stay raw)")));
    }
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT day, chain FROM share_rollup_days ORDER BY day DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    if last.as_ref().is_some_and(|(last, _)| *last >= day) {
        return Ok(Err("a later day is already rolled up".to_owned()));
    }

    let mut rollup = DayRollup::default();
    let mut problems = Vec::new();
    {
        let select = format!(
            "SELECT {SHARE_COLUMNS} FROM {partition} s LEFT JOIN pool_submissions p ON p.share_id = s.id ORDER BY s.id"
        );
        let mut rows = sqlx::query(&select).fetch(&mut **tx);
        while let Some(row) = rows.try_next().await? {
            let share = share_of(&row);
            if let Some(work) = reverify(&share, &mut problems) {
                rollup.add(&share, work);
            }
        }
    }
    if let Some(first) = problems.first() {
        return Ok(Err(format!("{} problem(s) re-verifying its shares, the first: {first}", problems.len())));
    }
    let (summary, rows) = rollup.finish(day);
    let chain = rollup_chain(last.as_ref().map_or("", |(_, chain)| chain), &summary, &rows);
    sqlx::query(
        "INSERT INTO share_rollup_days (day, shares, work, forwarded, digest, chain, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(day)
    .bind(summary.shares as i64)
    .bind(WorkColumn(summary.work))
    .bind(encode_ids(&summary.forwarded))
    .bind(&summary.digest)
    .bind(&chain)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    // Six parameters a row, within PostgreSQL's 65,535 per statement.
    for chunk in rows.chunks(8192) {
        let mut insert = QueryBuilder::<Db>::new(
            "INSERT INTO share_rollups (day, site_id, user_id, content_id, shares, work) ",
        );
        insert.push_values(chunk, |mut row, rollup| {
            row.push_bind(day)
                .push_bind(rollup.site_id)
                .push_bind(rollup.user_id)
                .push_bind(rollup.content_id)
                .push_bind(rollup.shares as i64)
                .push_bind(WorkColumn(rollup.work));
        });
        insert.build().execute(&mut **tx).await?;
    }
    // The one way rows leave the share log: the row triggers forbid DELETE, the partition's own
    // trigger TRUNCATE.
    sqlx::query(&format!("DROP TABLE {partition}")).execute(&mut **tx).await?;
    Ok(Ok(summary))
}

/// Whether `error` is PostgreSQL's `lock_not_available` (a `lock_timeout` ran out).
fn lock_timed_out(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<sqlx::Error>(),
        Some(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03")
    )
}
