//! The SHA-256d nonce search: a [`Job`] is a header template and a target; [`Job::scan`] searches a
//! range of nonce positions and reports every nonce whose hash meets the target.
//!
//! **Nonce positions.** The kernels iterate the nonce as SHA-256 message word W3 (header bytes
//! 76..80 read big-endian), so position `p` puts `p.to_be_bytes()` in the header and the header's
//! little-endian nonce field is `p.swap_bytes()` ([`nonce_at`]). The map is a bijection, so disjoint
//! position ranges (one per worker) search disjoint nonces. Hits are reported as header nonces, the
//! value a share submits.
//!
//! **Correctness.** The kernels compute only the top 32 bits of each hash; every candidate they let
//! through is re-hashed in full with the `sha2` crate and compared with the whole 256-bit target
//! before it is reported, so a reported nonce always verifies and none that meets the target is
//! missed (both are tested against brute force).
//!
//! The kernels never allocate in the hot loop: a hit appends to the caller's vector (a cold path).

mod rounds;
mod scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd;

use core::fmt;

use crate::baseline;
use crate::target::Target;

/// Length of a Bitcoin-style block header.
pub const HEADER_LEN: usize = 80;

/// Which implementation scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// One nonce at a time; available everywhere.
    Scalar,
    /// Four nonces per `v128`; only in builds with `+simd128`.
    Simd128,
}

impl Kernel {
    /// The fastest kernel compiled into this build.
    pub const BEST: Kernel = if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
        Kernel::Simd128
    } else {
        Kernel::Scalar
    };

    /// Every kernel compiled into this build (the scalar one always).
    pub fn available() -> impl Iterator<Item = Kernel> {
        [Kernel::Scalar, Kernel::Simd128].into_iter().filter(|k| k.is_available())
    }

    /// Whether this build contains the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            Kernel::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
        }
    }

    /// Lower-case name, as shown by the SDK and the benchmark.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Simd128 => "simd128",
        }
    }
}

/// Why a job could not be made or a scan could not run. Nothing is scanned when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelError {
    /// The header was not 80 bytes.
    HeaderLength(usize),
    /// A scan of zero positions was requested.
    EmptyRange,
    /// `start + count` runs past the last position (2^32 − 1).
    RangeOverflow,
    /// The requested kernel is not compiled into this build.
    Unavailable(Kernel),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::HeaderLength(n) => write!(f, "header must be {HEADER_LEN} bytes, got {n}"),
            KernelError::EmptyRange => f.write_str("nonce range is empty"),
            KernelError::RangeOverflow => f.write_str("nonce range runs past 2^32"),
            KernelError::Unavailable(k) => {
                write!(f, "the {} kernel is not in this build", k.name())
            }
        }
    }
}

impl std::error::Error for KernelError {}

/// The header nonce (little-endian `u32` at bytes 76..80) that nonce position `position` hashes.
pub const fn nonce_at(position: u32) -> u32 {
    position.swap_bytes()
}

/// A header template and a target, with the nonce-independent work done once.
#[derive(Clone, Debug)]
pub struct Job {
    header: [u8; HEADER_LEN],
    target: Target,
    pre: rounds::Precomputed,
}

impl Job {
    /// Prepares a search over `header` (its nonce bytes are ignored) for hashes `<= target`.
    pub fn new(header: &[u8], target: Target) -> Result<Job, KernelError> {
        let header: [u8; HEADER_LEN] =
            header.try_into().map_err(|_| KernelError::HeaderLength(header.len()))?;
        let pre = rounds::Precomputed::new(baseline::midstate(&header), &header);
        Ok(Job { header, target, pre })
    }

    /// The job's target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Scans positions `start .. start + count` with the best kernel in this build, appends the nonce
    /// of every hash that meets the target to `hits` in position order, and returns the hashes done.
    pub fn scan(&self, start: u32, count: u32, hits: &mut Vec<u32>) -> Result<u64, KernelError> {
        self.scan_with(Kernel::BEST, start, count, hits)
    }

    /// [`Job::scan`] with a chosen kernel.
    pub fn scan_with(
        &self,
        kernel: Kernel,
        start: u32,
        count: u32,
        hits: &mut Vec<u32>,
    ) -> Result<u64, KernelError> {
        if count == 0 {
            return Err(KernelError::EmptyRange);
        }
        if u64::from(start) + u64::from(count) > 1 << 32 {
            return Err(KernelError::RangeOverflow);
        }
        match kernel {
            Kernel::Scalar => scalar::scan(self, start, count, hits),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Kernel::Simd128 => simd::scan(self, start, count, hits),
            #[allow(unreachable_patterns)]
            other => return Err(KernelError::Unavailable(other)),
        }
        Ok(u64::from(count))
    }

    /// The header with the nonce of `position` filled in.
    pub fn header_at(&self, position: u32) -> [u8; HEADER_LEN] {
        let mut header = self.header;
        header[76..].copy_from_slice(&position.to_be_bytes());
        header
    }

    /// Full check of a kernel candidate with the independent `sha2` implementation.
    #[cold]
    fn check_candidate(&self, position: u32, hits: &mut Vec<u32>) {
        if self.target.is_met_by(&baseline::sha256d(&self.header_at(position))) {
            hits.push(nonce_at(position));
        }
    }
}

#[cfg(test)]
mod tests;
