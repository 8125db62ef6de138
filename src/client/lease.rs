//! The tab lock where Web Locks are missing: a lease `owner:until_ms` in `localStorage`, renewed by
//! its holder every tick and free to take once it has run out (its tab closed or froze).

/// How long a lease lasts unless renewed; the holder renews it every second.
pub const LEASE_MS: f64 = 5000.0;

/// Whether `owner` may hold the lock at `now_ms`, given the stored lease: none, unreadable, its own,
/// or run out.
pub fn may_hold(stored: Option<&str>, owner: &str, now_ms: f64) -> bool {
    match stored.and_then(|lease| lease.split_once(':')) {
        None => true,
        Some((holder, until)) => {
            holder == owner || until.parse::<u64>().map_or(true, |until| (until as f64) < now_ms)
        }
    }
}

/// The lease `owner` stores at `now_ms`.
pub fn lease(owner: &str, now_ms: f64) -> String {
    let mut lease = String::from(owner);
    lease.push(':');
    lease.push_str(&((now_ms + LEASE_MS) as u64).to_string());
    lease
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn one_tab_holds_the_lease_until_it_runs_out() {
        let now = 1_700_000_000_000.0;
        assert!(may_hold(None, "a", now), "nothing stored");
        let held = lease("a", now);
        assert_eq!(held, "a:1700000005000");
        assert!(may_hold(Some(&held), "a", now + 1000.0), "its own");
        assert!(!may_hold(Some(&held), "b", now + 1000.0), "another tab's, still running");
        assert!(!may_hold(Some(&held), "b", now + LEASE_MS), "until its last millisecond");
        assert!(may_hold(Some(&held), "b", now + LEASE_MS + 1.0), "run out: the holder is gone");
        assert!(may_hold(Some("garbage"), "b", now) && may_hold(Some("a:soon"), "b", now), "unreadable");
    }
}
