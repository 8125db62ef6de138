//! Sites and their content items.

use anyhow::Result;
use sqlx::Row;

use super::{Conns, Db};
use crate::store::column::WorkColumn;
use crate::store::{Content, Site};

/// The columns [`site_from_row`] reads.
const SITE_COLUMNS: &str = "id, site_key, name, enabled, consent_max_hours, sealed_secret";

fn site_from_row(r: &<Db as sqlx::Database>::Row) -> Site {
    Site {
        id: r.get(0),
        key: r.get(1),
        name: r.get(2),
        enabled: r.get(3),
        consent_max_ms: r.get::<i64, _>(4).saturating_mul(3_600_000),
        sealed_secret: r.get(5),
    }
}

pub(crate) async fn insert(
    db: &Conns,
    key: &str,
    name: &str,
    secret_hash: &str,
    sealed_secret: &[u8],
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO sites (site_key, name, secret_hash, sealed_secret, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (site_key) DO NOTHING",
    )
    .bind(key)
    .bind(name)
    .bind(secret_hash)
    .bind(sealed_secret)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces a site's secret; false if there is no such site.
pub(crate) async fn set_secret(
    db: &Conns,
    key: &str,
    secret_hash: &str,
    sealed_secret: &[u8],
) -> Result<bool> {
    let done = sqlx::query("UPDATE sites SET secret_hash = $1, sealed_secret = $2 WHERE site_key = $3")
        .bind(secret_hash)
        .bind(sealed_secret)
        .bind(key)
        .execute(&db.write)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_consent_max_hours(db: &Conns, key: &str, hours: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE sites SET consent_max_hours = $1 WHERE site_key = $2")
        .bind(hours)
        .bind(key)
        .execute(&db.write)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_enabled(db: &Conns, key: &str, enabled: bool) -> Result<bool> {
    let done = sqlx::query("UPDATE sites SET enabled = $1 WHERE site_key = $2")
        .bind(enabled)
        .bind(key)
        .execute(&db.write)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_partner(db: &Conns, key: &str, partner_id: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE sites SET partner_id = $1 WHERE site_key = $2")
        .bind(partner_id)
        .bind(key)
        .execute(&db.write)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn by_key(db: &Conns, key: &str) -> Result<Option<Site>> {
    let row = sqlx::query(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE site_key = $1"))
        .bind(key)
        .fetch_optional(&db.read)
        .await?;
    Ok(row.as_ref().map(site_from_row))
}

pub(crate) async fn by_secret_hash(db: &Conns, secret_hash: &str) -> Result<Option<Site>> {
    let row = sqlx::query(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE secret_hash = $1"))
        .bind(secret_hash)
        .fetch_optional(&db.read)
        .await?;
    Ok(row.as_ref().map(site_from_row))
}

pub(crate) async fn all(db: &Conns) -> Result<Vec<Site>> {
    let rows =
        sqlx::query(&format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY id")).fetch_all(&db.read).await?;
    Ok(rows.iter().map(site_from_row).collect())
}

pub(crate) async fn put_content(
    db: &Conns,
    site_id: i64,
    key: &str,
    title: &str,
    required: u128,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO content (site_id, content_key, title, required_work, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (site_id, content_key) DO UPDATE SET title = excluded.title, required_work = excluded.required_work",
    )
    .bind(site_id)
    .bind(key)
    .bind(title)
    .bind(WorkColumn(required))
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

pub(crate) async fn content(db: &Conns, site_id: i64) -> Result<Vec<Content>> {
    let rows = sqlx::query(
        "SELECT id, content_key, title, required_work FROM content WHERE site_id = $1 ORDER BY id",
    )
    .bind(site_id)
    .fetch_all(&db.read)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Content {
                id: r.get(0),
                key: r.get(1),
                title: r.get(2),
                required: r.try_get::<WorkColumn, _>(3)?.0,
            })
        })
        .collect()
}

/// The id of a site's content item by key.
pub(crate) async fn content_id(db: &Conns, site_key: &str, content_key: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT c.id FROM content c JOIN sites s ON s.id = c.site_id WHERE s.site_key = $1 AND c.content_key = $2",
    )
    .bind(site_key)
    .bind(content_key)
    .fetch_optional(&db.read)
    .await?)
}
