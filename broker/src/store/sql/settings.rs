//! Broker-wide settings and the operator's admin tokens.

use anyhow::Result;

use super::{Conns, PG};

pub(crate) async fn get(db: &Conns, name: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.read)
        .await?)
}

/// Inserts `name` unless it exists; true if this call created it (the first writer wins a race).
pub(crate) async fn insert_if_absent(db: &Conns, name: &str, value: &str) -> Result<bool> {
    let done =
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&db.write)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set(db: &Conns, name: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// Deletes settings whose names start with `prefix` and sort before `newest` (so a broker whose
/// clock is behind never deletes a newer day's value another broker made).
pub(crate) async fn delete_prefixed_before(db: &Conns, prefix: &str, newest: &str) -> Result<()> {
    sqlx::query("DELETE FROM settings WHERE name LIKE $1 AND name < $2")
        .bind(format!("{prefix}%"))
        .bind(newest)
        .execute(&db.write)
        .await?;
    Ok(())
}

/// Deletes a secret setting so that no copy stays readable in the file: on SQLite the page is
/// overwritten (`secure_delete`) and the WAL's older copy truncated away.
pub(crate) async fn erase(db: &Conns, name: &str) -> Result<()> {
    let erased = sqlx::query("DELETE FROM settings WHERE name = $1").bind(name).execute(&db.write).await?;
    if erased.rows_affected() > 0 {
        checkpoint(db).await?;
    }
    Ok(())
}

/// SQLite: moves the WAL into the database file and truncates it (erased data leaves the log).
pub(crate) async fn checkpoint(db: &Conns) -> Result<()> {
    if !PG {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&db.write).await?;
    }
    Ok(())
}

pub(crate) async fn add_admin_token(db: &Conns, token_hash: &str, label: &str, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO admin_tokens (token_hash, label, created_at) VALUES ($1, $2, $3)")
        .bind(token_hash)
        .bind(label)
        .bind(now)
        .execute(&db.write)
        .await?;
    Ok(())
}

pub(crate) async fn is_admin_token(db: &Conns, token_hash: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
        .bind(token_hash)
        .fetch_optional(&db.read)
        .await?;
    Ok(row.is_some())
}

pub(crate) async fn revoke_admin_tokens(db: &Conns, now: i64) -> Result<u64> {
    let done = sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE revoked_at IS NULL")
        .bind(now)
        .execute(&db.write)
        .await?;
    Ok(done.rows_affected())
}

pub(crate) async fn admin_tokens_created(db: &Conns) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens").fetch_one(&db.read).await?)
}
