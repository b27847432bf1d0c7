//! Turning a JSON object into domain values while collecting every problem: unknown fields,
//! missing required ones, and invalid values with the domain's own reason.

use chrono::{NaiveDate, NaiveTime};
use domain::calendar::BusinessTimeZone;
use domain::error::FieldError;
use domain::money::{Currency, Money};
use domain::values::{Address, AddressInput, TimeWindow};
use platform::problem::{FieldErrors, Problem};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The fields of one JSON object (the body, or a nested object under `prefix`), sharing one
/// error list with its parent.
pub(crate) struct Fields<'e> {
    map: Map<String, Value>,
    prefix: String,
    errors: &'e mut FieldErrors,
}

/// Parses a whole body: `parse` reads the fields; every error found is reported at once.
pub(crate) fn body<T>(
    map: Map<String, Value>,
    known: &[&str],
    parse: impl FnOnce(&mut Fields<'_>) -> Option<T>,
) -> Result<T, Problem> {
    let mut errors = FieldErrors::new();
    let parsed = {
        let mut fields = Fields::new(map, String::new(), known, &mut errors);
        parse(&mut fields)
    };
    match parsed {
        Some(value) if errors.is_empty() => Ok(value),
        _ => {
            if errors.is_empty() {
                // A parser that gave up must have said why; never answer 422 with no reason.
                errors.push("body", "is invalid");
            }
            Err(Problem::invalid_fields(errors.into_vec()))
        }
    }
}

impl<'e> Fields<'e> {
    fn new(
        map: Map<String, Value>,
        prefix: String,
        known: &[&str],
        errors: &'e mut FieldErrors,
    ) -> Self {
        let mut unknown: Vec<&String> = map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        for key in unknown {
            // A key that is the empty string is named by its JSON spelling, `""`.
            let key = if key.is_empty() { "\"\"" } else { key };
            errors.push(format!("{prefix}{key}"), "unknown field");
        }
        Fields {
            map,
            prefix,
            errors,
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub(crate) fn error(&mut self, name: &str, reason: impl Into<String>) {
        let path = self.path(name);
        self.errors.push(path, reason);
    }

    /// A required field: missing or null is an error.
    pub(crate) fn required<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&mut Fields<'_>, &str, Value) -> Option<T>,
    ) -> Option<T> {
        match self.map.remove(name) {
            None | Some(Value::Null) => {
                self.error(name, "is required");
                None
            }
            Some(value) => parse(self, name, value),
        }
    }

    /// An optional field: `Some(None)` when missing or null, `None` when invalid.
    pub(crate) fn optional<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&mut Fields<'_>, &str, Value) -> Option<T>,
    ) -> Option<Option<T>> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Some(None),
            Some(value) => parse(self, name, value).map(Some),
        }
    }

    /// Records a domain parse failure under this field's path (the domain names its fields
    /// by their own name, e.g. `email`; nested ones like `address.city` keep their tail).
    pub(crate) fn check<T>(&mut self, name: &str, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                let tail = error.field.split_once('.').map(|(_, tail)| tail);
                let path = match tail {
                    Some(tail) => format!("{name}.{tail}"),
                    None => name.to_owned(),
                };
                self.error(&path, error.reason);
                None
            }
        }
    }

    /// The fields of a nested object under `name`.
    fn nested<T>(
        &mut self,
        name: &str,
        value: Value,
        known: &[&str],
        parse: impl FnOnce(&mut Fields<'_>) -> Option<T>,
    ) -> Option<T> {
        let Value::Object(map) = value else {
            self.error(name, "must be an object");
            return None;
        };
        let prefix = format!("{}.", self.path(name));
        let mut inner = Fields::new(map, prefix, known, self.errors);
        parse(&mut inner)
    }
}

// Value parsers, each `(fields, name, value) -> Option<T>` so they plug into
// `Fields::required` and `Fields::optional`.

pub(crate) fn string(fields: &mut Fields<'_>, name: &str, value: Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        _ => {
            fields.error(name, "must be a string");
            None
        }
    }
}

/// A string turned into a domain value by `parse`.
pub(crate) fn text<T>(
    parse: fn(&str) -> Result<T, FieldError>,
) -> impl Fn(&mut Fields<'_>, &str, Value) -> Option<T> {
    move |fields, name, value| {
        let raw = string(fields, name, value)?;
        let result = parse(&raw);
        fields.check(name, result)
    }
}

/// Free text trimmed to at most `max` characters; blank becomes `None`.
pub(crate) fn free_text(
    max: usize,
) -> impl FnOnce(&mut Fields<'_>, &str, Value) -> Option<Option<String>> {
    move |fields, name, value| {
        let raw = string(fields, name, value)?;
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars > max {
            fields.error(
                name,
                format!("must be at most {max} characters, got {chars}"),
            );
            return None;
        }
        if trimmed
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            fields.error(name, "must not contain control characters");
            return None;
        }
        Some(Some(trimmed.to_owned()).filter(|t| !t.is_empty()))
    }
}

pub(crate) fn uuid(fields: &mut Fields<'_>, name: &str, value: Value) -> Option<Uuid> {
    let raw = string(fields, name, value)?;
    match Uuid::parse_str(raw.trim()) {
        Ok(id) => Some(id),
        Err(_) => {
            fields.error(name, format!("must be a UUID, got {raw:?}"));
            None
        }
    }
}

/// The largest whole number every JSON reader holds exactly (2^53 - 1, JavaScript's
/// `Number.MAX_SAFE_INTEGER`); counts and amounts above it are refused rather than rounded
/// by some client.
pub(crate) const MAX_WHOLE_NUMBER: u64 = (1 << 53) - 1;

/// A whole number `0..=MAX_WHOLE_NUMBER`, written `5` or `5.0` (JSON does not tell them
/// apart, and JSON Schema calls both integers).
fn whole_number(value: &Value) -> Option<u64> {
    let number = match value.as_u64() {
        Some(number) => number,
        None => {
            let float = value.as_f64()?;
            if float.fract() != 0.0 || !(0.0..=MAX_WHOLE_NUMBER as f64).contains(&float) {
                return None;
            }
            float as u64
        }
    };
    (number <= MAX_WHOLE_NUMBER).then_some(number)
}

pub(crate) fn unsigned(fields: &mut Fields<'_>, name: &str, value: Value) -> Option<u64> {
    match whole_number(&value) {
        Some(number) => Some(number),
        None => {
            fields.error(
                name,
                format!("must be a whole number from 0 to {MAX_WHOLE_NUMBER}"),
            );
            None
        }
    }
}

/// Ids in the body that name nothing registered: a 404 that lists each field, as the
/// aggregate named in the path would be.
pub(crate) fn unknown_references(errors: Vec<platform::problem::FieldProblem>) -> Problem {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect::<Vec<_>>()
        .join("; ");
    Problem {
        errors,
        ..Problem::not_found(detail)
    }
}

pub(crate) fn date(fields: &mut Fields<'_>, name: &str, value: Value) -> Option<NaiveDate> {
    let raw = string(fields, name, value)?;
    let valid = raw.len() == 10 && raw.as_bytes().get(4) == Some(&b'-');
    match NaiveDate::parse_from_str(&raw, "%Y-%m-%d") {
        Ok(date) if valid => Some(date),
        _ => {
            fields.error(name, format!("must be a date like 2025-03-31, got {raw:?}"));
            None
        }
    }
}

fn time(fields: &mut Fields<'_>, name: &str, value: Value) -> Option<NaiveTime> {
    let raw = string(fields, name, value)?;
    let parsed = match raw.len() {
        5 => NaiveTime::parse_from_str(&raw, "%H:%M").ok(),
        8 => NaiveTime::parse_from_str(&raw, "%H:%M:%S").ok(),
        _ => None,
    };
    if parsed.is_none() {
        fields.error(
            name,
            format!("must be a time like 08:00 or 08:00:00, got {raw:?}"),
        );
    }
    parsed
}

/// `{"start": "08:00", "end": "12:00", "time_zone": "America/Chicago"}`; without
/// `time_zone` the window is in the business's zone.
pub(crate) fn window(
    business: BusinessTimeZone,
) -> impl FnOnce(&mut Fields<'_>, &str, Value) -> Option<TimeWindow> {
    move |fields, name, value| {
        fields.nested(name, value, &["start", "end", "time_zone"], |inner| {
            let start = inner.required("start", time);
            let end = inner.required("end", time);
            let zone = inner.optional("time_zone", text(BusinessTimeZone::parse));
            let (start, end, zone) = (start?, end?, zone?.unwrap_or(business));
            match TimeWindow::parse(start, end, zone) {
                Ok(window) => Some(window),
                Err(error) => {
                    inner
                        .errors
                        .push(inner.prefix.trim_end_matches('.').to_owned(), error.reason);
                    None
                }
            }
        })
    }
}

pub(crate) const ADDRESS_FIELDS: &[&str] = &["line1", "line2", "city", "region", "postal_code"];

/// `{"line1", "line2"?, "city", "region"?, "postal_code"?}`.
pub(crate) fn address(fields: &mut Fields<'_>, name: &str, value: Value) -> Option<Address> {
    let parsed = fields.nested(name, value, ADDRESS_FIELDS, |inner| {
        let line1 = inner.required("line1", string);
        let line2 = inner.optional("line2", string);
        let city = inner.required("city", string);
        let region = inner.optional("region", string);
        let postal_code = inner.optional("postal_code", string);
        Some(AddressInput {
            line1: line1?,
            line2: line2?,
            city: city?,
            region: region?,
            postal_code: postal_code?.unwrap_or_default(),
        })
    })?;
    let result = Address::parse(parsed);
    fields.check(name, result)
}

/// `{"amount_minor": 125000, "currency": "USD"}` in the business currency.
pub(crate) fn money(
    business: Currency,
) -> impl FnOnce(&mut Fields<'_>, &str, Value) -> Option<Money> {
    move |fields, name, value| {
        fields.nested(name, value, &["amount_minor", "currency"], |inner| {
            let amount = inner.required("amount_minor", |f, n, v| match whole_number(&v) {
                // `whole_number` stays below 2^53, so the amount fits an i64.
                Some(amount) => i64::try_from(amount).ok(),
                None => {
                    f.error(
                        n,
                        format!(
                            "must be a whole number of minor units from 0 to {MAX_WHOLE_NUMBER}"
                        ),
                    );
                    None
                }
            });
            let currency = inner.required("currency", text(Currency::parse));
            if let Some(currency) = currency {
                if currency != business {
                    inner.error(
                        "currency",
                        format!("must be {business}, the business currency; got {currency}"),
                    );
                    return None;
                }
            }
            let amount = amount?;
            let result = Money::parse(amount, currency?);
            inner.check("amount_minor", result)
        })
    }
}

/// An array whose items are parsed by `item`; errors name `field[index]`.
pub(crate) fn list<T>(
    max: usize,
    mut item: impl FnMut(&mut Fields<'_>, &str, Value) -> Option<T>,
) -> impl FnOnce(&mut Fields<'_>, &str, Value) -> Option<Vec<T>> {
    move |fields, name, value| {
        let Value::Array(values) = value else {
            fields.error(name, "must be an array");
            return None;
        };
        if values.len() > max {
            fields.error(
                name,
                format!("must have at most {max} items, got {}", values.len()),
            );
            return None;
        }
        let mut items = Vec::with_capacity(values.len());
        let mut ok = true;
        for (index, value) in values.into_iter().enumerate() {
            match item(fields, &format!("{name}[{index}]"), value) {
                Some(parsed) => items.push(parsed),
                None => ok = false,
            }
        }
        ok.then_some(items)
    }
}

/// A string that must be one of a closed set (roles, statuses…), parsed with `FromStr`.
pub(crate) fn choice<T>(fields: &mut Fields<'_>, name: &str, value: Value) -> Option<T>
where
    T: std::str::FromStr<Err = FieldError>,
{
    let raw = string(fields, name, value)?;
    let result = raw.parse::<T>();
    fields.check(name, result)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read_count(value: Value) -> Result<u64, Problem> {
        let mut map = Map::new();
        map.insert("count".into(), value);
        body(map, &["count"], |f| f.required("count", unsigned))
    }

    /// JSON Schema calls `5.0` an integer, and a generated client may send it so.
    #[test]
    fn a_whole_number_may_be_written_with_a_fraction_of_zero() {
        assert_eq!(read_count(json!(496911.0)).unwrap(), 496_911);
        assert_eq!(read_count(json!(7)).unwrap(), 7);
        assert!(read_count(json!(1.5)).is_err());
        assert!(read_count(json!(-1)).is_err());
    }

    #[test]
    fn whole_numbers_past_what_every_json_reader_holds_are_refused() {
        assert_eq!(
            read_count(json!(MAX_WHOLE_NUMBER)).unwrap(),
            MAX_WHOLE_NUMBER
        );
        let problem = read_count(json!(MAX_WHOLE_NUMBER + 1)).unwrap_err();
        assert_eq!(problem.status.as_u16(), 422);
        assert_eq!(problem.errors[0].field, "count");
    }
}
