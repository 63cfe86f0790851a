//! Money as the contracts carry it: Avro `decimal(18,2)`, held as exact integer cents with
//! checked arithmetic and an explicit range, shared by the edge and the processor.

use std::fmt;

/// Digits a contract amount may have (the `precision` of `decimal(18,2)`).
pub const PRECISION: u32 = 18;
/// Fraction digits of a contract amount (the `scale` of `decimal(18,2)`).
pub const SCALE: u32 = 2;
/// Largest amount in cents a contract can carry: 18 nines, 9999999999999999.99.
pub const MAX_CENTS: i64 = 999_999_999_999_999_999;

/// An exact amount in cents, wide enough that no sum or product of contract amounts and
/// quantities an order can hold overflows; [`Cents::carried`] says whether a contract holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(pub i128);

impl Cents {
    /// Parses "129.90", "5", "-0.01" (at most two fraction digits, at most 36 digits).
    pub fn parse(text: &str) -> Option<Cents> {
        let (negative, digits) = text.strip_prefix('-').map_or((false, text), |rest| (true, rest));
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty()
            || whole.len() > 34
            || frac.len() > SCALE as usize
            || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: i128 = whole.parse().ok()?;
        let frac: i128 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().ok()? };
        let cents = whole.checked_mul(100)?.checked_add(frac)?;
        Some(Cents(if negative { -cents } else { cents }))
    }

    /// The amount as a contract carries it, or `None` past `decimal(18,2)`.
    pub fn carried(self) -> Option<i64> {
        i64::try_from(self.0).ok().filter(|c| c.unsigned_abs() <= MAX_CENTS.unsigned_abs())
    }

    /// Digits of the amount (at least 1), the number `decimal(18,2)` bounds.
    pub fn digits(self) -> u32 {
        self.0.unsigned_abs().checked_ilog10().map_or(1, |d| d + 1)
    }

    pub fn checked_add(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).map(Cents)
    }

    pub fn checked_sub(self, other: Cents) -> Option<Cents> {
        self.0.checked_sub(other.0).map(Cents)
    }

    /// `self × quantity` (a line total).
    pub fn checked_times(self, quantity: i64) -> Option<Cents> {
        self.0.checked_mul(i128::from(quantity)).map(Cents)
    }

    /// `self × percent / 100`, rounded half away from zero to the cent.
    pub fn checked_percent(self, percent: u32) -> Option<Cents> {
        let scaled = self.0.checked_mul(i128::from(percent))?;
        let half = if scaled >= 0 { 50 } else { -50 };
        Some(Cents(scaled.checked_add(half)? / 100))
    }

    /// Why a contract cannot carry this amount as `field`, if it cannot.
    pub fn refusal(self, field: &str) -> Option<String> {
        match self.carried() {
            Some(_) => None,
            None => Some(format!(
                "{field} {self} has {} digits: amounts are decimal({PRECISION},{SCALE}), at most {PRECISION} digits",
                self.digits()
            )),
        }
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_decimal_18_2() {
        assert_eq!(Cents::parse("9999999999999999.99").and_then(Cents::carried), Some(MAX_CENTS));
        assert_eq!(Cents::parse("-9999999999999999.99").and_then(Cents::carried), Some(-MAX_CENTS));
        let over = Cents::parse("10000000000000000.00").expect("parses");
        assert_eq!(over.carried(), None);
        assert_eq!(over.digits(), 19);
        assert!(over.refusal("subtotal").is_some_and(|r| r.contains("subtotal") && r.contains("19 digits")));
    }

    #[test]
    fn parse_and_display_round_trip() {
        for text in ["0.00", "5.00", "129.90", "-0.01", "19999999999999999.98"] {
            assert_eq!(Cents::parse(text).map(|c| c.to_string()).as_deref(), Some(text));
        }
        assert_eq!(Cents::parse("5").map(|c| c.0), Some(500));
        assert_eq!(Cents::parse("1.5").map(|c| c.0), Some(150));
        for bad in ["", ".5", "1.234", "1e3", "--1", "1.-5", &"9".repeat(40)] {
            assert_eq!(Cents::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn arithmetic_is_exact_past_i64() {
        let price = Cents(MAX_CENTS.into());
        let line = price.checked_times(i64::from(i32::MAX)).expect("fits i128");
        assert_eq!(line.0, i128::from(MAX_CENTS) * i128::from(i32::MAX));
        assert_eq!(line.carried(), None);
        assert_eq!(Cents(1_000).checked_percent(5), Some(Cents(50)));
        assert_eq!(Cents(1_010).checked_percent(5), Some(Cents(51)), "50.5 cents rounds away from zero");
        assert_eq!(Cents(i128::MAX).checked_times(2), None);
    }
}
