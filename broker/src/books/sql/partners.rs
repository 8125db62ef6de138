//! Partners.

use anyhow::Result;
use sqlx::Row;

use super::{Conns, Db};
use crate::books::Partner;

const COLUMNS: &str = "id, partner_key, name, commission_bps";

fn from_row(r: &<Db as sqlx::Database>::Row) -> Partner {
    Partner {
        id: r.get(0),
        key: r.get(1),
        name: r.get(2),
        commission_bps: r.get::<Option<i64>, _>(3).map(|b| b as u32),
    }
}

pub(crate) async fn insert(db: &Conns, key: &str, name: &str, secret_hash: &str, now: i64) -> Result<()> {
    sqlx::query("INSERT INTO partners (partner_key, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(key)
        .bind(name)
        .bind(secret_hash)
        .bind(now)
        .execute(&db.write)
        .await?;
    Ok(())
}

pub(crate) async fn all(db: &Conns) -> Result<Vec<Partner>> {
    let rows =
        sqlx::query(&format!("SELECT {COLUMNS} FROM partners ORDER BY id")).fetch_all(&db.read).await?;
    Ok(rows.iter().map(from_row).collect())
}

pub(crate) async fn by_key(db: &Conns, key: &str) -> Result<Option<Partner>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM partners WHERE partner_key = $1"))
        .bind(key)
        .fetch_optional(&db.read)
        .await?;
    Ok(row.as_ref().map(from_row))
}

pub(crate) async fn by_secret_hash(db: &Conns, secret_hash: &str) -> Result<Option<Partner>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM partners WHERE secret_hash = $1"))
        .bind(secret_hash)
        .fetch_optional(&db.read)
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Sets a partner's commission override; false if there is no such partner.
pub(crate) async fn set_commission(db: &Conns, key: &str, bps: Option<i64>) -> Result<bool> {
    let done = sqlx::query("UPDATE partners SET commission_bps = $1 WHERE partner_key = $2")
        .bind(bps)
        .bind(key)
        .execute(&db.write)
        .await?;
    Ok(done.rows_affected() == 1)
}
