//! How many workers the device really sustains. `hardwareConcurrency` is only a ceiling (WebKit
//! reports a fixed 4 on a 2-core machine; phones count slow cores like fast ones; another app may
//! hold the CPU), so the client measures: it starts one worker and adds one at a time while each
//! addition raises the total hash rate by at least half of what one worker did; the first addition
//! that does not is taken back, and the count settles for the session. A rate counts only once two
//! consecutive windows agree: engines tier a kernel up at their own pace (JavaScriptCore takes
//! seconds, and longer with its cores shared), and a window that still holds a warm-up would make
//! the next addition look like a gain. A pause restarts the window being measured, never the count
//! already earned.

/// Time a new worker count runs before it is measured: workers start, compile the kernel and warm
/// up (V8 has no on-stack replacement for wasm).
pub const WARMUP_MS: f64 = 1500.0;
/// One measuring window; a count is measured until two consecutive windows agree.
pub const WINDOW_MS: f64 = 2000.0;
/// Two windows agree when they differ by at most this share of the later one.
pub const STABLE: f64 = 0.1;
/// Windows after which a count that never steadies is taken as measured (the later window counts).
pub const MAX_WINDOWS: u32 = 6;
/// An added worker stays if the total rises by at least this share of one worker's rate.
pub const MIN_GAIN: f64 = 0.5;

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// The count changed (or mining resumed) at this time; measuring starts after the warm-up.
    WarmingUp {
        since_ms: f64,
    },
    /// Hashes counted from this (time, total); the previous window's rate, and how many windows.
    Measuring {
        from_ms: f64,
        from_hashes: u64,
        previous: Option<f64>,
        windows: u32,
    },
    Settled,
}

/// The scaling probe: fed the client's running hash total, it says when the worker count changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaling {
    max: u32,
    active: u32,
    /// The total rate (hashes/s) measured at `active - 1` workers.
    baseline: Option<f64>,
    phase: Option<Phase>,
}

impl Default for Scaling {
    /// One worker, nothing to measure.
    fn default() -> Scaling {
        Scaling::new(1)
    }
}

impl Scaling {
    /// At most `max` workers (the number the consent dialog promised).
    pub fn new(max: u32) -> Scaling {
        let max = max.max(1);
        Scaling { max, active: 1, baseline: None, phase: (max == 1).then_some(Phase::Settled) }
    }

    /// Workers to run now.
    pub fn active(&self) -> u32 {
        self.active
    }

    /// Whether the count is final.
    pub fn settled(&self) -> bool {
        self.phase == Some(Phase::Settled)
    }

    /// Mining stopped for a while (paused, hidden): what was being measured no longer counts.
    pub fn paused(&mut self) {
        if !self.settled() {
            self.phase = None;
        }
    }

    /// While mining, at `now_ms` with `hashes` done so far by all workers: the new worker count,
    /// when it changes.
    pub fn observe(&mut self, now_ms: f64, hashes: u64) -> Option<u32> {
        match self.phase.clone() {
            Some(Phase::Settled) => None,
            None => {
                self.phase = Some(Phase::WarmingUp { since_ms: now_ms });
                None
            }
            Some(Phase::WarmingUp { since_ms }) => {
                if now_ms - since_ms >= WARMUP_MS {
                    self.phase = Some(Phase::Measuring {
                        from_ms: now_ms,
                        from_hashes: hashes,
                        previous: None,
                        windows: 0,
                    });
                }
                None
            }
            Some(Phase::Measuring { from_ms, from_hashes, previous, windows }) => {
                let elapsed = now_ms - from_ms;
                if elapsed < WINDOW_MS {
                    return None;
                }
                let rate = hashes.saturating_sub(from_hashes) as f64 * 1000.0 / elapsed;
                let steady = previous.is_some_and(|before| (rate - before).abs() <= STABLE * rate);
                if !steady && windows + 1 < MAX_WINDOWS {
                    self.phase = Some(Phase::Measuring {
                        from_ms: now_ms,
                        from_hashes: hashes,
                        previous: Some(rate),
                        windows: windows + 1,
                    });
                    return None;
                }
                self.decide(now_ms, rate)
            }
        }
    }

    fn decide(&mut self, now_ms: f64, rate: f64) -> Option<u32> {
        let keep = match self.baseline {
            None => true,
            Some(before) => {
                let per_worker = before / f64::from(self.active - 1);
                rate - before >= MIN_GAIN * per_worker
            }
        };
        if !keep {
            self.active -= 1;
            self.phase = Some(Phase::Settled);
            return Some(self.active);
        }
        self.baseline = Some(rate);
        if self.active >= self.max {
            self.phase = Some(Phase::Settled);
            return None;
        }
        self.active += 1;
        self.phase = Some(Phase::WarmingUp { since_ms: now_ms });
        Some(self.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Runs the probe against a device whose total rate with n workers is `rate(n)`, ticking every
    /// 250 ms; returns the settled count and the counts it tried.
    fn settle(max: u32, rate: impl Fn(u32) -> f64) -> (u32, Vec<u32>) {
        let mut scaling = Scaling::new(max);
        let (mut now, mut hashes, mut tried) = (0.0, 0.0, vec![1]);
        for _ in 0..1000 {
            if scaling.settled() {
                break;
            }
            now += 250.0;
            hashes += rate(scaling.active()) * 0.25;
            if let Some(count) = scaling.observe(now, hashes as u64) {
                tried.push(count);
            }
        }
        assert!(scaling.settled(), "settles");
        (scaling.active(), tried)
    }

    #[test]
    fn workers_are_added_while_each_adds_real_work() {
        // Four real cores: linear.
        assert_eq!(settle(7, |n| f64::from(n.min(4)) * 1e6), (4, vec![1, 2, 3, 4, 5, 4]));
        // Two cores reported as four (WebKit): the third worker adds nothing and goes.
        assert_eq!(settle(3, |n| f64::from(n.min(2)) * 1e6), (2, vec![1, 2, 3, 2]));
        // As many as promised, and no more, when every one counts.
        assert_eq!(settle(3, |n| f64::from(n) * 1e6), (3, vec![1, 2, 3]));
        assert_eq!(settle(1, |_| 1e6), (1, vec![1]));
    }

    #[test]
    fn a_disturbed_window_is_not_mistaken_for_the_rate() {
        // Two cores. While two workers are first measured, something else takes 40 % of the CPU for
        // 3 s (another tab, JavaScriptCore still tiering up): a single window would set the baseline
        // at 1.2 MH/s, and the third worker's undisturbed 2 MH/s would look like a gain.
        let mut scaling = Scaling::new(3);
        let (mut now, mut hashes, mut changed_at) = (0.0, 0.0, 0.0);
        for _ in 0..2000 {
            if scaling.settled() {
                break;
            }
            now += 250.0;
            let active = scaling.active();
            let since = now - changed_at;
            let disturbed = active == 2 && (WARMUP_MS..WARMUP_MS + 3000.0).contains(&since);
            hashes += f64::from(active.min(2)) * 1e6 * if disturbed { 0.6 } else { 1.0 } * 0.25;
            if scaling.observe(now, hashes as u64).is_some() {
                changed_at = now;
            }
        }
        assert!(scaling.settled());
        assert_eq!(scaling.active(), 2);
    }

    #[test]
    fn a_worker_that_adds_less_than_half_a_worker_is_taken_back() {
        // Big cores then a slow little one: 1, 2, then +0.3 of a worker.
        let (count, _) = settle(4, |n| [0.0, 1.0, 2.0, 2.3, 2.4][n as usize] * 1e6);
        assert_eq!(count, 2);
        // Contention that makes a second worker slower than none.
        assert_eq!(settle(4, |n| if n == 1 { 1e6 } else { 0.9e6 }).0, 1);
    }

    #[test]
    fn a_pause_restarts_the_window_and_keeps_the_count() {
        let mut scaling = Scaling::new(4);
        let (mut now, mut hashes) = (0.0, 0u64);
        let mut step = |scaling: &mut Scaling, rate: f64, pause_ms: f64| {
            now += 250.0 + pause_ms;
            hashes += (rate * 0.25) as u64;
            scaling.observe(now, hashes)
        };
        while scaling.active() == 1 {
            step(&mut scaling, 1e6, 0.0);
        }
        assert_eq!(scaling.active(), 2);
        for _ in 0..10 {
            step(&mut scaling, 2e6, 0.0);
        }
        // Paused mid-window for a minute: that minute, with no hashes, does not count against two
        // workers (it would have looked like no gain, and taken the second worker back).
        scaling.paused();
        step(&mut scaling, 0.0, 60_000.0);
        while scaling.active() == 2 {
            step(&mut scaling, 2e6, 0.0);
        }
        assert_eq!(scaling.active(), 3, "measured after the pause at two workers' rate: kept");
    }
}
