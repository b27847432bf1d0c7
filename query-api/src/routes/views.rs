//! `GET /v1/dashboard` and `GET /v1/calendar/week/{date}`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use chrono::{Days, NaiveDate, Utc};
use domain::calendar::week_start;
use domain::enums::{JobStatus, Role};
use domain::ids::CrewMemberId;
use platform::auth::Caller;
use platform::problem::Problem;
use read_models::query::{self, CalendarWeekView, PositionTracking};
use read_models::Model;

use super::render::{encode, view_answer, RenderError};
use super::{bad_parameter, query_failed, App, AppState};
use crate::docs::{Rendered, RenderedView};
use crate::params::{parse_date, Params};
use crate::respond::ApiError;

/// Default range: the 30 days ending today.
const DEFAULT_RANGE_DAYS: u64 = 29;

/// Business metrics for a range of local dates.
#[utoipa::path(
    get,
    path = "/v1/dashboard",
    tag = "reports",
    params(
        ("from" = Option<String>, Query, format = Date, description = "First local date (YYYY-MM-DD); default 29 days before `to`."),
        ("to" = Option<String>, Query, format = Date, description = "Last local date (YYYY-MM-DD); default today in the business time zone. `from` ≤ `to`; the range holds at most 366 days, `from` and `to` included."),
        super::MinPositionQuery,
    ),
    responses(
        (status = 200, description = "`data`: {from, to, totals, days[], today, service_types[], lead_sources[], crew[], monthly_revenue[]} — counts of jobs created/scheduled/completed/cancelled, revenue and average job value (minor units), leads and conversions, planned and crewed jobs; per service type, per referral source, per crew member; revenue of the 12 months ending this month.", body = super::schemas::ViewEnvelope<super::schemas::DashboardView>, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "Invalid parameters (malformed date, `from` after `to`, range of more than 366 days, unknown parameter).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Crew may not read the dashboard.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn dashboard(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    require_dashboard_reader(&caller)?;
    let mut params = Params::parse(&uri, &["from", "to"]);
    let min_position = params.min_position(&headers);
    let range = DashboardRange::parse(&mut params, &app);
    params.finish()?;
    let range = range?;
    let position = app.consistent(min_position).await?;
    let data = render_dashboard(&app, range).await?;
    Ok(view_answer(&headers, position, &data))
}

/// Who may read the dashboard, live, now or as of a past date.
pub(crate) fn require_dashboard_reader(caller: &Caller) -> Result<(), Problem> {
    caller.require(
        &[Role::Admin, Role::Dispatcher, Role::Sales, Role::Analyst],
        "read the dashboard",
    )
}

/// Who may read the calendar, live or now.
pub(crate) fn require_calendar_reader(caller: &Caller) -> Result<(), Problem> {
    caller.require(
        &[Role::Admin, Role::Dispatcher, Role::Sales, Role::Crew],
        "read the calendar",
    )
}

/// The `{date}` of a path, its error left in `params`.
pub(crate) fn path_date(
    params: &mut Params,
    path: Result<Path<String>, PathRejection>,
) -> Option<NaiveDate> {
    let date = match path {
        Ok(Path(raw)) => parse_date(&raw),
        Err(rejection) => Err(rejection.body_text()),
    };
    date.map_err(|reason| params.push_error("date", reason))
        .ok()
}

/// The dates of a dashboard: `from` and `to` as asked or by default, and today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DashboardRange {
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
}

impl DashboardRange {
    /// `from` and `to` from `params` (their errors left in `params`) around the business's
    /// today, checked against the read model's rule before anything waits.
    pub(crate) fn parse(params: &mut Params, app: &App) -> Result<Self, ApiError> {
        let from = params.date("from");
        let to = params.date("to");
        Self::around(from, to, app.time_zone.local_date(Utc::now()))
    }

    /// `from` and `to` as asked, or by default the 30 days ending `today`; checked against
    /// the read model's rule.
    pub(crate) fn around(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<Self, ApiError> {
        let days_before = |date: NaiveDate| {
            date.checked_sub_days(Days::new(DEFAULT_RANGE_DAYS))
                .unwrap_or(date)
        };
        let (from, to) = match (from, to) {
            (Some(from), Some(to)) => (from, to),
            (Some(from), None) => (from, today.max(from)),
            (None, Some(to)) => (days_before(to), to),
            (None, None) => (days_before(today), today),
        };
        query::check_dashboard_range(from, to).map_err(query_failed)?;
        Ok(DashboardRange { from, to, today })
    }

    /// The dashboard of this range read from `docs`.
    pub(super) async fn read(
        &self,
        docs: &impl query::DocSource,
        gens: &query::Generations,
    ) -> Result<query::DashboardView, RenderError> {
        query::dashboard(docs, gens, self.from, self.to, self.today)
            .await
            .map_err(RenderError::Query)
    }
}

/// The dashboard of `range`, rendered once per change of the read models.
pub(crate) async fn render_dashboard(
    app: &App,
    range: DashboardRange,
) -> Result<RenderedView, ApiError> {
    let DashboardRange { from, to, today } = range;
    let gens = app.freshness.generations();
    let view = format!(
        "dashboard|g{}|{from}|{to}|{today}",
        gens.get(Model::Dashboard)
    );
    app.docs
        .rendered(view, async {
            let docs = PositionTracking::new(app.docs.as_ref());
            let view = range.read(&docs, &gens).await?;
            encode(&view).map(|data| Rendered::view(data).from_docs_at(docs.highest_position()))
        })
        .await
        .map_err(RenderError::into_api)
}

/// The jobs of the week (Monday to Sunday) containing a date.
#[utoipa::path(
    get,
    path = "/v1/calendar/week/{date}",
    tag = "reports",
    params(
        ("date" = String, Path, format = Date, description = "Any local date (YYYY-MM-DD) of the week."),
        super::MinPositionQuery,
    ),
    responses(
        (status = 200, description = "`data`: {week_start, days[7]: {date, scheduled, cancelled, jobs[]: {job_id, date, window {start, end}, customer_id, customer_name, service_type, crew[] {crew_member_id, name}, status}}}. Jobs sorted by window start, then job id; cancelled jobs stay listed with status `cancelled`. Crew callers see only jobs they are assigned to, with counts over those jobs.", body = super::schemas::ViewEnvelope<super::schemas::CalendarWeekView>, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "Malformed date or unknown parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Analysts may not read the calendar; crew users without a crew-member record may not either.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn calendar_week(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    require_calendar_reader(&caller)?;
    let mut params = Params::parse(&uri, &[]);
    let min_position = params.min_position(&headers);
    let date = path_date(&mut params, path);
    params.finish()?;
    let Some(date) = date else {
        return Err(bad_parameter("date", "missing"));
    };
    let position = app.consistent(min_position).await?;
    let data = render_calendar_week(&app, &caller, date).await?;
    Ok(view_answer(&headers, position, &data))
}

/// The calendar week containing `date` as `caller` may see it (crew: their own jobs),
/// rendered once per change of the read models.
pub(crate) async fn render_calendar_week(
    app: &App,
    caller: &Caller,
    date: NaiveDate,
) -> Result<RenderedView, ApiError> {
    let crew = super::crew_member_of(app, caller).await?;
    let gens = app.freshness.generations();
    let week = week_start(date);
    let scope = crew.map_or_else(|| "all".to_owned(), |crew| crew.to_string());
    let view = format!("calendar|g{}|{week}|{scope}", gens.get(Model::Calendar));
    app.docs
        .rendered(view, async {
            let docs = PositionTracking::new(app.docs.as_ref());
            let mut view = query::calendar_week(&docs, &gens, week)
                .await
                .map_err(RenderError::Query)?;
            if let Some(crew) = crew {
                only_crew(&mut view, crew);
            }
            encode(&view).map(|data| Rendered::view(data).from_docs_at(docs.highest_position()))
        })
        .await
        .map_err(RenderError::into_api)
}

/// Keeps the jobs `crew` is assigned to, and counts only those.
pub(crate) fn only_crew(view: &mut CalendarWeekView, crew: CrewMemberId) {
    for day in &mut view.days {
        day.jobs
            .retain(|job| job.crew.iter().any(|c| c.crew_member_id == crew));
        day.cancelled = day
            .jobs
            .iter()
            .filter(|job| job.status == JobStatus::Cancelled)
            .count() as u64;
        day.scheduled = day.jobs.len() as u64 - day.cancelled;
    }
}
