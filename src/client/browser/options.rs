//! Reading JavaScript objects: the `MinePass.init` options the loader passes, and the field reader
//! the other parts use for broker frames, worker messages and host facts.

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use crate::client::controller::Identity;
use crate::client::policy::Limits;
use crate::protocol::Consent;

/// The most workers a client runs, whatever the page asks (a sanity bound, not a target).
const MAX_THREADS: u64 = 256;

/// `MinePass.init` options as the loader passes them (camelCase, like the JS API).
#[derive(Debug)]
pub(super) struct Options {
    /// `ws(s)://…/ws` of the broker.
    pub broker: String,
    /// URL of `worker.js`.
    pub worker_url: String,
    /// `"simd"` or `"plain"`: the wasm build the workers load.
    pub build: String,
    /// Who mines, for which site and content, under which consent (`hello`'s fields). Its
    /// `threads` is the most workers to run: the number the consent dialog promised (the loader's
    /// `threads()`, its one source); the scaling probe decides how many of them the device sustains.
    pub identity: Identity,
    /// Idle share of time, 0 ≤ throttle < 1.
    pub throttle: f64,
    /// Mining minutes per local day.
    pub daily_minutes: f64,
    /// The visitor's and publisher's limits the policy applies.
    pub limits: Limits,
}

impl Options {
    pub fn from_js(value: &JsValue) -> Result<Options, JsError> {
        let fields = Fields(value);
        let required = |key: &str| fields.string(key).ok_or_else(|| invalid(key));
        let consent = fields.get("consent");
        let consent = Fields(&consent);
        let build = required("build")?;
        let identity = Identity {
            site: required("site")?,
            // A publisher-vouched id (with `userProof`) or a broker-issued anonymous one (with
            // `userSecret`); none for a new anonymous visitor.
            user: fields.string("user"),
            user_proof: fields.string("userProof"),
            user_secret: fields.string("userSecret"),
            content: fields.string("content"),
            consent: Consent {
                id: consent.string("id").ok_or_else(|| invalid("consent.id"))?,
                given_at: consent.integer("given_at").ok_or_else(|| invalid("consent.given_at"))?,
                expires_at: consent.integer("expires_at").ok_or_else(|| invalid("consent.expires_at"))?,
            },
            threads: fields
                .integer("threads")
                .filter(|n| (1..=MAX_THREADS).contains(n))
                .ok_or_else(|| invalid("threads (1-256)"))? as u32,
            simd: build == "simd",
            gate_only: fields.boolean("gateOnly").unwrap_or(false),
            // The device class the loader reports (`support.js` `deviceClass`).
            engine: fields.string("engine"),
            cores: fields.integer("cores").and_then(|n| u32::try_from(n).ok()),
        };
        let options = Options {
            broker: required("broker")?,
            worker_url: required("workerUrl")?,
            build,
            identity,
            throttle: fields.number("throttle").unwrap_or(0.0),
            daily_minutes: fields.number("dailyMinutes").unwrap_or(30.0),
            limits: Limits {
                require_charging: fields.boolean("requireCharging").unwrap_or(false),
                respect_save_data: fields.boolean("respectSaveData").unwrap_or(true),
                ..Limits::default()
            },
        };
        if !(0.0..1.0).contains(&options.throttle) {
            return Err(invalid("throttle (0 <= throttle < 1)"));
        }
        if options.daily_minutes.is_nan() || options.daily_minutes < 0.0 {
            return Err(invalid("dailyMinutes (>= 0)"));
        }
        Ok(options)
    }
}

fn invalid(key: &str) -> JsError {
    let mut message = String::from("MinePass options: missing or invalid ");
    message.push_str(key);
    JsError::new(&message)
}

/// Reads fields of a JS object. (By hand rather than with serde: serde's deserialisers and their
/// error formatting would triple the size of the client's wasm.)
pub(super) struct Fields<'a>(pub &'a JsValue);

impl Fields<'_> {
    pub fn get(&self, key: &str) -> JsValue {
        Reflect::get(self.0, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key).as_string()
    }

    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key).as_f64()
    }

    /// A non-negative integer that fits `u64` exactly (JS numbers are exact up to 2^53).
    pub fn integer(&self, key: &str) -> Option<u64> {
        self.number(key)
            .filter(|n| n.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(n))
            .map(|n| n as u64)
    }

    pub fn boolean(&self, key: &str) -> Option<bool> {
        self.get(key).as_bool()
    }

    /// The entries of an array field, each read by `entry`; `None` if it is not an array.
    pub fn array_of<T>(&self, key: &str, entry: impl Fn(&Fields) -> T) -> Option<Vec<T>> {
        let value = self.get(key);
        js_sys::Array::is_array(&value)
            .then(|| js_sys::Array::from(&value).iter().map(|e| entry(&Fields(&e))).collect())
    }
}

/// Sets `key` of a JS object (messages to workers, event details).
pub(super) fn set(object: &js_sys::Object, key: &str, value: JsValue) {
    let _ = Reflect::set(object, &JsValue::from_str(key), &value);
}
