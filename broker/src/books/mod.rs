//! The books: partners, periods of earnings, and double-entry, append-only accounts in satoshis (the
//! money math is in [`settlement`], the statements in `sql/`, compiled per backend like the
//! store's; [`reports`] holds the dashboards' read models).
//!
//! Accounts (debit positive; every entry's postings sum to zero):
//! - `assets:wallet` — what the pool paid (recorded earnings), less payouts;
//! - `assets:receivable` — estimated earnings (PPS), not yet confirmed by the pool;
//! - `income:mining` — earnings until a settlement splits them;
//! - `income:commission` — the operator's commission;
//! - `partner:<id>:payable` — what the operator owes a partner (carried, or due as a payout).
//!
//! Each entry stores a hash chained over every earlier entry and its postings; `Ledger::check`
//! recomputes it, so any edited, inserted or removed row is found even if the append-only triggers
//! were bypassed, and it re-verifies every share of the share log.

mod check;
mod postgres;
pub mod reports;
pub mod retention;
pub mod settlement;
mod sqlite;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::store::{Ledger, StoreError, hash_secret, now_ms, on_backend, random_token};
use settlement::{PartnerInput, Settlement};

/// The commission when neither a partner override nor a configured default exists: 30 %.
pub const DEFAULT_COMMISSION_BPS: u32 = 3000;
/// Work of sites without a partner belongs to the operator: a pseudo-partner at 100 % commission.
pub const OPERATOR: i64 = 0;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Partner {
    pub id: i64,
    pub key: String,
    pub name: String,
    /// `None`: the global default applies.
    pub commission_bps: Option<u32>,
}

/// Credentials of a new partner: the dashboard key is shown once and stored hashed.
#[derive(Debug, Clone)]
pub struct NewPartner {
    pub key: String,
    pub secret: String,
}

/// Where a period's earnings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// What the pool actually paid.
    Recorded,
    /// The PPS estimate from pool-accepted work: not money received.
    Estimate,
}

impl Source {
    /// From its stored form (the schema allows only the two).
    pub(crate) fn parse(text: &str) -> Source {
        if text == "estimate" { Source::Estimate } else { Source::Recorded }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Recorded => "recorded",
            Source::Estimate => "estimate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Period {
    pub id: i64,
    pub name: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub earnings_sats: u64,
    pub source: Source,
    pub settled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Payout {
    pub id: i64,
    pub partner_key: String,
    pub partner_name: String,
    pub period: String,
    pub amount_sats: u64,
    pub paid: bool,
}

/// What `ledger check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub entries: u64,
    pub postings: u64,
    /// Raw shares re-verified (the retained window of the share log).
    pub shares: u64,
    pub pool_submissions: u64,
    /// Days of shares rolled up by retention, and the shares they replaced.
    pub rolled_up_days: u64,
    pub rolled_up_shares: u64,
    /// Empty when everything holds.
    pub problems: Vec<String>,
}

/// Periods are named by the operator ("2026-11", "week-47"): 1-64 of `[A-Za-z0-9._-]`.
pub fn is_valid_period_name(name: &str) -> bool {
    crate::store::is_valid_content_key(name)
}

/// A time from the command line or the API: `YYYY-MM-DD` (midnight UTC) or Unix milliseconds.
pub fn parse_time(text: &str) -> Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts[..] else { bail!("{text:?} is neither YYYY-MM-DD nor Unix ms") };
    let (year, month, day): (i64, i64, i64) = (year.parse()?, month.parse()?, day.parse()?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        bail!("{text:?} is not a date");
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Ok((era * 146_097 + doe - 719_468) * 86_400_000)
}

/// Payouts as CSV for a payment run: `id,partner,name,period,amount_sats`.
pub fn payouts_csv(payouts: &[Payout]) -> String {
    let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let mut out = String::from("id,partner,name,period,amount_sats\n");
    for p in payouts {
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            p.id,
            p.partner_key,
            quote(&p.partner_name),
            p.period,
            p.amount_sats
        ));
    }
    out
}

pub(crate) fn payable(partner: i64) -> String {
    format!("partner:{partner}:payable")
}

/// The chain hash of one entry: SHA-256 over the previous chain and every field, length-delimited
/// (no two different entries serialise alike).
pub(crate) fn chain_hash(previous: &str, entry: &EntryRow, postings: &[(String, i64)]) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(previous.as_bytes());
    field(&entry.id.to_le_bytes());
    field(entry.kind.as_bytes());
    field(&entry.period_id.unwrap_or(-1).to_le_bytes());
    field(&entry.reverses.unwrap_or(-1).to_le_bytes());
    field(entry.memo.as_bytes());
    field(&entry.created_at.to_le_bytes());
    for (account, amount) in postings {
        field(account.as_bytes());
        field(&amount.to_le_bytes());
    }
    hex::encode(h.finalize())
}

pub(crate) struct EntryRow {
    pub id: i64,
    pub kind: String,
    pub period_id: Option<i64>,
    pub reverses: Option<i64>,
    pub memo: String,
    pub created_at: i64,
}

pub(crate) fn sats(value: u64) -> Result<i64> {
    i64::try_from(value).context("amount over i64::MAX satoshis")
}

impl Ledger {
    pub async fn add_partner(&self, name: &str) -> Result<NewPartner, StoreError> {
        if !crate::store::is_valid_label(name) {
            return Err(StoreError::Invalid("bad_name"));
        }
        let partner = NewPartner { key: random_token("partner_", 12), secret: random_token("pkey_", 32) };
        on_backend!(self, partners::insert(&partner.key, name, &hash_secret(&partner.secret), now_ms()))?;
        Ok(partner)
    }

    pub async fn partners(&self) -> Result<Vec<Partner>> {
        on_backend!(self, partners::all())
    }

    pub async fn partner_by_key(&self, key: &str) -> Result<Option<Partner>> {
        on_backend!(self, partners::by_key(key))
    }

    /// The partner whose dashboard key this is (compared by SHA-256).
    pub async fn partner_by_secret(&self, secret: &str) -> Result<Option<Partner>> {
        on_backend!(self, partners::by_secret_hash(&hash_secret(secret)))
    }

    /// Sets a partner's commission override (`None`: back to the default).
    pub async fn set_partner_commission(&self, key: &str, bps: Option<u32>) -> Result<(), StoreError> {
        if bps.is_some_and(|b| u64::from(b) > settlement::BPS_DENOMINATOR) {
            return Err(StoreError::Invalid("bad_commission"));
        }
        if !on_backend!(self, partners::set_commission(key, bps.map(i64::from)))? {
            return Err(StoreError::NotFound("partner"));
        }
        Ok(())
    }

    /// The global default commission in basis points.
    pub async fn default_commission(&self) -> Result<u32> {
        match self.setting("commission_bps").await? {
            Some(text) => text.parse().context("corrupt commission_bps setting"),
            None => Ok(DEFAULT_COMMISSION_BPS),
        }
    }

    pub async fn set_default_commission(&self, bps: u32) -> Result<(), StoreError> {
        if u64::from(bps) > settlement::BPS_DENOMINATOR {
            return Err(StoreError::Invalid("bad_commission"));
        }
        Ok(self.set_setting("commission_bps", &bps.to_string()).await?)
    }

    /// Gives a site to a partner (its pool-accepted work then counts for the partner).
    pub async fn assign_site(&self, site_key: &str, partner_key: &str) -> Result<(), StoreError> {
        let partner = self.partner_by_key(partner_key).await?.ok_or(StoreError::NotFound("partner"))?;
        self.set_site_partner(site_key, partner.id).await
    }

    /// Pool-accepted work per partner (`OPERATOR` for sites without one) over answers in [from, to).
    pub async fn pool_work_by_partner(&self, from: i64, to: i64) -> Result<Vec<(i64, u128)>> {
        on_backend!(self, periods::pool_work_by_partner(from, to))
    }

    /// Records a period's earnings: what the pool paid (`Recorded`, into the wallet) or an estimate
    /// (`Estimate`, a receivable). One entry: the asset against `income:mining`.
    pub async fn record_period(
        &self,
        name: &str,
        from: i64,
        to: i64,
        earnings: u64,
        source: Source,
    ) -> Result<Period, StoreError> {
        if !is_valid_period_name(name) {
            return Err(StoreError::Invalid("bad_period_name"));
        }
        if from >= to {
            return Err(StoreError::Invalid("bad_time"));
        }
        if i64::try_from(earnings).is_err() {
            return Err(StoreError::Invalid("bad_sats"));
        }
        // The unique name decides between two recordings of one period.
        let id = on_backend!(self, periods::record(name, (from, to), earnings, source)).map_err(|error| {
            if crate::store::is_unique_violation(&error) {
                StoreError::Conflict("period_exists")
            } else {
                StoreError::Internal(error)
            }
        })?;
        Ok(Period {
            id,
            name: name.to_owned(),
            starts_at: from,
            ends_at: to,
            earnings_sats: earnings,
            source,
            settled: false,
        })
    }

    pub async fn periods(&self) -> Result<Vec<Period>> {
        on_backend!(self, periods::all())
    }

    /// Balances of every account, in satoshis.
    pub async fn balances(&self) -> Result<Vec<(String, i64)>> {
        on_backend!(self, periods::balances())
    }

    /// Settles a period: its earnings split by each partner's pool-accepted work in the period, the
    /// commission taken, payouts made due where `carried + net ≥ threshold`. One entry, and a
    /// payout row per payout. A period settles once (unless its settlement was reversed), decided
    /// under the books' lock.
    pub async fn settle_period(&self, name: &str, threshold: u64) -> Result<Settlement, BooksError> {
        let Some(period) = self.periods().await?.into_iter().find(|p| p.name == name) else {
            return Err(BooksError::NotFound);
        };
        let default_bps = self.default_commission().await?;
        let partners = self.partners().await?;
        let work = self.pool_work_by_partner(period.starts_at, period.ends_at).await?;
        // A partner without work this period is not in the split: its carried balance did not
        // change, so it cannot have crossed the threshold; it is paid when it next earns.
        let inputs: Vec<PartnerInput> = work
            .iter()
            .map(|&(partner, work)| {
                let commission_bps = if partner == OPERATOR {
                    settlement::BPS_DENOMINATOR as u32
                } else {
                    partners
                        .iter()
                        .find(|p| p.id == partner)
                        .and_then(|p| p.commission_bps)
                        .unwrap_or(default_bps)
                };
                // Carried balances are read under the books' lock.
                PartnerInput { partner, work, commission_bps, carried: 0 }
            })
            .collect();
        on_backend!(self, periods::settle(&period, &inputs, threshold))
    }

    /// Payouts, oldest first (`unpaid_only`: the ones to pay).
    pub async fn payouts(&self, unpaid_only: bool) -> Result<Vec<Payout>> {
        on_backend!(self, payouts::select(unpaid_only, None))
    }

    /// One payout.
    pub async fn payout(&self, id: i64) -> Result<Option<Payout>> {
        Ok(on_backend!(self, payouts::select(false, Some(id)))?.pop())
    }

    /// Records that payout `id` was paid from the wallet.
    pub async fn mark_paid(&self, id: i64) -> Result<(), BooksError> {
        on_backend!(self, payouts::mark_paid(id))
    }

    /// A correction: a new entry with every posting of entry `id` negated.
    pub async fn reverse_entry(&self, id: i64, memo: &str) -> Result<i64, BooksError> {
        on_backend!(self, payouts::reverse(id, memo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_utc_days_or_milliseconds() {
        assert_eq!(parse_time("1970-01-01").unwrap(), 0);
        assert_eq!(parse_time("2026-11-25").unwrap(), 1_795_564_800_000);
        assert_eq!(parse_time("2000-03-01").unwrap(), 951_868_800_000);
        assert_eq!(parse_time("1234").unwrap(), 1234);
        for bad in ["2026-13-01", "yesterday", "2026-11"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_quotes_names() {
        let payout = Payout {
            id: 1,
            partner_key: "partner_1".into(),
            partner_name: "A \"quoted\", name".into(),
            period: "p".into(),
            amount_sats: 5,
            paid: false,
        };
        assert_eq!(
            payouts_csv(&[payout]),
            "id,partner,name,period,amount_sats\n1,partner_1,\"A \"\"quoted\"\", name\",p,5\n"
        );
    }
}

/// Why the books refused an operation. Each has one API code (`http/api.rs`); the CLI prints it.
#[derive(Debug)]
pub enum BooksError {
    /// No such period, payout or entry.
    NotFound,
    /// The period's settlement is on the books already (decided inside the settling transaction).
    AlreadySettled,
    /// The payout is marked paid already (decided by the marking update itself).
    AlreadyPaid,
    /// The entry has a reversal already.
    AlreadyReversed,
    /// The entry cannot be reversed, and why.
    NotReversible(&'static str),
    /// The database or a value in it failed.
    Internal(anyhow::Error),
}

impl std::fmt::Display for BooksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BooksError::NotFound => f.write_str("not found"),
            BooksError::AlreadySettled => f.write_str("the period is already settled"),
            BooksError::AlreadyPaid => f.write_str("the payout is already paid"),
            BooksError::AlreadyReversed => f.write_str("the entry is already reversed"),
            BooksError::NotReversible(why) => write!(f, "the entry cannot be reversed: {why}"),
            BooksError::Internal(error) => write!(f, "{error:#}"),
        }
    }
}

impl std::error::Error for BooksError {}

impl From<anyhow::Error> for BooksError {
    fn from(error: anyhow::Error) -> BooksError {
        BooksError::Internal(error)
    }
}

impl From<sqlx::Error> for BooksError {
    fn from(error: sqlx::Error) -> BooksError {
        BooksError::Internal(error.into())
    }
}
