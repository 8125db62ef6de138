//! The share log, users, progress and credits, as the session layer reads and the committer
//! writes them.

use anyhow::Result;

use super::{
    Credit, DAY_MS, Ledger, PoolAnswer, PoolTotals, ShareRecord, now_ms, on_backend, postgres, sqlite,
};

impl Ledger {
    /// The ledger id of a site's user, created on first sight.
    pub async fn user_id(&self, site_id: i64, external_id: &str) -> Result<i64> {
        on_backend!(self, shares::user_id(site_id, external_id))
    }

    /// Work a site's user has credited toward each content item (items without progress are absent;
    /// a user never seen has none). Read-only.
    pub async fn progress(&self, site_id: i64, external_id: &str) -> Result<Vec<(i64, u128)>> {
        on_backend!(self, shares::progress(site_id, external_id))
    }

    /// A site's user's spendable credits (earned − spent); 0 for a user never seen. Read-only.
    pub async fn credits(&self, site_id: i64, external_id: &str) -> Result<u128> {
        Ok(self
            .user_credits(site_id, external_id)
            .await?
            .map_or(0, |(_, earned, spent)| earned.saturating_sub(spent)))
    }

    /// (user id, earned, spent) of a site's user, if the user has ever been credited.
    pub async fn user_credits(&self, site_id: i64, external_id: &str) -> Result<Option<(i64, u128, u128)>> {
        on_backend!(self, shares::user_credits(site_id, external_id))
    }

    /// A user's shares as (job id, nonce, work), in commit order.
    pub async fn user_shares(&self, user_id: i64) -> Result<Vec<(String, u32, u128)>> {
        on_backend!(self, shares::user_shares(user_id))
    }

    /// Number of shares and total credited work in the share log (for tests and status).
    pub async fn share_totals(&self) -> Result<(u64, u128)> {
        on_backend!(self, shares::totals())
    }

    /// Forwarded shares and the pool's answers, totalled; `site_id` narrows it to one site.
    pub async fn pool_totals(&self, site_id: Option<i64>) -> Result<PoolTotals> {
        on_backend!(self, shares::pool_totals(site_id))
    }

    /// Writes a batch of shares (and pool answers) in one transaction and returns what each share
    /// credited (see the committer).
    pub async fn commit_shares(&self, batch: &[ShareRecord], answers: &[PoolAnswer]) -> Result<Vec<Credit>> {
        on_backend!(self, shares::commit(batch, answers))
    }

    /// Makes the share log's partitions for the days ahead (PostgreSQL; brokers call it at start
    /// and hourly, so a share's day always has its partition before the share arrives).
    pub async fn prepare_share_partitions(&self) -> Result<u64> {
        let today = now_ms().div_euclid(DAY_MS);
        on_backend!(self, shares::prepare_partitions(today))
    }
}
