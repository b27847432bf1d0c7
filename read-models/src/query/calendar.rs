//! The calendar week view from one week document.

use chrono::NaiveDate;
use domain::enums::JobStatus;

use super::{read, CalendarDay, CalendarWeekView, DocSource, Generations, QueryError};
use crate::models::calendar::{week_id, WeekDoc};
use crate::Model;

/// The Monday-to-Sunday week containing `monday` (any date of the week is accepted): one
/// point read.
pub async fn calendar_week(
    src: &impl DocSource,
    gens: &Generations,
    monday: NaiveDate,
) -> Result<CalendarWeekView, QueryError> {
    let week_start = domain::calendar::week_start(monday);
    let collection = gens.collection(Model::Calendar, "weeks");
    let doc = read::<WeekDoc>(src, &collection, &week_id(week_start))
        .await?
        .unwrap_or_default();
    let days = domain::calendar::week_days(week_start)
        .into_iter()
        .map(|date| {
            let jobs: Vec<_> = doc
                .jobs
                .iter()
                .filter(|j| j.date == date)
                .cloned()
                .collect();
            let cancelled = jobs
                .iter()
                .filter(|j| j.status == JobStatus::Cancelled)
                .count() as u64;
            CalendarDay {
                date,
                scheduled: jobs.len() as u64 - cancelled,
                cancelled,
                jobs,
            }
        })
        .collect();
    Ok(CalendarWeekView { week_start, days })
}
