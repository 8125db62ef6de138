//! sha256d with the `sha2` crate: the independent reference the kernels are checked against, the full
//! check of every kernel candidate, and the baseline the benchmark compares with.
//!
//! [`Sha2Scan`] uses the same midstate trick as the kernels (the first 64 header bytes are compressed
//! once) so that the benchmark compares kernels, not algorithms. It uses `sha2`'s runtime-detected
//! backend natively (SHA-NI on x86) and its portable backend on wasm.

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

use crate::target::Target;

/// SHA-256 initial state.
pub const IV: [u32; 8] =
    [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19];

/// sha256d of any message: `SHA256(SHA256(message))`, in digest byte order.
pub fn sha256d(message: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(message)).into()
}

/// The SHA-256 state after compressing the first 64 bytes of a header.
pub fn midstate(header: &[u8; 80]) -> [u32; 8] {
    let mut state = IV;
    sha2::compress256(&mut state, &[*GenericArray::from_slice(&header[..64])]);
    state
}

/// A nonce search that calls `sha2::compress256` for both hashes of every nonce.
pub struct Sha2Scan {
    midstate: [u32; 8],
    tail: [u8; 64],
    target: Target,
}

impl Sha2Scan {
    /// Prepares the midstate and the padded second block for `header`.
    pub fn new(header: &[u8; 80], target: Target) -> Sha2Scan {
        let mut tail = [0u8; 64];
        tail[..16].copy_from_slice(&header[64..80]);
        tail[16] = 0x80;
        tail[56..].copy_from_slice(&640u64.to_be_bytes());
        Sha2Scan { midstate: midstate(header), tail, target }
    }

    /// Hashes nonces `start .. start + count` (wrapping) and appends those that meet the target.
    pub fn scan(&mut self, start: u32, count: u32, hits: &mut Vec<u32>) {
        let mut second = [0u8; 64];
        second[32] = 0x80;
        second[56..].copy_from_slice(&256u64.to_be_bytes());
        for i in 0..count {
            let nonce = start.wrapping_add(i);
            self.tail[12..16].copy_from_slice(&nonce.to_le_bytes());
            let mut state = self.midstate;
            sha2::compress256(&mut state, &[*GenericArray::from_slice(&self.tail)]);
            for (chunk, word) in second[..32].chunks_exact_mut(4).zip(state) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            let mut hash = IV;
            sha2::compress256(&mut hash, &[*GenericArray::from_slice(&second)]);
            // The digest's last four bytes are the integer's most significant: check them first.
            if hash[7].swap_bytes() <= self.target.top_word() {
                let mut digest = [0u8; 32];
                for (chunk, word) in digest.chunks_exact_mut(4).zip(hash) {
                    chunk.copy_from_slice(&word.to_be_bytes());
                }
                if self.target.is_met_by(&digest) {
                    hits.push(nonce);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Rng, hex};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn midstate_scan_agrees_with_plain_sha256d() {
        let mut rng = Rng::new(11);
        let header = rng.header();
        let target = Target::from_le_bytes(&hex(&format!("{}0f", "ff".repeat(31)))).unwrap();
        let start = rng.next_u32();
        let mut hits = Vec::new();
        Sha2Scan::new(&header, target).scan(start, 3000, &mut hits);
        let mut expected = Vec::new();
        let mut h = header;
        for i in 0..3000u32 {
            let nonce = start.wrapping_add(i);
            h[76..].copy_from_slice(&nonce.to_le_bytes());
            if target.is_met_by(&sha256d(&h)) {
                expected.push(nonce);
            }
        }
        assert!(expected.len() > 100, "target too hard for a meaningful test");
        assert_eq!(hits, expected);
    }
}
