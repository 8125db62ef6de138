//! Stratum v1 as data: the messages a pool sends and expects, and how a `mining.notify` becomes an
//! 80-byte header. Pure: no sockets, no clocks (the connection is in [`super::upstream`]).
//!
//! Byte orders, the part every proxy gets wrong once:
//! - `prevhash` travels as the internal (little-endian) hash with the bytes of each 32-bit word
//!   reversed; undoing that per word gives the header's bytes 4..36.
//! - `version`, `nbits` and `ntime` travel as big-endian hex of the `u32`; the header holds them
//!   little-endian. `mining.submit` sends `ntime` and `nonce` back in the same big-endian hex.
//! - coinbase = coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2; the merkle root folds
//!   `h = sha256d(h ‖ branch[i])` from sha256d(coinbase), all in internal byte order.

use minepass::baseline::sha256d;
use minepass::target::{Target, U256};
use serde_json::{Value, json};

/// Why a pool's message could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StratumError(pub String);

impl std::fmt::Display for StratumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StratumError {}

fn bad(what: impl Into<String>) -> StratumError {
    StratumError(what.into())
}

/// One upstream job: the parameters of a `mining.notify`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub job_id: String,
    /// Header bytes 4..36 (internal byte order).
    pub prevhash: [u8; 32],
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    /// Merkle branch hashes, internal byte order.
    pub branch: Vec<[u8; 32]>,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    /// Earlier jobs are void: shares on them are stale.
    pub clean: bool,
}

fn string<'a>(params: &'a [Value], index: usize, name: &str) -> Result<&'a str, StratumError> {
    params.get(index).and_then(Value::as_str).ok_or_else(|| bad(format!("{name} is not a string")))
}

fn hex_bytes(text: &str, name: &str) -> Result<Vec<u8>, StratumError> {
    hex::decode(text).map_err(|_| bad(format!("{name} is not hex")))
}

fn hash32(text: &str, name: &str) -> Result<[u8; 32], StratumError> {
    hex_bytes(text, name)?.try_into().map_err(|_| bad(format!("{name} is not 32 bytes")))
}

/// A `u32` from its Stratum form: 8 hex digits, big-endian.
pub fn parse_u32_be(text: &str, name: &str) -> Result<u32, StratumError> {
    if text.len() != 8 {
        return Err(bad(format!("{name} is not 8 hex digits")));
    }
    u32::from_str_radix(text, 16).map_err(|_| bad(format!("{name} is not hex")))
}

/// A `u32` in its Stratum form (`mining.submit` ntime and nonce).
pub fn format_u32_be(value: u32) -> String {
    format!("{value:08x}")
}

impl Notify {
    /// Decodes `mining.notify` params: `[job_id, prevhash, coinb1, coinb2, [branch…], version, nbits,
    /// ntime, clean_jobs]`.
    pub fn parse(params: &Value) -> Result<Notify, StratumError> {
        let params = params.as_array().ok_or_else(|| bad("notify params are not an array"))?;
        if params.len() < 9 {
            return Err(bad("notify has fewer than 9 params"));
        }
        let job_id = string(params, 0, "job_id")?;
        if job_id.is_empty() || job_id.len() > 64 {
            return Err(bad("job_id must be 1-64 characters"));
        }
        let mut prevhash = hash32(string(params, 1, "prevhash")?, "prevhash")?;
        for word in prevhash.chunks_exact_mut(4) {
            word.reverse();
        }
        let branch = params[4]
            .as_array()
            .ok_or_else(|| bad("merkle branch is not an array"))?
            .iter()
            .map(|h| hash32(h.as_str().unwrap_or_default(), "merkle branch hash"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Notify {
            job_id: job_id.to_owned(),
            prevhash,
            coinb1: hex_bytes(string(params, 2, "coinb1")?, "coinb1")?,
            coinb2: hex_bytes(string(params, 3, "coinb2")?, "coinb2")?,
            branch,
            version: parse_u32_be(string(params, 5, "version")?, "version")?,
            nbits: parse_u32_be(string(params, 6, "nbits")?, "nbits")?,
            ntime: parse_u32_be(string(params, 7, "ntime")?, "ntime")?,
            clean: params[8].as_bool().ok_or_else(|| bad("clean_jobs is not a boolean"))?,
        })
    }

    /// The merkle root for one extranonce pair.
    pub fn merkle_root(&self, extranonce1: &[u8], extranonce2: &[u8]) -> [u8; 32] {
        let coinbase = [&self.coinb1[..], extranonce1, extranonce2, &self.coinb2[..]].concat();
        merkle_root(sha256d(&coinbase), &self.branch)
    }

    /// The 80-byte header (nonce zero) for one extranonce pair and ntime.
    pub fn header(&self, extranonce1: &[u8], extranonce2: &[u8], ntime: u32) -> [u8; 80] {
        header(
            self.version,
            &self.prevhash,
            &self.merkle_root(extranonce1, extranonce2),
            ntime,
            self.nbits,
            0,
        )
    }
}

/// Folds the merkle branch over the coinbase transaction's hash.
pub fn merkle_root(coinbase_hash: [u8; 32], branch: &[[u8; 32]]) -> [u8; 32] {
    branch.iter().fold(coinbase_hash, |h, step| {
        let mut pair = [0u8; 64];
        pair[..32].copy_from_slice(&h);
        pair[32..].copy_from_slice(step);
        sha256d(&pair)
    })
}

/// A block header from its fields (hashes in internal byte order).
pub fn header(
    version: u32,
    prevhash: &[u8; 32],
    merkle_root: &[u8; 32],
    ntime: u32,
    nbits: u32,
    nonce: u32,
) -> [u8; 80] {
    let mut h = [0u8; 80];
    h[..4].copy_from_slice(&version.to_le_bytes());
    h[4..36].copy_from_slice(prevhash);
    h[36..68].copy_from_slice(merkle_root);
    h[68..72].copy_from_slice(&ntime.to_le_bytes());
    h[72..76].copy_from_slice(&nbits.to_le_bytes());
    h[76..].copy_from_slice(&nonce.to_le_bytes());
    h
}

mod u512 {
    #![allow(missing_docs, clippy::all)]
    uint::construct_uint! {
        /// Wide enough for DIFF1 shifted by the exponent of any useful difficulty.
        pub struct U512(8);
    }
}
use u512::U512;

/// The share target of a pool difficulty (`mining.set_difficulty`): `DIFF1 / d`, computed exactly from
/// the binary value of the `f64` the pool sent (a JSON number), with no float arithmetic. Very small
/// difficulties saturate at the largest target. `None` for zero, negative, NaN or infinite values.
pub fn target_from_difficulty(difficulty: f64) -> Option<Target> {
    if !difficulty.is_finite() || difficulty <= 0.0 {
        return None;
    }
    // difficulty = mantissa · 2^exponent exactly.
    let bits = difficulty.to_bits();
    let raw_exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exponent) =
        if raw_exponent == 0 { (fraction, -1074) } else { (fraction | (1u64 << 52), raw_exponent - 1075) };
    let diff1 = U512::from_little_endian(&Target::DIFF1.to_le_bytes());
    let value = if exponent >= 0 {
        if exponent > 256 {
            return Target::from_u256(U256::one()).ok();
        }
        diff1 / (U512::from(mantissa) << exponent as usize)
    } else {
        let shift = (-exponent) as usize;
        // DIFF1 < 2^224: past this shift the quotient exceeds 2^256 whatever the mantissa.
        if shift >= 288 {
            return Some(Target::MAX);
        }
        (diff1 << shift) / U512::from(mantissa)
    };
    if value.bits() > 256 {
        return Some(Target::MAX);
    }
    let bytes = value.to_little_endian();
    Target::from_le_bytes(&bytes[..32]).ok().or(Target::from_u256(U256::one()).ok())
}

/// A message from the pool, by shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The answer to one of our requests.
    Response { id: u64, result: Value, error: Option<PoolError> },
    /// A notification or a request from the pool (`mining.notify`, `client.reconnect`, …).
    Call { id: Option<Value>, method: String, params: Value },
}

/// A pool's error: `[code, message, traceback]` in most pools, sometimes a bare string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolError {
    pub code: i64,
    pub message: String,
}

impl PoolError {
    fn from_value(value: &Value) -> Option<PoolError> {
        match value {
            Value::Null | Value::Bool(false) => None,
            Value::Array(items) => Some(PoolError {
                code: items.first().and_then(Value::as_i64).unwrap_or(20),
                message: items.get(1).and_then(Value::as_str).unwrap_or("error").to_owned(),
            }),
            Value::Object(map) => Some(PoolError {
                code: map.get("code").and_then(Value::as_i64).unwrap_or(20),
                message: map.get("message").and_then(Value::as_str).unwrap_or("error").to_owned(),
            }),
            Value::String(text) => Some(PoolError { code: 20, message: text.clone() }),
            other => Some(PoolError { code: 20, message: other.to_string() }),
        }
    }
}

/// Longest line the broker reads from a pool; a notify with a long merkle branch is a few KB.
pub const MAX_LINE: usize = 64 * 1024;

impl Incoming {
    /// Reads one line. Responses whose id is not one of ours (null, a string) are reported as errors:
    /// the broker only sends numeric ids.
    pub fn parse(line: &str) -> Result<Incoming, StratumError> {
        let value: Value = serde_json::from_str(line).map_err(|_| bad("a line from the pool is not JSON"))?;
        if let Some(method) = value.get("method").and_then(Value::as_str) {
            let id = value.get("id").filter(|id| !id.is_null()).cloned();
            return Ok(Incoming::Call {
                id,
                method: method.to_owned(),
                params: value.get("params").cloned().unwrap_or(Value::Null),
            });
        }
        let id = value.get("id").and_then(Value::as_u64).ok_or_else(|| bad("a response without our id"))?;
        Ok(Incoming::Response {
            id,
            result: value.get("result").cloned().unwrap_or(Value::Null),
            error: value.get("error").and_then(PoolError::from_value),
        })
    }
}

/// A request line (the connection's line codec adds the newline).
pub fn request(id: u64, method: &str, params: Value) -> String {
    json!({ "id": id, "method": method, "params": params }).to_string()
}

/// The `mining.subscribe` result: `[[subscriptions…], extranonce1, extranonce2_size]`.
pub fn parse_subscribe(result: &Value) -> Result<(Vec<u8>, usize), StratumError> {
    let items = result.as_array().ok_or_else(|| bad("subscribe result is not an array"))?;
    let en1 = items.get(1).and_then(Value::as_str).ok_or_else(|| bad("no extranonce1"))?;
    let en2_size = items.get(2).and_then(Value::as_u64).ok_or_else(|| bad("no extranonce2_size"))?;
    parse_extranonce(en1, en2_size)
}

/// `mining.set_extranonce` params: `[extranonce1, extranonce2_size]`.
pub fn parse_set_extranonce(params: &Value) -> Result<(Vec<u8>, usize), StratumError> {
    let en1 = params.get(0).and_then(Value::as_str).ok_or_else(|| bad("no extranonce1"))?;
    let en2_size = params.get(1).and_then(Value::as_u64).ok_or_else(|| bad("no extranonce2_size"))?;
    parse_extranonce(en1, en2_size)
}

fn parse_extranonce(en1: &str, en2_size: u64) -> Result<(Vec<u8>, usize), StratumError> {
    let en1 = hex_bytes(en1, "extranonce1")?;
    if en1.len() > 32 {
        return Err(bad("extranonce1 is longer than 32 bytes"));
    }
    if !(1..=16).contains(&en2_size) {
        return Err(bad("extranonce2_size must be 1-16"));
    }
    Ok((en1, en2_size as usize))
}

/// `mining.set_difficulty` params: `[difficulty]`.
pub fn parse_difficulty(params: &Value) -> Result<(f64, Target), StratumError> {
    let difficulty =
        params.get(0).and_then(Value::as_f64).ok_or_else(|| bad("difficulty is not a number"))?;
    let target = target_from_difficulty(difficulty).ok_or_else(|| bad("difficulty must be positive"))?;
    Ok((difficulty, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    fn reversed(text: &str) -> [u8; 32] {
        let mut bytes: [u8; 32] = unhex(text).try_into().unwrap();
        bytes.reverse();
        bytes
    }

    /// The Stratum form of a hash: internal order with each 32-bit word's bytes reversed.
    fn stratum_prevhash(display: &str) -> String {
        let mut bytes = reversed(display);
        for word in bytes.chunks_exact_mut(4) {
            word.reverse();
        }
        hex::encode(bytes)
    }

    // Block 100,000: four transactions, the classic merkle example. Its header and hash are public.
    const BLOCK_100000_HASH: &str = "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506";
    const BLOCK_100000_PREV: &str = "000000000002d01c1fccc21636b607dfd930d31d01c3a62104612a1719011250";
    const BLOCK_100000_TXIDS: [&str; 4] = [
        "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
        "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
        "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
        "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
    ];
    const BLOCK_100000_ROOT: &str = "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766";
    // Its coinbase transaction; the extranonce region is cut out of the scriptSig below.
    const BLOCK_100000_COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff08044c86041b020602ffffffff0100f2052a010000004341041b0e8c2567c12536aa13357b79a073dc4444acb83c4ec7a0e2f99dd7457516c5817242da796924ca4e99947d087fedf9ce467cb9f7c6287078f801df276fdf84ac00000000";

    /// The notify a pool would have sent for block 100,000, with the coinbase split around a 4-byte
    /// extranonce1 and a 2-byte extranonce2 taken from its scriptSig (`4c86041b` and `0206`).
    fn block_100000_notify(clean: bool) -> (Value, Vec<u8>, Vec<u8>) {
        let coinbase = BLOCK_100000_COINBASE;
        let at = coinbase.find("044c86041b020602").unwrap() + 2;
        let (coinb1, rest) = coinbase.split_at(at);
        let coinb2 = &rest[12..];
        let en1 = unhex(&rest[..8]);
        let en2 = unhex(&rest[8..12]);
        // Branch for the coinbase: tx 1, then hash(tx 2 ‖ tx 3), internal order.
        let t2 = reversed(BLOCK_100000_TXIDS[2]);
        let t3 = reversed(BLOCK_100000_TXIDS[3]);
        let right = merkle_root(t2, &[t3]);
        let branch = vec![hex::encode(reversed(BLOCK_100000_TXIDS[1])), hex::encode(right)];
        let params = json!([
            "6a1",
            stratum_prevhash(BLOCK_100000_PREV),
            coinb1,
            coinb2,
            branch,
            "00000001",
            "1b04864c",
            "4d1b2237",
            clean
        ]);
        (params, en1, en2)
    }

    #[test]
    fn coinbase_hashes_to_its_published_txid() {
        assert_eq!(sha256d(&unhex(BLOCK_100000_COINBASE)), reversed(BLOCK_100000_TXIDS[0]));
    }

    #[test]
    fn a_notify_for_block_100000_builds_its_real_header_and_hash() {
        let (params, en1, en2) = block_100000_notify(true);
        let notify = Notify::parse(&params).unwrap();
        assert!(notify.clean);
        assert_eq!(notify.prevhash, reversed(BLOCK_100000_PREV), "prevhash word order undone");
        assert_eq!(notify.merkle_root(&en1, &en2), reversed(BLOCK_100000_ROOT), "merkle folding");
        let mut header = notify.header(&en1, &en2, notify.ntime);
        header[76..].copy_from_slice(&0x10572b0fu32.to_le_bytes());
        let mut hash = sha256d(&header);
        hash.reverse();
        assert_eq!(hex::encode(hash), BLOCK_100000_HASH);
        // And it is the header the public chain has (tests/vectors.rs holds it).
        assert_eq!(
            hex::encode(header),
            "0100000050120119172a610421a6c3011dd330d9df07b63616c2cc1f1cd00200000000006657a9252aacd5c0b2940996ecff952228c3067cc38d4885efb5a4ac4247e9f337221b4d4c86041b0f2b5710"
        );
        // A different extranonce2 gives a different merkle root, so a different header.
        assert_ne!(notify.header(&en1, &[0, 1], notify.ntime), notify.header(&en1, &en2, notify.ntime));
    }

    #[test]
    fn block_125552_from_the_wiki_worked_example() {
        // Fields as a pool sends them; the merkle root is given (empty branch, its "coinbase hash").
        let prev = "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81";
        let root = "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3";
        let notify = Notify::parse(&json!([
            "1",
            stratum_prevhash(prev),
            "",
            "",
            [],
            "00000001",
            "1a44b9f2",
            "4dd7f5c7",
            false
        ]))
        .unwrap();
        let h =
            header(notify.version, &notify.prevhash, &reversed(root), notify.ntime, notify.nbits, 2504433986);
        let mut hash = sha256d(&h);
        hash.reverse();
        assert_eq!(hex::encode(hash), "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d");
        assert!(Target::from_compact(notify.nbits).unwrap().is_met_by(&sha256d(&h)));
    }

    #[test]
    fn malformed_notifies_are_errors_not_panics() {
        let (good, _, _) = block_100000_notify(false);
        for index in 0..9 {
            let mut params = good.clone();
            params[index] = json!(12);
            assert!(Notify::parse(&params).is_err(), "param {index} mistyped");
        }
        let mut short = good.clone();
        short.as_array_mut().unwrap().pop();
        assert!(Notify::parse(&short).is_err());
        let mut odd = good.clone();
        odd[1] = json!("abc");
        assert!(Notify::parse(&odd).is_err());
        assert!(Notify::parse(&json!({"a": 1})).is_err());
    }

    #[test]
    fn difficulty_converts_to_targets_exactly() {
        assert_eq!(target_from_difficulty(1.0), Some(Target::DIFF1));
        assert_eq!(target_from_difficulty(1024.0), Target::from_difficulty(1024).ok());
        let half = target_from_difficulty(0.5).unwrap();
        assert_eq!(half.as_u256(), Target::DIFF1.as_u256() * U256::from(2));
        // 1/65536: 2^16 × DIFF1, worth about 2^16 hashes.
        let tiny = target_from_difficulty(1.0 / 65536.0).unwrap();
        assert_eq!(tiny.as_u256(), Target::DIFF1.as_u256() << 16);
        assert_eq!(tiny.expected_hashes(), 65537);
        // 0.001 is not a binary fraction: DIFF1 / 0.001 rounds down from the f64's exact value.
        let milli = target_from_difficulty(0.001).unwrap();
        assert!(milli.as_u256() / Target::DIFF1.as_u256() == U256::from(1000) - U256::one());
        assert_eq!(target_from_difficulty(1e-300), Some(Target::MAX));
        assert!(target_from_difficulty(1e300).is_some());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(target_from_difficulty(bad), None);
        }
        assert_eq!(parse_difficulty(&json!([0.5])).unwrap().1, half);
        assert!(parse_difficulty(&json!(["1"])).is_err());
    }

    #[test]
    fn pool_lines_parse_by_shape() {
        let subscribe = Incoming::parse(
            r#"{"id":2,"result":[[["mining.set_difficulty","1"],["mining.notify","1"]],"08000002",4],"error":null}"#,
        )
        .unwrap();
        let Incoming::Response { id: 2, result, error: None } = subscribe else { panic!("{subscribe:?}") };
        assert_eq!(parse_subscribe(&result).unwrap(), (vec![8, 0, 0, 2], 4));
        let rejected =
            Incoming::parse(r#"{"id":9,"result":null,"error":[23,"low difficulty share",null]}"#).unwrap();
        assert!(matches!(
            rejected,
            Incoming::Response { id: 9, error: Some(PoolError { code: 23, .. }), .. }
        ));
        let notify =
            Incoming::parse(r#"{"id":null,"method":"mining.set_difficulty","params":[0.5]}"#).unwrap();
        assert!(
            matches!(notify, Incoming::Call { id: None, ref method, .. } if method == "mining.set_difficulty")
        );
        assert!(Incoming::parse("not json").is_err());
        assert!(Incoming::parse(r#"{"id":"x","result":true}"#).is_err());
        assert!(parse_subscribe(&json!([[], "zz", 4])).is_err());
        assert!(parse_set_extranonce(&json!(["0a0b", 0])).is_err());
        assert_eq!(parse_set_extranonce(&json!(["0a0b", 2])).unwrap(), (vec![10, 11], 2));
        assert_eq!(format_u32_be(0x10572b0f), "10572b0f");
        assert_eq!(
            request(3, "mining.authorize", json!(["u", "p"])),
            "{\"id\":3,\"method\":\"mining.authorize\",\"params\":[\"u\",\"p\"]}"
        );
    }
}
