//! Query-string parsing that reports every bad parameter at once.
//!
//! Each route names the parameters it accepts; anything else, a parameter given twice, or a
//! value that does not parse is collected and answered with one 400 listing all of them.
//! Values become typed (dates, ids, enums, bounded integers) here, so nothing a client typed
//! travels further as text except the bounded search string.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::Query;
use axum::http::{HeaderMap, Uri};
use chrono::NaiveDate;
use platform::consistency::{MIN_POSITION_HEADER, MIN_POSITION_PARAM};
use platform::problem::{FieldErrors, Problem};

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
/// Search strings are text matched against tokens; longer input buys nothing.
pub const MAX_SEARCH_CHARS: usize = 100;

pub struct Params {
    values: BTreeMap<String, String>,
    errors: FieldErrors,
}

impl Params {
    /// Reads the query string of `uri`, accepting `allowed` plus `min_position`
    /// ([`MIN_POSITION_PARAM`], accepted by every route).
    pub fn parse(uri: &Uri, allowed: &[&str]) -> Params {
        let mut errors = FieldErrors::new();
        let mut values = BTreeMap::new();
        match Query::<Vec<(String, String)>>::try_from_uri(uri) {
            Ok(Query(pairs)) => {
                for (name, value) in pairs {
                    if name.is_empty() {
                        // `?=1` or a stray `&=`: there is no name to report it by.
                        errors.push("query", "has a parameter without a name");
                    } else if name != MIN_POSITION_PARAM && !allowed.contains(&name.as_str()) {
                        let accepted = if allowed.is_empty() {
                            format!("only {MIN_POSITION_PARAM} is accepted here")
                        } else {
                            format!("accepted: {}, {MIN_POSITION_PARAM}", allowed.join(", "))
                        };
                        errors.push(printable(&name), format!("unknown parameter; {accepted}"));
                    } else {
                        match values.entry(name) {
                            Entry::Occupied(seen) => {
                                errors.push(seen.key().clone(), "given more than once")
                            }
                            Entry::Vacant(slot) => {
                                slot.insert(value);
                            }
                        }
                    }
                }
            }
            Err(rejection) => errors.push("query", format!("cannot be parsed: {rejection}")),
        }
        Params { values, errors }
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    /// A value that must not be empty when given.
    fn take_nonempty(&mut self, name: &str) -> Option<String> {
        let value = self.take(name)?;
        if value.trim().is_empty() {
            self.errors.push(name, "must not be empty when given");
            None
        } else {
            Some(value)
        }
    }

    /// A typed value (`FromStr`), e.g. an id or an enum; the parse error becomes the reason.
    pub fn parsed<T: FromStr>(&mut self, name: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.take_nonempty(name)?;
        match value.parse::<T>() {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                let reason = error.to_string();
                // Domain field errors print as `field: reason`; the field here is the parameter.
                let reason = reason
                    .split_once(": ")
                    .map(|(_, r)| r.to_owned())
                    .unwrap_or(reason);
                self.errors.push(name, reason);
                None
            }
        }
    }

    pub fn date(&mut self, name: &str) -> Option<NaiveDate> {
        let value = self.take_nonempty(name)?;
        match parse_date(&value) {
            Ok(date) => Some(date),
            Err(reason) => {
                self.errors.push(name, reason);
                None
            }
        }
    }

    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        let value = self.take_nonempty(name)?;
        match value.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => {
                self.errors.push(name, "must be true or false");
                None
            }
        }
    }

    /// A non-negative integer up to `max`.
    pub fn integer(&mut self, name: &str, max: u64) -> Option<u64> {
        let value = self.take_nonempty(name)?;
        match value.trim().parse::<u64>() {
            Ok(n) if n <= max => Some(n),
            _ => {
                self.errors
                    .push(name, format!("must be a whole number from 0 to {max}"));
                None
            }
        }
    }

    /// The page size: default 20, 1..=100.
    pub fn limit(&mut self) -> usize {
        let Some(value) = self.take("limit") else {
            return DEFAULT_LIMIT;
        };
        match value.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
            _ => {
                self.errors.push(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                );
                DEFAULT_LIMIT
            }
        }
    }

    /// The raw cursor string; it is checked against its list by [`crate::cursor`].
    pub fn cursor(&mut self) -> Option<String> {
        self.take_nonempty("cursor")
    }

    /// A search string, trimmed, at most 100 characters; empty means no search.
    pub fn search(&mut self, name: &str) -> Option<String> {
        let value = self.take(name)?;
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        if value.chars().count() > MAX_SEARCH_CHARS {
            self.errors.push(
                name,
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            );
            return None;
        }
        if value.chars().any(char::is_control) {
            self.errors
                .push(name, "must not contain control characters");
            return None;
        }
        Some(value.to_owned())
    }

    /// `min_position` from the query or the `X-Min-Position` header (the larger if both).
    pub fn min_position(&mut self, headers: &HeaderMap) -> Option<u64> {
        let from_query = self.integer(MIN_POSITION_PARAM, i64::MAX as u64);
        let from_header = match headers.get(MIN_POSITION_HEADER) {
            None => None,
            Some(value) => match value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(n) if n <= i64::MAX as u64 => Some(n),
                _ => {
                    self.errors.push(
                        MIN_POSITION_HEADER,
                        "must be a whole number (a position returned by the command API)",
                    );
                    None
                }
            },
        };
        from_query.max(from_header)
    }

    pub fn push_error(&mut self, name: &str, reason: impl Into<String>) {
        self.errors.push(name, reason);
    }

    /// `Ok` when every parameter was accepted, else a 400 listing every bad one.
    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::invalid_parameters(self.errors.into_vec()))
        }
    }
}

pub fn parse_date(value: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .ok()
        .filter(|_| value.trim().len() == 10)
        .ok_or_else(|| format!("must be a date like 2025-03-31, got {:?}", truncate(value)))
}

/// Names and values echoed back in errors are cut short and stripped of control characters.
fn printable(value: &str) -> String {
    truncate(value)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn truncate(value: &str) -> String {
    value.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str, allowed: &[&str]) -> Params {
        let uri: Uri = format!("/x?{query}").parse().unwrap();
        Params::parse(&uri, allowed)
    }

    fn fields(params: Params) -> Vec<String> {
        match params.finish() {
            Ok(()) => Vec::new(),
            Err(problem) => problem.errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn unknown_and_repeated_parameters_are_all_listed() {
        let p = params("limit=5&bogus=1&limit=6&other=2", &["limit"]);
        assert_eq!(fields(p), vec!["bogus", "limit", "other"]);
    }

    #[test]
    fn a_parameter_without_a_name_is_named_as_the_query() {
        let p = params("=1&limit=5", &["limit"]);
        assert_eq!(fields(p), vec!["query"]);
    }

    #[test]
    fn limit_outside_one_to_a_hundred_is_refused() {
        for bad in ["0", "-1", "101", "abc", "1.5", "99999999999999999999"] {
            let mut p = params(&format!("limit={bad}"), &["limit"]);
            p.limit();
            assert_eq!(fields(p), vec!["limit"], "{bad}");
        }
        let mut p = params("limit=100", &["limit"]);
        assert_eq!(p.limit(), 100);
        let mut p = params("", &["limit"]);
        assert_eq!(p.limit(), DEFAULT_LIMIT);
    }

    #[test]
    fn dates_must_be_calendar_dates() {
        for bad in ["2025-02-30", "2025-1-1", "yesterday", "2025-01-01T00:00"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        assert!(parse_date("2024-02-29").is_ok());
    }

    #[test]
    fn long_searches_are_refused_and_blank_ones_ignored() {
        let mut p = params(&format!("search={}", "a".repeat(101)), &["search"]);
        assert_eq!(p.search("search"), None);
        assert_eq!(fields(p), vec!["search"]);
        let mut p = params("search=%20%20", &["search"]);
        assert_eq!(p.search("search"), None);
        assert!(fields(p).is_empty());
    }
}
