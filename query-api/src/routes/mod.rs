//! The HTTP surface: one module per resource, sharing the state and the consistency wait.

pub mod as_of;
pub mod events;
pub mod inbox;
pub mod lists;
pub mod live;
mod render;
pub mod schemas;
pub mod service;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use std::str::FromStr;

use ::events::EventStore;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, Path};
use domain::calendar::BusinessTimeZone;
use platform::auth::Authenticator;
use platform::consistency::{MIN_POSITION_HEADER, MIN_POSITION_PARAM};
use platform::problem::Problem;
use read_models::query::{CursorKey, PageRequest, QueryError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cursor::{CursorCodec, ListScope};
use crate::docs::DocStore;
use crate::freshness::Freshness;
use crate::metrics::Metrics;
use crate::respond::ApiError;

pub struct App {
    pub auth: Authenticator,
    pub docs: Arc<DocStore>,
    pub freshness: Arc<Freshness>,
    pub cursors: CursorCodec,
    pub store: EventStore,
    pub time_zone: BusinessTimeZone,
    pub metrics: Arc<Metrics>,
    pub consistency_wait: Duration,
    /// Admission of server-sent event streams, and their heartbeat interval.
    pub push: crate::push::Admission,
    pub push_heartbeat: Duration,
    /// Ends the open streams when the service stops.
    pub shutdown: platform::shutdown::Shutdown,
    /// Dashboards folded from the log as of a past position.
    pub(crate) as_of: as_of::AsOfCache,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.0.auth.clone()
    }
}

/// Every route of the service with its documentation: the served document is this
/// router's own, so a route cannot be served undocumented or documented unserved.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<crate::openapi::ApiHeader as utoipa::OpenApi>::openapi())
        .routes(routes!(views::dashboard))
        .routes(routes!(as_of::dashboard_as_of))
        .routes(routes!(views::calendar_week))
        .routes(routes!(as_of::calendar_as_of))
        .routes(routes!(inbox::my_threads))
        .routes(routes!(inbox::my_unread_count))
        .routes(routes!(live::live_dashboard))
        .routes(routes!(live::live_calendar_week))
        .routes(routes!(live::live_unread_count))
        .routes(routes!(inbox::thread_messages))
        .routes(routes!(lists::list_customers))
        .routes(routes!(lists::get_customer))
        .routes(routes!(lists::list_jobs))
        .routes(routes!(lists::get_job))
        .routes(routes!(events::list_events))
        .routes(routes!(service::checkpoint))
        .routes(routes!(service::metrics))
        .routes(routes!(service::openapi_document))
}

impl App {
    /// The page request for `scope`: the first page, or the one after a cursor issued for
    /// exactly this list.
    pub fn page_request(
        &self,
        scope: &ListScope,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<PageRequest, ApiError> {
        let after = match cursor {
            None => None,
            Some(cursor) => Some(CursorKey(
                self.cursors
                    .decode(scope, cursor)
                    .map_err(|e| bad_parameter("cursor", e.to_string()))?,
            )),
        };
        Ok(PageRequest { limit, after })
    }

    /// The position the answer will reflect, after waiting for `min_position` if given.
    /// A position beyond the end of the event log is refused (400): waiting for it would
    /// only end in 503, and no command ever answered with it.
    pub async fn consistent(&self, min_position: Option<u64>) -> Result<u64, ApiError> {
        let Some(required) = min_position else {
            return Ok(self.freshness.position());
        };
        if required > self.freshness.position() {
            self.refuse_beyond_the_log(required).await?;
        }
        self.freshness
            .wait_for(required, self.consistency_wait)
            .await
            .map_err(|not_yet| ApiError::not_yet_consistent(required, not_yet.current))
    }

    /// `Err` when `required` is past the log's sequenced tail. The relay records a commit's
    /// positions (which a command answers with) a moment before it moves the tail, so the
    /// tail is looked at again for a short while before refusing.
    async fn refuse_beyond_the_log(&self, required: u64) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + TAIL_CATCH_UP.min(self.consistency_wait);
        loop {
            let tail = ::events::relay::sequenced_tail(&self.store)
                .await
                .map_err(|e| ApiError::internal("reading the event log's tail", e))?;
            if required <= tail {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(bad_parameter(
                    MIN_POSITION_PARAM,
                    format!(
                        "position {required} is beyond the end of the event log ({tail}); \
                         pass a position a command answered with"
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// `min_position` (query) and `X-Min-Position` (header), accepted by every `/v1` route
/// ([`platform::consistency`]).
pub struct MinPositionQuery;

/// How long a position past the log's tail is given to appear before it is refused. The
/// relay records a commit's positions before it moves the tail, one database write apart: on
/// a loaded machine that write took more than 250 ms, and a position a command had just
/// answered with was refused.
const TAIL_CATCH_UP: Duration = Duration::from_secs(1);

const MIN_POSITION_DOC: &str = "Read your own writes: wait (up to the configured consistency wait, 2 s by default) until the read models reflect this position (as returned by the command API), then answer; if it is not reached in time the answer is 503 `not-yet-consistent` with `Retry-After: 1`, `required_position` and `current_position`. A position beyond the end of the event log is a 400.";

impl utoipa::IntoParams for MinPositionQuery {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        let schema = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(0))
                .maximum(Some(i64::MAX))
                .build()
        };
        vec![
            ParameterBuilder::new()
                .name(MIN_POSITION_PARAM)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(MIN_POSITION_DOC))
                .schema(Some(schema()))
                .build(),
            ParameterBuilder::new()
                .name(MIN_POSITION_HEADER)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(format!(
                    "Same as the `{MIN_POSITION_PARAM}` query parameter."
                )))
                .schema(Some(schema()))
                .build(),
        ]
    }
}

pub fn bad_parameter(field: &str, reason: impl Into<String>) -> ApiError {
    Problem::invalid_parameter(field, reason).into()
}

/// A query error: the caller's fault (a cursor or value the read model refused) is a 400,
/// anything else a logged 500.
pub fn query_failed(error: QueryError) -> ApiError {
    match error {
        QueryError::InvalidCursor(reason) => bad_parameter("cursor", reason),
        QueryError::Invalid { field, reason } => bad_parameter(field, reason),
        other => ApiError::internal("reading the read models", other),
    }
}

/// A UUID path segment, or a 400 naming it.
pub fn path_id<T: FromStr>(
    path: Result<Path<String>, PathRejection>,
    name: &str,
) -> Result<T, ApiError> {
    let Path(raw) = path.map_err(|e| bad_parameter(name, e.body_text()))?;
    raw.parse::<T>()
        .map_err(|_| bad_parameter(name, "must be a UUID"))
}

/// For a crew caller, the crew member they are (their lists and calendar are limited to
/// it); `None` for every other role. A crew user with no crew-member record linked to their
/// account sees nothing and is refused. Call it after waiting for `min_position`: a record
/// linked by the command the caller waits for must be found.
pub async fn crew_member_of(
    app: &App,
    caller: &platform::auth::Caller,
) -> Result<Option<domain::ids::CrewMemberId>, ApiError> {
    if caller.role != domain::enums::Role::Crew {
        return Ok(None);
    }
    let gens = app.freshness.generations();
    let member = read_models::query::crew_member_for_user(app.docs.as_ref(), &gens, caller.user_id)
        .await
        .map_err(query_failed)?;
    match member {
        Some(member) => Ok(Some(member)),
        None => Err(Problem::forbidden(
            "no crew member is registered for this user; crew see only the jobs they are assigned to",
        )
        .into()),
    }
}
