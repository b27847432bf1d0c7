//! The lists model: customer and job summaries, their filtered lists, customer search.
//!
//! Documents (collections `rm_lists_g<n>_<kind>`):
//! - `customers`, `_id = <customer_id>` (tier 4): `{summary: CustomerSummary, job_ids,
//!   tokens}`. From the customer events, `JobCreated` (job count, job ids) and
//!   `JobCompleted` (lifetime revenue). `job_ids` are the jobs a rename touches (~40 bytes
//!   per job of the customer).
//! - `jobs`, `_id = <job_id>` (tier 3): `{summary: JobSummary}` from every job event, the
//!   customer's name (`CustomerContactUpdated` rewrites it) and crew names.
//! - `list_dirs` / `list_segments` / `list_buckets` (tiers 2 / 1 / 0, see `list_index`),
//!   payload = the summary: customers keyed `<created_at>|<id>` in `customers`,
//!   `customers|status=<s>`, `customers|source=<r>`, `customers|status=<s>|source=<r>`; jobs
//!   keyed `<list_date>|<created_at>|<id>` in `jobs`, `jobs|status=<s>`,
//!   `jobs|customer=<id>`, `jobs|customer=<id>|status=<s>`, `jobs|crew=<id>`,
//!   `jobs|crew=<id>|status=<s>`. An item moves between lists (and keys) as its status, schedule or crew change, and its
//!   payload is rewritten in place otherwise.
//! - `search` (tier 0): customer search postings, see `search`.
//! - `crew_names`, `_id = <crew_member_id>` (tier 5): `{name}`.

use domain::crew_member::CrewMemberEvent;
use domain::customer::CustomerEvent;
use domain::enums::JobStatus;
use domain::ids::{CrewMemberId, CustomerId, JobId};
use domain::job::JobEvent;
use serde::{Deserialize, Serialize};

use super::search::{customer_tokens, rank_name, update_postings, Posting};
use super::{full_name, name_of, set_name, time_key, At};
use crate::apply::Decoded;
use crate::cache::{DocCache, DocLoader, LoadError, ReadDoc};
use crate::list_index::{ListStore, Membership};
use crate::query::{CrewRef, CustomerSummary, JobSummary, WindowView};
use crate::Model;

pub(crate) const KINDS: &[&str] = &[
    "customers",
    "jobs",
    "search",
    "crew_names",
    "crew_users",
    "list_dirs",
    "list_segments",
    "list_buckets",
];

/// `crew_users`, `_id = <user_id>` (tier 5): the crew member registered for that user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CrewUserDoc {
    pub(crate) crew_member_id: String,
}

impl ReadDoc for CrewUserDoc {
    const TIER: u8 = 5;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CustomerDoc {
    pub(crate) summary: Option<CustomerSummary>,
    pub(crate) job_ids: Vec<JobId>,
}

impl ReadDoc for CustomerDoc {
    const TIER: u8 = 4;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobDoc {
    pub(crate) summary: Option<JobSummary>,
}

impl ReadDoc for JobDoc {
    const TIER: u8 = 3;
}

pub(crate) fn customer_key(summary: &CustomerSummary) -> String {
    format!("{}|{}", time_key(summary.created_at), summary.customer_id)
}

pub(crate) fn job_key(summary: &JobSummary) -> String {
    format!(
        "{}|{}|{}",
        summary.list_date.format("%Y-%m-%d"),
        time_key(summary.created_at),
        summary.job_id
    )
}

/// Name of the customer list for a filter.
pub(crate) fn customer_list(
    status: Option<domain::enums::CustomerStatus>,
    source: Option<domain::enums::ReferralSource>,
) -> String {
    let mut name = String::from("customers");
    if let Some(status) = status {
        name.push_str(&format!("|status={status}"));
    }
    if let Some(source) = source {
        name.push_str(&format!("|source={source}"));
    }
    name
}

/// What a job list is restricted to (besides status).
pub(crate) enum JobScope {
    All,
    Customer(CustomerId),
    Crew(domain::ids::CrewMemberId),
}

pub(crate) fn job_list(scope: &JobScope, status: Option<JobStatus>) -> String {
    let mut name = match scope {
        JobScope::All => String::from("jobs"),
        JobScope::Customer(id) => format!("jobs|customer={id}"),
        JobScope::Crew(id) => format!("jobs|crew={id}"),
    };
    if let Some(status) = status {
        name.push_str(&format!("|status={status}"));
    }
    name
}

fn customer_memberships(summary: &CustomerSummary) -> Vec<Membership> {
    let key = customer_key(summary);
    let (status, source) = (Some(summary.status), Some(summary.referral_source));
    [
        (None, None),
        (status, None),
        (None, source),
        (status, source),
    ]
    .into_iter()
    .map(|(status, source)| Membership {
        list: customer_list(status, source),
        key: key.clone(),
    })
    .collect()
}

fn job_memberships(summary: &JobSummary) -> Vec<Membership> {
    let key = job_key(summary);
    let mut scopes = vec![JobScope::All, JobScope::Customer(summary.customer_id)];
    scopes.extend(
        summary
            .crew
            .iter()
            .map(|c| JobScope::Crew(c.crew_member_id)),
    );
    scopes
        .iter()
        .flat_map(|scope| [job_list(scope, None), job_list(scope, Some(summary.status))])
        .map(|list| Membership {
            list,
            key: key.clone(),
        })
        .collect()
}

fn posting(summary: &CustomerSummary) -> Posting {
    let digits: String = summary.phone.chars().filter(char::is_ascii_digit).collect();
    Posting {
        customer_id: summary.customer_id,
        name: rank_name(&summary.first_name, &summary.last_name),
        tokens: customer_tokens(
            &summary.first_name,
            &summary.last_name,
            &summary.email,
            &digits,
        ),
        status: summary.status,
        source: summary.referral_source,
    }
}

struct Ctx<'a, L> {
    cache: &'a mut DocCache,
    loader: &'a L,
    at: &'a At<'a>,
    customers: String,
    jobs: String,
    search: String,
    crew_names: String,
    lists: ListStore,
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
        at,
        customers: at.collection(Model::Lists, "customers"),
        jobs: at.collection(Model::Lists, "jobs"),
        search: at.collection(Model::Lists, "search"),
        crew_names: at.collection(Model::Lists, "crew_names"),
        lists: ListStore::named(|kind| at.collection(Model::Lists, kind)),
    };
    match event {
        Decoded::Crew(id, CrewMemberEvent::CrewMemberRegistered { name, user_id, .. }) => {
            let p = at.position;
            set_name(
                ctx.cache,
                loader,
                &ctx.crew_names,
                &id.to_string(),
                p,
                name.as_str(),
            )
            .await?;
            // Lets the query API find the crew member a crew user's token stands for.
            if let Some(user_id) = user_id {
                let crew_users = at.collection(Model::Lists, "crew_users");
                ctx.cache
                    .update::<CrewUserDoc>(loader, &crew_users, &user_id.to_string(), p, |doc| {
                        doc.crew_member_id = id.to_string();
                    })
                    .await?;
            }
        }
        Decoded::Customer(id, customer_event) => {
            apply_customer(&mut ctx, *id, customer_event).await?;
        }
        Decoded::Job(id, job_event) => apply_job(&mut ctx, *id, job_event).await?,
        _ => {}
    }
    Ok(())
}

async fn apply_customer<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    id: CustomerId,
    event: &CustomerEvent,
) -> Result<(), LoadError> {
    match event {
        CustomerEvent::CustomerRegistered {
            first_name,
            last_name,
            email,
            phone,
            referral_source,
            status,
            registered_at,
            ..
        } => {
            let summary = CustomerSummary {
                customer_id: id,
                first_name: first_name.as_str().to_owned(),
                last_name: last_name.as_str().to_owned(),
                email: email.as_str().to_owned(),
                phone: phone.as_str().to_owned(),
                referral_source: *referral_source,
                status: *status,
                created_at: *registered_at,
                job_count: 0,
                lifetime_revenue_minor: 0,
            };
            change_customer(ctx, id, |doc| doc.summary = Some(summary)).await
        }
        CustomerEvent::CustomerContactUpdated {
            current_first_name,
            current_last_name,
            current_email,
            current_phone,
            ..
        } => {
            change_customer(ctx, id, |doc| {
                if let Some(s) = &mut doc.summary {
                    s.first_name = current_first_name.as_str().to_owned();
                    s.last_name = current_last_name.as_str().to_owned();
                    s.email = current_email.as_str().to_owned();
                    s.phone = current_phone.as_str().to_owned();
                }
            })
            .await?;
            let name = full_name(current_first_name.as_str(), current_last_name.as_str());
            rename_customer_on_jobs(ctx, id, &name).await
        }
        CustomerEvent::CustomerStatusChanged { to, .. } => {
            change_customer(ctx, id, |doc| {
                if let Some(s) = &mut doc.summary {
                    s.status = *to;
                }
            })
            .await
        }
    }
}

/// Jobs carry their customer's name, so a rename rewrites every job of the customer.
async fn rename_customer_on_jobs<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    id: CustomerId,
    name: &str,
) -> Result<(), LoadError> {
    let job_ids = ctx
        .cache
        .get::<CustomerDoc>(ctx.loader, &ctx.customers, &id.to_string())
        .await?
        .map(|doc| doc.job_ids.clone())
        .unwrap_or_default();
    for job_id in job_ids {
        change_job(ctx, job_id, |s| s.customer_name = name.to_owned()).await?;
    }
    Ok(())
}

async fn apply_job<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    id: JobId,
    event: &JobEvent,
) -> Result<(), LoadError> {
    match event {
        JobEvent::JobCreated {
            customer_id,
            service_type,
            estimated_price,
            created_at,
            ..
        } => {
            let summary = JobSummary {
                job_id: id,
                customer_id: *customer_id,
                customer_name: customer_name(ctx, *customer_id).await?,
                service_type: *service_type,
                status: JobStatus::Created,
                scheduled_date: None,
                window: None,
                crew: Vec::new(),
                estimated_price_minor: estimated_price.amount_minor(),
                revenue_minor: None,
                created_at: *created_at,
                list_date: ctx.at.local_date(*created_at),
            };
            create_job(ctx, summary).await?;
            count_job_for_customer(ctx, *customer_id, id).await
        }
        JobEvent::JobScheduled { date, window, .. }
        | JobEvent::JobRescheduled { date, window, .. } => {
            let window = WindowView::from(window);
            change_job(ctx, id, |s| {
                s.scheduled_date = Some(*date);
                s.window = Some(window);
                s.list_date = *date;
                s.status = JobStatus::Scheduled;
            })
            .await
        }
        JobEvent::CrewAssigned { crew_member_id, .. } => {
            assign_crew(ctx, id, *crew_member_id).await
        }
        JobEvent::CrewUnassigned { crew_member_id, .. } => {
            change_job(ctx, id, |s| {
                s.crew.retain(|c| c.crew_member_id != *crew_member_id)
            })
            .await
        }
        JobEvent::JobStarted { .. } => {
            change_job(ctx, id, |s| s.status = JobStatus::InProgress).await
        }
        JobEvent::JobCancelled { .. } => {
            change_job(ctx, id, |s| s.status = JobStatus::Cancelled).await
        }
        JobEvent::JobCompleted { actual_revenue, .. } => {
            complete_job(ctx, id, actual_revenue.amount_minor()).await
        }
    }
}

async fn customer_name<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    customer_id: CustomerId,
) -> Result<String, LoadError> {
    Ok(ctx
        .cache
        .get::<CustomerDoc>(ctx.loader, &ctx.customers, &customer_id.to_string())
        .await?
        .and_then(|doc| doc.summary.as_ref())
        .map(|s| full_name(&s.first_name, &s.last_name))
        .unwrap_or_default())
}

async fn count_job_for_customer<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    customer_id: CustomerId,
    id: JobId,
) -> Result<(), LoadError> {
    change_customer(ctx, customer_id, |doc| {
        if !doc.job_ids.contains(&id) {
            doc.job_ids.push(id);
            if let Some(s) = &mut doc.summary {
                s.job_count += 1;
            }
        }
    })
    .await
}

async fn assign_crew<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    id: JobId,
    crew_member_id: CrewMemberId,
) -> Result<(), LoadError> {
    let name = name_of(
        ctx.cache,
        ctx.loader,
        &ctx.crew_names,
        &crew_member_id.to_string(),
    )
    .await?;
    change_job(ctx, id, |s| {
        if !s.crew.iter().any(|c| c.crew_member_id == crew_member_id) {
            s.crew.push(CrewRef {
                crew_member_id,
                name,
            });
            s.crew.sort_by_key(|c| c.crew_member_id);
        }
    })
    .await
}

/// Completes the job and adds its revenue to its customer's lifetime revenue.
async fn complete_job<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    id: JobId,
    revenue: i64,
) -> Result<(), LoadError> {
    change_job(ctx, id, |s| {
        s.status = JobStatus::Completed;
        s.revenue_minor = Some(revenue);
    })
    .await?;
    // The customer id never changes, so reading it from the job is safe whatever
    // the job document's tier.
    let customer = ctx
        .cache
        .get::<JobDoc>(ctx.loader, &ctx.jobs, &id.to_string())
        .await?
        .and_then(|doc| doc.summary.as_ref())
        .map(|s| s.customer_id);
    if let Some(customer) = customer {
        change_customer(ctx, customer, |doc| {
            if let Some(s) = &mut doc.summary {
                s.lifetime_revenue_minor += revenue;
            }
        })
        .await?;
    }
    Ok(())
}

/// Changes a customer document and carries the change into its lists and postings.
async fn change_customer<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    id: CustomerId,
    change: impl FnOnce(&mut CustomerDoc),
) -> Result<(), LoadError> {
    let key = id.to_string();
    let p = ctx.at.position;
    let old = ctx
        .cache
        .get_cloned::<CustomerDoc>(ctx.loader, &ctx.customers, &key)
        .await?
        .unwrap_or_default();
    let mut new = old.clone();
    change(&mut new);
    if new == old {
        return Ok(());
    }
    let stored = new.clone();
    ctx.cache
        .update::<CustomerDoc>(ctx.loader, &ctx.customers, &key, p, |doc| *doc = stored)
        .await?;
    let old_lists = old
        .summary
        .as_ref()
        .map(customer_memberships)
        .unwrap_or_default();
    let new_lists: Vec<_> = new
        .summary
        .iter()
        .flat_map(|s| customer_memberships(s).into_iter().map(|m| (m, s.clone())))
        .collect();
    ctx.lists
        .sync(ctx.cache, ctx.loader, p, &old_lists, &new_lists)
        .await?;
    let old_posting = old.summary.as_ref().map(posting);
    let new_posting = new.summary.as_ref().map(posting);
    update_postings(
        ctx.cache,
        ctx.loader,
        &ctx.search,
        p,
        old_posting.as_ref(),
        new_posting.as_ref(),
    )
    .await
}

async fn create_job<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    summary: JobSummary,
) -> Result<(), LoadError> {
    store_job(ctx, None, summary).await
}

/// Changes an existing job's summary and carries it into the job's lists.
async fn change_job<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    id: JobId,
    change: impl FnOnce(&mut JobSummary),
) -> Result<(), LoadError> {
    let Some(old) = ctx
        .cache
        .get::<JobDoc>(ctx.loader, &ctx.jobs, &id.to_string())
        .await?
        .and_then(|doc| doc.summary.clone())
    else {
        return Ok(());
    };
    let mut new = old.clone();
    change(&mut new);
    if new == old {
        return Ok(());
    }
    store_job(ctx, Some(old), new).await
}

async fn store_job<L: DocLoader>(
    ctx: &mut Ctx<'_, L>,
    old: Option<JobSummary>,
    new: JobSummary,
) -> Result<(), LoadError> {
    let p = ctx.at.position;
    let stored = new.clone();
    ctx.cache
        .update::<JobDoc>(ctx.loader, &ctx.jobs, &new.job_id.to_string(), p, |doc| {
            doc.summary = Some(stored);
        })
        .await?;
    let old_lists = old.as_ref().map(job_memberships).unwrap_or_default();
    let new_lists: Vec<_> = job_memberships(&new)
        .into_iter()
        .map(|m| (m, new.clone()))
        .collect();
    ctx.lists
        .sync(ctx.cache, ctx.loader, p, &old_lists, &new_lists)
        .await
}
