//! Real Bitcoin block headers from the public chain: each kernel must find the block's own nonce under
//! the block's own target, and the `sha2` reference must reproduce the published block hash. Runs
//! natively and in headless Chromium (`wasm-pack test`).

use minepass::baseline::sha256d;
use minepass::kernel::{Job, Kernel, nonce_at};
use minepass::target::Target;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

struct Block {
    height: u32,
    /// The 80-byte header as serialised on the wire.
    header: &'static str,
    /// The block hash as explorers show it (byte-reversed digest).
    hash: &'static str,
}

const BLOCKS: [Block; 4] = [
    Block {
        height: 0,
        header: "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
        hash: "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    },
    Block {
        height: 1,
        header: "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299",
        hash: "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048",
    },
    Block {
        height: 100_000,
        header: "0100000050120119172a610421a6c3011dd330d9df07b63616c2cc1f1cd00200000000006657a9252aacd5c0b2940996ecff952228c3067cc38d4885efb5a4ac4247e9f337221b4d4c86041b0f2b5710",
        hash: "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506",
    },
    // The Bitcoin wiki's "Block hashing algorithm" page works this one in full.
    Block {
        height: 125_552,
        header: "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695",
        hash: "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d",
    },
];

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn sha2_reproduces_published_block_hashes() {
    for block in &BLOCKS {
        let mut digest = sha256d(&hex(block.header));
        digest.reverse();
        assert_eq!(digest.to_vec(), hex(block.hash), "block {}", block.height);
    }
}

#[test]
fn kernels_find_each_block_nonce_under_its_own_target() {
    for block in &BLOCKS {
        let header = hex(block.header);
        let nbits = u32::from_le_bytes(header[72..76].try_into().unwrap());
        let nonce = u32::from_le_bytes(header[76..80].try_into().unwrap());
        let target = Target::from_compact(nbits).unwrap();
        assert!(target.is_met_by(&sha256d(&header)), "block {}", block.height);

        // Blank the nonce: the kernel must find it again, and nothing else, in a window around it.
        let mut template = header.clone();
        template[76..].fill(0);
        let job = Job::new(&template, target).unwrap();
        let position = nonce.swap_bytes();
        assert_eq!(nonce_at(position), nonce);
        let start = position.saturating_sub(5003);
        for kernel in Kernel::available() {
            let mut hits = Vec::new();
            job.scan_with(kernel, start, 10_007, &mut hits).unwrap();
            assert_eq!(hits, [nonce], "block {} with the {} kernel", block.height, kernel.name());
            assert_eq!(job.header_at(position).to_vec(), header);
        }
    }
}

#[test]
fn one_nonce_less_does_not_meet_the_block_target() {
    // The kernels' early reject must not let a near miss through: the neighbour of the winning nonce.
    for block in &BLOCKS {
        let header = hex(block.header);
        let nbits = u32::from_le_bytes(header[72..76].try_into().unwrap());
        let job = Job::new(&header, Target::from_compact(nbits).unwrap()).unwrap();
        let position = u32::from_le_bytes(header[76..80].try_into().unwrap()).swap_bytes();
        for kernel in Kernel::available() {
            let mut hits = Vec::new();
            job.scan_with(kernel, position + 1, 1, &mut hits).unwrap();
            assert!(hits.is_empty(), "block {}", block.height);
        }
    }
}
