//! Offers and credit spends.

use anyhow::Result;

use super::{Conns, PG, begin_write};
use crate::store::column::WorkColumn;
use crate::store::rewards::{InsufficientCredits, Offer};

/// An offer row: (id, key, kind, title, price, content, amount).
pub(crate) type OfferRow = (i64, String, String, String, WorkColumn, Option<String>, Option<i64>);

#[allow(clippy::too_many_arguments)]
pub(crate) async fn put_offer(
    db: &Conns,
    site_id: i64,
    key: &str,
    kind: &str,
    title: &str,
    price: u128,
    (content, amount): (Option<&str>, Option<i64>),
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO offers (site_id, offer_key, kind, title, price, content, amount, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (site_id, offer_key) DO UPDATE SET kind = excluded.kind, title = excluded.title,
             price = excluded.price, content = excluded.content, amount = excluded.amount",
    )
    .bind(site_id)
    .bind(key)
    .bind(kind)
    .bind(title)
    .bind(WorkColumn(price))
    .bind(content)
    .bind(amount)
    .bind(now)
    .execute(&db.write)
    .await?;
    Ok(())
}

pub(crate) async fn offers(db: &Conns, site_id: i64) -> Result<Vec<OfferRow>> {
    Ok(sqlx::query_as(
        "SELECT id, offer_key, kind, title, price, content, amount FROM offers WHERE site_id = $1 ORDER BY id",
    )
    .bind(site_id)
    .fetch_all(&db.read)
    .await?)
}

/// Spends a user's credits on `offer`; the balance row is locked (PostgreSQL) or the write lock
/// held (SQLite) from the read to the update, so concurrent spends through any brokers never
/// overspend: the second waits and then sees the first's spend.
pub(crate) async fn spend(
    db: &Conns,
    site_id: i64,
    user: &str,
    offer: &Offer,
    jti: &str,
    now: i64,
) -> Result<Result<u128, InsufficientCredits>> {
    let mut tx = begin_write(db).await?;
    let Some((user_id, earned, spent)) = super::shares::user_credits_in(&mut tx, site_id, user).await? else {
        return Ok(Err(InsufficientCredits { credits: 0 }));
    };
    let credits = earned.saturating_sub(spent);
    if credits < offer.price.0 {
        return Ok(Err(InsufficientCredits { credits }));
    }
    sqlx::query(
        "INSERT INTO credit_spends (user_id, offer_id, price, jti, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(offer.id)
    .bind(WorkColumn(offer.price.0))
    .bind(jti)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let update = if PG {
        "UPDATE user_work SET spent = spent + $1 WHERE user_id = $2"
    } else {
        "UPDATE user_work SET spent = $1 WHERE user_id = $2"
    };
    let amount = if PG { offer.price.0 } else { spent + offer.price.0 };
    sqlx::query(update).bind(WorkColumn(amount)).bind(user_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Ok(credits - offer.price.0))
}
