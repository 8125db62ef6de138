//! `ledger check`: proves the books and the share log from their rows.

use std::collections::HashMap;

use anyhow::Result;
use minepass::baseline::sha256d;
use minepass::target::Target;

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
    /// (user, work) of every share, (user, price) of every spend, (user, earned, spent) of every total.
    pub share_work: Vec<(i64, WorkColumn)>,
    pub spends: Vec<(i64, WorkColumn)>,
    pub totals: Vec<(i64, WorkColumn, WorkColumn)>,
}

/// One share as the check re-verifies it.
pub(crate) struct Share {
    pub id: i64,
    pub header: Vec<u8>,
    pub target: Vec<u8>,
    /// `None`: the stored value is not a work value.
    pub work: Option<u128>,
    /// The pool submission's target and work, if the share was forwarded.
    pub pool: Option<(Vec<u8>, Option<u128>)>,
}

impl Ledger {
    /// Proves the books: the entry chain recomputes, every entry balances, no partner is owed a
    /// negative amount, payouts match their entries, every share re-verifies (its header hashes
    /// under its target, its work is its target's) and so does every pool submission, and every
    /// user's credits match the share log and the spends; all from one snapshot of the ledger.
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
        report.pool_submissions = shares.pool_submissions;
        report.problems.append(&mut shares.problems);
        report.problems.extend(crate::store::rewards::credit_problems(
            &snapshot.share_work,
            &snapshot.spends,
            &snapshot.totals,
        ));
        Ok(report)
    }
}

/// The share log's re-verification, one share at a time.
#[derive(Default)]
struct ShareCheck {
    shares: u64,
    pool_submissions: u64,
    problems: Vec<String>,
}

impl ShareCheck {
    fn visit(&mut self, share: Share) {
        self.shares += 1;
        let id = share.id;
        let Ok(target) = Target::from_le_bytes(&share.target) else {
            self.problems.push(format!("share {id}: malformed target"));
            return;
        };
        let hash = sha256d(&share.header);
        if share.header.len() != 80 || !target.is_met_by(&hash) {
            self.problems.push(format!("share {id}: its header does not hash under its target"));
        }
        match share.work {
            Some(work) if work == target.expected_hashes() => {}
            Some(work) => self.problems.push(format!("share {id}: credited work {work} is not its target's")),
            None => self.problems.push(format!("share {id}: its credited work is not a number")),
        }
        if let Some((pool_target, pool_work)) = share.pool {
            self.pool_submissions += 1;
            match Target::from_le_bytes(&pool_target) {
                Ok(t) if t.is_met_by(&hash) && Some(t.expected_hashes()) == pool_work => {}
                _ => self.problems.push(format!("share {id}: its pool submission does not re-verify")),
            }
        }
    }
}
