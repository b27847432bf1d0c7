//! Validated value types: parse at the edge, and an invalid value cannot exist past it.
//!
//! Every type here deserializes through its `parse`, so a stored or posted value is checked
//! the same way as one built in code.

use std::fmt;

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use crate::calendar::BusinessTimeZone;
use crate::error::FieldError;

/// Trims `raw` and checks its length in characters (not bytes). Control characters are
/// refused, except line breaks and tabs where `multiline` allows them.
fn bounded_text(
    field: &'static str,
    raw: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, FieldError> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars < min {
        let reason = if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        };
        return Err(FieldError::new(field, reason));
    }
    if chars > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters, got {chars}"),
        ));
    }
    let allowed = |c: char| !c.is_control() || (multiline && matches!(c, '\n' | '\r' | '\t'));
    if !text.chars().all(allowed) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

macro_rules! text_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(test, derive(schemars::JsonSchema))]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;

            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

text_newtype!(
    /// A lowercased, trimmed email address with a plausible shape (not proof it is deliverable).
    Email
);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let field = "email";
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        if email.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(field, "must be at most 254 characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FieldError::new(field, "must not contain spaces"));
        }
        let (local, domain) = match email.split_once('@') {
            Some((local, domain)) if !domain.contains('@') => (local, domain),
            _ => return Err(FieldError::new(field, "must contain exactly one '@'")),
        };
        if local.is_empty() {
            return Err(FieldError::new(field, "must have a name before '@'"));
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return Err(FieldError::new(
                field,
                "must have a domain with a dot after '@', like example.com",
            ));
        }
        Ok(Self(email))
    }
}

text_newtype!(
    /// A person's first, last or display name: trimmed, 1–100 characters.
    PersonName
);

impl PersonName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        bounded_text("name", raw, 1, Self::MAX_CHARS, false).map(Self)
    }
}

text_newtype!(
    /// A phone number as the customer wrote it (trimmed), holding 7–15 digits.
    Phone
);

impl Phone {
    pub const MIN_DIGITS: usize = 7;
    pub const MAX_DIGITS: usize = 15;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let field = "phone";
        let phone = raw.trim();
        if let Some(c) = phone
            .chars()
            .find(|c| !c.is_ascii_digit() && !matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'))
        {
            return Err(FieldError::new(
                field,
                format!("must contain only digits, spaces and + - ( ) ., found {c:?}"),
            ));
        }
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits) {
            return Err(FieldError::new(
                field,
                format!("must have 7 to 15 digits, got {digits}"),
            ));
        }
        Ok(Self(phone.to_owned()))
    }

    /// Only the digits, e.g. `"15551234567"` for `"+1 (555) 123-4567"`; use it to compare
    /// or search numbers.
    pub fn digits(&self) -> String {
        self.0.chars().filter(char::is_ascii_digit).collect()
    }
}

text_newtype!(
    /// A chat message body: trimmed, 1–10,000 characters, line breaks allowed.
    MessageBody
);

impl MessageBody {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        bounded_text("body", raw, 1, Self::MAX_CHARS, true).map(Self)
    }
}

text_newtype!(
    /// A crew member skill such as "piano moving": trimmed, 1–50 characters.
    Skill
);

impl Skill {
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        bounded_text("skill", raw, 1, Self::MAX_CHARS, false).map(Self)
    }
}

text_newtype!(
    /// Why a job was cancelled: trimmed, 1–500 characters.
    CancelReason
);

impl CancelReason {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        bounded_text("reason", raw, 1, Self::MAX_CHARS, true).map(Self)
    }
}

text_newtype!(
    /// A thread title: trimmed, 1–200 characters.
    ThreadTitle
);

impl ThreadTitle {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        bounded_text("title", raw, 1, Self::MAX_CHARS, false).map(Self)
    }
}

/// Unchecked address fields, as they arrive; [`Address::parse`] turns them into an [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct AddressInput {
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub postal_code: String,
}

/// A street address in the company's country (no country field on purpose).
///
/// JSON: `{"line1", "line2" (null or text), "city", "region" (null or text), "postal_code"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(try_from = "AddressInput")]
pub struct Address {
    line1: String,
    line2: Option<String>,
    city: String,
    region: Option<String>,
    postal_code: String,
}

impl Address {
    /// `line1` (≤200) and `city` (≤100) are required; `line2` (≤200), `region` (≤100) and
    /// `postal_code` (≤20) may be empty. Blank optional lines become `None`.
    pub fn parse(input: AddressInput) -> Result<Self, FieldError> {
        let optional = |field, raw: Option<String>, max| -> Result<Option<String>, FieldError> {
            let text = bounded_text(field, raw.as_deref().unwrap_or(""), 0, max, false)?;
            Ok(Some(text).filter(|t| !t.is_empty()))
        };
        Ok(Self {
            line1: bounded_text("address.line1", &input.line1, 1, 200, false)?,
            line2: optional("address.line2", input.line2, 200)?,
            city: bounded_text("address.city", &input.city, 1, 100, false)?,
            region: optional("address.region", input.region, 100)?,
            postal_code: bounded_text("address.postal_code", &input.postal_code, 0, 20, false)?,
        })
    }

    pub fn line1(&self) -> &str {
        &self.line1
    }

    pub fn line2(&self) -> Option<&str> {
        self.line2.as_deref()
    }

    pub fn city(&self) -> &str {
        &self.city
    }

    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    pub fn postal_code(&self) -> &str {
        &self.postal_code
    }
}

impl TryFrom<AddressInput> for Address {
    type Error = FieldError;

    fn try_from(input: AddressInput) -> Result<Self, Self::Error> {
        Self::parse(input)
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
struct TimeWindowInput {
    start: NaiveTime,
    end: NaiveTime,
    time_zone: BusinessTimeZone,
}

/// A same-day arrival window, `start < end`, in local time of the named time zone.
///
/// JSON: `{"start": "08:00:00", "end": "12:00:00", "time_zone": "America/Chicago"}`. Stored
/// windows of schema version 1 had no `time_zone`; the codec reads them in the business's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(try_from = "TimeWindowInput")]
pub struct TimeWindow {
    start: NaiveTime,
    end: NaiveTime,
    time_zone: BusinessTimeZone,
}

impl TimeWindow {
    pub fn parse(
        start: NaiveTime,
        end: NaiveTime,
        time_zone: BusinessTimeZone,
    ) -> Result<Self, FieldError> {
        if start < end {
            Ok(Self {
                start,
                end,
                time_zone,
            })
        } else {
            Err(FieldError::new(
                "window",
                format!("start {start} must be before end {end}"),
            ))
        }
    }

    pub fn start(&self) -> NaiveTime {
        self.start
    }

    pub fn end(&self) -> NaiveTime {
        self.end
    }

    /// The zone `start` and `end` are local times of.
    pub fn time_zone(&self) -> BusinessTimeZone {
        self.time_zone
    }
}

impl TryFrom<TimeWindowInput> for TimeWindow {
    type Error = FieldError;

    fn try_from(input: TimeWindowInput) -> Result<Self, Self::Error> {
        Self::parse(input.start, input.end, input.time_zone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        let email = Email::parse("  Ana.Silva@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ana.silva@example.com");
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for raw in [
            "",
            "   ",
            "no-at-sign.com",
            "@example.com",
            "two@@example.com",
            "a@b@example.com",
            "ana@localhost",
            "ana@example.",
            "ana@.example.com",
            "ana@exa..mple.com",
            "ana silva@example.com",
        ] {
            let err = Email::parse(raw).unwrap_err();
            assert_eq!(err.field, "email", "{raw:?}");
        }
    }

    #[test]
    fn email_longer_than_254_characters_is_rejected() {
        let local = "a".repeat(254 - "@example.com".len());
        assert!(Email::parse(&format!("{local}@example.com")).is_ok());
        assert!(Email::parse(&format!("{local}a@example.com")).is_err());
    }

    #[test]
    fn deserializing_an_email_validates_it() {
        assert!(serde_json::from_value::<Email>(json!("nope")).is_err());
        let email: Email = serde_json::from_value(json!("A@B.CO")).unwrap();
        assert_eq!(email.as_str(), "a@b.co");
    }

    #[test]
    fn person_name_is_trimmed_and_bounded() {
        assert_eq!(PersonName::parse("  Ana ").unwrap().as_str(), "Ana");
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse(&"é".repeat(100)).is_ok());
        assert!(PersonName::parse(&"é".repeat(101)).is_err());
        assert!(PersonName::parse("Ana\u{0}").is_err());
    }

    #[test]
    fn phone_keeps_original_and_exposes_digits() {
        let phone = Phone::parse(" +1 (555) 123-4567 ").unwrap();
        assert_eq!(phone.as_str(), "+1 (555) 123-4567");
        assert_eq!(phone.digits(), "15551234567");
    }

    #[test]
    fn phone_needs_7_to_15_digits_and_no_letters() {
        assert!(Phone::parse("123-4567").is_ok());
        assert!(Phone::parse("123-456").is_err());
        assert!(Phone::parse("123456789012345").is_ok());
        assert!(Phone::parse("1234567890123456").is_err());
        assert!(Phone::parse("555-CALL-NOW").is_err());
        assert!(Phone::parse("").is_err());
    }

    #[test]
    fn message_body_counts_characters_not_bytes() {
        assert!(MessageBody::parse(&"x".repeat(10_000)).is_ok());
        assert!(MessageBody::parse(&"x".repeat(10_001)).is_err());
        assert!(MessageBody::parse(&"ü".repeat(10_000)).is_ok());
        assert!(MessageBody::parse(&"ü".repeat(10_001)).is_err());
    }

    #[test]
    fn message_body_rejects_blank_and_keeps_line_breaks() {
        assert!(MessageBody::parse("").is_err());
        assert!(MessageBody::parse(" \n\t ").is_err());
        let body = MessageBody::parse("  hello\nthere  ").unwrap();
        assert_eq!(body.as_str(), "hello\nthere");
    }

    #[test]
    fn skill_cancel_reason_and_title_are_bounded() {
        assert!(Skill::parse(&"s".repeat(50)).is_ok());
        assert!(Skill::parse(&"s".repeat(51)).is_err());
        assert!(Skill::parse(" ").is_err());
        assert!(CancelReason::parse(&"r".repeat(500)).is_ok());
        assert!(CancelReason::parse(&"r".repeat(501)).is_err());
        assert!(CancelReason::parse("").is_err());
        assert!(ThreadTitle::parse("Crew chat").is_ok());
        assert!(ThreadTitle::parse("").is_err());
    }

    fn address_input() -> AddressInput {
        AddressInput {
            line1: " 1 Main St ".into(),
            line2: Some("  ".into()),
            city: "Springfield".into(),
            region: Some("IL".into()),
            postal_code: "62701".into(),
        }
    }

    #[test]
    fn address_needs_line1_and_city_and_drops_blank_optionals() {
        let address = Address::parse(address_input()).unwrap();
        assert_eq!(address.line1(), "1 Main St");
        assert_eq!(address.line2(), None);
        assert_eq!(address.region(), Some("IL"));
        let no_city = AddressInput {
            city: " ".into(),
            ..address_input()
        };
        assert_eq!(Address::parse(no_city).unwrap_err().field, "address.city");
        let no_line1 = AddressInput {
            line1: String::new(),
            ..address_input()
        };
        assert_eq!(Address::parse(no_line1).unwrap_err().field, "address.line1");
        let long_postal = AddressInput {
            postal_code: "9".repeat(21),
            ..address_input()
        };
        assert!(Address::parse(long_postal).is_err());
    }

    #[test]
    fn address_serializes_with_explicit_field_names() {
        let address = Address::parse(address_input()).unwrap();
        let value = serde_json::to_value(&address).unwrap();
        assert_eq!(
            value,
            json!({"line1": "1 Main St", "line2": null, "city": "Springfield", "region": "IL", "postal_code": "62701"})
        );
        assert_eq!(serde_json::from_value::<Address>(value).unwrap(), address);
        assert!(serde_json::from_value::<Address>(json!({"line1": "", "city": "x"})).is_err());
    }

    #[test]
    fn time_window_start_must_be_before_end() {
        let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
        let zone = BusinessTimeZone::parse("America/Chicago").unwrap();
        assert!(TimeWindow::parse(t(8), t(12), zone).is_ok());
        assert!(TimeWindow::parse(t(12), t(12), zone).is_err());
        assert!(TimeWindow::parse(t(13), t(12), zone).is_err());
        let value = json!({"start": "13:00:00", "end": "12:00:00", "time_zone": "UTC"});
        assert!(serde_json::from_value::<TimeWindow>(value).is_err());
        let window = TimeWindow::parse(t(8), t(12), zone).unwrap();
        let value = serde_json::to_value(window).unwrap();
        assert_eq!(
            value,
            json!({"start": "08:00:00", "end": "12:00:00", "time_zone": "America/Chicago"})
        );
        assert_eq!(serde_json::from_value::<TimeWindow>(value).unwrap(), window);
    }

    #[test]
    fn a_window_names_a_known_time_zone() {
        let value = json!({"start": "08:00:00", "end": "12:00:00", "time_zone": "Mars/Olympus"});
        let error = serde_json::from_value::<TimeWindow>(value).unwrap_err();
        assert!(
            error.to_string().contains("unknown IANA time zone"),
            "{error}"
        );
        let value = json!({"start": "08:00:00", "end": "12:00:00"});
        assert!(serde_json::from_value::<TimeWindow>(value).is_err());
    }
}
