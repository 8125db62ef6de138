//! [`WorkColumn`]: a u128 of expected hashes as a database value. SQLite's INTEGER is 64-bit, so
//! there it is decimal TEXT (totals are added in Rust inside the writing transaction); PostgreSQL
//! stores `NUMERIC(39,0)`, so totals are summable in SQL.
//!
//! PostgreSQL's binary NUMERIC is encoded here rather than through a bignum crate: u128 is the only
//! such type in the ledger, and the format is small (base-10000 digits, most significant first).

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueFormat, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};

/// Expected hashes (work, credits, prices) as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct WorkColumn(pub u128);

impl Type<Sqlite> for WorkColumn {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for WorkColumn {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.0.to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for WorkColumn {
    fn decode(value: SqliteValueRef<'r>) -> Result<WorkColumn, BoxDynError> {
        let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ok(WorkColumn(text.parse().map_err(|_| format!("corrupt work value {text:?}"))?))
    }
}

/// PostgreSQL's `numeric` type.
const NUMERIC: PgTypeInfo = PgTypeInfo::with_oid(Oid(1700));
const NUMERIC_POSITIVE: u16 = 0x0000;

impl Type<Postgres> for WorkColumn {
    fn type_info() -> PgTypeInfo {
        NUMERIC
    }
}

impl Encode<'_, Postgres> for WorkColumn {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&numeric_bytes(self.0));
        Ok(IsNull::No)
    }
}

impl<'r> Decode<'r, Postgres> for WorkColumn {
    fn decode(value: PgValueRef<'r>) -> Result<WorkColumn, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => Ok(WorkColumn(numeric_value(value.as_bytes()?)?)),
            PgValueFormat::Text => {
                let text = value.as_str()?;
                Ok(WorkColumn(text.parse().map_err(|_| format!("work value {text:?} is not a u128"))?))
            }
        }
    }
}

/// `value` in NUMERIC's binary form: digit count, weight (power of 10000 of the first digit), sign,
/// display scale, then the digits, all big-endian 16-bit.
fn numeric_bytes(value: u128) -> Vec<u8> {
    let mut digits = Vec::with_capacity(10);
    let mut rest = value;
    while rest > 0 {
        digits.push((rest % 10_000) as i16);
        rest /= 10_000;
    }
    digits.reverse();
    let weight = digits.len() as i16 - 1;
    // Trailing zero digits are implied by the weight.
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.max(0).to_be_bytes());
    out.extend_from_slice(&NUMERIC_POSITIVE.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    for digit in digits {
        out.extend_from_slice(&digit.to_be_bytes());
    }
    out
}

/// The u128 a binary NUMERIC holds; an error for a negative, fractional, NaN or too large value.
fn numeric_value(bytes: &[u8]) -> Result<u128, BoxDynError> {
    let word = |i: usize| -> Result<u16, BoxDynError> {
        let pair = bytes.get(2 * i..2 * i + 2).ok_or("truncated numeric")?;
        Ok(u16::from_be_bytes([pair[0], pair[1]]))
    };
    let (count, weight, sign) = (word(0)? as i16, word(1)? as i16, word(2)?);
    if sign != NUMERIC_POSITIVE {
        return Err("work is negative or NaN".into());
    }
    let mut value: u128 = 0;
    for i in 0..count.max(0) as usize {
        let digit = word(4 + i)?;
        // Digit i is worth 10000^(weight - i): a negative power is a fraction.
        if digit >= 10_000 || (i as i16 > weight && digit != 0) {
            return Err("work is not a whole number".into());
        }
        if i as i16 <= weight {
            value = value
                .checked_mul(10_000)
                .and_then(|v| v.checked_add(u128::from(digit)))
                .ok_or("work over u128")?;
        }
    }
    let stored = count.max(0).min(weight + 1);
    for _ in stored.max(0)..weight + 1 {
        value = value.checked_mul(10_000).ok_or("work over u128")?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_round_trips_every_digit_shape() {
        for value in [0, 1, 9_999, 10_000, 10_001, 1 << 64, 10u128.pow(20), 10u128.pow(38), u128::MAX] {
            assert_eq!(numeric_value(&numeric_bytes(value)).unwrap(), value, "{value}");
        }
        // 10^8 stored as the single digit 1 at weight 2.
        assert_eq!(numeric_bytes(100_000_000), [0, 1, 0, 2, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn numeric_refuses_what_is_not_a_u128() {
        let negative = [0, 1, 0, 0, 0x40, 0, 0, 0, 0, 1];
        let half = [0, 1, 0xff, 0xff, 0, 0, 0, 1, 0x13, 0x88]; // 0.5: digit 5000 at weight -1
        let huge = [0, 1, 0, 10, 0, 0, 0, 0, 0, 1]; // 10^40
        for bad in [&negative[..], &half, &huge, &[0, 1]] {
            assert!(numeric_value(bad).is_err(), "{bad:?}");
        }
    }
}
