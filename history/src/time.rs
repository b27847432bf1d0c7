//! Instants given on the command line: RFC 3339 (`2026-11-25T10:00:00Z`) or a date
//! (`2026-11-25`, the start of that day in UTC).

use chrono::{DateTime, NaiveDate, Utc};

use crate::HistoryError;

/// Parses an RFC 3339 instant or a `YYYY-MM-DD` date (midnight UTC).
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, HistoryError> {
    let text = raw.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(HistoryError::input(format!(
        "invalid time `{raw}`: expected RFC 3339 like 2026-11-25T10:00:00Z or a date like 2026-11-25"
    )))
}

/// A half-open interval of record times: `from <= t < to`, either end open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// Parses both ends and refuses an empty or inverted range.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, HistoryError> {
        let range = TimeRange {
            from: from.map(parse_time).transpose()?,
            to: to.map(parse_time).transpose()?,
        };
        if let (Some(from), Some(to)) = (range.from, range.to) {
            if from >= to {
                return Err(HistoryError::input(format!(
                    "--from {} is not before --to {}",
                    from.to_rfc3339(),
                    to.to_rfc3339()
                )));
            }
        }
        Ok(range)
    }

    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| time >= from) && self.to.is_none_or(|to| time < to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_dates_are_accepted() {
        assert_eq!(
            parse_time("2026-11-25T10:00:00+01:00").unwrap(),
            "2026-11-25T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_time("2026-11-25").unwrap(),
            "2026-11-25T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn malformed_times_and_inverted_ranges_are_input_errors() {
        for bad in ["yesterday", "2026-13-01", "2026-11-25 10:00", ""] {
            assert_eq!(parse_time(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
        let err = TimeRange::parse(Some("2026-11-26"), Some("2026-11-25")).unwrap_err();
        assert!(err.to_string().contains("is not before"), "{err}");
        assert!(TimeRange::parse(Some("2026-11-25"), Some("2026-11-25")).is_err());
    }

    #[test]
    fn ranges_include_their_start_and_exclude_their_end() {
        let range = TimeRange::parse(Some("2026-11-25"), Some("2026-11-26")).unwrap();
        assert!(range.contains(parse_time("2026-11-25").unwrap()));
        assert!(range.contains(parse_time("2026-11-25T23:59:59.999Z").unwrap()));
        assert!(!range.contains(parse_time("2026-11-26").unwrap()));
    }
}
