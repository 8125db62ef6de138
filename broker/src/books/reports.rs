//! The dashboards' read models: share activity over time and a partner's money. Read-only.

use std::collections::HashMap;

use anyhow::Result;

use super::{Source, payable, postgres, sqlite};
use crate::store::{Ledger, on_backend};

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
        let window = (since, since + bucket_ms * buckets as i64);
        let rows = on_backend!(self, reports::shares(partner, window))?;
        let mut out: Vec<Bucket> = (0..buckets)
            .map(|i| Bucket { start: since + i as i64 * bucket_ms, ..Bucket::default() })
            .collect();
        let mut sessions: Vec<std::collections::HashSet<String>> = vec![Default::default(); buckets];
        // Per miner: first and last share time, and the work after the first share.
        let mut spans: HashMap<String, (i64, i64, u128)> = HashMap::new();
        for (at, session, work, pool_work) in rows {
            let work = work.0;
            let index = ((at - since) / bucket_ms) as usize;
            let bucket = &mut out[index];
            bucket.shares += 1;
            bucket.verified_work.0 += work;
            if let Some(pool_work) = pool_work {
                bucket.accepted_work.0 += pool_work.0;
            }
            // The session id without its per-connection part: one miner across reconnects.
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

    /// A partner's settled earnings per period, and what is owed, due and paid.
    pub async fn statement(&self, partner: i64) -> Result<Statement> {
        let account = payable(partner);
        let (settled, owed, (due, paid)) = on_backend!(self, reports::statement(partner, &account))?;
        let settled = settled
            .into_iter()
            .map(|(period, source, net)| (period, Source::parse(&source), net.max(0) as u64))
            .collect();
        Ok(Statement { settled, owed: owed.max(0) as u64, due: due as u64, paid: paid as u64 })
    }
}
