//! `GET /v1/dashboard/as-of` and `GET /v1/calendar/as-of`: the dashboard or a calendar week as
//! it was at the end of a past date or at a global position, folded from the event log with the
//! projector's own apply code into documents in memory and read with the same query as the live
//! view, so it equals what the live model showed once it had reached that position. Folds are
//! cached by position and view.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use chrono::{Days, NaiveDate};
use domain::calendar::week_start;
use domain::ids::CrewMemberId;
use events::store::ReadAllOptions;
use events::EventStore;
use platform::auth::Caller;
use platform::problem::Problem;
use read_models::cache::DocCache;
use read_models::memory::MemoryStore;
use read_models::query::Generations;
use read_models::{apply, Model, ProjectionContext};

use super::render::{encode, view_answer, RenderError};
use super::views::{only_crew, require_calendar_reader, require_dashboard_reader, DashboardRange};
use super::{bad_parameter, App, AppState};
use crate::docs::{Rendered, RenderedView};
use crate::params::Params;
use crate::respond::ApiError;

/// What a fold renders: a dashboard range, or a calendar week as one crew member (or
/// everybody else) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AsOfView {
    Dashboard(DashboardRange),
    CalendarWeek {
        week: NaiveDate,
        crew: Option<CrewMemberId>,
    },
}

/// Folds kept: (position, view) → the rendered view.
pub(crate) type AsOfCache = moka::future::Cache<(u64, AsOfView), RenderedView>;

pub(crate) fn as_of_cache() -> AsOfCache {
    moka::future::Cache::new(64)
}

/// The dashboard as of the end of a date or a position.
#[utoipa::path(
    get,
    path = "/v1/dashboard/as-of",
    tag = "reports",
    params(
        ("date" = Option<String>, Query, format = Date, description = "Local date (YYYY-MM-DD): the dashboard as it was at the end of that day (its last event recorded by midnight in the business time zone). Exactly one of `date` and `position`."),
        ("position" = Option<u64>, Query, minimum = 1, description = "Global position of the event log (from 1): the dashboard once every event up to it was applied. Exactly one of `date` and `position`."),
        ("from" = Option<String>, Query, format = Date, description = "First local date; default 29 days before `to`."),
        ("to" = Option<String>, Query, format = Date, description = "Last local date; default the as-of day. At most 366 days, both included."),
    ),
    responses(
        (status = 200, description = "`data` as for `GET /v1/dashboard` (its `today` is the as-of day), `position` the position folded to.", body = super::schemas::ViewEnvelope<super::schemas::DashboardView>, headers(("ETag" = String))),
        (status = 400, description = "Invalid parameters (neither or both of `date` and `position`, a position beyond the log, a malformed date, a range of more than 366 days).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Crew may not read the dashboard.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn dashboard_as_of(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    require_dashboard_reader(&caller)?;
    let mut params = Params::parse(&uri, &["date", "position", "from", "to"]);
    let moment = Moment::parse(&mut params);
    let (from, to) = (params.date("from"), params.date("to"));
    params.finish()?;
    let (position, today) = moment?.resolve(&app).await?;
    let range = DashboardRange::around(from, to, today)?;
    answer(&app, &headers, position, AsOfView::Dashboard(range)).await
}

/// A calendar week as of the end of a date or a position.
#[utoipa::path(
    get,
    path = "/v1/calendar/as-of",
    tag = "reports",
    params(
        ("date" = Option<String>, Query, format = Date, description = "Local date (YYYY-MM-DD): the week as it was at the end of that day (its last event recorded by midnight in the business time zone). Exactly one of `date` and `position`."),
        ("position" = Option<u64>, Query, minimum = 1, description = "Global position of the event log (from 1): the week once every event up to it was applied. Exactly one of `date` and `position`."),
        ("week" = Option<String>, Query, format = Date, description = "Any local date of the week (Monday to Sunday) to show; default the as-of day."),
    ),
    responses(
        (status = 200, description = "`data` as for `GET /v1/calendar/week/{date}` (crew callers see their own jobs), `position` the position folded to.", body = super::schemas::ViewEnvelope<super::schemas::CalendarWeekView>, headers(("ETag" = String))),
        (status = 400, description = "Invalid parameters (neither or both of `date` and `position`, a position beyond the log, a malformed date).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Analysts may not read the calendar; crew users without a crew-member record may not either.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn calendar_as_of(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    require_calendar_reader(&caller)?;
    let mut params = Params::parse(&uri, &["date", "position", "week"]);
    let moment = Moment::parse(&mut params);
    let week = params.date("week");
    params.finish()?;
    let crew = super::crew_member_of(&app, &caller).await?;
    let (position, day) = moment?.resolve(&app).await?;
    let week = week_start(week.unwrap_or(day));
    answer(
        &app,
        &headers,
        position,
        AsOfView::CalendarWeek { week, crew },
    )
    .await
}

/// The moment asked for: the end of a local date, or a position.
enum Moment {
    EndOf(NaiveDate),
    Position(u64),
}

impl Moment {
    /// `date` or `position` from `params` (their parse errors left in `params`).
    fn parse(params: &mut Params) -> Result<Self, ApiError> {
        let date = params.date("date");
        let position = params.integer("position", i64::MAX as u64);
        match (date, position) {
            (Some(date), None) => Ok(Moment::EndOf(date)),
            (None, Some(position)) => Ok(Moment::Position(position)),
            _ => Err(bad_parameter(
                "date",
                "give exactly one of `date` and `position`",
            )),
        }
    }

    /// The position to fold to, and the local day it stands for.
    async fn resolve(self, app: &App) -> Result<(u64, NaiveDate), ApiError> {
        match self {
            Moment::EndOf(date) => Ok((position_at_end_of(app, date).await?, date)),
            Moment::Position(position) => Ok((position, day_of(app, position).await?)),
        }
    }
}

/// The answer for `view` as of `position`, folded once and then cached.
async fn answer(
    app: &App,
    headers: &HeaderMap,
    position: u64,
    view: AsOfView,
) -> Result<Response, ApiError> {
    let data = app
        .as_of
        .try_get_with((position, view), fold_view(app, position, view))
        .await
        .map_err(|error| (*error).clone().into_api())?;
    Ok(view_answer(headers, position, &data))
}

/// The last position recorded by the end of `date` (business time zone): a binary search
/// over the log by point reads, positions being recorded in order.
async fn position_at_end_of(app: &App, date: NaiveDate) -> Result<u64, ApiError> {
    let midnight = date
        .checked_add_days(Days::new(1))
        .map(|next| app.time_zone.start_of_day(next))
        .ok_or_else(|| bad_parameter("date", "no day follows it"))?;
    let (mut low, mut high) = (0, tail(app).await?);
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        let recorded = event_at(&app.store, middle).await?.recorded_at;
        if recorded < midnight {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    Ok(low)
}

/// The local day the event at `position` was recorded on; a position past the log is a 400.
async fn day_of(app: &App, position: u64) -> Result<NaiveDate, ApiError> {
    let tail = tail(app).await?;
    if position > tail {
        return Err(bad_parameter(
            "position",
            format!("position {position} is beyond the end of the event log ({tail})"),
        ));
    }
    if position == 0 {
        return Err(bad_parameter("position", "positions start at 1"));
    }
    let recorded = event_at(&app.store, position).await?.recorded_at;
    Ok(app.time_zone.local_date(recorded))
}

async fn tail(app: &App) -> Result<u64, ApiError> {
    events::relay::sequenced_tail(&app.store)
        .await
        .map_err(|e| ApiError::internal("reading the event log's tail", e))
}

async fn event_at(store: &EventStore, position: u64) -> Result<events::EventEnvelope, ApiError> {
    store
        .event_at(position)
        .await
        .map_err(|e| ApiError::internal("reading the event log", e))?
        .ok_or_else(|| {
            ApiError::internal("reading the event log", format!("no event at {position}"))
        })
}

/// Applies the log up to `position` to the view's model in memory and renders the view.
async fn fold_view(app: &App, position: u64, view: AsOfView) -> Result<RenderedView, RenderError> {
    let none = Generations::new();
    let data = match view {
        AsOfView::Dashboard(range) => {
            let memory = fold(app, position, Model::Dashboard).await?;
            encode(&range.read(&memory, &none).await?)
        }
        AsOfView::CalendarWeek { week, crew } => {
            let memory = fold(app, position, Model::Calendar).await?;
            let mut view = read_models::query::calendar_week(&memory, &none, week)
                .await
                .map_err(RenderError::Query)?;
            if let Some(crew) = crew {
                only_crew(&mut view, crew);
            }
            encode(&view)
        }
    };
    Ok(Arc::new(data.map(Rendered::view)?))
}

/// `model`'s documents once the log up to `position` is applied to them, in memory.
async fn fold(app: &App, position: u64, model: Model) -> Result<MemoryStore, RenderError> {
    let failed = |reason: String| RenderError::Encode(format!("folding the log: {reason}"));
    let memory = MemoryStore::new();
    let mut cache = DocCache::new(usize::MAX);
    let context = ProjectionContext {
        time_zone: app.time_zone,
        generation: 1,
    };
    let mut batches = app.store.read_all(ReadAllOptions::default());
    'log: while let Some(batch) = batches.next().await {
        for event in batch.map_err(|e| failed(e.to_string()))? {
            if event.position.is_none_or(|p| p > position) {
                break 'log;
            }
            // An event the model refuses (a poison event) is skipped, as the live projector
            // skips it (it also parks the event's aggregate, which a fold does not).
            if let Err(error) = apply(model, &context, &mut cache, &memory, &event).await {
                if error.is_retryable() {
                    return Err(failed(error.to_string()));
                }
            }
        }
    }
    memory.write(cache.take_dirty());
    Ok(memory)
}
