//! Kernel tests: every kernel in the build against brute force with the `sha2` crate. They run natively
//! (scalar) and in headless Chromium (scalar and simd128).

use super::*;
use crate::target::U256;
use crate::testutil::Rng;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// The hits brute force finds: every position hashed in full by `sha2`.
fn brute_force(job: &Job, start: u32, count: u32) -> Vec<u32> {
    (0..count)
        .map(|i| start.wrapping_add(i))
        .filter(|&p| job.target().is_met_by(&baseline::sha256d(&job.header_at(p))))
        .map(nonce_at)
        .collect()
}

fn hash_as_target(job: &Job, position: u32) -> U256 {
    U256::from_little_endian(&baseline::sha256d(&job.header_at(position)))
}

#[test]
fn kernels_equal_brute_force_on_random_jobs() {
    let mut rng = Rng::new(0x5EED);
    for case in 0..400 {
        let header = rng.header();
        let count = rng.below(300) + 1;
        // Ranges at the very end of the nonce space, at arbitrary lane alignments, and anywhere.
        let start = match case % 3 {
            0 => u32::MAX - (count - 1) - rng.below(4),
            1 => rng.below(64),
            _ => rng.next_u32().min(u32::MAX - count + 1),
        };
        let probe = start.wrapping_add(rng.below(count));
        let probe_job = Job::new(&header, Target::MAX).unwrap();
        let hash = hash_as_target(&probe_job, probe);
        // Targets exactly at a hash in the range, one below it (ties on the top word decide in the full
        // check), and easy random ones.
        let target = match case % 4 {
            0 => hash,
            1 if !hash.is_zero() => hash - U256::one(),
            _ => U256::from(rng.next_u32() >> rng.below(8)) << 224 | U256::from(rng.next_u64()),
        };
        let Ok(target) = Target::from_u256(target) else {
            continue;
        };
        let job = Job::new(&header, target).unwrap();
        let expected = brute_force(&job, start, count);
        match case % 4 {
            0 => assert!(expected.contains(&nonce_at(probe))),
            1 => assert!(!expected.contains(&nonce_at(probe))),
            _ => {}
        }
        for kernel in Kernel::available() {
            let mut hits = Vec::new();
            let done = job.scan_with(kernel, start, count, &mut hits).unwrap();
            assert_eq!(done, u64::from(count));
            assert_eq!(hits, expected, "case {case}: {kernel:?} start {start:#x} count {count} {target:?}");
        }
    }
}

#[test]
fn hit_rate_matches_expected_work() {
    // 2^16 positions at 1/16 odds: 4096 hits expected, σ ≈ 62. Every one must verify and none be missed.
    let job = Job::new(&Rng::new(3).header(), Target::from_expected_hashes(16)).unwrap();
    let expected = brute_force(&job, 1000, 1 << 16);
    assert!((4096 - 320..=4096 + 320).contains(&expected.len()), "{} hits", expected.len());
    for kernel in Kernel::available() {
        let mut hits = Vec::new();
        job.scan_with(kernel, 1000, 1 << 16, &mut hits).unwrap();
        assert_eq!(hits, expected, "{kernel:?}");
    }
}

#[test]
fn whole_tail_of_the_nonce_space_including_the_last_nonce() {
    let job = Job::new(&Rng::new(5).header(), Target::from_expected_hashes(2)).unwrap();
    for count in 1..=9 {
        let start = u32::MAX - (count - 1);
        let expected = brute_force(&job, start, count);
        for kernel in Kernel::available() {
            let mut hits = Vec::new();
            job.scan_with(kernel, start, count, &mut hits).unwrap();
            assert_eq!(hits, expected, "{kernel:?} count {count}");
        }
        let mut hits = Vec::new();
        assert_eq!(job.scan(start, count + 1, &mut hits), Err(KernelError::RangeOverflow));
        assert!(hits.is_empty());
    }
}

#[test]
fn bad_arguments_are_errors_not_traps() {
    assert_eq!(Job::new(&[0; 79], Target::MAX).unwrap_err(), KernelError::HeaderLength(79));
    assert_eq!(Job::new(&[0; 81], Target::MAX).unwrap_err(), KernelError::HeaderLength(81));
    let job = Job::new(&[0; 80], Target::MAX).unwrap();
    let mut hits = Vec::new();
    assert_eq!(job.scan(5, 0, &mut hits), Err(KernelError::EmptyRange));
    assert_eq!(job.scan(u32::MAX, 2, &mut hits), Err(KernelError::RangeOverflow));
    assert!(hits.is_empty());
    if !Kernel::Simd128.is_available() {
        let err = job.scan_with(Kernel::Simd128, 0, 1, &mut hits);
        assert_eq!(err, Err(KernelError::Unavailable(Kernel::Simd128)));
    }
}

#[test]
fn nonce_positions_map_to_header_nonces() {
    let job = Job::new(&[7; 80], Target::MAX).unwrap();
    let header = job.header_at(0x1dac_2b7c);
    assert_eq!(&header[76..], &[0x1d, 0xac, 0x2b, 0x7c]);
    assert_eq!(u32::from_le_bytes(header[76..].try_into().unwrap()), nonce_at(0x1dac_2b7c));
    assert_eq!(&header[..76], &[7; 76]);
}

#[test]
fn the_build_runs_the_kernel_it_was_built_for() {
    // `cargo xtask test` sets this per wasm build, so a build that silently lost simd128 (and so tested
    // only the scalar kernel) fails here instead of passing.
    if let Some(expected) = option_env!("MINEPASS_EXPECT_KERNEL") {
        assert_eq!(Kernel::BEST.name(), expected);
        assert!(Kernel::BEST.is_available());
    }
}
