//! The share log, users and their running totals (progress per content item, credits), pool
//! submissions and answers: everything the share committer writes in one transaction per batch.

use std::collections::HashMap;

use anyhow::Result;
use sqlx::{QueryBuilder, Row, Transaction};

use super::{Conns, Db, LOCK_BALANCE, PG, begin_write};
use crate::store::column::WorkColumn;
use crate::store::{ContentProgress, Credit, PoolAnswer, PoolSubmission, PoolTotals, ShareRecord, now_ms};

/// Writes a batch of shares (and pool answers) in one transaction and returns what each share
/// credited.
///
/// Set-based, so that a batch costs a handful of statements rather than several per share: one
/// multi-row insert each of the answers, the shares (returning those that were new) and their
/// pool submissions, then per distinct user an upsert of the user and of their credits, and one
/// per distinct (user, content) pair. Concurrent batches of other brokers on the same users are
/// safe: totals are added by atomic upserts (PostgreSQL) or under the write lock (SQLite), and the
/// unlock is claimed by an update only one transaction can make.
pub(crate) async fn commit(db: &Conns, batch: &[ShareRecord], answers: &[PoolAnswer]) -> Result<Vec<Credit>> {
    let mut tx = begin_write(db).await?;
    let now = now_ms();
    if !answers.is_empty() {
        let mut insert = QueryBuilder::<Db>::new(
            "INSERT INTO pool_answers (share_id, outcome, code, reason, answered_at) ",
        );
        insert.push_values(answers, |mut row, answer| {
            row.push_bind(answer.share_id)
                .push_bind(answer.outcome)
                .push_bind(answer.code)
                .push_bind(&answer.reason)
                .push_bind(now);
        });
        insert.push(" ON CONFLICT (share_id) DO NOTHING");
        insert.build().execute(&mut *tx).await?;
    }
    if batch.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    // Rows are locked in key order (users, then progress, then credits), so that two brokers'
    // batches over the same users wait for each other instead of deadlocking.
    let mut users: Vec<(i64, &str)> =
        batch.iter().map(|share| (share.site_id, share.user.as_str())).collect();
    users.sort_unstable();
    users.dedup();
    let user_ids = upsert_users(&mut tx, &users, now).await?;
    let user_of = |share: &ShareRecord| user_ids[&(share.site_id, share.user.as_str())];

    let mut insert = QueryBuilder::<Db>::new(
        "INSERT INTO shares (session, job_id, nonce, site_id, user_id, content_id, header, target, work, created_at, job_at) ",
    );
    insert.push_values(batch, |mut row, share| {
        row.push_bind(&share.session)
            .push_bind(&share.job_id)
            .push_bind(i64::from(share.nonce))
            .push_bind(share.site_id)
            .push_bind(user_of(share))
            .push_bind(share.content_id)
            .push_bind(&share.header[..])
            .push_bind(&share.target[..])
            .push_bind(WorkColumn(share.work))
            .push_bind(now)
            .push_bind(share.job_at);
    });
    // The conflict is the duplicate rule: (job_id, nonce) on SQLite, (job_id, nonce, job_at) on
    // PostgreSQL, where the partition key must be in every unique key (the same rule, a job's
    // time being fixed).
    let conflict = if PG { "(job_id, nonce, job_at)" } else { "(job_id, nonce)" };
    insert.push(format!(" ON CONFLICT {conflict} DO NOTHING RETURNING job_id, nonce, id"));
    let mut new_rows: HashMap<(String, i64), i64> = insert
        .build()
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    // A share is new if its row was inserted; a repeat within the batch is a duplicate.
    let ids: Vec<Option<i64>> =
        batch.iter().map(|share| new_rows.remove(&(share.job_id.clone(), i64::from(share.nonce)))).collect();

    let forwarded: Vec<(i64, i64, &PoolSubmission)> = batch
        .iter()
        .zip(&ids)
        .filter_map(|(share, id)| Some(((*id)?, share.site_id, share.pool.as_ref()?)))
        .collect();
    if !forwarded.is_empty() {
        let mut insert = QueryBuilder::<Db>::new(
            "INSERT INTO pool_submissions (share_id, site_id, pool, upstream_job, extranonce2, ntime, pool_target, pool_work, created_at) ",
        );
        insert.push_values(&forwarded, |mut row, (id, site_id, pool)| {
            row.push_bind(*id)
                .push_bind(*site_id)
                .push_bind(&pool.pool)
                .push_bind(&pool.upstream_job)
                .push_bind(&pool.extranonce2)
                .push_bind(i64::from(pool.ntime))
                .push_bind(&pool.pool_target[..])
                .push_bind(WorkColumn(pool.pool_work))
                .push_bind(now);
        });
        insert.build().execute(&mut *tx).await?;
    }

    let mut added: HashMap<(i64, i64), u128> = HashMap::new();
    let mut last_of_pair: HashMap<(i64, i64), usize> = HashMap::new();
    let mut earned: HashMap<i64, u128> = HashMap::new();
    for (index, share) in batch.iter().enumerate() {
        if ids[index].is_none() {
            continue;
        }
        *earned.entry(user_of(share)).or_default() += share.work;
        if let Some(content_id) = share.content_id {
            let pair = (user_of(share), content_id);
            *added.entry(pair).or_default() += share.work;
            last_of_pair.insert(pair, index);
        }
    }
    let mut pairs: Vec<_> = added.into_iter().collect();
    pairs.sort_unstable();
    let mut earners: Vec<_> = earned.into_iter().collect();
    earners.sort_unstable();
    let (progress, credits) = if PG {
        // One statement each, whatever the batch's size: on a networked database round trips, not
        // rows, are the cost of a commit.
        (add_progress_all(&mut tx, &pairs, now).await?, add_earned_all(&mut tx, &earners).await?)
    } else {
        let mut progress: HashMap<(i64, i64), ContentProgress> = HashMap::new();
        for &((user_id, content_id), work) in &pairs {
            progress
                .insert((user_id, content_id), add_progress(&mut tx, user_id, content_id, work, now).await?);
        }
        let mut credits: HashMap<i64, u128> = HashMap::new();
        for &(user_id, work) in &earners {
            credits.insert(user_id, add_earned(&mut tx, user_id, work).await?);
        }
        (progress, credits)
    };
    tx.commit().await?;

    Ok(batch
        .iter()
        .enumerate()
        .map(|(index, share)| {
            let Some(share_id) = ids[index] else {
                return Credit::Duplicate;
            };
            let progress = share.content_id.map(|content_id| {
                let pair = (user_of(share), content_id);
                let mut after = progress[&pair].clone();
                // Only the pair's last share in the batch reports the unlock.
                after.newly_unlocked &= last_of_pair[&pair] == index;
                after
            });
            Credit::Credited { share_id, progress, credits: credits[&user_of(share)] }
        })
        .collect())
}

/// The ledger ids of a batch's users (`users` sorted and distinct), created on first sight: one insert and one
/// select for all of them.
async fn upsert_users<'a>(
    tx: &mut Transaction<'_, Db>,
    users: &[(i64, &'a str)],
    now: i64,
) -> Result<HashMap<(i64, &'a str), i64>> {
    let mut insert = QueryBuilder::<Db>::new("INSERT INTO users (site_id, external_id, created_at) ");
    insert.push_values(users, |mut row, (site_id, user)| {
        row.push_bind(*site_id).push_bind(*user).push_bind(now);
    });
    insert.push(" ON CONFLICT (site_id, external_id) DO NOTHING");
    insert.build().execute(&mut **tx).await?;
    let mut select = QueryBuilder::<Db>::new("SELECT id, site_id, external_id FROM users WHERE ");
    let mut separated = select.separated(" OR ");
    for (site_id, user) in users {
        separated.push("(site_id = ");
        separated.push_bind_unseparated(*site_id);
        separated.push_unseparated(" AND external_id = ");
        separated.push_bind_unseparated(*user);
        separated.push_unseparated(")");
    }
    let rows: Vec<(i64, i64, String)> = select.build_query_as().fetch_all(&mut **tx).await?;
    let mut ids = HashMap::with_capacity(users.len());
    for (id, site_id, external_id) in rows {
        // `users` is sorted: the borrowed key of this row by binary search, not a scan per row.
        if let Ok(at) = users.binary_search(&(site_id, external_id.as_str())) {
            ids.insert(users[at], id);
        }
    }
    anyhow::ensure!(ids.len() == users.len(), "a user row vanished inside the commit");
    Ok(ids)
}

/// PostgreSQL: adds each user's work to their credits in one upsert; the balances after it.
async fn add_earned_all(tx: &mut Transaction<'_, Db>, earners: &[(i64, u128)]) -> Result<HashMap<i64, u128>> {
    if earners.is_empty() {
        return Ok(HashMap::new());
    }
    let mut upsert = QueryBuilder::<Db>::new("INSERT INTO user_work (user_id, earned) ");
    upsert.push_values(earners, |mut row, (user_id, work)| {
        row.push_bind(*user_id).push_bind(WorkColumn(*work));
    });
    upsert.push(
        " ON CONFLICT (user_id) DO UPDATE SET earned = user_work.earned + excluded.earned
          RETURNING user_id, earned, spent",
    );
    let rows: Vec<(i64, WorkColumn, WorkColumn)> = upsert.build_query_as().fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().map(|(user, earned, spent)| (user, earned.0.saturating_sub(spent.0))).collect())
}

/// PostgreSQL: adds each pair's work to its progress in one upsert, then claims the unlocks the
/// batch reached in one update (only the transaction whose update finds `unlocked_at` empty
/// reports an unlock).
async fn add_progress_all(
    tx: &mut Transaction<'_, Db>,
    pairs: &[((i64, i64), u128)],
    now: i64,
) -> Result<HashMap<(i64, i64), ContentProgress>> {
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    let mut upsert = QueryBuilder::<Db>::new("INSERT INTO progress (user_id, content_id, work) ");
    upsert.push_values(pairs, |mut row, ((user_id, content_id), work)| {
        row.push_bind(*user_id).push_bind(*content_id).push_bind(WorkColumn(*work));
    });
    upsert.push(
        " ON CONFLICT (user_id, content_id) DO UPDATE SET work = progress.work + excluded.work
          RETURNING user_id, content_id, work, (SELECT required_work FROM content c WHERE c.id = progress.content_id)",
    );
    let rows: Vec<(i64, i64, WorkColumn, WorkColumn)> = upsert.build_query_as().fetch_all(&mut **tx).await?;
    let reached: Vec<(i64, i64)> =
        rows.iter().filter(|(_, _, done, required)| done >= required).map(|(u, c, _, _)| (*u, *c)).collect();
    let mut unlocked = std::collections::HashSet::new();
    if !reached.is_empty() {
        let mut claim = QueryBuilder::<Db>::new("UPDATE progress SET unlocked_at = ");
        claim.push_bind(now).push(" WHERE unlocked_at IS NULL AND (");
        let mut separated = claim.separated(" OR ");
        for (user_id, content_id) in &reached {
            separated.push("(user_id = ");
            separated.push_bind_unseparated(*user_id);
            separated.push_unseparated(" AND content_id = ");
            separated.push_bind_unseparated(*content_id);
            separated.push_unseparated(")");
        }
        claim.push(") RETURNING user_id, content_id");
        let claimed: Vec<(i64, i64)> = claim.build_query_as().fetch_all(&mut **tx).await?;
        unlocked.extend(claimed);
    }
    Ok(rows
        .into_iter()
        .map(|(user_id, content_id, done, required)| {
            let progress = ContentProgress {
                content_id,
                done: done.0,
                required: required.0,
                newly_unlocked: unlocked.contains(&(user_id, content_id)),
            };
            ((user_id, content_id), progress)
        })
        .collect())
}

/// The ledger id of a site's user, created on first sight.
pub(crate) async fn user_id(db: &Conns, site_id: i64, external_id: &str) -> Result<i64> {
    let mut tx = begin_write(db).await?;
    let id = upsert_user(&mut tx, site_id, external_id).await?;
    tx.commit().await?;
    Ok(id)
}

async fn upsert_user(tx: &mut Transaction<'_, Db>, site_id: i64, external_id: &str) -> Result<i64> {
    sqlx::query(
        "INSERT INTO users (site_id, external_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (site_id, external_id) DO NOTHING",
    )
    .bind(site_id)
    .bind(external_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(sqlx::query_scalar("SELECT id FROM users WHERE site_id = $1 AND external_id = $2")
        .bind(site_id)
        .bind(external_id)
        .fetch_one(&mut **tx)
        .await?)
}

/// Adds `work` to a user's earned credits; returns the spendable balance (earned − spent).
async fn add_earned(tx: &mut Transaction<'_, Db>, user_id: i64, work: u128) -> Result<u128> {
    let (earned, spent): (WorkColumn, WorkColumn) = if PG {
        sqlx::query_as(
            "INSERT INTO user_work (user_id, earned) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET earned = user_work.earned + excluded.earned
             RETURNING earned, spent",
        )
        .bind(user_id)
        .bind(WorkColumn(work))
        .fetch_one(&mut **tx)
        .await?
    } else {
        // SQLite cannot add u128s in SQL; the write lock makes the read-modify-write safe.
        let before: Option<(WorkColumn, WorkColumn)> =
            sqlx::query_as("SELECT earned, spent FROM user_work WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut **tx)
                .await?;
        let (earned, spent) = before.unwrap_or_default();
        let earned = WorkColumn(earned.0.saturating_add(work));
        sqlx::query(
            "INSERT INTO user_work (user_id, earned) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET earned = excluded.earned",
        )
        .bind(user_id)
        .bind(earned)
        .execute(&mut **tx)
        .await?;
        (earned, spent)
    };
    Ok(earned.0.saturating_sub(spent.0))
}

/// Adds `work` to a user's progress toward a content item; reports whether this commit reached
/// the quota (the `unlocked_at` update claims it: exactly one transaction can).
async fn add_progress(
    tx: &mut Transaction<'_, Db>,
    user_id: i64,
    content_id: i64,
    work: u128,
    now: i64,
) -> Result<ContentProgress> {
    let done: WorkColumn = if PG {
        sqlx::query_scalar(
            "INSERT INTO progress (user_id, content_id, work) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, content_id) DO UPDATE SET work = progress.work + excluded.work
             RETURNING work",
        )
        .bind(user_id)
        .bind(content_id)
        .bind(WorkColumn(work))
        .fetch_one(&mut **tx)
        .await?
    } else {
        let before: Option<WorkColumn> =
            sqlx::query_scalar("SELECT work FROM progress WHERE user_id = $1 AND content_id = $2")
                .bind(user_id)
                .bind(content_id)
                .fetch_optional(&mut **tx)
                .await?;
        let done = WorkColumn(before.unwrap_or_default().0.saturating_add(work));
        sqlx::query(
            "INSERT INTO progress (user_id, content_id, work) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, content_id) DO UPDATE SET work = excluded.work",
        )
        .bind(user_id)
        .bind(content_id)
        .bind(done)
        .execute(&mut **tx)
        .await?;
        done
    };
    let required: WorkColumn = sqlx::query_scalar("SELECT required_work FROM content WHERE id = $1")
        .bind(content_id)
        .fetch_one(&mut **tx)
        .await?;
    let newly_unlocked = done >= required
        && sqlx::query(
            "UPDATE progress SET unlocked_at = $1 WHERE user_id = $2 AND content_id = $3 AND unlocked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(content_id)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
    Ok(ContentProgress { content_id, done: done.0, required: required.0, newly_unlocked })
}

/// Users from before the rewards migration get their running total from the share log, once.
pub(crate) async fn backfill_user_work(db: &Conns) -> Result<()> {
    let missing: Vec<i64> = sqlx::query_scalar(
        "SELECT u.id FROM users u WHERE NOT EXISTS (SELECT 1 FROM user_work w WHERE w.user_id = u.id)",
    )
    .fetch_all(&db.read)
    .await?;
    for user_id in missing {
        let works: Vec<WorkColumn> = sqlx::query_scalar("SELECT work FROM shares WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&db.read)
            .await?;
        let earned = works.iter().fold(0u128, |sum, w| sum.saturating_add(w.0));
        sqlx::query(
            "INSERT INTO user_work (user_id, earned) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(WorkColumn(earned))
        .execute(&db.write)
        .await?;
    }
    Ok(())
}

/// Work a site's user has credited toward each content item.
pub(crate) async fn progress(db: &Conns, site_id: i64, external_id: &str) -> Result<Vec<(i64, u128)>> {
    let rows: Vec<(i64, WorkColumn)> = sqlx::query_as(
        "SELECT p.content_id, p.work FROM progress p JOIN users u ON u.id = p.user_id
         WHERE u.site_id = $1 AND u.external_id = $2",
    )
    .bind(site_id)
    .bind(external_id)
    .fetch_all(&db.read)
    .await?;
    Ok(rows.into_iter().map(|(id, work)| (id, work.0)).collect())
}

/// (user id, earned, spent) of a site's user, if the user has ever been credited; `lock` takes
/// the row for the rest of a write transaction.
pub(crate) async fn user_credits_in(
    tx: &mut Transaction<'_, Db>,
    site_id: i64,
    external_id: &str,
) -> Result<Option<(i64, u128, u128)>> {
    let row: Option<(i64, WorkColumn, WorkColumn)> = sqlx::query_as(&format!(
        "SELECT u.id, w.earned, w.spent FROM users u JOIN user_work w ON w.user_id = u.id
         WHERE u.site_id = $1 AND u.external_id = $2{LOCK_BALANCE}"
    ))
    .bind(site_id)
    .bind(external_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(id, earned, spent)| (id, earned.0, spent.0)))
}

pub(crate) async fn user_credits(
    db: &Conns,
    site_id: i64,
    external_id: &str,
) -> Result<Option<(i64, u128, u128)>> {
    let row: Option<(i64, WorkColumn, WorkColumn)> = sqlx::query_as(
        "SELECT u.id, w.earned, w.spent FROM users u JOIN user_work w ON w.user_id = u.id
         WHERE u.site_id = $1 AND u.external_id = $2",
    )
    .bind(site_id)
    .bind(external_id)
    .fetch_optional(&db.read)
    .await?;
    Ok(row.map(|(id, earned, spent)| (id, earned.0, spent.0)))
}

/// A user's shares as (job id, nonce, work), in commit order.
pub(crate) async fn user_shares(db: &Conns, user_id: i64) -> Result<Vec<(String, u32, u128)>> {
    let rows: Vec<(String, i64, WorkColumn)> =
        sqlx::query_as("SELECT job_id, nonce, work FROM shares WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(&db.read)
            .await?;
    Ok(rows.into_iter().map(|(job, nonce, work)| (job, nonce as u32, work.0)).collect())
}

/// Number of shares and their total work.
pub(crate) async fn totals(db: &Conns) -> Result<(u64, u128)> {
    if PG {
        let (count, work): (i64, WorkColumn) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(work), 0) FROM shares").fetch_one(&db.read).await?;
        return Ok((count as u64, work.0));
    }
    let works: Vec<WorkColumn> = sqlx::query_scalar("SELECT work FROM shares").fetch_all(&db.read).await?;
    Ok((works.len() as u64, works.iter().map(|w| w.0).sum()))
}

/// Forwarded shares and the pool's answers, totalled; `site_id` narrows it to one site.
pub(crate) async fn pool_totals(db: &Conns, site_id: Option<i64>) -> Result<PoolTotals> {
    let rows: Vec<(Option<String>, WorkColumn)> = sqlx::query_as(
        "SELECT a.outcome, p.pool_work FROM pool_submissions p
         LEFT JOIN pool_answers a ON a.share_id = p.share_id WHERE $1 IS NULL OR p.site_id = $1",
    )
    .bind(site_id)
    .fetch_all(&db.read)
    .await?;
    let mut totals = PoolTotals::default();
    for (outcome, pool_work) in rows {
        totals.submitted += 1;
        match outcome.as_deref() {
            Some("accepted") => {
                totals.accepted += 1;
                totals.accepted_work += pool_work.0;
            }
            Some("rejected") => totals.rejected += 1,
            Some(_) => totals.unanswered += 1,
            None => {}
        }
    }
    Ok(totals)
}

/// PostgreSQL: makes the share log's day partitions from `today - 1` to `today + 7` (days since
/// 1970-01-01 UTC) that do not exist yet, and says how many it made; SQLite has none.
pub(crate) async fn prepare_partitions(db: &Conns, today: i64) -> Result<u64> {
    if !PG {
        return Ok(0);
    }
    let made: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM generate_series($1::BIGINT, $2::BIGINT) day WHERE create_share_partition(day)",
    )
    .bind(today - 1)
    .bind(today + 7)
    .fetch_one(&db.write)
    .await?;
    Ok(made as u64)
}
