//! Measured device rates (the consent dialog's estimate).

use anyhow::Result;

use super::Conns;

pub(crate) async fn insert(db: &Conns, class: &str, hashes_per_s: i64, at: i64) -> Result<()> {
    sqlx::query("INSERT INTO device_rates (class, hashes_per_s, at) VALUES ($1, $2, $3)")
        .bind(class)
        .bind(hashes_per_s)
        .bind(at)
        .execute(&db.write)
        .await?;
    Ok(())
}

/// Samples older than `before` go: estimates never read them.
pub(crate) async fn delete_before(db: &Conns, before: i64) -> Result<()> {
    sqlx::query("DELETE FROM device_rates WHERE at < $1").bind(before).execute(&db.write).await?;
    Ok(())
}

/// The newest `limit` rates of `class` since `since`.
pub(crate) async fn recent(db: &Conns, class: &str, since: i64, limit: i64) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT hashes_per_s FROM device_rates WHERE class = $1 AND at >= $2 ORDER BY at DESC LIMIT $3",
    )
    .bind(class)
    .bind(since)
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    Ok(rows.into_iter().map(|(rate,)| rate).collect())
}
