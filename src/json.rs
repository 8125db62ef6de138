//! A JSON object writer for the SDK's outgoing text: broker frames ([`crate::protocol::ClientMessage`])
//! and page events. serde's serialisers, with `serde-wasm-bindgen` or `serde_json` behind them, cost
//! the client's wasm module several kilobytes of generic code for a handful of flat objects; this
//! writes them directly. Native tests compare every message against serde's output, so the two
//! cannot drift.
//!
//! Only what those objects hold: string, integer, boolean and nested-object values. Floats are left
//! out on purpose (formatting them would pull in the float printer); values that are floats in
//! JavaScript are rounded to integers by the caller.

/// One JSON object being written: `{"key":value,…}`.
pub struct Object {
    out: String,
}

impl Default for Object {
    fn default() -> Object {
        Object::new()
    }
}

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object { out: String::from("{") }
    }

    /// An object whose first member is `"type":kind`, the tag of every protocol message and event.
    pub fn tagged(kind: &str) -> Object {
        let mut object = Object::new();
        object.str("type", kind);
        object
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_string(&mut self.out, key);
        self.out.push(':');
    }

    /// `"key":"value"`.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Object {
        self.key(key);
        push_string(&mut self.out, value);
        self
    }

    /// `"key":"value"` when there is a value; nothing otherwise.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Object {
        if let Some(value) = value {
            self.str(key, value);
        }
        self
    }

    /// `"key":n`.
    pub fn uint(&mut self, key: &str, value: u64) -> &mut Object {
        self.key(key);
        push_decimal(&mut self.out, u128::from(value));
        self
    }

    /// `"key":n` when there is a value; nothing otherwise.
    pub fn opt_uint(&mut self, key: &str, value: Option<u64>) -> &mut Object {
        if let Some(value) = value {
            self.uint(key, value);
        }
        self
    }

    /// `"key":"n"`: a u128 as a decimal string (the wire form of work, which JavaScript numbers
    /// would round).
    pub fn decimal_str(&mut self, key: &str, value: u128) -> &mut Object {
        self.key(key);
        self.out.push('"');
        push_decimal(&mut self.out, value);
        self.out.push('"');
        self
    }

    /// `"key":true` or `"key":false`.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Object {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// `"key":null`.
    pub fn null(&mut self, key: &str) -> &mut Object {
        self.key(key);
        self.out.push_str("null");
        self
    }

    /// `"key":{…}`.
    pub fn object(&mut self, key: &str, value: Object) -> &mut Object {
        self.key(key);
        self.out.push_str(&value.finish());
        self
    }

    /// `"key":[{…},…]`.
    pub fn objects(&mut self, key: &str, values: impl IntoIterator<Item = Object>) -> &mut Object {
        self.key(key);
        self.out.push('[');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(&value.finish());
        }
        self.out.push(']');
        self
    }

    /// The JSON text.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped as RFC 8259 requires.
fn push_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `value` in decimal, without `core::fmt` (whose u128 path alone is a kilobyte and a half of wasm)
/// and without u128 division (another kilobyte): long division of 32-bit limbs by 10^9 in u64.
fn push_decimal(out: &mut String, value: u128) {
    const BILLION: u64 = 1_000_000_000;
    let mut limbs = [(value >> 96) as u32, (value >> 64) as u32, (value >> 32) as u32, value as u32];
    // Base-10^9 digits, least significant first: u128::MAX has 39 decimal digits, so 5 suffice.
    let mut chunks = [0u32; 5];
    let mut count = 0;
    loop {
        let mut remainder = 0u64;
        for limb in &mut limbs {
            let current = remainder << 32 | u64::from(*limb);
            *limb = (current / BILLION) as u32;
            remainder = current % BILLION;
        }
        chunks[count] = remainder as u32;
        count += 1;
        if limbs == [0; 4] {
            break;
        }
    }
    for (i, &chunk) in chunks[..count].iter().rev().enumerate() {
        let mut digits = [b'0'; 9];
        let mut rest = chunk;
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        // The leading chunk unpadded (but "0" stays "0"), the others nine digits each.
        let start = if i == 0 { digits.iter().position(|&d| d != b'0').unwrap_or(8) } else { 0 };
        digits[start..].iter().for_each(|&d| out.push(char::from(d)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_the_json_serde_writes() {
        let mut inner = Object::new();
        inner.uint("n", 7).bool("yes", true);
        let mut object = Object::tagged("t");
        object
            .str("text", "quote \" backslash \\ newline \n tab \t bell \u{7} é ∑")
            .opt_str("absent", None)
            .opt_uint("none", None)
            .opt_uint("some", Some(u64::MAX))
            .decimal_str("work", u128::MAX)
            .decimal_str("zero", 0)
            .bool("no", false)
            .null("nothing")
            .object("inner", inner)
            .objects("list", [Object::new(), Object::tagged("x")]);
        let text = object.finish();
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let expected = serde_json::json!({
            "type": "t",
            "text": "quote \" backslash \\ newline \n tab \t bell \u{7} é ∑",
            "some": u64::MAX,
            "work": u128::MAX.to_string(),
            "zero": "0",
            "no": false,
            "nothing": null,
            "inner": {"n": 7, "yes": true},
            "list": [{}, {"type": "x"}],
        });
        assert_eq!(parsed, expected);
        assert_eq!(Object::new().finish(), "{}");
    }

    #[test]
    fn decimals_match_the_standard_formatter() {
        let edges =
            [0u128, 1, 9, 10, 99, 100, 999_999_999, 1_000_000_000, 1_000_000_001, 12_345_678_901_234_567_890];
        let limbs = [u32::MAX.into(), u64::MAX.into(), u128::from(u64::MAX) << 32, 10u128.pow(38), u128::MAX];
        for value in edges.into_iter().chain(limbs) {
            let mut out = String::new();
            push_decimal(&mut out, value);
            assert_eq!(out, value.to_string());
        }
    }
}
