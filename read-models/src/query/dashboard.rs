//! The dashboard view from day documents.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Months, NaiveDate};
use domain::enums::{ReferralSource, ServiceType};

use super::{
    read_many, CrewStat, DashboardView, DayStats, DocSource, Generations, LeadSourceStat,
    MonthRevenue, QueryError, ServiceTypeStat, Stats,
};
use crate::models::dashboard::{day_id, month_id, DayDoc, MonthTotalsDoc};
use crate::Model;

/// Longest range the dashboard sums, in days, `from` and `to` both counted: a year, leap day
/// included (`to` is at most 365 days after `from`).
pub const MAX_DASHBOARD_DAYS: i64 = 366;

/// The one rule for a dashboard range, applied by [`dashboard`] and by the query API before
/// it waits for the read models: `from` is not after `to`, and `from..=to` holds at most
/// [`MAX_DASHBOARD_DAYS`] days. A refusal names the parameter (400).
pub fn check_dashboard_range(from: NaiveDate, to: NaiveDate) -> Result<(), QueryError> {
    if from > to {
        return Err(QueryError::Invalid {
            field: "from",
            reason: format!("must not be after `to` ({from} > {to})"),
        });
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_DASHBOARD_DAYS {
        return Err(QueryError::Invalid {
            field: "to",
            reason: format!(
                "the range may span at most {MAX_DASHBOARD_DAYS} days, `from` and `to` included; {from}..{to} spans {days}"
            ),
        });
    }
    Ok(())
}

/// Dashboard for `from..=to` (at most [`MAX_DASHBOARD_DAYS`] days, see
/// [`check_dashboard_range`]), with `today`'s stats and the totals of the 12 months ending
/// with `today`'s month: at most 367 day documents and 12 small month totals, read in one
/// round.
pub async fn dashboard(
    src: &impl DocSource,
    gens: &Generations,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> Result<DashboardView, QueryError> {
    check_dashboard_range(from, to)?;
    let chart_ids: Vec<String> = chart_months(today).into_iter().map(month_id).collect();
    let (days, totals) = read_days(src, gens, day_ids(from, to, today), &chart_ids).await?;
    let day = |date: NaiveDate| -> Option<&DayDoc> { days.get(&day_id(date))?.as_ref() };
    let range: Vec<(NaiveDate, Option<&DayDoc>)> = dates(from, to).map(|d| (d, day(d))).collect();
    let monthly_revenue = monthly_revenue(chart_ids, totals);
    Ok(DashboardView {
        from,
        to,
        totals: sum(range.iter().filter_map(|(_, d)| *d)),
        days: range
            .iter()
            .map(|(date, d)| DayStats {
                date: *date,
                stats: sum(d.iter().copied()),
            })
            .collect(),
        today: DayStats {
            date: today,
            stats: sum(day(today)),
        },
        service_types: service_types(range.iter().filter_map(|(_, d)| *d)),
        lead_sources: lead_sources(range.iter().filter_map(|(_, d)| *d)),
        crew: crew(range.iter().filter_map(|(_, d)| *d)),
        monthly_revenue,
    })
}

/// Ids of the days `from..=to` and of `today`, each once.
fn day_ids(from: NaiveDate, to: NaiveDate, today: NaiveDate) -> Vec<String> {
    let mut ids: Vec<String> = dates(from, to).map(day_id).collect();
    if !(from..=to).contains(&today) {
        ids.push(day_id(today));
    }
    ids
}

/// The day documents by id (`None` where absent) and the chart's month totals, in one
/// round.
async fn read_days(
    src: &impl DocSource,
    gens: &Generations,
    ids: Vec<String>,
    chart_ids: &[String],
) -> Result<(HashMap<String, Option<DayDoc>>, Vec<Option<MonthTotalsDoc>>), QueryError> {
    let (docs, totals) = futures::future::try_join(
        read_many::<DayDoc>(src, &gens.collection(Model::Dashboard, "days"), &ids),
        read_many::<MonthTotalsDoc>(
            src,
            &gens.collection(Model::Dashboard, "month_totals"),
            chart_ids,
        ),
    )
    .await?;
    let days = ids.into_iter().zip(docs).collect();
    Ok((days, totals))
}

fn monthly_revenue(
    chart_ids: Vec<String>,
    totals: Vec<Option<MonthTotalsDoc>>,
) -> Vec<MonthRevenue> {
    chart_ids
        .into_iter()
        .zip(totals)
        .map(|(month, totals)| {
            let totals = totals.unwrap_or_default();
            MonthRevenue {
                month,
                revenue_minor: totals.revenue_minor,
                completed: count(totals.completed),
            }
        })
        .collect()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `from..=to`.
fn dates(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

/// First days of the 12 months ending with `today`'s month, oldest first.
pub(crate) fn chart_months(today: NaiveDate) -> Vec<NaiveDate> {
    let this_month = first_of_month(today);
    (0..12u32)
        .rev()
        .filter_map(|back| this_month.checked_sub_months(Months::new(back)))
        .collect()
}

fn sum<'a>(days: impl IntoIterator<Item = &'a DayDoc>) -> Stats {
    let mut stats = Stats::default();
    for d in days {
        stats.jobs_created += count(d.created);
        stats.jobs_scheduled += count(d.scheduled);
        stats.jobs_completed += count(d.completed);
        stats.jobs_cancelled += count(d.cancelled);
        stats.revenue_minor += d.revenue_minor;
        stats.leads += d.leads.iter().map(|l| count(l.count)).sum::<u64>();
        stats.conversions += d.conversions.iter().map(|c| count(c.count)).sum::<u64>();
        stats.planned_jobs += count(d.planned);
        stats.crewed_jobs += count(d.crewed);
    }
    stats.average_job_value_minor = average(stats.revenue_minor, stats.jobs_completed);
    stats
}

pub(crate) fn average(revenue: i64, completed: u64) -> i64 {
    match i64::try_from(completed) {
        Ok(n) if n > 0 => revenue / n,
        _ => 0,
    }
}

fn service_types<'a>(days: impl Iterator<Item = &'a DayDoc>) -> Vec<ServiceTypeStat> {
    let mut by_type = BTreeMap::new();
    for s in days.flat_map(|d| &d.services) {
        let stat = by_type.entry(s.service_type).or_insert((0u64, 0i64));
        stat.0 += count(s.count);
        stat.1 += s.revenue_minor;
    }
    service_type_stats(by_type)
}

/// `(completed, revenue)` per service type, as stats in service type order.
pub(crate) fn service_type_stats(
    by_type: BTreeMap<ServiceType, (u64, i64)>,
) -> Vec<ServiceTypeStat> {
    by_type
        .into_iter()
        .map(
            |(service_type, (completed, revenue_minor))| ServiceTypeStat {
                service_type,
                completed,
                revenue_minor,
            },
        )
        .collect()
}

fn lead_sources<'a>(days: impl Iterator<Item = &'a DayDoc>) -> Vec<LeadSourceStat> {
    let mut by_source = BTreeMap::new();
    for d in days {
        for l in &d.leads {
            by_source.entry(l.source).or_insert((0u64, 0u64)).0 += count(l.count);
        }
        for c in &d.conversions {
            by_source.entry(c.source).or_insert((0u64, 0u64)).1 += count(c.count);
        }
    }
    lead_source_stats(by_source)
}

/// `(leads, conversions)` per referral source, as stats in source order.
pub(crate) fn lead_source_stats(
    by_source: BTreeMap<ReferralSource, (u64, u64)>,
) -> Vec<LeadSourceStat> {
    by_source
        .into_iter()
        .map(|(source, (leads, conversions))| LeadSourceStat {
            source,
            leads,
            conversions,
        })
        .collect()
}

fn crew<'a>(days: impl Iterator<Item = &'a DayDoc>) -> Vec<CrewStat> {
    let mut by_member = BTreeMap::new();
    for c in days.flat_map(|d| &d.crew) {
        let stat = by_member
            .entry(c.crew_member_id)
            .or_insert_with(|| (c.name.clone(), 0u64));
        stat.1 += count(c.count);
    }
    let mut crew: Vec<CrewStat> = by_member
        .into_iter()
        .map(|(crew_member_id, (name, completed_jobs))| CrewStat {
            crew_member_id,
            name,
            completed_jobs,
        })
        .collect();
    sort_crew(&mut crew);
    crew
}

/// Most completed jobs first, then name, then id.
pub(crate) fn sort_crew(crew: &mut [CrewStat]) {
    crew.sort_by(|a, b| {
        b.completed_jobs
            .cmp(&a.completed_jobs)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.crew_member_id.cmp(&b.crew_member_id))
    });
}
