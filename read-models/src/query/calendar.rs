//! The calendar week view from its seven day documents.

use chrono::NaiveDate;
use domain::enums::JobStatus;

use super::{read_many, CalendarDay, CalendarWeekView, DocSource, Generations, QueryError};
use crate::models::calendar::{day_id, DayDoc};
use crate::Model;

/// The Monday-to-Sunday week containing `monday` (any date of the week is accepted): seven
/// point reads, made together.
pub async fn calendar_week(
    src: &impl DocSource,
    gens: &Generations,
    monday: NaiveDate,
) -> Result<CalendarWeekView, QueryError> {
    let week_start = domain::calendar::week_start(monday);
    let collection = gens.collection(Model::Calendar, "days");
    let dates = domain::calendar::week_days(week_start);
    let ids: Vec<String> = dates.iter().copied().map(day_id).collect();
    let docs = read_many::<DayDoc>(src, &collection, &ids).await?;
    let days = dates
        .into_iter()
        .zip(docs)
        .map(|(date, doc)| {
            let jobs = doc.map(|d| d.jobs).unwrap_or_default();
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
