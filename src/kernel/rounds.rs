//! The shape of the sha256d nonce search, written once over a lane type so the scalar kernel
//! ([`u32`] lanes) and the simd128 kernel (four `u32` per `v128`) are the same algorithm.
//!
//! Per job, [`Precomputed`] holds everything that does not depend on the nonce: the midstate of the
//! first 64 header bytes, rounds 0-2 of the second block and the nonce-free half of round 3, and the
//! nonce-free parts of message words W16..W32. Per nonce, [`sha256d_h7`] runs rounds 4-63 of the first
//! hash and rounds 0-60 of the second, whose fixed padding words and IV are constants that fold at
//! compile time, and returns only the final word H7: the most significant 32 bits of the hash as an
//! integer, enough to reject all but about one nonce in 2^32 at difficulty 1. Rounds 57-60 compute
//! only the `e` chain that H7 depends on. Callers check every candidate in full.

use core::num::Wrapping;
use core::ops::{Add, BitAnd, BitXor};

/// SHA-256 round constants.
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

pub(crate) use crate::baseline::IV;

/// Padding word after an 80-byte message (second block, word 4) and after a 32-byte one (word 8).
const PAD: u32 = 0x8000_0000;
/// Bit length of the first hash's message (80 bytes) and of the second's (32 bytes).
const LEN_80: u32 = 640;
const LEN_32: u32 = 256;

/// A vector of independent `u32` lanes with the operations SHA-256 needs. Addition wraps.
pub(crate) trait Lanes:
    Copy + Add<Output = Self> + BitXor<Output = Self> + BitAnd<Output = Self>
{
    fn splat(word: u32) -> Self;
    fn shr(self, n: u32) -> Self;
    fn rotr(self, n: u32) -> Self;
    /// Bits of `if_one` where `mask` is 1, of `if_zero` where it is 0 (SHA-256's Ch).
    fn select(mask: Self, if_one: Self, if_zero: Self) -> Self;

    #[inline(always)]
    fn big_sigma0(self) -> Self {
        self.rotr(2) ^ self.rotr(13) ^ self.rotr(22)
    }
    #[inline(always)]
    fn big_sigma1(self) -> Self {
        self.rotr(6) ^ self.rotr(11) ^ self.rotr(25)
    }
    #[inline(always)]
    fn sigma0(self) -> Self {
        self.rotr(7) ^ self.rotr(18) ^ self.shr(3)
    }
    #[inline(always)]
    fn sigma1(self) -> Self {
        self.rotr(17) ^ self.rotr(19) ^ self.shr(10)
    }
}

/// The eight working variables, plus `b ^ c` carried from the previous round so Maj costs three
/// operations: `Maj(a, b, c) = b ^ ((a ^ b) & (b ^ c))`, and this round's `a ^ b` is the next's `b ^ c`.
#[derive(Clone, Copy)]
pub(crate) struct State<L> {
    pub a: L,
    pub b: L,
    pub c: L,
    pub d: L,
    pub e: L,
    pub f: L,
    pub g: L,
    pub h: L,
    pub bc: L,
}

impl<L: Lanes> State<L> {
    pub fn from_words(s: [L; 8]) -> State<L> {
        State { a: s[0], b: s[1], c: s[2], d: s[3], e: s[4], f: s[5], g: s[6], h: s[7], bc: s[1] ^ s[2] }
    }

    /// One full round; `kw` is `K[t] + W[t]`.
    #[inline(always)]
    pub fn round(&mut self, kw: L) {
        let t1 = self.h + self.e.big_sigma1() + L::select(self.e, self.f, self.g) + kw;
        let ab = self.a ^ self.b;
        let t2 = self.a.big_sigma0() + (self.b ^ (ab & self.bc));
        self.h = self.g;
        self.g = self.f;
        self.f = self.e;
        self.e = self.d + t1;
        self.d = self.c;
        self.c = self.b;
        self.b = self.a;
        self.a = t1 + t2;
        self.bc = ab;
    }

    /// A round that computes only the new `e`: in rounds 57-60 of the second hash nothing reads `a`
    /// again before H7 is known (`d` in round 60 is `a` from round 56).
    #[inline(always)]
    fn round_e_only(&mut self, kw: L) {
        let t1 = self.h + self.e.big_sigma1() + L::select(self.e, self.f, self.g) + kw;
        self.h = self.g;
        self.g = self.f;
        self.f = self.e;
        self.e = self.d + t1;
        self.d = self.c;
        self.c = self.b;
        self.b = self.a;
    }
}

/// Repeats a block for each listed literal index, bound to `$t`: straight-line code with constant
/// array indices, which the optimiser keeps in registers (no loop, no memory).
macro_rules! unroll {
    ($t:ident in [$($i:literal)*] $body:block) => { $( { const $t: usize = $i; $body } )* };
}

/// Everything about a job's second header block that does not depend on the nonce (word W3).
#[derive(Clone, Debug)]
pub(crate) struct Precomputed {
    pub midstate: [u32; 8],
    /// State after round 3 with W3 = 0: `a` and `e` each still need `+ W3`.
    pub state3: [u32; 8],
    pub w16: u32,
    pub w17: u32,
    /// W18 = c18 + σ0(W3); W19 = c19 + W3; W31 and W32 nonce-free addends.
    pub c18: u32,
    pub c19: u32,
    pub c31: u32,
    pub c32: u32,
}

impl Precomputed {
    /// `header` is the 80-byte block header; its nonce bytes are ignored.
    pub fn new(midstate: [u32; 8], header: &[u8; 80]) -> Precomputed {
        let word = |i: usize| u32::from_be_bytes(header[64 + 4 * i..68 + 4 * i].try_into().unwrap());
        let w = [word(0), word(1), word(2)];
        let mut s = State::from_words(midstate.map(Wrapping));
        for (t, w) in w.into_iter().enumerate() {
            s.round(Wrapping(K[t].wrapping_add(w)));
        }
        // Round 3 with W3 = 0: the new `a` and `e` are both linear in W3, so the kernel adds it later.
        s.round(Wrapping(K[3]));
        let state3 = [s.a, s.b, s.c, s.d, s.e, s.f, s.g, s.h].map(|x| x.0);

        let w16 = w[0].sigma0_of(w[1]);
        let w17 = LEN_80.sigma1().wrapping_add(w[2].sigma0()).wrapping_add(w[1]);
        Precomputed {
            midstate,
            state3,
            w16,
            w17,
            c18: w16.sigma1().wrapping_add(w[2]),
            c19: w17.sigma1().wrapping_add(PAD.sigma0()),
            c31: w16.sigma0().wrapping_add(LEN_80),
            c32: w17.sigma0().wrapping_add(w16),
        }
    }
}

/// Plain `u32` helpers for the precomputation.
trait WordExt {
    fn sigma0(self) -> u32;
    fn sigma1(self) -> u32;
    fn sigma0_of(self, x: u32) -> u32;
}

impl WordExt for u32 {
    fn sigma0(self) -> u32 {
        self.rotate_right(7) ^ self.rotate_right(18) ^ (self >> 3)
    }
    fn sigma1(self) -> u32 {
        self.rotate_right(17) ^ self.rotate_right(19) ^ (self >> 10)
    }
    /// `self + σ0(x)`.
    fn sigma0_of(self, x: u32) -> u32 {
        self.wrapping_add(x.sigma0())
    }
}

/// H7 of sha256d for each lane's nonce word `w3` (the header's bytes 76..80 read big-endian).
///
/// The full hash meets a target only if `H7.swap_bytes() <= target.top_word()`.
#[inline(always)]
pub(crate) fn sha256d_h7<L: Lanes>(p: &Precomputed, w3: L) -> L {
    let s = L::splat;
    let [a, b, c, d, e, f, g, h] = p.state3;
    let mut st = State {
        a: s(a) + w3,
        b: s(b),
        c: s(c),
        d: s(d),
        e: s(e) + w3,
        f: s(f),
        g: s(g),
        h: s(h),
        bc: s(b ^ c),
    };

    // First hash, rounds 4-15: W4 = PAD, W5..W14 = 0, W15 = 640, so K + W is a constant.
    st.round(s(K[4].wrapping_add(PAD)));
    unroll!(T in [5 6 7 8 9 10 11 12 13 14] {
        st.round(s(K[T]));
    });
    st.round(s(K[15].wrapping_add(LEN_80)));

    // Rounds 16-32 use the precomputed schedule parts; W5..W14 = 0 drop out of the recurrence.
    let mut w = [s(0); 64];
    w[16] = s(p.w16);
    w[17] = s(p.w17);
    st.round(s(K[16].wrapping_add(p.w16)));
    st.round(s(K[17].wrapping_add(p.w17)));
    w[18] = s(p.c18) + w3.sigma0();
    st.round(s(K[18]) + w[18]);
    w[19] = s(p.c19) + w3;
    st.round(s(K[19]) + w[19]);
    w[20] = w[18].sigma1() + s(PAD);
    st.round(s(K[20]) + w[20]);
    w[21] = w[19].sigma1();
    st.round(s(K[21]) + w[21]);
    w[22] = w[20].sigma1() + s(LEN_80);
    st.round(s(K[22]) + w[22]);
    unroll!(T in [23 24 25 26 27 28 29] {
        w[T] = w[T - 2].sigma1() + w[T - 7];
        st.round(s(K[T]) + w[T]);
    });
    w[30] = w[28].sigma1() + w[23] + s(LEN_80.sigma0());
    st.round(s(K[30]) + w[30]);
    w[31] = w[29].sigma1() + w[24] + s(p.c31);
    st.round(s(K[31]) + w[31]);
    w[32] = w[30].sigma1() + w[25] + s(p.c32);
    st.round(s(K[32]) + w[32]);
    unroll!(T in [33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63] {
        w[T] = w[T - 2].sigma1() + w[T - 7] + w[T - 15].sigma0() + w[T - 16];
        st.round(s(K[T]) + w[T]);
    });

    // Second hash: a 32-byte message, so W8 = PAD, W9..W14 = 0, W15 = 256, and the state starts at the IV.
    let m = p.midstate;
    let mut w = [s(0); 64];
    w[0] = s(m[0]) + st.a;
    w[1] = s(m[1]) + st.b;
    w[2] = s(m[2]) + st.c;
    w[3] = s(m[3]) + st.d;
    w[4] = s(m[4]) + st.e;
    w[5] = s(m[5]) + st.f;
    w[6] = s(m[6]) + st.g;
    w[7] = s(m[7]) + st.h;
    w[8] = s(PAD);
    w[15] = s(LEN_32);
    let mut st = State::from_words(IV.map(s));
    unroll!(T in [0 1 2 3 4 5 6 7] {
        st.round(s(K[T]) + w[T]);
    });
    unroll!(T in [8 9 10 11 12 13 14 15] {
        st.round(s(K[T].wrapping_add(
            match T { 8 => PAD, 15 => LEN_32, _ => 0 }
        )));
    });
    unroll!(T in [16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56] {
        w[T] = w[T - 2].sigma1() + w[T - 7] + w[T - 15].sigma0() + w[T - 16];
        st.round(s(K[T]) + w[T]);
    });
    unroll!(T in [57 58 59 60] {
        w[T] = w[T - 2].sigma1() + w[T - 7] + w[T - 15].sigma0() + w[T - 16];
        st.round_e_only(s(K[T]) + w[T]);
    });
    // After round 63, h is the e computed in round 60.
    st.e + s(IV[7])
}
