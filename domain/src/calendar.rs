//! Business time: which local date an instant falls on, and Monday-based weeks.
//!
//! Instants are stored in UTC; reports and schedules speak in the company's local dates.
//! Nothing here reads a clock.

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::error::FieldError;

/// The company's time zone, from an IANA name such as `America/Chicago`.
///
/// JSON: the IANA name, `"America/Chicago"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BusinessTimeZone(pub Tz);

impl TryFrom<String> for BusinessTimeZone {
    type Error = FieldError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name)
    }
}

impl From<BusinessTimeZone> for String {
    fn from(zone: BusinessTimeZone) -> Self {
        zone.name().to_owned()
    }
}

#[cfg(test)]
impl schemars::JsonSchema for BusinessTimeZone {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TimeZone".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

impl BusinessTimeZone {
    pub fn parse(iana_name: &str) -> Result<Self, FieldError> {
        iana_name.trim().parse::<Tz>().map(Self).map_err(|_| {
            FieldError::new("time_zone", format!("unknown IANA time zone {iana_name:?}"))
        })
    }

    pub fn tz(&self) -> Tz {
        self.0
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The local calendar date of `instant`.
    pub fn local_date(&self, instant: DateTime<Utc>) -> NaiveDate {
        instant.with_timezone(&self.0).date_naive()
    }

    /// The first instant of local `date`. Where a DST change skips midnight, the day starts
    /// at the first local time that exists.
    pub fn start_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        let mut local = date.and_time(NaiveTime::MIN);
        // Gaps last at most a few hours, so this ends within a day's worth of steps.
        for _ in 0..(24 * 4) {
            match self.0.from_local_datetime(&local) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(earliest, _) => return earliest.with_timezone(&Utc),
                LocalResult::None => local += chrono::TimeDelta::minutes(15),
            }
        }
        local.and_utc()
    }
}

/// The Monday of the ISO week containing `date` (saturating at the earliest date chrono knows).
pub fn week_start(date: NaiveDate) -> NaiveDate {
    let back = u64::from(date.weekday().num_days_from_monday());
    date.checked_sub_days(Days::new(back))
        .unwrap_or(NaiveDate::MIN)
}

/// The seven dates of the week starting at `monday` (saturating at the latest date chrono knows).
pub fn week_days(monday: NaiveDate) -> [NaiveDate; 7] {
    std::array::from_fn(|offset| {
        monday
            .checked_add_days(Days::new(offset as u64))
            .unwrap_or(NaiveDate::MAX)
    })
}

/// ISO 8601 week label of `date`, e.g. `"2025-W01"` for 2024-12-30.
pub fn iso_week_label(date: NaiveDate) -> String {
    let week = date.iso_week();
    format!("{:04}-W{:02}", week.year(), week.week())
}

/// The Monday of an ISO week label such as `"2025-W01"`.
pub fn parse_iso_week_label(label: &str) -> Result<NaiveDate, FieldError> {
    let invalid = || FieldError::new("week", format!("must look like 2025-W01, got {label:?}"));
    let (year, week) = label.trim().split_once("-W").ok_or_else(invalid)?;
    let year: i32 = year.parse().map_err(|_| invalid())?;
    let week: u32 = week.parse().map_err(|_| invalid())?;
    NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn local_date_follows_the_business_time_zone() {
        let chicago = BusinessTimeZone::parse("America/Chicago").unwrap();
        let instant = Utc.with_ymd_and_hms(2025, 3, 4, 3, 30, 0).unwrap();
        assert_eq!(chicago.local_date(instant), date(2025, 3, 3));
        let tokyo = BusinessTimeZone::parse("Asia/Tokyo").unwrap();
        assert_eq!(tokyo.local_date(instant), date(2025, 3, 4));
        assert_eq!(chicago.name(), "America/Chicago");
    }

    #[test]
    fn unknown_time_zone_is_rejected() {
        assert_eq!(
            BusinessTimeZone::parse("Mars/Olympus").unwrap_err().field,
            "time_zone"
        );
    }

    #[test]
    fn start_of_day_is_local_midnight_or_first_time_after_a_gap() {
        let chicago = BusinessTimeZone::parse("America/Chicago").unwrap();
        let start = chicago.start_of_day(date(2025, 1, 15));
        assert_eq!(start, Utc.with_ymd_and_hms(2025, 1, 15, 6, 0, 0).unwrap());
        // Santiago skipped midnight on 2022-09-11 (clocks jumped to 01:00).
        let santiago = BusinessTimeZone::parse("America/Santiago").unwrap();
        let start = santiago.start_of_day(date(2022, 9, 11));
        assert_eq!(santiago.local_date(start), date(2022, 9, 11));
    }

    #[test]
    fn weeks_start_on_monday() {
        assert_eq!(week_start(date(2025, 1, 1)), date(2024, 12, 30));
        assert_eq!(week_start(date(2024, 12, 30)), date(2024, 12, 30));
        assert_eq!(week_start(date(2025, 1, 5)), date(2024, 12, 30));
        let days = week_days(date(2024, 12, 30));
        assert_eq!(days[0], date(2024, 12, 30));
        assert_eq!(days[6], date(2025, 1, 5));
    }

    #[test]
    fn iso_week_labels_use_the_iso_year() {
        assert_eq!(iso_week_label(date(2024, 12, 30)), "2025-W01");
        assert_eq!(iso_week_label(date(2021, 1, 3)), "2020-W53");
        assert_eq!(
            parse_iso_week_label("2025-W01").unwrap(),
            date(2024, 12, 30)
        );
        assert!(parse_iso_week_label("2025-W60").is_err());
        assert!(parse_iso_week_label("2025/01").is_err());
    }
}
