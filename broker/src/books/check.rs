//! `ledger check`: proves the books and the share log from their rows.

use std::collections::HashMap;

use anyhow::Result;
use minepass::baseline::sha256d;
use minepass::target::Target;

use super::retention::{Rollup, RollupDay, rollup_chain};
use super::{CheckReport, EntryRow, chain_hash, payable, postgres, sqlite};
use crate::store::column::WorkColumn;
use crate::store::{Ledger, on_backend};

/// A paid payout: (payout, partner, amount, its payment's partner posting account and amount).
pub(crate) type PaidPayout = (i64, i64, i64, Option<String>, Option<i64>);

/// The ledger as the check sees it (the share log itself is streamed, not held).
pub(crate) struct Snapshot {
    /// Every entry with its stored chain, in id order.
    pub entries: Vec<(EntryRow, String)>,
    /// Every posting as (entry, account, amount), in id order.
    pub postings: Vec<(i64, String, i64)>,
    pub balances: Vec<(String, i64)>,
    /// Paid payouts with the partner posting of their payment entry:
    /// (payout, partner, amount, posting account, posting amount).
    pub paid_payouts: Vec<PaidPayout>,
    /// (user, price) of every spend, (user, earned, spent) of every total.
    pub spends: Vec<(i64, WorkColumn)>,
    pub totals: Vec<(i64, WorkColumn, WorkColumn)>,
    /// Rolled-up days in day order, each with its stored chain link (`forwarded` is `None` when
    /// the stored list is malformed).
    pub rollup_days: Vec<(StoredRollupDay, String)>,
    /// Every rollup row with its day, in (day, site, user, content) order.
    pub rollups: Vec<(i64, Rollup)>,
    /// Pool submissions whose share is not among the raw shares.
    pub unmatched_submissions: Vec<i64>,
}

/// A rolled-up day as stored (its work and forwarded ids may be malformed).
pub(crate) struct StoredRollupDay {
    pub day: i64,
    pub shares: u64,
    pub work: Option<u128>,
    pub forwarded: Option<Vec<i64>>,
    pub digest: String,
}

/// One share as the check re-verifies it.
pub(crate) struct Share {
    pub id: i64,
    pub job_at: i64,
    pub site_id: i64,
    pub user_id: i64,
    pub content_id: Option<i64>,
    pub header: Vec<u8>,
    pub target: Vec<u8>,
    /// `None`: the stored value is not a work value.
    pub work: Option<u128>,
    /// The pool submission's target, work and site, if the share was forwarded.
    pub pool: Option<(Vec<u8>, Option<u128>, Option<i64>)>,
}

impl Ledger {
    /// Proves the books: the entry chain recomputes, every entry balances, no partner is owed a
    /// negative amount, payouts match their entries, every raw share re-verifies (its header hashes
    /// under its target, its work is its target's) and so does every pool submission, the rollups
    /// of retired days recompute their chain and totals, every pool submission has its share (raw
    /// or rolled up), and every user's credits match the share log and the spends; all from one
    /// snapshot of the ledger.
    pub async fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let mut shares = ShareCheck::default();
        let snapshot = on_backend!(self, audit::snapshot(|share| shares.visit(share)))?;
        report.entries = snapshot.entries.len() as u64;
        report.postings = snapshot.postings.len() as u64;
        let mut by_entry: HashMap<i64, Vec<(String, i64)>> = HashMap::new();
        for (entry, account, amount) in snapshot.postings {
            by_entry.entry(entry).or_default().push((account, amount));
        }
        let mut previous = String::new();
        let mut expected_id = 1;
        for (entry, stored) in &snapshot.entries {
            if entry.id != expected_id {
                report.problems.push(format!("entry {expected_id} is missing"));
            }
            expected_id = entry.id + 1;
            let lines = by_entry.remove(&entry.id).unwrap_or_default();
            if chain_hash(&previous, entry, &lines) != *stored {
                report
                    .problems
                    .push(format!("entry {} or its postings were altered (chain mismatch)", entry.id));
            }
            let sum: i128 = lines.iter().map(|(_, a)| i128::from(*a)).sum();
            if sum != 0 {
                report.problems.push(format!("entry {} does not balance ({sum} sats)", entry.id));
            }
            previous = stored.clone();
        }
        for entry in by_entry.keys() {
            report.problems.push(format!("postings of a missing entry {entry}"));
        }
        for (account, balance) in snapshot.balances {
            if account.starts_with("partner:") && balance > 0 {
                report.problems.push(format!("{account} is negative: the partner owes {balance} sats"));
            }
        }
        for (id, partner, amount, account, posted) in snapshot.paid_payouts {
            if account != Some(payable(partner)) || posted != Some(amount) {
                report.problems.push(format!("payout {id} does not match its payment entry"));
            }
        }
        report.shares = shares.shares;
        report.pool_submissions = shares.pool_submissions + snapshot.unmatched_submissions.len() as u64;
        report.problems.append(&mut shares.problems);
        let mut earned = shares.earned;
        let rolled = check_rollups(
            &snapshot.rollup_days,
            &snapshot.rollups,
            &snapshot.unmatched_submissions,
            &mut earned,
            &mut report.problems,
        );
        report.rolled_up_days = snapshot.rollup_days.len() as u64;
        report.rolled_up_shares = rolled;
        report.problems.extend(crate::store::rewards::credit_problems(
            &earned,
            &snapshot.spends,
            &snapshot.totals,
        ));
        Ok(report)
    }
}

/// Proves the rollups: each day's chain link recomputes over the day and its rows, its totals are
/// its rows' sums, and the pool submissions without a raw share are exactly the rolled-up days'
/// forwarded shares. Adds the rolled-up work to `earned` (per user) and returns the rolled-up
/// share count.
fn check_rollups(
    days: &[(StoredRollupDay, String)],
    rows: &[(i64, Rollup)],
    unmatched_submissions: &[i64],
    earned: &mut HashMap<i64, u128>,
    problems: &mut Vec<String>,
) -> u64 {
    let mut by_day: HashMap<i64, Vec<Rollup>> = HashMap::new();
    for (day, row) in rows {
        *earned.entry(row.user_id).or_default() += row.work;
        by_day.entry(*day).or_default().push(row.clone());
    }
    let mut forwarded: HashMap<i64, u32> = HashMap::new();
    let mut previous = String::new();
    let mut total = 0;
    for (stored, link) in days {
        let day = stored.day;
        let rows = by_day.remove(&day).unwrap_or_default();
        total += stored.shares;
        let (Some(work), Some(ids)) = (stored.work, stored.forwarded.clone()) else {
            problems.push(format!("rolled-up day {day}: its totals or forwarded shares are malformed"));
            previous = link.clone();
            continue;
        };
        let summary =
            RollupDay { day, shares: stored.shares, work, forwarded: ids, digest: stored.digest.clone() };
        if rollup_chain(&previous, &summary, &rows) != *link {
            problems.push(format!("rolled-up day {day} or its rows were altered (chain mismatch)"));
        }
        let (shares, sum) = rows.iter().fold((0u64, 0u128), |(n, w), row| (n + row.shares, w + row.work));
        if (shares, sum) != (summary.shares, summary.work) {
            problems.push(format!("rolled-up day {day}: its totals are not the sum of its rows"));
        }
        for id in summary.forwarded {
            *forwarded.entry(id).or_default() += 1;
        }
        previous = link.clone();
    }
    for day in by_day.keys() {
        problems.push(format!("rollup rows of a day that was not rolled up ({day})"));
    }
    for id in unmatched_submissions {
        if forwarded.remove(id).is_none() {
            problems.push(format!("pool submission {id} has no share"));
        }
    }
    for (id, count) in forwarded {
        if count > 1 {
            problems.push(format!("share {id} is rolled up {count} times"));
        } else {
            problems.push(format!("rolled-up share {id} has no pool submission"));
        }
    }
    total
}

/// The share log's re-verification, one share at a time.
#[derive(Default)]
struct ShareCheck {
    shares: u64,
    pool_submissions: u64,
    /// Work per user, as the raw shares have it.
    earned: HashMap<i64, u128>,
    problems: Vec<String>,
}

impl ShareCheck {
    fn visit(&mut self, share: Share) {
        self.shares += 1;
        *self.earned.entry(share.user_id).or_default() += share.work.unwrap_or(0);
        if share.pool.is_some() {
            self.pool_submissions += 1;
        }
        reverify(&share, &mut self.problems);
    }
}

/// Re-verifies one raw share and its pool submission as the broker verified them; returns its work
/// if everything holds, else adds what does not to `problems`.
pub(crate) fn reverify(share: &Share, problems: &mut Vec<String>) -> Option<u128> {
    let id = share.id;
    let Ok(target) = Target::from_le_bytes(&share.target) else {
        problems.push(format!("share {id}: malformed target"));
        return None;
    };
    let before = problems.len();
    let hash = sha256d(&share.header);
    if share.header.len() != 80 || !target.is_met_by(&hash) {
        problems.push(format!("share {id}: its header does not hash under its target"));
    }
    match share.work {
        Some(work) if work == target.expected_hashes() => {}
        Some(work) => problems.push(format!("share {id}: credited work {work} is not its target's")),
        None => problems.push(format!("share {id}: its credited work is not a number")),
    }
    if let Some((pool_target, pool_work, site_id)) = &share.pool {
        match Target::from_le_bytes(pool_target) {
            Ok(t) if t.is_met_by(&hash) && Some(t.expected_hashes()) == *pool_work => {}
            _ => problems.push(format!("share {id}: its pool submission does not re-verify")),
        }
        // SQLite's submissions from before its 0010 may lack the site; 0010 filled them in.
        if *site_id != Some(share.site_id) {
            problems.push(format!("share {id}: its pool submission names another site"));
        }
    }
    (problems.len() == before).then_some(share.work).flatten()
}
