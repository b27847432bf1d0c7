//! Customers and jobs: filtered keyset lists and single summaries.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use domain::enums::{CustomerStatus, JobStatus, ReferralSource, Role};
use domain::ids::{CrewMemberId, CustomerId, JobId};
use platform::auth::Caller;
use platform::problem::Problem;
use read_models::query::{self, CustomerFilter, JobFilter};
use read_models::Model;

use super::{path_id, query_failed, AppState};
use crate::cursor::ListScope;
use crate::params::Params;
use crate::respond::{json_ok, ApiError, ViewBody};

const OFFICE: [Role; 3] = [Role::Admin, Role::Dispatcher, Role::Sales];
const OFFICE_AND_CREW: [Role; 4] = [Role::Admin, Role::Dispatcher, Role::Sales, Role::Crew];

/// Customers, newest first, or ranked by a typo-tolerant search.
#[utoipa::path(
    get,
    path = "/v1/customers",
    tag = "lists",
    params(
        ("search" = Option<String>, Query, max_length = 100, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$", description = "Words matched against first and last name, email and phone digits, typo tolerant (\"Jon Smith\" finds \"John Smith\"); results ranked by relevance, then name, then id. At most 100 characters, no control characters."),
        ("status" = Option<super::schemas::CustomerStatusName>, Query, description = "lead, active or inactive."),
        ("source" = Option<super::schemas::ReferralSourceName>, Query, description = "Referral source: website, referral, google, repeat, social or other."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Items per page, 1..=100 (default 20)."),
        ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the previous page with the same filters."),
        super::MinPositionQuery,
    ),
    responses(
        (status = 200, description = "`data[]`: {customer_id, first_name, last_name, email, phone, referral_source, status, created_at, job_count, lifetime_revenue_minor}. Without search: created_at desc, id desc. `total` is given for the status/source lists (a directory read), not for searches.", body = super::schemas::PageEnvelope<super::schemas::CustomerItem>, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "Invalid parameters or cursor.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only admin, dispatcher and sales may list customers.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_customers(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    caller.require(&OFFICE, "list customers")?;
    let mut params = Params::parse(&uri, &["search", "status", "source", "limit", "cursor"]);
    let min_position = params.min_position(&headers);
    let filter = CustomerFilter {
        status: params.parsed::<CustomerStatus>("status"),
        source: params.parsed::<ReferralSource>("source"),
        search: params.search("search"),
    };
    let limit = params.limit();
    let cursor = params.cursor();
    params.finish()?;
    let scope = ListScope::new(
        "customers",
        &[
            ("status", filter.status.map(|s| s.to_string())),
            ("source", filter.source.map(|s| s.to_string())),
            ("search", filter.search.clone()),
        ],
    );
    let page = app.page_request(&scope, limit, cursor.as_deref())?;
    let position = app.consistent(min_position).await?;
    let gens = app.freshness.generations();
    let customers = query::customers(app.docs.as_ref(), &gens, &filter, page.clone());
    app.page_answer(
        &headers,
        &scope,
        gens.get(Model::Lists),
        page,
        position,
        customers,
    )
    .await
}

/// One customer's summary.
#[utoipa::path(
    get,
    path = "/v1/customers/{id}",
    tag = "lists",
    params(
        ("id" = String, Path, format = Uuid, description = "Customer id."),
        super::MinPositionQuery,
    ),
    responses(
        (status = 200, description = "`data`: {customer_id, first_name, last_name, email, phone, referral_source, status, created_at, job_count, lifetime_revenue_minor}.", body = super::schemas::ViewEnvelope<super::schemas::CustomerItem>, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "The id is not a UUID, or an unknown parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only admin, dispatcher and sales may read customers.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_customer(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require(&OFFICE, "read customers")?;
    let id: CustomerId = path_id(path, "id")?;
    let mut params = Params::parse(&uri, &[]);
    let min_position = params.min_position(&headers);
    params.finish()?;
    let position = app.consistent(min_position).await?;
    let gens = app.freshness.generations();
    let customer = query::customer(app.docs.as_ref(), &gens, id)
        .await
        .map_err(query_failed)?
        .ok_or_else(|| Problem::not_found(format!("no customer {id}")))?;
    Ok(json_ok(
        &headers,
        position,
        &ViewBody {
            data: customer,
            position,
        },
    ))
}

/// Jobs by list date (scheduled date, else creation date), newest first.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "lists",
    params(
        ("status" = Option<super::schemas::JobStatusParam>, Query, description = "created, scheduled, in_progress, completed or cancelled."),
        ("from" = Option<String>, Query, format = Date, description = "Earliest list date (YYYY-MM-DD), inclusive."),
        ("to" = Option<String>, Query, format = Date, description = "Latest list date (YYYY-MM-DD), inclusive; not before `from`."),
        ("crew" = Option<String>, Query, format = Uuid, description = "Only jobs this crew member is assigned to. Crew callers always get their own."),
        ("customer" = Option<String>, Query, format = Uuid, description = "Only this customer's jobs."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Items per page, 1..=100 (default 20)."),
        ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the previous page with the same filters."),
        super::MinPositionQuery,
    ),
    responses(
        (status = 200, description = "`data[]`: {job_id, customer_id, customer_name, service_type, status, scheduled_date, window, crew[] {crew_member_id, name}, estimated_price_minor, revenue_minor, created_at, list_date}, by list_date desc, created_at desc, id desc. `total` when the list's directory gives it (single-filter lists).", body = super::schemas::PageEnvelope<super::schemas::JobItem>, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "Invalid parameters or cursor.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Analysts may not list jobs; crew may not ask for another crew member's jobs.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_jobs(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    caller.require(&OFFICE_AND_CREW, "list jobs")?;
    let mut params = Params::parse(
        &uri,
        &[
            "status", "from", "to", "crew", "customer", "limit", "cursor",
        ],
    );
    let min_position = params.min_position(&headers);
    let mut filter = JobFilter {
        status: params.parsed::<JobStatus>("status"),
        from: params.date("from"),
        to: params.date("to"),
        crew: params.parsed::<CrewMemberId>("crew"),
        customer: params.parsed::<CustomerId>("customer"),
    };
    let limit = params.limit();
    let cursor = params.cursor();
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            params.push_error("from", "must not be after `to`");
        }
    }
    params.finish()?;
    let position = app.consistent(min_position).await?;
    if let Some(own) = super::crew_member_of(&app, &caller).await? {
        if filter.crew.is_some_and(|asked| asked != own) {
            return Err(Problem::forbidden("crew members may only list their own jobs").into());
        }
        filter.crew = Some(own);
    }
    let scope = ListScope::new(
        "jobs",
        &[
            ("status", filter.status.map(|s| s.to_string())),
            ("from", filter.from.map(|d| d.to_string())),
            ("to", filter.to.map(|d| d.to_string())),
            ("crew", filter.crew.map(|c| c.to_string())),
            ("customer", filter.customer.map(|c| c.to_string())),
        ],
    );
    let page = app.page_request(&scope, limit, cursor.as_deref())?;
    let gens = app.freshness.generations();
    let jobs = query::jobs(app.docs.as_ref(), &gens, &filter, page.clone());
    app.page_answer(
        &headers,
        &scope,
        gens.get(Model::Lists),
        page,
        position,
        jobs,
    )
    .await
}

/// One job's summary. Crew callers only see jobs they are assigned to (404 otherwise).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "lists",
    params(
        ("id" = String, Path, format = Uuid, description = "Job id."),
        super::MinPositionQuery,
    ),
    responses(
        (status = 200, description = "`data`: {job_id, customer_id, customer_name, service_type, status, scheduled_date, window, crew[], estimated_price_minor, revenue_minor, created_at, list_date}.", body = super::schemas::ViewEnvelope<super::schemas::JobItem>, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "The id is not a UUID, or an unknown parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Analysts may not read jobs.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job (or, for crew, not one of theirs).", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_job(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require(&OFFICE_AND_CREW, "read jobs")?;
    let id: JobId = path_id(path, "id")?;
    let mut params = Params::parse(&uri, &[]);
    let min_position = params.min_position(&headers);
    params.finish()?;
    let position = app.consistent(min_position).await?;
    let own_crew = super::crew_member_of(&app, &caller).await?;
    let gens = app.freshness.generations();
    let not_found = || Problem::not_found(format!("no job {id}"));
    let job = query::job(app.docs.as_ref(), &gens, id)
        .await
        .map_err(query_failed)?
        .ok_or_else(not_found)?;
    if let Some(own) = own_crew {
        if !job.crew.iter().any(|c| c.crew_member_id == own) {
            return Err(not_found().into());
        }
    }
    Ok(json_ok(
        &headers,
        position,
        &ViewBody {
            data: job,
            position,
        },
    ))
}
