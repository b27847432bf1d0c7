//! The calendar model: scheduled jobs by day.
//!
//! Documents (collections `rm_calendar_g<n>_<kind>`):
//! - `days`, `_id = <YYYY-MM-DD>` (tier 0): `{date, week_start, jobs: [{job_id, date,
//!   window {start, end}, customer_id, customer_name, service_type, crew [{crew_member_id,
//!   name}], status}]}` sorted by window start, job id. A job is on the day of its scheduled
//!   date from `JobScheduled` on; `JobRescheduled` moves it; crew and status events rewrite
//!   it; cancelled jobs stay with status `cancelled`; `CustomerContactUpdated` rewrites the
//!   customer name of every entry of the customer. A week is its seven days (point reads by
//!   `_id`, or `find({week_start})` for a user). Days, not weeks: FerretDB rewrites a whole
//!   document and charges by its values, so each change to a job rewrites one day's jobs
//!   instead of seven days'. Size grows with jobs per day (~300 bytes each: ~50,000 jobs
//!   in one day reach 16 MB).
//! - `jobs`, `_id = <job_id>` (tier 3): `{job: {customer_id, service_type, date, window,
//!   crew [ids], status}}`, from every job event: where the job's entry is and what it shows.
//! - `customers`, `_id = <customer_id>` (tier 4): `{name, job_ids}` from
//!   `CustomerRegistered`/`CustomerContactUpdated` (name) and `JobCreated` (job ids: the
//!   entries a rename touches; ~40 bytes per job of the customer).
//! - `crew_names`, `_id = <crew_member_id>` (tier 5): `{name}` from `CrewMemberRegistered`.
//!   Crew names never change (there is no rename event), so entries copy them.

use chrono::NaiveDate;
use domain::crew_member::CrewMemberEvent;
use domain::customer::CustomerEvent;
use domain::enums::{JobStatus, ServiceType};
use domain::ids::{CrewMemberId, CustomerId, JobId};
use domain::job::JobEvent;
use serde::{Deserialize, Serialize};

use super::{full_name, name_of, set_name, At};
use crate::apply::Decoded;
use crate::cache::{DocCache, DocLoader, LoadError, ReadDoc};
use crate::query::{CalendarJob, CrewRef, WindowView};
use crate::Model;

pub(crate) const KINDS: &[&str] = &["days", "jobs", "customers", "crew_names"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DayDoc {
    pub(crate) date: Option<NaiveDate>,
    /// The Monday of the day's week, for finding a week with one equality query.
    pub(crate) week_start: Option<NaiveDate>,
    pub(crate) jobs: Vec<CalendarJob>,
}

impl ReadDoc for DayDoc {
    const TIER: u8 = 0;
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
    window: Option<WindowView>,
    crew: Vec<CrewMemberId>,
    status: JobStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CustomerDoc {
    name: String,
    job_ids: Vec<JobId>,
}

impl ReadDoc for CustomerDoc {
    const TIER: u8 = 4;
}

pub(crate) fn day_id(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

fn sort_key(job: &CalendarJob) -> (chrono::NaiveTime, JobId) {
    (job.window.start, job.job_id)
}

struct Collections {
    days: String,
    jobs: String,
    customers: String,
    crew_names: String,
}

pub(crate) async fn apply(
    at: &At<'_>,
    cache: &mut DocCache,
    loader: &impl DocLoader,
    event: &Decoded,
) -> Result<(), LoadError> {
    let c = Collections {
        days: at.collection(Model::Calendar, "days"),
        jobs: at.collection(Model::Calendar, "jobs"),
        customers: at.collection(Model::Calendar, "customers"),
        crew_names: at.collection(Model::Calendar, "crew_names"),
    };
    let p = at.position;
    match event {
        Decoded::Crew(id, CrewMemberEvent::CrewMemberRegistered { name, .. }) => {
            set_name(
                cache,
                loader,
                &c.crew_names,
                &id.to_string(),
                p,
                name.as_str(),
            )
            .await?;
        }
        Decoded::Customer(
            id,
            CustomerEvent::CustomerRegistered {
                first_name,
                last_name,
                ..
            },
        ) => {
            let name = full_name(first_name.as_str(), last_name.as_str());
            cache
                .update::<CustomerDoc>(loader, &c.customers, &id.to_string(), p, |doc| {
                    doc.name = name;
                })
                .await?;
        }
        Decoded::Customer(
            id,
            CustomerEvent::CustomerContactUpdated {
                current_first_name,
                current_last_name,
                ..
            },
        ) => {
            let name = full_name(current_first_name.as_str(), current_last_name.as_str());
            rename_customer(cache, loader, &c, p, *id, name).await?;
        }
        Decoded::Job(job_id, job_event) => {
            apply_job(cache, loader, &c, p, *job_id, job_event).await?;
        }
        _ => {}
    }
    Ok(())
}

async fn rename_customer(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    c: &Collections,
    p: u64,
    customer_id: CustomerId,
    name: String,
) -> Result<(), LoadError> {
    let id = customer_id.to_string();
    let new_name = name.clone();
    cache
        .update::<CustomerDoc>(loader, &c.customers, &id, p, |doc| doc.name = new_name)
        .await?;
    let job_ids = cache
        .get::<CustomerDoc>(loader, &c.customers, &id)
        .await?
        .map(|doc| doc.job_ids.clone())
        .unwrap_or_default();
    for job_id in job_ids {
        let job = cache
            .get::<JobDoc>(loader, &c.jobs, &job_id.to_string())
            .await?
            .and_then(|doc| doc.job.clone());
        let Some(date) = job.and_then(|j| j.date) else {
            continue;
        };
        cache
            .update_existing::<DayDoc>(loader, &c.days, &day_id(date), p, |doc| {
                for entry in doc.jobs.iter_mut().filter(|e| e.job_id == job_id) {
                    entry.customer_name = name.clone();
                }
            })
            .await?;
    }
    Ok(())
}

async fn apply_job(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    c: &Collections,
    p: u64,
    job_id: JobId,
    event: &JobEvent,
) -> Result<(), LoadError> {
    if let JobEvent::JobCreated {
        customer_id,
        service_type,
        ..
    } = event
    {
        let lookup = JobLookup {
            customer_id: *customer_id,
            service_type: *service_type,
            date: None,
            window: None,
            crew: Vec::new(),
            status: JobStatus::Created,
        };
        return record_new_job(cache, loader, c, p, job_id, lookup).await;
    }
    let id = job_id.to_string();
    let Some(old) = cache
        .get::<JobDoc>(loader, &c.jobs, &id)
        .await?
        .and_then(|doc| doc.job.clone())
    else {
        return Ok(());
    };
    let mut new = old.clone();
    change_lookup(&mut new, event);
    let stored = new.clone();
    cache
        .update::<JobDoc>(loader, &c.jobs, &id, p, |doc| doc.job = Some(stored))
        .await?;
    if let Some(old_date) = old.date {
        cache
            .update_existing::<DayDoc>(loader, &c.days, &day_id(old_date), p, |doc| {
                doc.jobs.retain(|e| e.job_id != job_id);
            })
            .await?;
    }
    match calendar_entry(cache, loader, c, job_id, &new).await? {
        Some(entry) => insert_into_day(cache, loader, c, p, entry).await,
        None => Ok(()),
    }
}

/// Stores the new job's lookup and lists the job under its customer, for renames.
async fn record_new_job(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    c: &Collections,
    p: u64,
    job_id: JobId,
    lookup: JobLookup,
) -> Result<(), LoadError> {
    let customer_id = lookup.customer_id.to_string();
    cache
        .update::<JobDoc>(loader, &c.jobs, &job_id.to_string(), p, |doc| {
            doc.job = Some(lookup)
        })
        .await?;
    cache
        .update::<CustomerDoc>(loader, &c.customers, &customer_id, p, |doc| {
            if !doc.job_ids.contains(&job_id) {
                doc.job_ids.push(job_id);
            }
        })
        .await?;
    Ok(())
}

fn change_lookup(job: &mut JobLookup, event: &JobEvent) {
    match event {
        JobEvent::JobCreated { .. } => {}
        JobEvent::JobScheduled { date, window, .. }
        | JobEvent::JobRescheduled { date, window, .. } => {
            job.date = Some(*date);
            job.window = Some(WindowView::from(window));
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
        JobEvent::JobCompleted { .. } => job.status = JobStatus::Completed,
        JobEvent::JobCancelled { .. } => job.status = JobStatus::Cancelled,
    }
}

/// The job as its day shows it, with customer and crew names; `None` while unscheduled.
async fn calendar_entry(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    c: &Collections,
    job_id: JobId,
    job: &JobLookup,
) -> Result<Option<CalendarJob>, LoadError> {
    let (Some(date), Some(window)) = (job.date, job.window) else {
        return Ok(None);
    };
    let customer_name = cache
        .get::<CustomerDoc>(loader, &c.customers, &job.customer_id.to_string())
        .await?
        .map(|doc| doc.name.clone())
        .unwrap_or_default();
    let mut crew = Vec::with_capacity(job.crew.len());
    for member in &job.crew {
        let name = name_of(cache, loader, &c.crew_names, &member.to_string()).await?;
        crew.push(CrewRef {
            crew_member_id: *member,
            name,
        });
    }
    Ok(Some(CalendarJob {
        job_id,
        date,
        window,
        customer_id: job.customer_id,
        customer_name,
        service_type: job.service_type,
        crew,
        status: job.status,
    }))
}

/// Puts the entry into its day in time order, replacing any earlier entry of it.
async fn insert_into_day(
    cache: &mut DocCache,
    loader: &impl DocLoader,
    c: &Collections,
    p: u64,
    entry: CalendarJob,
) -> Result<(), LoadError> {
    let date = entry.date;
    cache
        .update::<DayDoc>(loader, &c.days, &day_id(date), p, |doc| {
            doc.date = Some(date);
            doc.week_start = Some(domain::calendar::week_start(date));
            doc.jobs.retain(|e| e.job_id != entry.job_id);
            let key = sort_key(&entry);
            let at = doc.jobs.partition_point(|e| sort_key(e) < key);
            doc.jobs.insert(at, entry);
        })
        .await?;
    Ok(())
}
