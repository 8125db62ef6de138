//! Native half of `cargo xtask bench`: sha256d nonce search on one thread with the `sha2` crate (the
//! broker's share verification speed) and with MinePass's scalar kernel. Prints one JSON line.
//!
//! xtask builds this twice: with default flags (sha2 detects SHA-NI at run time) and with
//! `-C target-cpu=native` (SHA-NI inlined: the practical limit of this CPU).

use std::time::{Duration, Instant};

use minepass::baseline::Sha2Scan;
use minepass::kernel::Job;
use minepass::target::Target;

/// Calls `scan(start, count)` in batches for `duration` after a short warm-up; returns MH/s.
fn measure(duration: Duration, mut scan: impl FnMut(u32, u32)) -> f64 {
    const BATCH: u32 = 1 << 16;
    let mut position = 0u32;
    for _ in 0..8 {
        scan(position, BATCH);
        position = position.wrapping_add(BATCH);
    }
    let started = Instant::now();
    let mut hashes = 0u64;
    while started.elapsed() < duration {
        scan(position, BATCH);
        position = position.wrapping_add(BATCH).min(u32::MAX - BATCH);
        hashes += u64::from(BATCH);
    }
    hashes as f64 / started.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let duration = Duration::from_secs_f64(seconds);
    let header: [u8; 80] = std::array::from_fn(|i| (i as u8).wrapping_mul(151).wrapping_add(7));
    let target = Target::DIFF1;
    let mut hits = Vec::new();

    let mut sha2 = Sha2Scan::new(&header, target);
    let sha2_mhs = measure(duration, |start, count| sha2.scan(start, count, &mut hits));
    let job = Job::new(&header, target).expect("80-byte header");
    let kernel_mhs = measure(duration, |start, count| {
        job.scan(start, count, &mut hits).expect("valid range");
    });
    std::hint::black_box(&hits);
    let sha_ni = has_sha_ni();
    println!("{{\"sha2_mhs\":{sha2_mhs:.3},\"scalar_kernel_mhs\":{kernel_mhs:.3},\"sha_ni\":{sha_ni}}}");
}

/// Whether the CPU has the SHA extensions the native sha2 backend uses.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn has_sha_ni() -> bool {
    std::arch::is_x86_feature_detected!("sha")
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
fn has_sha_ni() -> bool {
    false
}
