//! The dashboard model: per-day business counts, one document per day.
//!
//! Documents (collections `rm_dashboard_g<n>_<kind>`):
//! - `days`, `_id = <YYYY-MM-DD>` (tier 0): `{date, month, created, scheduled, completed,
//!   cancelled, revenue_minor, leads [{source, count}], conversions [{source, count}],
//!   services [{service_type, count, revenue_minor}], crew [{crew_member_id, name, count}],
//!   planned, crewed}`; dates are local days in the business time zone, and `month`
//!   (`YYYY-MM`) finds a month's days with one equality query. One document a day, not a
//!   month of days in one: FerretDB rewrites a whole document and charges by its values, and
//!   nearly every job event changes a day. Event counts go on the local date
//!   of the event's own time (`created_at`, `scheduled_at`, `completed_at`,
//!   `cancelled_at`, `registered_at`); revenue, services and
//!   crew counts on the completion date; leads on the registration date; a customer's first
//!   completed job adds a conversion on the customer's *registration* date; `planned` /
//!   `crewed` count the not-cancelled jobs scheduled *for* that date and those of them with
//!   crew (kept right by schedule, reschedule, crew and cancel events). The arrays are
//!   bounded by the enums and by the crew members completing jobs that day.
//! - `month_totals`, `_id = <YYYY-MM>` (tier 0): `{month, completed, revenue_minor}`, the
//!   month's completions and revenue (the sums of its days'), so that the dashboard's chart
//!   of twelve months reads twelve small documents rather than twelve months of days.
//! - `jobs`, `_id = <job_id>` (tier 3): `{job: {customer_id, service_type, date, crew,
//!   status}}`: what the job contributes to `planned`/`crewed` and who completes it.
//! - `customers`, `_id = <customer_id>` (tier 4): `{source, registered_date,
//!   converted_pos}`; `converted_pos` is the position of the event that converted the
//!   customer, so a re-applied event makes the same decision.
//! - `crew_names`, `_id = <crew_member_id>` (tier 5): `{name}`.

use chrono::NaiveDate;
use domain::crew_member::CrewMemberEvent;
use domain::customer::CustomerEvent;
use domain::enums::{JobStatus, ReferralSource, ServiceType};
use domain::ids::{CrewMemberId, CustomerId, JobId};
use domain::job::JobEvent;
use serde::{Deserialize, Serialize};

use super::{name_of, set_name, At};
use crate::apply::Decoded;
use crate::cache::{DocCache, DocLoader, LoadError, ReadDoc};
use crate::Model;

pub(crate) const KINDS: &[&str] = &["days", "month_totals", "jobs", "customers", "crew_names"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct MonthTotalsDoc {
    pub(crate) month: String,
    pub(crate) completed: i64,
    pub(crate) revenue_minor: i64,
}

impl ReadDoc for MonthTotalsDoc {
    const TIER: u8 = 0;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct DayDoc {
    pub(crate) date: Option<NaiveDate>,
    pub(crate) month: String,
    pub(crate) created: i64,
    pub(crate) scheduled: i64,
    pub(crate) completed: i64,
    pub(crate) cancelled: i64,
    pub(crate) revenue_minor: i64,
    pub(crate) leads: Vec<SourceCount>,
    pub(crate) conversions: Vec<SourceCount>,
    pub(crate) services: Vec<ServiceCount>,
    pub(crate) crew: Vec<CrewCount>,
    pub(crate) planned: i64,
    pub(crate) crewed: i64,
}

impl ReadDoc for DayDoc {
    const TIER: u8 = 0;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SourceCount {
    pub(crate) source: ReferralSource,
    pub(crate) count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServiceCount {
    pub(crate) service_type: ServiceType,
    pub(crate) count: i64,
    pub(crate) revenue_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CrewCount {
    pub(crate) crew_member_id: CrewMemberId,
    pub(crate) name: String,
    pub(crate) count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct JobDoc {
    job: Option<JobLookup>,
}

impl ReadDoc for JobDoc {
    const TIER: u8 = 3;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JobLookup {
    customer_id: CustomerId,
    service_type: ServiceType,
    date: Option<NaiveDate>,
    crew: Vec<CrewMemberId>,
    status: JobStatus,
}

impl JobLookup {
    /// The date this job is planned for and whether it has crew, unless cancelled.
    fn utilization(&self) -> Option<(NaiveDate, bool)> {
        match (self.status, self.date) {
            (JobStatus::Cancelled, _) | (_, None) => None,
            (_, Some(date)) => Some((date, !self.crew.is_empty())),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CustomerDoc {
    source: Option<ReferralSource>,
    registered_date: Option<NaiveDate>,
    converted_pos: Option<i64>,
}

impl ReadDoc for CustomerDoc {
    const TIER: u8 = 4;
}

pub(crate) fn month_id(date: NaiveDate) -> String {
    date.format("%Y-%m").to_string()
}

pub(crate) fn day_id(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

struct Ctx<'a, L> {
    cache: &'a mut DocCache,
    loader: &'a L,
    p: u64,
    days: String,
    month_totals: String,
    jobs: String,
    customers: String,
    crew_names: String,
}

impl<L: DocLoader> Ctx<'_, L> {
    /// Changes the stats of local `date`.
    async fn day(
        &mut self,
        date: NaiveDate,
        change: impl FnOnce(&mut DayDoc),
    ) -> Result<(), LoadError> {
        self.cache
            .update::<DayDoc>(self.loader, &self.days, &day_id(date), self.p, |doc| {
                doc.date = Some(date);
                doc.month = month_id(date);
                change(doc);
            })
            .await?;
        Ok(())
    }
}

fn add_source(counts: &mut Vec<SourceCount>, source: ReferralSource) {
    match counts.iter_mut().find(|c| c.source == source) {
        Some(c) => c.count += 1,
        None => {
            counts.push(SourceCount { source, count: 1 });
            counts.sort_by_key(|c| c.source);
        }
    }
}

pub(crate) async fn apply(
    at: &At<'_>,
    cache: &mut DocCache,
    loader: &impl DocLoader,
    event: &Decoded,
) -> Result<(), LoadError> {
    let mut ctx = Ctx {
        cache,
        loader,
        p: at.position,
        days: at.collection(Model::Dashboard, "days"),
        month_totals: at.collection(Model::Dashboard, "month_totals"),
        jobs: at.collection(Model::Dashboard, "jobs"),
        customers: at.collection(Model::Dashboard, "customers"),
        crew_names: at.collection(Model::Dashboard, "crew_names"),
    };
    match event {
        Decoded::Crew(id, CrewMemberEvent::CrewMemberRegistered { name, .. }) => {
            let p = ctx.p;
            set_name(
                ctx.cache,
                loader,
                &ctx.crew_names,
                &id.to_string(),
                p,
                name.as_str(),
            )
            .await?;
        }
        Decoded::Customer(
            id,
            CustomerEvent::CustomerRegistered {
                referral_source,
                registered_at,
                ..
            },
        ) => {
            let date = at.local_date(*registered_at);
            let source = *referral_source;
            ctx.cache
                .update::<CustomerDoc>(loader, &ctx.customers, &id.to_string(), ctx.p, |doc| {
                    doc.source = Some(source);
                    doc.registered_date = Some(date);
                })
                .await?;
            ctx.day(date, |day| add_source(&mut day.leads, source))
                .await?;
        }
        Decoded::Job(job_id, job_event) => apply_job(at, &mut ctx, *job_id, job_event).await?,
        _ => {}
    }
    Ok(())
}

async fn apply_job<L: DocLoader>(
    at: &At<'_>,
    ctx: &mut Ctx<'_, L>,
    job_id: JobId,
    event: &JobEvent,
) -> Result<(), LoadError> {
    let id = job_id.to_string();
    if let JobEvent::JobCreated {
        customer_id,
        service_type,
        created_at,
        ..
    } = event
    {
        let lookup = JobLookup {
            customer_id: *customer_id,
            service_type: *service_type,
            date: None,
            crew: Vec::new(),
            status: JobStatus::Created,
        };
        store_job(ctx, &id, lookup).await?;
        return ctx
            .day(at.local_date(*created_at), |day| day.created += 1)
            .await;
    }
    let Some(old) = ctx
        .cache
        .get::<JobDoc>(ctx.loader, &ctx.jobs, &id)
        .await?
        .and_then(|doc| doc.job.clone())
    else {
        return Ok(());
    };
    let mut new = old.clone();
    change_job(at, ctx, &mut new, event).await?;
    store_job(ctx, &id, new.clone()).await?;
    move_utilization(ctx, old.utilization(), new.utilization()).await
}

/// Changes the job's lookup and counts the event on the day it happened.
async fn change_job<L: DocLoader>(
    at: &At<'_>,
    ctx: &mut Ctx<'_, L>,
    job: &mut JobLookup,
    event: &JobEvent,
) -> Result<(), LoadError> {
    match event {
        JobEvent::JobCreated { .. } => {}
        JobEvent::JobScheduled {
            date, scheduled_at, ..
        } => {
            job.date = Some(*date);
            job.status = JobStatus::Scheduled;
            ctx.day(at.local_date(*scheduled_at), |day| day.scheduled += 1)
                .await?;
        }
        JobEvent::JobRescheduled { date, .. } => {
            job.date = Some(*date);
            job.status = JobStatus::Scheduled;
        }
        JobEvent::CrewAssigned { crew_member_id, .. } => {
            if let Err(i) = job.crew.binary_search(crew_member_id) {
                job.crew.insert(i, *crew_member_id);
            }
        }
        JobEvent::CrewUnassigned { crew_member_id, .. } => {
            job.crew.retain(|m| m != crew_member_id);
        }
        JobEvent::JobStarted { .. } => job.status = JobStatus::InProgress,
        JobEvent::JobCompleted {
            actual_revenue,
            completed_at,
        } => {
            job.status = JobStatus::Completed;
            let revenue = actual_revenue.amount_minor();
            complete(ctx, job, revenue, at.local_date(*completed_at)).await?;
        }
        JobEvent::JobCancelled { cancelled_at, .. } => {
            job.status = JobStatus::Cancelled;
            ctx.day(at.local_date(*cancelled_at), |day| day.cancelled += 1)
                .await?;
        }
    }
    Ok(())
}

async fn store_job<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    id: &str,
    job: JobLookup,
) -> Result<(), LoadError> {
    ctx.cache
        .update::<JobDoc>(ctx.loader, &ctx.jobs, id, ctx.p, |doc| doc.job = Some(job))
        .await?;
    Ok(())
}

/// Takes the job off the `planned`/`crewed` counts of the day it was planned for and puts
/// it on those of the day it is planned for now.
async fn move_utilization<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    before: Option<(NaiveDate, bool)>,
    after: Option<(NaiveDate, bool)>,
) -> Result<(), LoadError> {
    if before == after {
        return Ok(());
    }
    if let Some((date, crewed)) = before {
        ctx.day(date, |day| {
            day.planned -= 1;
            day.crewed -= i64::from(crewed);
        })
        .await?;
    }
    if let Some((date, crewed)) = after {
        ctx.day(date, |day| {
            day.planned += 1;
            day.crewed += i64::from(crewed);
        })
        .await?;
    }
    Ok(())
}

/// Revenue, service type and crew counts on the completion date, and the customer's
/// conversion on their registration date if this is their first completed job.
async fn complete<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    job: &JobLookup,
    revenue: i64,
    date: NaiveDate,
) -> Result<(), LoadError> {
    let mut crew = Vec::with_capacity(job.crew.len());
    for member in &job.crew {
        let name = name_of(ctx.cache, ctx.loader, &ctx.crew_names, &member.to_string()).await?;
        crew.push((*member, name));
    }
    let conversion = convert_customer(ctx, job.customer_id).await?;
    let month = month_id(date);
    let month_name = month.clone();
    ctx.cache
        .update::<MonthTotalsDoc>(ctx.loader, &ctx.month_totals, &month, ctx.p, |doc| {
            doc.month = month_name;
            doc.completed += 1;
            doc.revenue_minor += revenue;
        })
        .await?;
    let service_type = job.service_type;
    ctx.day(date, |day| day.add_completion(service_type, revenue, crew))
        .await?;
    if let Some((registered, source)) = conversion {
        ctx.day(registered, |day| add_source(&mut day.conversions, source))
            .await?;
    }
    Ok(())
}

/// Marks the customer converted by this event unless an earlier event did, and returns
/// the registration date and source to count the conversion on when this event did.
async fn convert_customer<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    customer_id: CustomerId,
) -> Result<Option<(NaiveDate, ReferralSource)>, LoadError> {
    let customer = customer_id.to_string();
    let p = ctx.p;
    ctx.cache
        .update::<CustomerDoc>(ctx.loader, &ctx.customers, &customer, p, |doc| {
            doc.converted_pos.get_or_insert(p as i64);
        })
        .await?;
    Ok(ctx
        .cache
        .get::<CustomerDoc>(ctx.loader, &ctx.customers, &customer)
        .await?
        .filter(|doc| doc.converted_pos == Some(p as i64))
        .and_then(|doc| Some((doc.registered_date?, doc.source?))))
}

impl DayDoc {
    fn add_completion(
        &mut self,
        service_type: ServiceType,
        revenue: i64,
        crew: Vec<(CrewMemberId, String)>,
    ) {
        self.completed += 1;
        self.revenue_minor += revenue;
        match self
            .services
            .iter_mut()
            .find(|s| s.service_type == service_type)
        {
            Some(s) => {
                s.count += 1;
                s.revenue_minor += revenue;
            }
            None => {
                self.services.push(ServiceCount {
                    service_type,
                    count: 1,
                    revenue_minor: revenue,
                });
                self.services.sort_by_key(|s| s.service_type);
            }
        }
        for (member, name) in crew {
            match self.crew.iter_mut().find(|c| c.crew_member_id == member) {
                Some(c) => c.count += 1,
                None => self.crew.push(CrewCount {
                    crew_member_id: member,
                    name,
                    count: 1,
                }),
            }
        }
        self.crew.sort_by_key(|c| c.crew_member_id);
    }
}
