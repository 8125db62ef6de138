//! The scalar kernel: one nonce at a time with `Wrapping<u32>` lanes. It is the reference the simd128
//! kernel is tested against and the kernel of the plain wasm build (for browsers without wasm SIMD).

use core::num::Wrapping;

use super::Job;
use super::rounds::{Lanes, sha256d_h7};

impl Lanes for Wrapping<u32> {
    #[inline(always)]
    fn splat(word: u32) -> Self {
        Wrapping(word)
    }
    #[inline(always)]
    fn shr(self, n: u32) -> Self {
        Wrapping(self.0 >> n)
    }
    #[inline(always)]
    fn rotr(self, n: u32) -> Self {
        Wrapping(self.0.rotate_right(n))
    }
    #[inline(always)]
    fn select(mask: Self, if_one: Self, if_zero: Self) -> Self {
        Wrapping(if_zero.0 ^ (mask.0 & (if_one.0 ^ if_zero.0)))
    }
}

/// Scans positions `start .. start + count` (the caller has checked the range) and appends the header
/// nonce of each hash that meets the job's target to `hits`.
pub(super) fn scan(job: &Job, start: u32, count: u32, hits: &mut Vec<u32>) {
    let top = job.target.top_word();
    for i in 0..count {
        let position = start.wrapping_add(i);
        let h7 = sha256d_h7(&job.pre, Wrapping(position)).0;
        if h7.swap_bytes() <= top {
            job.check_candidate(position, hits);
        }
    }
}
