//! Avro decimals as big-endian two's-complement bytes: any valid length in, one canonical length out.
//!
//! The Avro specification lets a writer encode a `bytes` decimal in any number of bytes that holds
//! the value; stock Confluent serializers (Java's `BigDecimal` conversion, Python's fastavro) write
//! the shortest. apache-avro refuses to resolve a decimal whose byte length could not hold the
//! declared precision, whatever the value, so the reader widens every decimal before resolving
//! ([`widen`]) and checks the value itself against the contract after ([`fits`]).

use apache_avro::schema::{DecimalSchema, InnerDecimalSchema};
use apache_avro::Decimal;

/// Fewest big-endian two's-complement bytes that hold `value`.
pub(crate) fn bytes_needed(value: i128) -> usize {
    (1..16).find(|&n| twos_complement(value, n).is_some()).unwrap_or(16)
}

/// Bytes apache-avro requires for `precision` digits when it resolves a decimal
/// (its `max_prec_for_len` check): shorter encodings fail reader-schema resolution.
pub(crate) fn bytes_for_precision(precision: usize) -> usize {
    let digits = |n: i32| (2.0_f64.powi(8 * n - 1) - 1.0).log10().floor();
    (1..=16_i32).find(|&n| digits(n) >= precision as f64).and_then(|n| usize::try_from(n).ok()).unwrap_or(16)
}

/// `value` as exactly `length` big-endian two's-complement bytes, if it fits.
pub(crate) fn twos_complement(value: i128, length: usize) -> Option<Vec<u8>> {
    let fill = if value < 0 { 0xFF } else { 0x00 };
    let full = value.to_be_bytes();
    if length >= full.len() {
        let mut bytes = vec![fill; length - full.len()];
        bytes.extend_from_slice(&full);
        return Some(bytes);
    }
    let (dropped, kept) = full.split_at(full.len() - length);
    let sign_kept = kept.first().map_or(value == 0, |b| (b & 0x80 != 0) == (value < 0));
    (dropped.iter().all(|&b| b == fill) && sign_kept).then(|| kept.to_vec())
}

/// The value of big-endian two's-complement bytes, if it fits in 128 bits.
pub(crate) fn from_twos_complement(bytes: &[u8]) -> Option<i128> {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xFF } else { 0x00 };
    let (extra, tail) = bytes.split_at(bytes.len().saturating_sub(16));
    let sign_lost = tail.first().is_some_and(|b| (b & 0x80 != 0) != negative);
    if sign_lost || extra.iter().any(|&b| b != fill) {
        return None;
    }
    let mut buffer = [fill; 16];
    buffer[16 - tail.len()..].copy_from_slice(tail);
    Some(i128::from_be_bytes(buffer))
}

/// The unscaled value of a decoded decimal, if it fits in 128 bits.
pub(crate) fn unscaled(decimal: &Decimal) -> Option<i128> {
    <Vec<u8>>::try_from(decimal).ok().and_then(|bytes| from_twos_complement(&bytes))
}

/// The same decimal in 16 bytes, which satisfies apache-avro's length check for every precision
/// (at most 38); `None` when it does not fit in 128 bits.
pub(crate) fn widen(decimal: &Decimal) -> Option<Decimal> {
    unscaled(decimal).and_then(|value| twos_complement(value, 16)).map(Decimal::from)
}

/// The decimal in the length the hub writes for `schema` (what [`crate::contract::json_to_avro`]
/// produces), after checking it has at most `precision` digits; the error says why not.
pub(crate) fn fits(decimal: &Decimal, schema: &DecimalSchema) -> Result<Decimal, String> {
    let value = unscaled(decimal).ok_or_else(|| "a decimal of more than 128 bits".to_owned())?;
    let digits = value.unsigned_abs().checked_ilog10().map_or(1, |d| d as usize + 1);
    if digits > schema.precision {
        return Err(format!("{digits} digits, more than decimal({}, {}) holds", schema.precision, schema.scale));
    }
    let length = match &schema.inner {
        InnerDecimalSchema::Bytes => bytes_needed(value).max(bytes_for_precision(schema.precision)),
        InnerDecimalSchema::Fixed(fixed) => fixed.size,
    };
    twos_complement(value, length).map(Decimal::from).ok_or_else(|| format!("does not fit in {length} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(precision: usize, scale: usize) -> DecimalSchema {
        DecimalSchema { precision, scale, inner: InnerDecimalSchema::Bytes }
    }

    #[test]
    fn shortest_and_padded_forms_are_the_same_value() {
        for value in [0_i128, 1, -1, 127, 128, -128, -129, 999_999_999_999_999_999, -999_999_999_999_999_999] {
            let shortest = twos_complement(value, bytes_needed(value)).expect("fits");
            let padded = twos_complement(value, 8).expect("fits");
            assert_eq!(unscaled(&Decimal::from(&shortest)), Some(value));
            assert_eq!(unscaled(&Decimal::from(&padded)), Some(value));
            let widened = widen(&Decimal::from(&shortest)).expect("widens");
            assert_eq!(<Vec<u8>>::try_from(&widened).expect("bytes").len(), 16);
            assert_eq!(unscaled(&widened), Some(value));
            let canonical = fits(&widened, &schema(18, 2)).expect("18 digits fit");
            assert_eq!(<Vec<u8>>::try_from(&canonical).expect("bytes"), padded);
        }
    }

    #[test]
    fn precision_is_checked_on_the_value_not_the_length() {
        let nineteen = twos_complement(1_000_000_000_000_000_000, 8).expect("fits in 8 bytes");
        let error = fits(&Decimal::from(nineteen), &schema(18, 2)).expect_err("19 digits");
        assert!(error.contains("19 digits"), "{error}");
        assert!(fits(&Decimal::from(vec![0x01]), &schema(1, 0)).is_ok());
    }
}
