//! How long an unlock takes on a device like the visitor's, before they say yes and without hashing a
//! thing: the rates the broker measured from verified shares of recent sessions of the same device
//! class (engine, reported cores, simd), as a range. Pure: the session layer measures, the store keeps
//! the samples, the HTTP layer asks.
//!
//! The class is the client's claim (it cannot be checked), the rate is not: it is verified work over
//! the time it took, measured here. A client lying about its class can only move that class's range,
//! and only with real work; the range's quantiles ignore a few outliers.

use std::time::{Duration, Instant};

/// Fewest samples of a class for an estimate; below it the dialog shows none.
pub const MIN_SAMPLES: usize = 2;
/// Newest samples of a class an estimate looks at.
pub const MAX_SAMPLES: i64 = 200;
/// Oldest sample an estimate looks at: browsers and devices change.
pub const MAX_AGE_MS: i64 = 30 * 86_400_000;
/// Fewest shares a session's measurement needs after its first (whose start time is unknown): one
/// share's work is a random draw, 8 make the measurement good to about ±35 %.
pub const MIN_SHARES: u32 = 8;

/// The device class key, e.g. `webkit/3-4/simd`: engine, reported cores in buckets, kernel build.
pub fn class_key(engine: Option<&str>, cores: Option<u32>, simd: bool) -> String {
    let engine = engine.filter(|e| matches!(*e, "blink" | "gecko" | "webkit")).unwrap_or("other");
    let cores = match cores.unwrap_or(0) {
        0 => "?",
        1 => "1",
        2 => "2",
        3..=4 => "3-4",
        5..=8 => "5-8",
        _ => "9+",
    };
    format!("{engine}/{cores}/{}", if simd { "simd" } else { "plain" })
}

/// Measures one session's hash rate from its verified shares: the work of every share after the
/// first over the time between them, leaving out gaps that are pauses (a hidden tab, a charger
/// unplugged) rather than searching.
#[derive(Debug, Clone)]
pub struct RateMeter {
    /// A gap between shares longer than this is a pause: neither its time nor its share counts.
    pause: Duration,
    last: Option<Instant>,
    busy: Duration,
    work: u128,
    shares: u32,
}

impl RateMeter {
    /// `interval`: the share interval the broker aims at; a gap of 4 intervals is a pause.
    pub fn new(interval: Duration) -> RateMeter {
        RateMeter { pause: interval * 4, last: None, busy: Duration::ZERO, work: 0, shares: 0 }
    }

    /// A share of `work` expected hashes verified at `at`.
    pub fn share(&mut self, at: Instant, work: u128) {
        if let Some(last) = self.last {
            let gap = at.saturating_duration_since(last);
            if gap <= self.pause {
                self.busy += gap;
                self.work += work;
                self.shares += 1;
            }
        }
        self.last = Some(at);
    }

    /// Hashes per second, once enough shares were measured.
    pub fn rate(&self) -> Option<u64> {
        let ms = self.busy.as_millis();
        if self.shares < MIN_SHARES || ms == 0 {
            return None;
        }
        u64::try_from(self.work * 1000 / ms).ok().filter(|&r| r > 0)
    }
}

/// An unlock-time range in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Estimate {
    /// At the faster devices' rate (the 80th percentile of the samples).
    pub low_s: u64,
    /// At the slower devices' rate (the 20th percentile).
    pub high_s: u64,
    pub samples: usize,
}

/// The time `work` hashes take at the rates of `samples` (hashes per second), as a range; `None`
/// with fewer than [`MIN_SAMPLES`].
pub fn estimate(samples: &[u64], work: u128) -> Option<Estimate> {
    let mut rates: Vec<u64> = samples.iter().copied().filter(|&r| r > 0).collect();
    if rates.len() < MIN_SAMPLES {
        return None;
    }
    rates.sort_unstable();
    // Nearest-rank quantiles: integer indices, no floats.
    let quantile = |percent: usize| rates[(rates.len() - 1) * percent / 100];
    let seconds = |rate: u64| u64::try_from(work.div_ceil(u128::from(rate))).unwrap_or(u64::MAX);
    Some(Estimate { low_s: seconds(quantile(80)), high_s: seconds(quantile(20)), samples: rates.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_bucket_cores_and_name_unknown_engines_other() {
        assert_eq!(class_key(Some("webkit"), Some(4), true), "webkit/3-4/simd");
        assert_eq!(class_key(Some("blink"), Some(8), false), "blink/5-8/plain");
        assert_eq!(class_key(Some("presto"), Some(64), true), "other/9+/simd");
        assert_eq!(class_key(None, None, true), "other/?/simd");
    }

    #[test]
    fn the_range_spans_the_faster_and_slower_devices() {
        // 2^24 hashes at 1, 2, ..., 10 MH/s.
        let rates: Vec<u64> = (1..=10).map(|m| m * 1_000_000).collect();
        let e = estimate(&rates, 1 << 24).unwrap();
        // Nearest rank over 10: the 80th percentile is 8 MH/s (2.1 s, rounded up), the 20th 2 MH/s (8.4 s).
        assert_eq!(e, Estimate { low_s: 3, high_s: 9, samples: 10 });
        assert!(e.low_s <= e.high_s);
        assert_eq!(estimate(&[5_000_000], 1 << 24), None, "one sample is not a range");
        assert_eq!(estimate(&[0, 0, 0], 1), None, "zero rates are not samples");
        let huge = estimate(&[1, 1], u128::MAX).unwrap();
        assert_eq!(huge.high_s, u64::MAX, "saturates instead of overflowing");
    }

    #[test]
    fn a_meter_counts_searching_not_pauses() {
        let start = Instant::now();
        let mut meter = RateMeter::new(Duration::from_secs(1));
        meter.share(start, 1_000_000); // its own start is unknown: not counted
        for i in 1..=8u64 {
            meter.share(start + Duration::from_secs(i), 1_000_000);
        }
        assert_eq!(meter.rate(), Some(1_000_000));
        // A minute away (the tab was hidden), then two more seconds of work: the minute is not counted.
        meter.share(start + Duration::from_secs(68), 1_000_000);
        meter.share(start + Duration::from_secs(69), 3_000_000);
        assert_eq!(meter.rate(), Some(11_000_000 / 9));
        let mut short = RateMeter::new(Duration::from_secs(1));
        for i in 0..5u64 {
            short.share(start + Duration::from_secs(i), 1_000_000);
        }
        assert_eq!(short.rate(), None, "too few shares to say");
    }
}
