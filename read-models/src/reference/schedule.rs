//! The reference's dashboard and calendar views, computed from whole collections.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use domain::enums::{JobStatus, ReferralSource, ServiceType};
use domain::ids::{CrewMemberId, CustomerId};

use super::{Job, ReferenceModel};
use crate::query::{
    CalendarDay, CalendarJob, CalendarWeekView, CrewStat, DashboardView, DayStats, LeadSourceStat,
    MonthRevenue, ServiceTypeStat, Stats,
};

impl ReferenceModel {
    fn stats(&self, date: NaiveDate) -> Stats {
        let on = |t: Option<DateTime<Utc>>| t.is_some_and(|t| self.local(t) == date);
        let jobs = || self.jobs.values();
        let completed: Vec<&Job> = jobs().filter(|j| on(j.completed_at)).collect();
        let planned: Vec<&Job> = jobs()
            .filter(|j| j.status != JobStatus::Cancelled && j.date == Some(date))
            .collect();
        let registered: Vec<CustomerId> = self
            .customers
            .iter()
            .filter(|(_, c)| on(Some(c.registered_at)))
            .map(|(id, _)| *id)
            .collect();
        let revenue_minor: i64 = completed.iter().filter_map(|j| j.revenue).sum();
        let jobs_completed = completed.len() as u64;
        Stats {
            jobs_created: jobs().filter(|j| on(Some(j.created_at))).count() as u64,
            jobs_scheduled: jobs().filter(|j| on(j.scheduled_at)).count() as u64,
            jobs_completed,
            jobs_cancelled: jobs().filter(|j| on(j.cancelled_at)).count() as u64,
            revenue_minor,
            average_job_value_minor: if jobs_completed > 0 {
                revenue_minor / jobs_completed as i64
            } else {
                0
            },
            leads: registered.len() as u64,
            conversions: registered.iter().filter(|c| self.converted(**c)).count() as u64,
            planned_jobs: planned.len() as u64,
            crewed_jobs: planned.iter().filter(|j| !j.crew.is_empty()).count() as u64,
        }
    }

    fn converted(&self, customer: CustomerId) -> bool {
        self.jobs
            .values()
            .any(|j| j.customer == customer && j.status == JobStatus::Completed)
    }

    pub fn dashboard(&self, from: NaiveDate, to: NaiveDate, today: NaiveDate) -> DashboardView {
        let days: Vec<DayStats> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .map(|date| DayStats {
                date,
                stats: self.stats(date),
            })
            .collect();
        let completed: Vec<&Job> = self
            .jobs
            .values()
            .filter(|j| self.within(j.completed_at, from, to))
            .collect();
        DashboardView {
            from,
            to,
            totals: totals(&days),
            days,
            today: DayStats {
                date: today,
                stats: self.stats(today),
            },
            service_types: service_types(&completed),
            lead_sources: self.lead_sources(from, to),
            crew: self.crew_stats(&completed),
            monthly_revenue: self.monthly_revenue(today),
        }
    }

    /// Whether `t` is set and falls on a local date in `from..=to`.
    fn within(&self, t: Option<DateTime<Utc>>, from: NaiveDate, to: NaiveDate) -> bool {
        t.is_some_and(|t| (from..=to).contains(&self.local(t)))
    }

    fn lead_sources(&self, from: NaiveDate, to: NaiveDate) -> Vec<LeadSourceStat> {
        let mut sources: BTreeMap<ReferralSource, (u64, u64)> = BTreeMap::new();
        for (id, c) in &self.customers {
            if self.within(Some(c.registered_at), from, to) {
                let s = sources.entry(c.source).or_default();
                s.0 += 1;
                s.1 += u64::from(self.converted(*id));
            }
        }
        crate::query::lead_source_stats(sources)
    }

    fn crew_stats(&self, completed: &[&Job]) -> Vec<CrewStat> {
        let mut jobs_by_member: BTreeMap<CrewMemberId, u64> = BTreeMap::new();
        for member in completed.iter().flat_map(|job| &job.crew) {
            *jobs_by_member.entry(*member).or_default() += 1;
        }
        let mut crew: Vec<CrewStat> = jobs_by_member
            .into_iter()
            .map(|(id, n)| CrewStat {
                crew_member_id: id,
                name: self.crew.get(&id).cloned().unwrap_or_default(),
                completed_jobs: n,
            })
            .collect();
        crate::query::dashboard_sort_crew(&mut crew);
        crew
    }

    fn monthly_revenue(&self, today: NaiveDate) -> Vec<MonthRevenue> {
        crate::query::chart_months(today)
            .into_iter()
            .map(|start| {
                let month = start.format("%Y-%m").to_string();
                let done: Vec<&Job> = self
                    .jobs
                    .values()
                    .filter(|j| {
                        j.completed_at
                            .is_some_and(|t| self.local(t).format("%Y-%m").to_string() == month)
                    })
                    .collect();
                MonthRevenue {
                    month,
                    revenue_minor: done.iter().filter_map(|j| j.revenue).sum(),
                    completed: done.len() as u64,
                }
            })
            .collect()
    }

    pub fn calendar_week(&self, monday: NaiveDate) -> CalendarWeekView {
        let week_start = domain::calendar::week_start(monday);
        let days = domain::calendar::week_days(week_start)
            .into_iter()
            .map(|date| {
                let mut jobs: Vec<CalendarJob> = self
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.date == Some(date))
                    .filter_map(|(id, j)| {
                        Some(CalendarJob {
                            job_id: *id,
                            date,
                            window: j.window?,
                            customer_id: j.customer,
                            customer_name: self.customer_name(j.customer),
                            service_type: j.service_type,
                            crew: self.crew_refs(&j.crew),
                            status: j.status,
                        })
                    })
                    .collect();
                jobs.sort_by_key(|j| (j.window.start, j.job_id));
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
        CalendarWeekView { week_start, days }
    }
}

fn totals(days: &[DayStats]) -> Stats {
    let mut totals = Stats::default();
    for d in days {
        let s = &d.stats;
        totals.jobs_created += s.jobs_created;
        totals.jobs_scheduled += s.jobs_scheduled;
        totals.jobs_completed += s.jobs_completed;
        totals.jobs_cancelled += s.jobs_cancelled;
        totals.revenue_minor += s.revenue_minor;
        totals.leads += s.leads;
        totals.conversions += s.conversions;
        totals.planned_jobs += s.planned_jobs;
        totals.crewed_jobs += s.crewed_jobs;
    }
    if totals.jobs_completed > 0 {
        totals.average_job_value_minor = totals.revenue_minor / totals.jobs_completed as i64;
    }
    totals
}

fn service_types(completed: &[&Job]) -> Vec<ServiceTypeStat> {
    let mut services: BTreeMap<ServiceType, (u64, i64)> = BTreeMap::new();
    for job in completed {
        let s = services.entry(job.service_type).or_default();
        s.0 += 1;
        s.1 += job.revenue.unwrap_or(0);
    }
    crate::query::service_type_stats(services)
}
