//! Unlock-token signing keys (sealed seeds) and the single-use record of verified tokens.

use anyhow::Result;
use sqlx::Row;

use sqlx::Transaction;

use super::{Conns, Db, PG, begin_write};

/// The advisory lock key of signing-key changes ("MPKEYS" in ASCII).
const KEYS_LOCK: i64 = 0x4d50_4b45_5953;

/// A write transaction in which no other broker changes the signing keys: so that brokers
/// starting together on a new ledger make one first key, and two rotations do not leave two active.
async fn begin_keys(db: &Conns) -> Result<Transaction<'static, Db>> {
    let mut tx = begin_write(db).await?;
    if PG {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(KEYS_LOCK).execute(&mut *tx).await?;
    }
    Ok(tx)
}

/// (kid, sealed seed, created_at, retired_at), oldest first.
pub(crate) async fn sealed(db: &Conns) -> Result<Vec<(String, Vec<u8>, i64, Option<i64>)>> {
    let rows = sqlx::query(
        "SELECT kid, sealed_seed, created_at, retired_at FROM signing_keys
         WHERE sealed_seed IS NOT NULL ORDER BY created_at, kid",
    )
    .fetch_all(&db.read)
    .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
}

/// (kid, plaintext seed) of keys from before seeds were sealed.
pub(crate) async fn legacy(db: &Conns) -> Result<Vec<(String, Vec<u8>)>> {
    Ok(sqlx::query_as("SELECT kid, legacy_seed FROM signing_keys WHERE legacy_seed IS NOT NULL")
        .fetch_all(&db.read)
        .await?)
}

/// Replaces each legacy seed by its sealed form and retires that key.
pub(crate) async fn seal_legacy(db: &Conns, sealed: &[(String, Vec<u8>)], now: i64) -> Result<()> {
    let mut tx = begin_write(db).await?;
    for (kid, seed) in sealed {
        sqlx::query(
            "UPDATE signing_keys SET sealed_seed = $1, legacy_seed = NULL,
             retired_at = COALESCE(retired_at, $2) WHERE kid = $3",
        )
        .bind(seed)
        .bind(now)
        .bind(kid)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    super::settings::checkpoint(db).await
}

/// Inserts `kid` as the active key unless one is active; true if it was inserted.
pub(crate) async fn insert_if_none_active(
    db: &Conns,
    kid: &str,
    sealed_seed: &[u8],
    now: i64,
) -> Result<bool> {
    let mut tx = begin_keys(db).await?;
    let inserted = sqlx::query(
        "INSERT INTO signing_keys (kid, sealed_seed, created_at)
         SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)",
    )
    .bind(kid)
    .bind(sealed_seed)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(inserted.rows_affected() == 1)
}

/// Makes `kid` the active key and retires the others, in one transaction.
pub(crate) async fn rotate(db: &Conns, kid: &str, sealed_seed: &[u8], now: i64) -> Result<()> {
    let mut tx = begin_keys(db).await?;
    sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO signing_keys (kid, sealed_seed, created_at) VALUES ($1, $2, $3)")
        .bind(kid)
        .bind(sealed_seed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Records a verified token; false if it was recorded before (the unique key decides).
pub(crate) async fn consume_token(db: &Conns, jti: &str, site_id: i64, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO token_uses (jti, site_id, used_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(site_id)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(done.rows_affected() == 1)
}
