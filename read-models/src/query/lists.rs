//! Customer and job summaries and their filtered lists.
//!
//! Every filter the contract names has its own list, so a page is the list's directory and
//! one to three bucket reads. The one combination without a list, jobs of a crew member
//! *and* a customer, reads the customer's list (optionally with status) and keeps that crew
//! member's jobs, scanning at most [`SCAN_BUDGET`] entries per page: such a page may hold
//! fewer items than asked (even none) and still have a `next` cursor.

use domain::ids::{CustomerId, JobId};

use super::inbox::key_cursor;
use super::search::search_customers;
use super::{
    read, read_many, CursorKey, CustomerFilter, CustomerSummary, DocSource, Generations, JobFilter,
    JobSummary, Page, PageRequest, QueryError,
};
use crate::list_index::{read_page, ListStore, PageSpec};
use crate::models::lists::{customer_list, job_list, CustomerDoc, JobDoc, JobScope};
use crate::Model;

/// Most list entries one page of an in-memory-filtered job list looks at.
pub const SCAN_BUDGET: usize = 2000;

/// Customers matching `filter`: newest first, or by relevance when `filter.search` is set.
pub async fn customers(
    src: &impl DocSource,
    gens: &Generations,
    filter: &CustomerFilter,
    page: PageRequest,
) -> Result<Page<CustomerSummary>, QueryError> {
    if let Some(search) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
        return search_customers(src, gens, search, filter, page).await;
    }
    let list = customer_list(filter.status, filter.source);
    let spec = PageSpec {
        before: page.after.as_ref().map(key_cursor).transpose()?,
        floor: None,
        limit: page.clamped_limit(),
        keep: &|_: &CustomerSummary| true,
        budget: usize::MAX,
    };
    let store = ListStore::named(|kind| gens.collection(Model::Lists, kind));
    let result = read_page(src, &store, &list, spec).await?;
    Ok(Page {
        items: result.items.into_iter().map(|e| e.item).collect(),
        next: result.next.map(|k| CursorKey(serde_json::Value::String(k))),
        total: result.total,
    })
}

/// One customer's summary: one point read.
pub async fn customer(
    src: &impl DocSource,
    gens: &Generations,
    id: CustomerId,
) -> Result<Option<CustomerSummary>, QueryError> {
    let collection = gens.collection(Model::Lists, "customers");
    let doc = read::<CustomerDoc>(src, &collection, &id.to_string()).await?;
    Ok(doc.and_then(|d| d.summary))
}

/// The summaries of `ids`, in that order, leaving out unknown customers: one round of reads.
pub(crate) async fn customers_by_id(
    src: &impl DocSource,
    gens: &Generations,
    ids: &[CustomerId],
) -> Result<Vec<CustomerSummary>, QueryError> {
    let collection = gens.collection(Model::Lists, "customers");
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    Ok(read_many::<CustomerDoc>(src, &collection, &ids)
        .await?
        .into_iter()
        .flatten()
        .filter_map(|doc| doc.summary)
        .collect())
}

/// The crew member registered for `user` (a crew user's own record), if any.
pub async fn crew_member_for_user(
    src: &impl DocSource,
    gens: &Generations,
    user: domain::ids::UserId,
) -> Result<Option<domain::ids::CrewMemberId>, QueryError> {
    let collection = gens.collection(Model::Lists, "crew_users");
    let doc =
        read::<crate::models::lists::CrewUserDoc>(src, &collection, &user.to_string()).await?;
    doc.map(|d| {
        d.crew_member_id.parse().map_err(|_| QueryError::Corrupt {
            collection: collection.clone(),
            id: user.to_string(),
            reason: format!("crew member id `{}` is not a UUID", d.crew_member_id),
        })
    })
    .transpose()
}

/// Jobs matching `filter`, by list date (scheduled date, or local creation date while
/// unscheduled) newest first, then creation time and id.
pub async fn jobs(
    src: &impl DocSource,
    gens: &Generations,
    filter: &JobFilter,
    page: PageRequest,
) -> Result<Page<JobSummary>, QueryError> {
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            return Err(QueryError::Invalid {
                field: "from",
                reason: format!("must not be after to ({from} > {to})"),
            });
        }
    }
    let (scope, crew_filter) = match (filter.customer, filter.crew) {
        (Some(customer), crew) => (JobScope::Customer(customer), crew),
        (None, Some(crew)) => (JobScope::Crew(crew), None),
        (None, None) => (JobScope::All, None),
    };
    let list = job_list(&scope, filter.status);
    // Keys start with the list date, so a date range is a key range: below the day after
    // `to` (any key of `to` sorts below "<to>|~"), at or above "<from>|".
    let mut before = filter.to.map(|to| format!("{}|~", to.format("%Y-%m-%d")));
    if let Some(cursor) = page.after.as_ref().map(key_cursor).transpose()? {
        before = Some(match before {
            Some(bound) if bound < cursor => bound,
            _ => cursor,
        });
    }
    let keep = move |job: &JobSummary| {
        crew_filter.is_none_or(|crew| job.crew.iter().any(|c| c.crew_member_id == crew))
    };
    let filtered = crew_filter.is_some() || filter.from.is_some() || filter.to.is_some();
    let spec = PageSpec {
        before,
        floor: filter
            .from
            .map(|from| format!("{}|", from.format("%Y-%m-%d"))),
        limit: page.clamped_limit(),
        keep: &keep,
        budget: if crew_filter.is_some() {
            SCAN_BUDGET
        } else {
            usize::MAX
        },
    };
    let store = ListStore::named(|kind| gens.collection(Model::Lists, kind));
    let result = read_page(src, &store, &list, spec).await?;
    Ok(Page {
        items: result.items.into_iter().map(|e| e.item).collect(),
        next: result.next.map(|k| CursorKey(serde_json::Value::String(k))),
        total: if filtered { None } else { result.total },
    })
}

/// One job's summary: one point read.
pub async fn job(
    src: &impl DocSource,
    gens: &Generations,
    id: JobId,
) -> Result<Option<JobSummary>, QueryError> {
    let collection = gens.collection(Model::Lists, "jobs");
    let doc = read::<JobDoc>(src, &collection, &id.to_string()).await?;
    Ok(doc.and_then(|d| d.summary))
}
