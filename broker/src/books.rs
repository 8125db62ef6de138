//! The books: partners, periods of earnings, and double-entry, append-only accounts in satoshis
//! (part of the ledger layer; the math is in [`crate::settlement`]).
//!
//! Accounts (debit positive; every entry's postings sum to zero):
//! - `assets:wallet` — what the pool paid (recorded earnings), less payouts;
//! - `assets:receivable` — estimated earnings (PPS), not yet confirmed by the pool;
//! - `income:mining` — earnings until a settlement splits them;
//! - `income:commission` — the operator's commission;
//! - `partner:<id>:payable` — what the operator owes a partner (carried, or due as a payout).
//!
//! Each entry stores a hash chained over every earlier entry and its postings; [`Ledger::check`]
//! recomputes it, so any edited, inserted or removed row is found even if the append-only triggers
//! were bypassed, and it re-verifies every share of the share log.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use minepass::baseline::sha256d;
use minepass::target::Target;
use sha2::{Digest, Sha256};
use sqlx::{Row, Sqlite, Transaction};

use crate::ledger::{Ledger, hash_secret, now_ms, parse_work, random_token};
use crate::settlement::{self, PartnerInput, Settlement};

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
    fn parse(text: &str) -> Source {
        if text == "estimate" { Source::Estimate } else { Source::Recorded }
    }

    fn as_str(self) -> &'static str {
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
    pub shares: u64,
    pub pool_submissions: u64,
    /// Empty when everything holds.
    pub problems: Vec<String>,
}

/// Periods are named by the operator ("2026-11", "week-47"): 1-64 of `[A-Za-z0-9._-]`.
pub fn is_valid_period_name(name: &str) -> bool {
    crate::ledger::is_valid_content_key(name)
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

/// Whether period `p` has a settlement that was not reversed (an SQL expression).
const SETTLED: &str = "EXISTS (SELECT 1 FROM entries e WHERE e.period_id = p.id AND e.kind = 'settlement'
    AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.reverses = e.id))";

fn payable(partner: i64) -> String {
    format!("partner:{partner}:payable")
}

/// The chain hash of one entry: SHA-256 over the previous chain and every field, length-delimited
/// (no two different entries serialise alike).
fn chain_hash(previous: &str, entry: &EntryRow, postings: &[(String, i64)]) -> String {
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

struct EntryRow {
    id: i64,
    kind: String,
    period_id: Option<i64>,
    reverses: Option<i64>,
    memo: String,
    created_at: i64,
}

/// Appends one balanced entry with its postings; returns its id.
async fn append_entry(
    tx: &mut Transaction<'_, Sqlite>,
    kind: &str,
    period_id: Option<i64>,
    reverses: Option<i64>,
    memo: &str,
    postings: &[(String, i64)],
) -> Result<i64> {
    let sum: i128 = postings.iter().map(|(_, a)| i128::from(*a)).sum();
    if sum != 0 {
        bail!("unbalanced entry ({sum} sats)");
    }
    let previous: Option<(i64, String)> =
        sqlx::query_as("SELECT id, chain FROM entries ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    let (previous_id, previous_chain) = previous.unwrap_or((0, String::new()));
    let entry = EntryRow {
        id: previous_id + 1,
        kind: kind.to_owned(),
        period_id,
        reverses,
        memo: memo.to_owned(),
        created_at: now_ms(),
    };
    let chain = chain_hash(&previous_chain, &entry, postings);
    sqlx::query("INSERT INTO entries (id, kind, period_id, reverses, memo, created_at, chain) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(entry.id)
        .bind(&entry.kind)
        .bind(entry.period_id)
        .bind(entry.reverses)
        .bind(&entry.memo)
        .bind(entry.created_at)
        .bind(chain)
        .execute(&mut **tx)
        .await?;
    for (account, amount) in postings {
        sqlx::query("INSERT INTO postings (entry_id, account, amount) VALUES (?, ?, ?)")
            .bind(entry.id)
            .bind(account)
            .bind(amount)
            .execute(&mut **tx)
            .await?;
    }
    Ok(entry.id)
}

fn sats(value: u64) -> Result<i64> {
    i64::try_from(value).context("amount over i64::MAX satoshis")
}

impl Ledger {
    pub async fn add_partner(&self, name: &str) -> Result<NewPartner> {
        if !crate::ledger::is_valid_label(name) {
            bail!("a partner name is 1-200 printable characters");
        }
        let partner = NewPartner { key: random_token("partner_", 12), secret: random_token("pkey_", 32) };
        sqlx::query("INSERT INTO partners (partner_key, name, secret_hash, created_at) VALUES (?, ?, ?, ?)")
            .bind(&partner.key)
            .bind(name)
            .bind(hash_secret(&partner.secret))
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(partner)
    }

    pub async fn partners(&self) -> Result<Vec<Partner>> {
        let rows = sqlx::query("SELECT id, partner_key, name, commission_bps FROM partners ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(partner_from_row).collect())
    }

    pub async fn partner_by_key(&self, key: &str) -> Result<Option<Partner>> {
        let row =
            sqlx::query("SELECT id, partner_key, name, commission_bps FROM partners WHERE partner_key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(partner_from_row))
    }

    /// The partner whose dashboard key this is (compared by SHA-256).
    pub async fn partner_by_secret(&self, secret: &str) -> Result<Option<Partner>> {
        let row =
            sqlx::query("SELECT id, partner_key, name, commission_bps FROM partners WHERE secret_hash = ?")
                .bind(hash_secret(secret))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(partner_from_row))
    }

    /// Sets a partner's commission override (`None`: back to the default).
    pub async fn set_partner_commission(&self, key: &str, bps: Option<u32>) -> Result<()> {
        if bps.is_some_and(|b| u64::from(b) > settlement::BPS_DENOMINATOR) {
            bail!("commission is 0-10000 basis points");
        }
        let done = sqlx::query("UPDATE partners SET commission_bps = ? WHERE partner_key = ?")
            .bind(bps)
            .bind(key)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            bail!("no partner with key {key}");
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

    pub async fn set_default_commission(&self, bps: u32) -> Result<()> {
        if u64::from(bps) > settlement::BPS_DENOMINATOR {
            bail!("commission is 0-10000 basis points");
        }
        self.set_setting("commission_bps", &bps.to_string()).await
    }

    /// Gives a site to a partner (its pool-accepted work then counts for the partner).
    pub async fn assign_site(&self, site_key: &str, partner_key: &str) -> Result<()> {
        let Some(partner) = self.partner_by_key(partner_key).await? else {
            bail!("no partner with key {partner_key}")
        };
        let done = sqlx::query("UPDATE sites SET partner_id = ? WHERE site_key = ?")
            .bind(partner.id)
            .bind(site_key)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            bail!("no site with key {site_key}");
        }
        Ok(())
    }

    /// Pool-accepted work per partner (`OPERATOR` for sites without one) over answers in [from, to).
    pub async fn pool_work_by_partner(&self, from: i64, to: i64) -> Result<Vec<(i64, u128)>> {
        let rows = sqlx::query(
            "SELECT COALESCE(st.partner_id, 0), p.pool_work FROM pool_answers a
             JOIN pool_submissions p ON p.share_id = a.share_id
             JOIN shares s ON s.id = a.share_id JOIN sites st ON st.id = s.site_id
             WHERE a.outcome = 'accepted' AND a.answered_at >= ? AND a.answered_at < ?",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut work: HashMap<i64, u128> = HashMap::new();
        for row in &rows {
            *work.entry(row.get(0)).or_default() += parse_work(row.get(1))?;
        }
        let mut work: Vec<(i64, u128)> = work.into_iter().collect();
        work.sort();
        Ok(work)
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
    ) -> Result<Period> {
        if !is_valid_period_name(name) {
            bail!("a period name is 1-64 of [A-Za-z0-9._-]");
        }
        if from >= to {
            bail!("a period must start before it ends");
        }
        let mut tx = self.writer.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO periods (name, starts_at, ends_at, earnings_sats, source, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(from)
        .bind(to)
        .bind(sats(earnings)?)
        .bind(source.as_str())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .with_context(|| format!("period {name} (names are unique)"))?;
        let asset = match source {
            Source::Recorded => "assets:wallet",
            Source::Estimate => "assets:receivable",
        };
        let memo = format!("{} earnings of period {name}", source.as_str());
        let postings = [(asset.to_owned(), sats(earnings)?), ("income:mining".to_owned(), -sats(earnings)?)];
        append_entry(&mut tx, "earnings", Some(id), None, &memo, &postings).await?;
        tx.commit().await?;
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
        let rows = sqlx::query(&format!(
            "SELECT p.id, p.name, p.starts_at, p.ends_at, p.earnings_sats, p.source, {SETTLED}
                 FROM periods p ORDER BY p.starts_at, p.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Period {
                id: r.get(0),
                name: r.get(1),
                starts_at: r.get(2),
                ends_at: r.get(3),
                earnings_sats: r.get::<i64, _>(4) as u64,
                source: Source::parse(r.get(5)),
                settled: r.get(6),
            })
            .collect())
    }

    /// Balances of every account, in satoshis.
    pub async fn balances(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT account, SUM(amount) FROM postings GROUP BY account ORDER BY account")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Settles a period: its earnings split by each partner's pool-accepted work in the period, the
    /// commission taken, payouts made due where `carried + net ≥ threshold`. One entry, and a
    /// payout row per payout. A period settles once (unless its settlement was reversed).
    pub async fn settle_period(&self, name: &str, threshold: u64) -> Result<Settlement, BooksError> {
        let Some(period) = self.periods().await?.into_iter().find(|p| p.name == name) else {
            return Err(BooksError::NotFound);
        };
        let default_bps = self.default_commission().await?;
        let partners = self.partners().await?;
        let work = self.pool_work_by_partner(period.starts_at, period.ends_at).await?;
        let mut tx = self.writer.begin().await?;
        // Checked inside the transaction: two settlements of one period cannot both pass.
        let settled: bool = sqlx::query_scalar(&format!("SELECT {SETTLED} FROM periods p WHERE p.id = ?"))
            .bind(period.id)
            .fetch_one(&mut *tx)
            .await?;
        if settled {
            return Err(BooksError::AlreadySettled);
        }
        let mut inputs = Vec::new();
        for (partner, work) in &work {
            let (bps, carried) = if *partner == OPERATOR {
                (settlement::BPS_DENOMINATOR as u32, 0)
            } else {
                let bps = partners
                    .iter()
                    .find(|p| p.id == *partner)
                    .and_then(|p| p.commission_bps)
                    .unwrap_or(default_bps);
                (bps, carried(&mut tx, *partner).await?)
            };
            inputs.push(PartnerInput { partner: *partner, work: *work, commission_bps: bps, carried });
        }
        // A partner without work this period is not in the split: its carried balance did not
        // change, so it cannot have crossed the threshold; it is paid when it next earns.
        let result =
            settlement::settle(period.earnings_sats, &inputs, threshold).map_err(anyhow::Error::from)?;
        let mut postings = vec![("income:mining".to_owned(), sats(period.earnings_sats)?)];
        let mut commission = sats(result.commission)?;
        for share in &result.partners {
            if share.partner == OPERATOR {
                // The operator's own sites: their net is commission income too.
                commission += sats(share.net)?;
            } else if share.net > 0 {
                postings.push((payable(share.partner), -sats(share.net)?));
            }
        }
        postings.push(("income:commission".to_owned(), -commission));
        let memo = format!("settlement of period {name} (threshold {threshold} sats)");
        let entry = append_entry(&mut tx, "settlement", Some(period.id), None, &memo, &postings).await?;
        for share in result.partners.iter().filter(|s| s.partner != OPERATOR && s.payout > 0) {
            sqlx::query("INSERT INTO payouts (partner_id, period_id, amount_sats, due_entry, created_at) VALUES (?, ?, ?, ?, ?)")
                .bind(share.partner)
                .bind(period.id)
                .bind(sats(share.payout)?)
                .bind(entry)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(result)
    }

    /// Payouts, oldest first (`unpaid_only`: the ones to pay).
    pub async fn payouts(&self, unpaid_only: bool) -> Result<Vec<Payout>> {
        self.select_payouts(unpaid_only, None).await
    }

    /// One payout.
    pub async fn payout(&self, id: i64) -> Result<Option<Payout>> {
        Ok(self.select_payouts(false, Some(id)).await?.pop())
    }

    async fn select_payouts(&self, unpaid_only: bool, id: Option<i64>) -> Result<Vec<Payout>> {
        let rows = sqlx::query(
            "SELECT o.id, p.partner_key, p.name, pe.name, o.amount_sats, o.paid_entry IS NOT NULL
             FROM payouts o JOIN partners p ON p.id = o.partner_id JOIN periods pe ON pe.id = o.period_id
             WHERE (NOT ?1 OR o.paid_entry IS NULL) AND (?2 IS NULL OR o.id = ?2) ORDER BY o.id",
        )
        .bind(unpaid_only)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Payout {
                id: r.get(0),
                partner_key: r.get(1),
                partner_name: r.get(2),
                period: r.get(3),
                amount_sats: r.get::<i64, _>(4) as u64,
                paid: r.get(5),
            })
            .collect())
    }

    /// Records that payout `id` was paid from the wallet.
    pub async fn mark_paid(&self, id: i64) -> Result<(), BooksError> {
        let mut tx = self.writer.begin().await?;
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT partner_id, amount_sats FROM payouts WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((partner, amount)) = row else { return Err(BooksError::NotFound) };
        let postings = [(payable(partner), amount), ("assets:wallet".to_owned(), -amount)];
        let entry =
            append_entry(&mut tx, "payout", None, None, &format!("payout {id} paid"), &postings).await?;
        // The update decides a race: only one marking finds the payout unpaid; the other's entry is
        // rolled back with its transaction.
        let marked = sqlx::query("UPDATE payouts SET paid_entry = ? WHERE id = ? AND paid_entry IS NULL")
            .bind(entry)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if marked.rows_affected() == 0 {
            return Err(BooksError::AlreadyPaid);
        }
        tx.commit().await?;
        Ok(())
    }

    /// A correction: a new entry with every posting of entry `id` negated.
    pub async fn reverse_entry(&self, id: i64, memo: &str) -> Result<i64, BooksError> {
        let mut tx = self.writer.begin().await?;
        let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM entries WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(kind) = kind else { return Err(BooksError::NotFound) };
        if kind == "reversal" {
            return Err(BooksError::NotReversible("it is itself a reversal"));
        }
        let reversed: Option<i64> = sqlx::query_scalar("SELECT id FROM entries WHERE reverses = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if reversed.is_some() {
            return Err(BooksError::AlreadyReversed);
        }
        // Payout rows are facts for the partner (exported, maybe paid): a settlement that made any
        // stays, and is corrected by a later entry instead.
        let payouts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payouts WHERE due_entry = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if payouts > 0 {
            return Err(BooksError::NotReversible(
                "it made payouts, so it cannot be reversed; correct it with a later entry",
            ));
        }
        let postings: Vec<(String, i64)> =
            sqlx::query_as("SELECT account, -amount FROM postings WHERE entry_id = ? ORDER BY id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let period: Option<i64> = sqlx::query_scalar("SELECT period_id FROM entries WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let entry = append_entry(&mut tx, "reversal", period, Some(id), memo, &postings).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Proves the books: the entry chain recomputes, every entry balances, no partner is owed a
    /// negative amount, payouts match their entries, every share re-verifies (its header hashes
    /// under its target, its work is its target's) and so does every pool submission.
    pub async fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let entries = sqlx::query(
            "SELECT id, kind, period_id, reverses, memo, created_at, chain FROM entries ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let postings = sqlx::query("SELECT entry_id, account, amount FROM postings ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut by_entry: HashMap<i64, Vec<(String, i64)>> = HashMap::new();
        for row in &postings {
            by_entry.entry(row.get(0)).or_default().push((row.get(1), row.get(2)));
        }
        let mut previous = String::new();
        let mut expected_id = 1;
        for row in &entries {
            let entry = EntryRow {
                id: row.get(0),
                kind: row.get(1),
                period_id: row.get(2),
                reverses: row.get(3),
                memo: row.get(4),
                created_at: row.get(5),
            };
            let stored: String = row.get(6);
            if entry.id != expected_id {
                report.problems.push(format!("entry {expected_id} is missing"));
            }
            expected_id = entry.id + 1;
            let lines = by_entry.remove(&entry.id).unwrap_or_default();
            if chain_hash(&previous, &entry, &lines) != stored {
                report
                    .problems
                    .push(format!("entry {} or its postings were altered (chain mismatch)", entry.id));
            }
            let sum: i128 = lines.iter().map(|(_, a)| i128::from(*a)).sum();
            if sum != 0 {
                report.problems.push(format!("entry {} does not balance ({sum} sats)", entry.id));
            }
            previous = stored;
        }
        for entry in by_entry.keys() {
            report.problems.push(format!("postings of a missing entry {entry}"));
        }
        report.entries = entries.len() as u64;
        report.postings = postings.len() as u64;
        for (account, balance) in self.balances().await? {
            if account.starts_with("partner:") && balance > 0 {
                report.problems.push(format!("{account} is negative: the partner owes {balance} sats"));
            }
        }
        let payouts = sqlx::query(
            "SELECT o.id, o.partner_id, o.amount_sats, p.account, p.amount FROM payouts o
             LEFT JOIN postings p ON p.entry_id = o.paid_entry AND p.account LIKE 'partner:%'
             WHERE o.paid_entry IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in &payouts {
            let (id, partner, amount): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if row.get::<Option<String>, _>(3) != Some(payable(partner))
                || row.get::<Option<i64>, _>(4) != Some(amount)
            {
                report.problems.push(format!("payout {id} does not match its payment entry"));
            }
        }
        self.check_shares(&mut report).await?;
        self.check_credits(&mut report.problems).await?;
        Ok(report)
    }

    async fn check_shares(&self, report: &mut CheckReport) -> Result<()> {
        let mut rows = sqlx::query(
            "SELECT s.id, s.header, s.target, s.work, p.pool_target, p.pool_work FROM shares s
             LEFT JOIN pool_submissions p ON p.share_id = s.id ORDER BY s.id",
        )
        .fetch(&self.pool);
        use futures_util::TryStreamExt;
        while let Some(row) = rows.try_next().await? {
            let id: i64 = row.get(0);
            report.shares += 1;
            let header: Vec<u8> = row.get(1);
            let Ok(target) = Target::from_le_bytes(&row.get::<Vec<u8>, _>(2)) else {
                report.problems.push(format!("share {id}: malformed target"));
                continue;
            };
            let work = parse_work(row.get(3)).unwrap_or(0);
            let hash = sha256d(&header);
            if header.len() != 80 || !target.is_met_by(&hash) {
                report.problems.push(format!("share {id}: its header does not hash under its target"));
            }
            if work != target.expected_hashes() {
                report.problems.push(format!("share {id}: credited work {work} is not its target's"));
            }
            if let Some(pool_target) = row.get::<Option<Vec<u8>>, _>(4) {
                report.pool_submissions += 1;
                let pool_work = parse_work(row.get(5)).unwrap_or(0);
                match Target::from_le_bytes(&pool_target) {
                    Ok(t) if t.is_met_by(&hash) && t.expected_hashes() == pool_work => {}
                    _ => report.problems.push(format!("share {id}: its pool submission does not re-verify")),
                }
            }
        }
        Ok(())
    }
}

/// One time bucket of a dashboard chart.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Bucket {
    /// Unix ms at the start of the bucket.
    pub start: i64,
    /// Verified work of browser shares (what unlocks count), expected hashes.
    pub verified_work: minepass::protocol::Work,
    /// Pool-accepted work (what earns), expected hashes at the pool's target.
    pub accepted_work: minepass::protocol::Work,
    pub shares: u64,
    /// Distinct browser sessions that submitted a share.
    pub miners: u64,
}

/// A partner's money, in satoshis.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Statement {
    /// Net earnings per settled period: (period, source, net).
    pub settled: Vec<(String, Source, u64)>,
    /// Owed in total (carried plus due).
    pub owed: u64,
    /// Made due by a settlement and not yet paid.
    pub due: u64,
    pub paid: u64,
}

impl Ledger {
    /// Share activity of a partner's sites (`None`: every site) in `buckets` buckets of `bucket_ms`
    /// from `since`, and the hash rate of one device while it mines: the work of each session's
    /// shares after its first, over the time from its first share to its last (hashes/s; 0 without a
    /// session of two shares).
    pub async fn activity(
        &self,
        partner: Option<i64>,
        since: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> Result<(Vec<Bucket>, u128)> {
        let rows = sqlx::query(
            "SELECT s.created_at, s.session, s.work, CASE WHEN a.outcome = 'accepted' THEN p.pool_work END
             FROM shares s JOIN sites st ON st.id = s.site_id
             LEFT JOIN pool_submissions p ON p.share_id = s.id LEFT JOIN pool_answers a ON a.share_id = s.id
             WHERE (?1 IS NULL OR st.partner_id = ?1) AND s.created_at >= ?2 AND s.created_at < ?3
             ORDER BY s.created_at",
        )
        .bind(partner)
        .bind(since)
        .bind(since + bucket_ms * buckets as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<Bucket> = (0..buckets)
            .map(|i| Bucket { start: since + i as i64 * bucket_ms, ..Bucket::default() })
            .collect();
        let mut sessions: Vec<std::collections::HashSet<String>> = vec![Default::default(); buckets];
        // Per miner: first and last share time, and the work after the first share.
        let mut spans: HashMap<String, (i64, i64, u128)> = HashMap::new();
        for row in &rows {
            let at: i64 = row.get(0);
            let work = parse_work(row.get(2))?;
            let index = ((at - since) / bucket_ms) as usize;
            let bucket = &mut out[index];
            bucket.shares += 1;
            bucket.verified_work.0 += work;
            if let Some(pool_work) = row.get::<Option<String>, _>(3) {
                bucket.accepted_work.0 += parse_work(&pool_work)?;
            }
            // The session id without its per-connection part: one miner across reconnects.
            let session: String = row.get(1);
            let miner = session.split('.').next().unwrap_or_default().to_owned();
            spans
                .entry(miner.clone())
                .and_modify(|(_, last, after)| {
                    // Rows come in time order: every share after a miner's first adds its work.
                    *after += work;
                    *last = at;
                })
                .or_insert((at, at, 0));
            sessions[index].insert(miner);
        }
        for (bucket, miners) in out.iter_mut().zip(sessions) {
            bucket.miners = miners.len() as u64;
        }
        let (work, ms) = spans
            .values()
            .filter(|(first, last, _)| last > first)
            .fold((0u128, 0u128), |(w, t), (first, last, after)| (w + after, t + (last - first) as u128));
        Ok((out, (work * 1000).checked_div(ms).unwrap_or(0)))
    }

    /// Records a consent dialog's answer for a site under the counting rules: once per answer id,
    /// and at most [`CONSENT_ANSWERS_PER_VISITOR`] per visitor (a daily-salted hash of the address)
    /// per site per UTC day. Each counted answer takes a numbered slot, so the unique index, not a
    /// count read before the insert, enforces the cap under any concurrency.
    pub async fn record_consent_answer(
        &self,
        site_key: &str,
        given: bool,
        answer_id: &str,
        address: std::net::IpAddr,
    ) -> Result<ConsentCount> {
        let Some(site) = self.site_by_key(site_key).await? else { return Ok(ConsentCount::UnknownSite) };
        let now = now_ms();
        let day = now.div_euclid(86_400_000);
        let salt = self.consent_salt(day).await?;
        let visitor = consent_visitor(&salt, site_key, address);
        for slot in 0..CONSENT_ANSWERS_PER_VISITOR {
            let done = sqlx::query(
                "INSERT INTO consent_answers (site_id, given, at, answer_id, day, visitor, slot)
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(site.id)
            .bind(given)
            .bind(now)
            .bind(answer_id)
            .bind(day)
            .bind(&visitor)
            .bind(i64::from(slot))
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(ConsentCount::Counted);
            }
        }
        Ok(ConsentCount::NotCounted)
    }

    /// Today's random salt for visitor hashes; salts of earlier days are deleted, so yesterday's
    /// hashes can no longer be linked to an address by anyone.
    async fn consent_salt(&self, day: i64) -> Result<String> {
        let name = format!("consent_salt/{day}");
        let created =
            sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
                .bind(&name)
                .bind(hex::encode(rand::random::<[u8; 32]>()))
                .execute(&self.pool)
                .await?;
        // Once a day, by whoever makes the new salt: the old ones go.
        if created.rows_affected() == 1 {
            sqlx::query("DELETE FROM settings WHERE name LIKE 'consent_salt/%' AND name <> ?")
                .bind(&name)
                .execute(&self.pool)
                .await?;
        }
        self.setting(&name).await?.context("the consent salt vanished")
    }

    /// (answers, yes) for a partner's sites (`None`: every site) since `since`: only answers counted
    /// under the rules (rows from before them have no visitor).
    pub async fn consent_counts(&self, partner: Option<i64>, since: i64) -> Result<(u64, u64)> {
        let (answers, yes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(c.given), 0) FROM consent_answers c JOIN sites st ON st.id = c.site_id
             WHERE (?1 IS NULL OR st.partner_id = ?1) AND c.at >= ?2 AND c.visitor IS NOT NULL",
        )
        .bind(partner)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok((answers as u64, yes as u64))
    }

    /// A partner's settled earnings per period, and what is owed, due and paid.
    pub async fn statement(&self, partner: i64) -> Result<Statement> {
        let account = payable(partner);
        let rows = sqlx::query(
            "SELECT pe.name, pe.source, -SUM(p.amount) FROM postings p JOIN entries e ON e.id = p.entry_id
             JOIN periods pe ON pe.id = e.period_id
             WHERE p.account = ? AND e.kind IN ('settlement', 'reversal') GROUP BY pe.id ORDER BY pe.starts_at, pe.id",
        )
        .bind(&account)
        .fetch_all(&self.pool)
        .await?;
        let settled = rows
            .iter()
            .map(|r| (r.get(0), Source::parse(r.get(1)), r.get::<i64, _>(2).max(0) as u64))
            .collect();
        let owed: i64 =
            sqlx::query_scalar("SELECT COALESCE(-SUM(amount), 0) FROM postings WHERE account = ?")
                .bind(&account)
                .fetch_one(&self.pool)
                .await?;
        let (due, paid): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN paid_entry IS NULL THEN amount_sats END), 0),
                    COALESCE(SUM(CASE WHEN paid_entry IS NOT NULL THEN amount_sats END), 0)
             FROM payouts WHERE partner_id = ?",
        )
        .bind(partner)
        .fetch_one(&self.pool)
        .await?;
        Ok(Statement { settled, owed: owed.max(0) as u64, due: due as u64, paid: paid as u64 })
    }
}

/// A partner's payable balance not yet made due as a payout: what carries over.
async fn carried(tx: &mut Transaction<'_, Sqlite>, partner: i64) -> Result<u64> {
    let balance: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(amount), 0) FROM postings WHERE account = ?")
        .bind(payable(partner))
        .fetch_one(&mut **tx)
        .await?;
    let due: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(amount_sats), 0) FROM payouts WHERE partner_id = ? AND paid_entry IS NULL",
    )
    .bind(partner)
    .fetch_one(&mut **tx)
    .await?;
    // Payable balances are credits (negative).
    Ok(u64::try_from(-balance - due).unwrap_or(0))
}

fn partner_from_row(r: &sqlx::sqlite::SqliteRow) -> Partner {
    Partner {
        id: r.get(0),
        key: r.get(1),
        name: r.get(2),
        commission_bps: r.get::<Option<i64>, _>(3).map(|b| b as u32),
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

/// Most consent answers counted per visitor (address) per site per UTC day: a household or an office
/// behind one address answers a few times; one client cannot move a site's rate by more.
pub const CONSENT_ANSWERS_PER_VISITOR: u32 = 5;

/// What became of a consent answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentCount {
    Counted,
    /// A repeated answer id, or the visitor's answers for today are all counted already.
    NotCounted,
    UnknownSite,
}

/// The visitor of a consent answer: a hash of the site and the address under the day's salt. IPv6
/// addresses count by their /64 (one subscriber's network), IPv4-mapped ones as IPv4.
fn consent_visitor(salt: &str, site_key: &str, address: std::net::IpAddr) -> String {
    use hmac::{Hmac, Mac};
    let network = match address {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("{:x}", u128::from(v6) >> 64),
        },
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(salt.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{site_key}\n{network}").as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
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
