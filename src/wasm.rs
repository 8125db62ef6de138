//! The wasm-bindgen API used by the SDK's web workers. Every entry point validates its arguments and
//! returns a `JsError` (a thrown `Error` in JS) instead of trapping, so a bad message cannot kill a
//! worker's module instance.

use js_sys::{Object, Reflect, Uint32Array};
use wasm_bindgen::prelude::*;

#[cfg(not(target_feature = "simd128"))]
use crate::baseline::Sha2Scan;
#[cfg(not(target_feature = "simd128"))]
use crate::kernel::HEADER_LEN;
use crate::kernel::{Job, Kernel};
use crate::target::Target;

/// A nonce search over one header template, scanned in batches so a worker can stop between them.
#[wasm_bindgen]
pub struct Scanner {
    job: Job,
    hits: Vec<u32>,
}

#[wasm_bindgen]
impl Scanner {
    /// `header`: 80 bytes (nonce bytes ignored); `target`: 32 bytes, little-endian, nonzero.
    #[wasm_bindgen(constructor)]
    pub fn new(header: &[u8], target: &[u8]) -> Result<Scanner, JsError> {
        let target = Target::from_le_bytes(target).map_err(|e| JsError::new(&e.to_string()))?;
        let job = Job::new(header, target).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Scanner { job, hits: Vec::with_capacity(16) })
    }

    /// Scans nonce positions `start .. start + count` with the build's best kernel and returns
    /// `{hashes, nonces}`: the hashes done and a `Uint32Array` of every header nonce that met the target.
    pub fn scan(&mut self, start: u32, count: u32) -> Result<Object, JsError> {
        self.hits.clear();
        let hashes = self
            .job
            .scan_with(Kernel::BEST, start, count, &mut self.hits)
            .map_err(|e| JsError::new(&e.to_string()))?;
        scan_report(hashes, &self.hits)
    }
}

/// The kernel [`Scanner::scan`] uses in this build: `"simd128"` or `"scalar"`.
#[wasm_bindgen(js_name = kernelName)]
pub fn kernel_name() -> String {
    Kernel::BEST.name().to_owned()
}

/// The benchmark baseline: the same midstate search with the `sha2` crate's portable code. Only in
/// the plain build, where the benchmark runs it: the simd build, which most visitors download, leaves
/// it out.
#[cfg(not(target_feature = "simd128"))]
#[wasm_bindgen]
pub struct Sha2Scanner {
    scan: Sha2Scan,
    hits: Vec<u32>,
}

#[cfg(not(target_feature = "simd128"))]
#[wasm_bindgen]
impl Sha2Scanner {
    /// Same arguments as [`Scanner::new`].
    #[wasm_bindgen(constructor)]
    pub fn new(header: &[u8], target: &[u8]) -> Result<Sha2Scanner, JsError> {
        let header: &[u8; HEADER_LEN] = header
            .try_into()
            .map_err(|_| JsError::new(&format!("header must be {HEADER_LEN} bytes, got {}", header.len())))?;
        let target = Target::from_le_bytes(target).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Sha2Scanner { scan: Sha2Scan::new(header, target), hits: Vec::new() })
    }

    /// Hashes header nonces `start .. start + count` (wrapping); returns `{hashes, nonces}`.
    pub fn scan(&mut self, start: u32, count: u32) -> Result<Object, JsError> {
        if count == 0 {
            return Err(JsError::new("nonce range is empty"));
        }
        self.hits.clear();
        self.scan.scan(start, count, &mut self.hits);
        scan_report(u64::from(count), &self.hits)
    }
}

fn scan_report(hashes: u64, nonces: &[u32]) -> Result<Object, JsError> {
    let report = Object::new();
    let set = |key: &str, value: &JsValue| {
        Reflect::set(&report, &JsValue::from_str(key), value).map_err(|_| JsError::new("cannot build report"))
    };
    set("hashes", &JsValue::from_f64(hashes as f64))?;
    set("nonces", &Uint32Array::from(nonces).into())?;
    Ok(report)
}
