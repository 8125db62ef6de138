//! Sealed content: per item, numbered versions of (sealed key, nonce, ciphertext).

use anyhow::Result;

use super::{Conns, begin_write};

/// The next version number of a content item's seal.
pub(crate) async fn next_version(db: &Conns, content_id: i64) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM content_seals WHERE content_id = $1")
        .bind(content_id)
        .fetch_one(&db.read)
        .await?)
}

/// Inserts version `version` (false if another seal took that number first) and, with
/// `retire_previous`, retires the earlier versions in the same transaction.
pub(crate) async fn insert(
    db: &Conns,
    content_id: i64,
    version: i64,
    (sealed_key, nonce, ciphertext): (&[u8], &[u8], &[u8]),
    retire_previous: bool,
    now: i64,
) -> Result<bool> {
    let mut tx = begin_write(db).await?;
    let inserted = sqlx::query(
        "INSERT INTO content_seals (content_id, version, sealed_key, nonce, ciphertext, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (content_id, version) DO NOTHING",
    )
    .bind(content_id)
    .bind(version)
    .bind(sealed_key)
    .bind(nonce)
    .bind(ciphertext)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    if retire_previous {
        sqlx::query(
            "UPDATE content_seals SET retired_at = $1 WHERE content_id = $2 AND version < $3 AND retired_at IS NULL",
        )
        .bind(now)
        .bind(content_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The newest live (version, nonce, ciphertext) of a site's content item.
pub(crate) async fn current(
    db: &Conns,
    site_key: &str,
    content_key: &str,
) -> Result<Option<(i64, Vec<u8>, Vec<u8>)>> {
    Ok(sqlx::query_as(
        "SELECT cs.version, cs.nonce, cs.ciphertext FROM content_seals cs
         JOIN content c ON c.id = cs.content_id JOIN sites s ON s.id = c.site_id
         WHERE s.site_key = $1 AND c.content_key = $2 AND cs.retired_at IS NULL
         ORDER BY cs.version DESC LIMIT 1",
    )
    .bind(site_key)
    .bind(content_key)
    .fetch_optional(&db.read)
    .await?)
}

/// (version, sealed key) of every live version.
pub(crate) async fn live_keys(db: &Conns, content_id: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    Ok(sqlx::query_as(
        "SELECT version, sealed_key FROM content_seals WHERE content_id = $1 AND retired_at IS NULL ORDER BY version",
    )
    .bind(content_id)
    .fetch_all(&db.read)
    .await?)
}
