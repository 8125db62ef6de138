//! Consumer rewards (store layer): every credit is one expected hash of a user's
//! verified work at a site; users spend them on the publisher's offers (a content unlock, N days of
//! a subscription, app tokens). Earned credits are a running total the share committer keeps;
//! spends are append-only rows; `ledger check` recomputes both from their sources.

use anyhow::Result;

use super::column::WorkColumn;
use super::{Ledger, StoreError, is_valid_content_key, is_valid_label, now_ms, on_backend, postgres, sqlite};

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
    ) -> Result<(), StoreError> {
        if !is_valid_content_key(key) {
            return Err(StoreError::Invalid("bad_offer_id"));
        }
        if !is_valid_label(title) {
            return Err(StoreError::Invalid("bad_title"));
        }
        if price == 0 {
            return Err(StoreError::Invalid("bad_price"));
        }
        let (kind_name, details): (&str, (Option<&str>, Option<i64>)) = match kind {
            OfferKind::Content { content } => ("content", (Some(content), None)),
            OfferKind::Subscription { days } => ("subscription", (None, Some(i64::from(*days)))),
            OfferKind::Tokens { tokens } => (
                "tokens",
                (None, Some(i64::try_from(*tokens).map_err(|_| StoreError::Invalid("bad_amount"))?)),
            ),
        };
        Ok(on_backend!(self, rewards::put_offer(site_id, key, kind_name, title, price, details, now_ms()))?)
    }

    pub async fn offers(&self, site_id: i64) -> Result<Vec<Offer>> {
        let rows = on_backend!(self, rewards::offers(site_id))?;
        Ok(rows
            .into_iter()
            .map(|(id, key, kind, title, price, content, amount)| {
                let kind = match kind.as_str() {
                    "content" => OfferKind::Content { content: content.unwrap_or_default() },
                    "subscription" => OfferKind::Subscription { days: amount.unwrap_or(0) as u32 },
                    _ => OfferKind::Tokens { tokens: amount.unwrap_or(0) as u64 },
                };
                Offer { id, key, title, price: minepass::protocol::Work(price.0), kind }
            })
            .collect())
    }

    /// Spends a user's credits on `offer` (one of the site's), recording the grant token's id;
    /// returns the credits left. Concurrent spends of one balance, through any brokers, never
    /// overspend (the database serialises them).
    pub async fn spend(
        &self,
        site_id: i64,
        user: &str,
        offer: &Offer,
        jti: &str,
    ) -> Result<Result<u128, InsufficientCredits>> {
        on_backend!(self, rewards::spend(site_id, user, offer, jti, now_ms()))
    }
}

/// What `ledger check` finds wrong with the users' running totals, given each user's earned work
/// as the share log (raw shares and rollups) has it, every spend's (user, amount) and every
/// total's (user, earned, spent), read in one snapshot.
pub(crate) fn credit_problems(
    earned: &std::collections::HashMap<i64, u128>,
    spends: &[(i64, WorkColumn)],
    totals: &[(i64, WorkColumn, WorkColumn)],
) -> Vec<String> {
    let mut spent: std::collections::HashMap<i64, u128> = Default::default();
    for (user, price) in spends {
        *spent.entry(*user).or_default() += price.0;
    }
    let mut problems = Vec::new();
    for (user, e, s) in totals {
        let (e, s) = (e.0, s.0);
        if e != earned.get(user).copied().unwrap_or(0) {
            problems.push(format!("user {user}: earned credits {e} differ from the share log"));
        }
        if s != spent.get(user).copied().unwrap_or(0) || s > e {
            problems.push(format!("user {user}: spent credits {s} differ from the spends"));
        }
    }
    problems
}
