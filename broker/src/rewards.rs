//! Consumer rewards (part of the ledger layer): every credit is one expected hash of a user's
//! verified work at a site; users spend them on the publisher's offers (a content unlock, N days of
//! a subscription, app tokens). Earned credits are a running total the share committer keeps;
//! spends are append-only rows; `ledger check` recomputes both from their sources.

use anyhow::{Result, bail};
use sqlx::Row;

use crate::ledger::{Ledger, is_valid_content_key, is_valid_label, now_ms, parse_work};

/// What an offer gives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OfferKind {
    /// Unlocks a content item.
    Content { content: String },
    /// N days of the publisher's subscription.
    Subscription { days: u32 },
    /// N of the app's tokens.
    Tokens { tokens: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Offer {
    #[serde(skip)]
    pub id: i64,
    pub key: String,
    pub title: String,
    /// Credits (expected hashes), a decimal string on the wire.
    pub price: minepass::protocol::Work,
    #[serde(flatten)]
    pub kind: OfferKind,
}

/// A spend refused because the user has fewer credits than the price; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsufficientCredits {
    /// The credits the user has.
    pub credits: u128,
}

impl Ledger {
    /// Adds or replaces an offer of a site.
    pub async fn put_offer(
        &self,
        site_id: i64,
        key: &str,
        title: &str,
        price: u128,
        kind: &OfferKind,
    ) -> Result<()> {
        if !is_valid_content_key(key) || !is_valid_label(title) || price == 0 {
            bail!("an offer needs an id of [A-Za-z0-9._-], a title and a positive price");
        }
        let (kind_name, content, amount): (&str, Option<&str>, Option<i64>) = match kind {
            OfferKind::Content { content } => ("content", Some(content), None),
            OfferKind::Subscription { days } => ("subscription", None, Some(i64::from(*days))),
            OfferKind::Tokens { tokens } => ("tokens", None, Some(i64::try_from(*tokens)?)),
        };
        sqlx::query(
            "INSERT INTO offers (site_id, offer_key, kind, title, price, content, amount, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (site_id, offer_key) DO UPDATE SET kind = excluded.kind, title = excluded.title,
                 price = excluded.price, content = excluded.content, amount = excluded.amount",
        )
        .bind(site_id)
        .bind(key)
        .bind(kind_name)
        .bind(title)
        .bind(price.to_string())
        .bind(content)
        .bind(amount)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn offers(&self, site_id: i64) -> Result<Vec<Offer>> {
        let rows =
            sqlx::query("SELECT id, offer_key, kind, title, price, content, amount FROM offers WHERE site_id = ? ORDER BY id")
                .bind(site_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let amount: Option<i64> = r.get(6);
                let kind = match r.get::<&str, _>(2) {
                    "content" => {
                        OfferKind::Content { content: r.get::<Option<String>, _>(5).unwrap_or_default() }
                    }
                    "subscription" => OfferKind::Subscription { days: amount.unwrap_or(0) as u32 },
                    _ => OfferKind::Tokens { tokens: amount.unwrap_or(0) as u64 },
                };
                Ok(Offer {
                    id: r.get(0),
                    key: r.get(1),
                    title: r.get(3),
                    price: minepass::protocol::Work(parse_work(r.get(4))?),
                    kind,
                })
            })
            .collect()
    }

    /// Spends a user's credits on `offer` (one of the site's), recording the grant token's id;
    /// returns the credits left. Atomic with the share committer (both write through the one writer).
    pub async fn spend(
        &self,
        site_id: i64,
        user: &str,
        offer: &Offer,
        jti: &str,
    ) -> Result<Result<u128, InsufficientCredits>> {
        let mut tx = self.writer.begin().await?;
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT u.id, w.earned, w.spent FROM users u JOIN user_work w ON w.user_id = u.id
             WHERE u.site_id = ? AND u.external_id = ?",
        )
        .bind(site_id)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id, earned, spent)) = row else {
            return Ok(Err(InsufficientCredits { credits: 0 }));
        };
        let (earned, spent) = (parse_work(&earned)?, parse_work(&spent)?);
        let credits = earned.saturating_sub(spent);
        if credits < offer.price.0 {
            return Ok(Err(InsufficientCredits { credits }));
        }
        sqlx::query(
            "INSERT INTO credit_spends (user_id, offer_id, price, jti, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user_id)
        .bind(offer.id)
        .bind(offer.price.0.to_string())
        .bind(jti)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE user_work SET spent = ? WHERE user_id = ?")
            .bind((spent + offer.price.0).to_string())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(credits - offer.price.0))
    }

    /// Checks every user's running totals against the share log and the spends.
    pub(crate) async fn check_credits(&self, problems: &mut Vec<String>) -> Result<()> {
        let mut earned: std::collections::HashMap<i64, u128> = Default::default();
        for row in sqlx::query("SELECT user_id, work FROM shares").fetch_all(&self.pool).await? {
            *earned.entry(row.get(0)).or_default() += parse_work(row.get(1)).unwrap_or(0);
        }
        let mut spent: std::collections::HashMap<i64, u128> = Default::default();
        for row in sqlx::query("SELECT user_id, price FROM credit_spends").fetch_all(&self.pool).await? {
            *spent.entry(row.get(0)).or_default() += parse_work(row.get(1)).unwrap_or(0);
        }
        for row in sqlx::query("SELECT user_id, earned, spent FROM user_work").fetch_all(&self.pool).await? {
            let user: i64 = row.get(0);
            let (e, s) =
                (parse_work(row.get(1)).unwrap_or(u128::MAX), parse_work(row.get(2)).unwrap_or(u128::MAX));
            if e != earned.get(&user).copied().unwrap_or(0) {
                problems.push(format!("user {user}: earned credits {e} differ from the share log"));
            }
            if s != spent.get(&user).copied().unwrap_or(0) || s > e {
                problems.push(format!("user {user}: spent credits {s} differ from the spends"));
            }
        }
        Ok(())
    }
}
