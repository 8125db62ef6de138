//! The daily budget kept in `localStorage`: loaded when this tab takes the site's lock (another tab
//! may have mined since), charged and written back on every evaluation while mining.

use super::Inner;
use crate::client::budget::{DailyBudget, chargeable_ms, local_day};

impl Inner {
    /// The local calendar day at `now` (Unix ms).
    fn today(now: f64) -> i64 {
        let offset = js_sys::Date::new(&now.into()).get_timezone_offset();
        local_day(now as i64, offset as i64)
    }

    /// Charges the time mined since the last evaluation and returns what is left of today's budget.
    pub(super) fn charge_budget(&self, now: f64) -> u64 {
        let today = Self::today(now);
        let limit_ms = (self.options.daily_minutes * 60_000.0) as u64;
        let storage = self.storage();
        let key = self.key("budget");
        let mut state = self.state.borrow_mut();
        let elapsed = chargeable_ms(state.last_tick, now);
        state.last_tick = now;
        if state.budget.is_none() && state.lock.held {
            let stored = storage.as_ref().and_then(|s| s.get_item(&key).ok().flatten());
            state.budget = Some(DailyBudget::from_stored(stored.as_deref(), today));
        }
        let mining = state.workers.mining;
        // No lock yet: not this tab's budget to read (another tab may be mining it).
        let Some(budget) = state.budget.as_mut() else { return limit_ms };
        if mining {
            budget.charge(today, elapsed);
            if let Some(storage) = &storage {
                let _ = storage.set_item(&key, &budget.to_stored());
            }
        }
        budget.remaining_ms(today, limit_ms)
    }
}
