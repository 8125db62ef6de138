//! The visitor's daily mining budget: milliseconds of mining per local calendar day, kept in
//! `localStorage` so it holds across reloads and tabs (only the tab holding the site's lock mines, so
//! only one tab writes it at a time).

const DAY_MS: i64 = 86_400_000;

/// Most time one evaluation (once a second while mining) charges to the budget.
pub const MAX_CHARGE_MS: f64 = 5000.0;

/// The mining time to charge for the interval from `since_ms` to `now_ms`: capped, because a frozen
/// tab or a clock jump is not time spent mining, and never negative (a clock set back).
pub fn chargeable_ms(since_ms: f64, now_ms: f64) -> u64 {
    (now_ms - since_ms).clamp(0.0, MAX_CHARGE_MS) as u64
}

/// The local calendar day of `now_ms` (Unix ms) as a day number, given JavaScript's
/// `Date.getTimezoneOffset()` (minutes, UTC minus local) at that instant.
pub fn local_day(now_ms: i64, timezone_offset_min: i64) -> i64 {
    (now_ms - timezone_offset_min * 60_000).div_euclid(DAY_MS)
}

/// Today's use of the budget. Stored as `day:used_ms` (two integers; no JSON parser needed in the SDK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyBudget {
    /// Local day number ([`local_day`]) the use belongs to.
    pub day: i64,
    /// Milliseconds mined that day.
    pub used_ms: u64,
}

impl DailyBudget {
    /// The stored budget, or a fresh one when nothing (or something unreadable) is stored.
    pub fn from_stored(stored: Option<&str>, today: i64) -> DailyBudget {
        stored
            .and_then(|text| text.split_once(':'))
            .and_then(|(day, used)| Some(DailyBudget { day: day.parse().ok()?, used_ms: used.parse().ok()? }))
            .unwrap_or(DailyBudget { day: today, used_ms: 0 })
    }

    pub fn to_stored(self) -> String {
        format!("{}:{}", self.day, self.used_ms)
    }

    /// Milliseconds left today out of `limit_ms`; a new day starts with the whole budget.
    pub fn remaining_ms(&mut self, today: i64, limit_ms: u64) -> u64 {
        self.roll_over(today);
        limit_ms.saturating_sub(self.used_ms)
    }

    /// Counts `ms` of mining on `today`.
    pub fn charge(&mut self, today: i64, ms: u64) {
        self.roll_over(today);
        self.used_ms = self.used_ms.saturating_add(ms);
    }

    fn roll_over(&mut self, today: i64) {
        // A clock set back keeps today's use (no fresh budget by changing the date backwards).
        if today > self.day {
            *self = DailyBudget { day: today, used_ms: 0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    // 2026-11-24T23:30:00Z
    const LATE_EVENING_UTC: i64 = 1_795_563_000_000;

    #[test]
    fn only_time_that_passed_while_running_is_charged() {
        assert_eq!(chargeable_ms(1000.0, 2000.0), 1000);
        assert_eq!(chargeable_ms(1000.0, 600_000.0), 5000, "a frozen tab woke up");
        assert_eq!(chargeable_ms(2000.0, 1000.0), 0, "the clock went back");
    }

    #[test]
    fn local_days_follow_the_timezone() {
        let utc_day = local_day(LATE_EVENING_UTC, 0);
        // Berlin in winter (UTC+1, offset -60): already the next day at 00:30 local.
        assert_eq!(local_day(LATE_EVENING_UTC, -60), utc_day + 1);
        // New York (UTC-5, offset 300): still the same day.
        assert_eq!(local_day(LATE_EVENING_UTC, 300), utc_day);
        // Before 1970 the day number is still a floor, not a truncation.
        assert_eq!(local_day(-1, 0), -1);
    }

    #[test]
    fn use_accumulates_within_a_day_and_resets_the_next() {
        let limit = 10 * 60_000;
        let mut budget = DailyBudget::from_stored(None, 100);
        assert_eq!(budget.remaining_ms(100, limit), limit);
        budget.charge(100, 4 * 60_000);
        budget.charge(100, 5 * 60_000);
        assert_eq!(budget.remaining_ms(100, limit), 60_000);
        budget.charge(100, 2 * 60_000);
        assert_eq!(budget.remaining_ms(100, limit), 0, "never negative");
        assert_eq!(budget.remaining_ms(101, limit), limit, "a new day, a new budget");
        budget.charge(101, 1000);
        assert_eq!(budget.remaining_ms(100, limit), limit - 1000, "a clock set back is not a new day");
    }

    #[test]
    fn storage_round_trips_and_bad_data_starts_fresh() {
        let mut budget = DailyBudget::from_stored(None, 7);
        budget.charge(7, 1234);
        let stored = budget.to_stored();
        assert_eq!(DailyBudget::from_stored(Some(&stored), 7), budget);
        for junk in ["", "null", "7", "x:5", "7:-5", "7:5:1", "{\"day\":7}"] {
            assert_eq!(DailyBudget::from_stored(Some(junk), 8), DailyBudget { day: 8, used_ms: 0 }, "{junk}");
        }
    }
}
