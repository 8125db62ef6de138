//! Device rates: what the broker measured of finished sessions, by device class, for the consent
//! dialog's unlock-time estimate (`crate::estimate`).

use anyhow::Result;

use super::{Ledger, now_ms, on_backend, postgres, sqlite};
use crate::estimate::{MAX_AGE_MS, MAX_SAMPLES};

impl Ledger {
    /// Files a session's measured rate under its device class. About one call in a hundred also
    /// drops the samples no estimate reads any more, so the table stays at about a month of sessions.
    pub async fn record_device_rate(&self, class: &str, hashes_per_s: u64) -> Result<()> {
        let at = now_ms();
        let rate = i64::try_from(hashes_per_s).unwrap_or(i64::MAX);
        on_backend!(self, rates::insert(class, rate, at))?;
        if rand::random::<u8>() < 3 {
            on_backend!(self, rates::delete_before(at - MAX_AGE_MS))?;
        }
        Ok(())
    }

    /// The newest measured rates of `class` (hashes per second).
    pub async fn device_rates(&self, class: &str) -> Result<Vec<u64>> {
        let rates = on_backend!(self, rates::recent(class, now_ms() - MAX_AGE_MS, MAX_SAMPLES))?;
        Ok(rates.into_iter().filter_map(|r| u64::try_from(r).ok()).collect())
    }
}
