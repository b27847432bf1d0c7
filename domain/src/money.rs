//! Money in integer minor units (cents) with an ISO 4217 currency code.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// A three-letter ISO 4217 code such as `USD`; `parse` uppercases its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let code = raw.trim().to_ascii_uppercase();
        match code.as_bytes() {
            &[a, b, c] if code.bytes().all(|b| b.is_ascii_uppercase()) => Ok(Self([a, b, c])),
            _ => Err(FieldError::new(
                "currency",
                format!("must be a three-letter code like USD, got {raw:?}"),
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only `parse` builds a Currency, and it admits ASCII uppercase letters only.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = FieldError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.as_str().to_owned()
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
struct MoneyInput {
    amount_minor: i64,
    currency: Currency,
}

/// A non-negative amount in minor units: SimplePro records only prices and revenue, which
/// are never negative (refunds would need their own type).
///
/// JSON: `{"amount_minor": 125000, "currency": "USD"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(try_from = "MoneyInput")]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    pub fn parse(amount_minor: i64, currency: Currency) -> Result<Self, FieldError> {
        if amount_minor < 0 {
            return Err(FieldError::new(
                "amount_minor",
                format!("must not be negative, got {amount_minor}"),
            ));
        }
        Ok(Self {
            amount_minor,
            currency,
        })
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Self {
        Self {
            amount_minor: 0,
            currency,
        }
    }

    pub const fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    pub const fn currency(&self) -> Currency {
        self.currency
    }
}

impl TryFrom<MoneyInput> for Money {
    type Error = FieldError;

    fn try_from(input: MoneyInput) -> Result<Self, Self::Error> {
        Self::parse(input.amount_minor, input.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn currency_is_three_ascii_letters_uppercased() {
        assert_eq!(Currency::parse("usd").unwrap().as_str(), "USD");
        assert_eq!(Currency::parse(" EUR ").unwrap().to_string(), "EUR");
        for raw in ["", "US", "USDX", "U$D", "12A", "ÜSD"] {
            assert!(Currency::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn money_is_never_negative() {
        let usd = Currency::parse("USD").unwrap();
        assert!(Money::parse(0, usd).is_ok());
        assert_eq!(Money::parse(-1, usd).unwrap_err().field, "amount_minor");
        let value = json!({"amount_minor": -5, "currency": "USD"});
        assert!(serde_json::from_value::<Money>(value).is_err());
    }

    #[test]
    fn money_serializes_minor_units_and_code() {
        let usd = Currency::parse("USD").unwrap();
        let money = Money::parse(125_000, usd).unwrap();
        let value = serde_json::to_value(money).unwrap();
        assert_eq!(value, json!({"amount_minor": 125000, "currency": "USD"}));
        assert_eq!(serde_json::from_value::<Money>(value).unwrap(), money);
    }
}
