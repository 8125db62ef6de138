//! Retention of the share log (PostgreSQL). One row per share grows without bound, so a day of raw
//! shares (one partition of `shares`, by the day its jobs were issued) is replaced by its totals per
//! (site, user, content item) and dropped, under three rules:
//!
//! 1. the day ended at least `keep_days` days ago (raw shares of the retained window stay, and
//!    `ledger check` re-verifies them);
//! 2. every share of the day re-verifies first, as `ledger check` would (one that does not stops
//!    the day: nothing is dropped);
//! 3. no period of earnings that could hold the day's pool answers (any period overlapping the day
//!    or the day after it) is unsettled: the raw evidence stays while the money resting on it is
//!    not final. (Periods credit partners from pool submissions and answers, which are never rolled
//!    up: each submission keeps its share's site.)
//!
//! Days go oldest first and stop at the first that cannot go, so the rollups' hash chain is in day
//! order. The rollup, its chain link and the partition's drop are one transaction: a failure leaves
//! the raw day as it was. `ledger check` then proves each user's credits against raw shares plus
//! rollups, the rollups' chain, and that every pool submission has its share, raw or rolled up.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

use super::check::Share;
use super::{postgres, sqlite};
pub use crate::store::DAY_MS;
use crate::store::{Ledger, on_backend};

/// One (site, user, content item) of a rolled-up day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollup {
    pub site_id: i64,
    pub user_id: i64,
    pub content_id: Option<i64>,
    pub shares: u64,
    pub work: u128,
}

/// A rolled-up day: what replaced its raw shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupDay {
    /// Days since 1970-01-01 UTC (of the jobs' issue time).
    pub day: i64,
    pub shares: u64,
    pub work: u128,
    /// Ids of the day's shares that were submitted to the pool, ascending.
    pub forwarded: Vec<i64>,
    /// SHA-256 (hex) of the raw shares, in id order (see [`DayRollup::add`]).
    pub digest: String,
}

/// What `retain` did with each day it looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetainReport {
    /// Days rolled up and dropped, oldest first.
    pub rolled_up: Vec<RollupDay>,
    /// The first day that had to stay, and why (later days wait for it).
    pub kept: Option<(i64, String)>,
}

/// The chain link of a rolled-up day: SHA-256 (hex) over the previous link, the day's totals,
/// forwarded ids and digest, and its rows in (site, user, content) order.
pub fn rollup_chain(previous: &str, day: &RollupDay, rows: &[Rollup]) -> String {
    let mut hash = Sha256::new();
    hash.update(previous.as_bytes());
    hash.update(day.day.to_be_bytes());
    hash.update(day.shares.to_be_bytes());
    hash.update(day.work.to_be_bytes());
    hash.update((day.forwarded.len() as u64).to_be_bytes());
    for id in &day.forwarded {
        hash.update(id.to_be_bytes());
    }
    hash.update(day.digest.as_bytes());
    for row in rows {
        hash.update(row.site_id.to_be_bytes());
        hash.update(row.user_id.to_be_bytes());
        hash.update(row.content_id.unwrap_or(-1).to_be_bytes());
        hash.update(row.shares.to_be_bytes());
        hash.update(row.work.to_be_bytes());
    }
    hex::encode(hash.finalize())
}

/// A day (days since 1970-01-01 UTC) as `YYYY-MM-DD` (Howard Hinnant's civil-from-days).
pub fn day_name(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `forwarded` as stored: 8 bytes big-endian per id.
pub(crate) fn encode_ids(ids: &[i64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_be_bytes()).collect()
}

/// The inverse of [`encode_ids`]; `None` if the length is not a multiple of 8.
pub(crate) fn decode_ids(bytes: &[u8]) -> Option<Vec<i64>> {
    if bytes.len() % 8 != 0 {
        return None;
    }
    Some(bytes.chunks_exact(8).map(|c| i64::from_be_bytes(c.try_into().expect("8 bytes"))).collect())
}

/// A day's rollup being built from its raw shares (in id order).
#[derive(Default)]
pub(crate) struct DayRollup {
    rows: BTreeMap<(i64, i64, Option<i64>), (u64, u128)>,
    shares: u64,
    work: u128,
    forwarded: Vec<i64>,
    digest: Sha256,
}

impl DayRollup {
    /// Adds a share that re-verified (its work is its target's).
    pub(crate) fn add(&mut self, share: &Share, work: u128) {
        let row = self.rows.entry((share.site_id, share.user_id, share.content_id)).or_default();
        row.0 += 1;
        row.1 += work;
        self.shares += 1;
        self.work += work;
        if share.pool.is_some() {
            self.forwarded.push(share.id);
        }
        self.digest.update(share.id.to_be_bytes());
        self.digest.update(share.job_at.to_be_bytes());
        self.digest.update(share.site_id.to_be_bytes());
        self.digest.update(share.user_id.to_be_bytes());
        self.digest.update(share.content_id.unwrap_or(-1).to_be_bytes());
        self.digest.update(&share.header);
        self.digest.update(&share.target);
        self.digest.update(work.to_be_bytes());
    }

    pub(crate) fn finish(self, day: i64) -> (RollupDay, Vec<Rollup>) {
        let rows = self
            .rows
            .into_iter()
            .map(|((site_id, user_id, content_id), (shares, work))| Rollup {
                site_id,
                user_id,
                content_id,
                shares,
                work,
            })
            .collect();
        let mut forwarded = self.forwarded;
        forwarded.sort_unstable();
        let day = RollupDay {
            day,
            shares: self.shares,
            work: self.work,
            forwarded,
            digest: hex::encode(self.digest.finalize()),
        };
        (day, rows)
    }
}

impl Ledger {
    /// Whether `keep_days` of retention can apply to this ledger (`serve` asks before it starts).
    pub fn can_retain(&self, keep_days: u32) -> Result<()> {
        if keep_days == 0 {
            bail!("keep at least one day of raw shares (--keep-days 1 or more)");
        }
        if self.backend_name() != "postgres" {
            bail!(
                "share retention needs a PostgreSQL ledger: an embedded SQLite ledger is not \
                 partitioned and keeps every share (see docs/SCALE.md)"
            );
        }
        Ok(())
    }

    /// Rolls up and drops every day of raw shares that ended `keep_days` (at least 1) or more days
    /// ago and may go (see the module's rules), oldest first. PostgreSQL only: an embedded SQLite
    /// ledger keeps every share.
    pub async fn retain_shares(&self, keep_days: u32) -> Result<RetainReport> {
        self.can_retain(keep_days)?;
        let horizon = crate::store::now_ms() - i64::from(keep_days) * DAY_MS;
        on_backend!(self, retention::retain(horizon))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(id: i64, user_id: i64, forwarded: bool) -> Share {
        Share {
            id,
            job_at: 5,
            site_id: 1,
            user_id,
            content_id: None,
            header: vec![id as u8; 80],
            target: vec![0xff; 32],
            work: Some(1),
            pool: forwarded.then(|| (vec![0xff; 32], Some(1), Some(1))),
        }
    }

    #[test]
    fn a_day_rolls_up_per_user_and_its_chain_covers_every_field() {
        let mut day = DayRollup::default();
        day.add(&share(7, 2, true), 256);
        day.add(&share(8, 1, false), 512);
        day.add(&share(9, 2, false), 256);
        let (summary, rows) = day.finish(20_000);
        assert_eq!((summary.shares, summary.work, summary.forwarded.clone()), (3, 1024, vec![7]));
        assert_eq!(
            rows.iter().map(|r| (r.user_id, r.shares, r.work)).collect::<Vec<_>>(),
            [(1, 1, 512), (2, 2, 512)]
        );
        let link = rollup_chain("", &summary, &rows);
        let mut edited = rows.clone();
        edited[0].work += 1;
        assert_ne!(rollup_chain("", &summary, &edited), link);
        assert_ne!(rollup_chain("x", &summary, &rows), link);
        let mut other = summary.clone();
        other.forwarded.clear();
        assert_ne!(rollup_chain("", &other, &rows), link);
        assert_eq!(decode_ids(&encode_ids(&[1, -2, 1 << 40])), Some(vec![1, -2, 1 << 40]));
        assert_eq!(decode_ids(&[0; 7]), None);
    }

    #[test]
    fn day_names_invert_the_date_parser() {
        for name in ["1970-01-01", "2000-02-29", "2026-12-03", "2100-03-01"] {
            assert_eq!(day_name(crate::books::parse_time(name).unwrap() / DAY_MS), name);
        }
    }
}
