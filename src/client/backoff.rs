//! Reconnect delays: exponential backoff with jitter, so thousands of visitors dropped by one broker
//! restart do not all come back in the same second.

/// Delays before reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
    attempt: u32,
}

impl Backoff {
    pub fn new(base_ms: u64, max_ms: u64) -> Backoff {
        Backoff { base_ms, max_ms, attempt: 0 }
    }

    /// The delay before the next attempt: a ceiling of `base · 2^attempt` (at most `max`), and a
    /// uniformly random delay between half the ceiling and the ceiling (`unit` is a uniform random
    /// number in [0, 1), from the caller so this stays pure).
    pub fn next_delay_ms(&mut self, unit: f64) -> u64 {
        let ceiling = self.base_ms.saturating_mul(1u64 << self.attempt.min(32)).min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + (unit.clamp(0.0, 1.0) * (ceiling - half) as f64) as u64
    }

    /// After a session opened: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new(1000, 30_000);
        let ceilings = [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000];
        for ceiling in ceilings {
            let mut low = backoff;
            let mut high = backoff;
            assert_eq!(low.next_delay_ms(0.0), ceiling / 2);
            assert_eq!(high.next_delay_ms(0.999_999), ceiling - 1);
            let delay = backoff.next_delay_ms(0.5);
            assert!((ceiling / 2..=ceiling).contains(&delay), "{delay} for ceiling {ceiling}");
        }
        for _ in 0..100 {
            assert!(backoff.next_delay_ms(1.0) <= 30_000, "no overflow after many attempts");
        }
        backoff.reset();
        assert_eq!(backoff.next_delay_ms(0.0), 500);
    }
}
