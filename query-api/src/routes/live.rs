//! Server-sent events: a dashboard, a calendar week or the caller's unread counts, pushed
//! whenever the read models change.
//!
//! Each message is `event: update` with the body the matching `GET` answers (`{data,
//! position}`) and `id: <position>.<fingerprint>`: the followed read model's position (the
//! view includes every event up to it) and a fingerprint of the view. A client that reconnects with that id as `Last-Event-ID` gets
//! the current view at once only if it differs from the one it had: it neither misses nor
//! repeats an update. A stream renders its view again only when a change announced by the
//! projector's notices touches the view's model, and sends it only when it changed. A client
//! too slow to take every update skips to the latest view: nothing is queued for it beyond
//! the last few announcements. Heartbeats are SSE comments; a stream's place (per user and
//! overall) is given back when the client goes away.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use domain::ids::UserId;
use futures::Stream;
use platform::auth::Caller;
use platform::problem::Problem;
use read_models::query::{self, PositionTracking};
use read_models::Model;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::render::{encode, RenderError};
use super::views::{
    path_date, render_calendar_week, render_dashboard, require_calendar_reader,
    require_dashboard_reader, DashboardRange,
};
use super::{bad_parameter, query_failed, App, AppState};
use crate::docs::{Rendered, RenderedView};
use crate::params::Params;
use crate::push::{Admitted, Change, Refused};
use crate::respond::ApiError;

/// The `Last-Event-ID` header doc shared by the three streams.
const LAST_EVENT_ID_DOC: &str = "The `id` of the last message received, to resume without missing or repeating an update: the current view is sent at once only if it differs from that one.";

/// A dashboard pushed on every change.
#[utoipa::path(
    get,
    path = "/v1/live/dashboard",
    tag = "live",
    params(
        ("from" = Option<String>, Query, format = Date, description = "As for `GET /v1/dashboard`."),
        ("to" = Option<String>, Query, format = Date, description = "As for `GET /v1/dashboard`."),
        ("Last-Event-ID" = Option<String>, Header, description = LAST_EVENT_ID_DOC),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `event: update` messages whose data is the body of `GET /v1/dashboard`, `id` = `<position>.<fingerprint>`; comments as heartbeats.", body = super::schemas::DashboardUpdate, content_type = "text/event-stream"),
        (status = 400, description = "Invalid parameters.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Crew may not read the dashboard.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many streams open for this user or this service.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn live_dashboard(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    require_dashboard_reader(&caller)?;
    let mut params = Params::parse(&uri, &["from", "to"]);
    let range = DashboardRange::parse(&mut params, &app);
    params.finish()?;
    let followed = Followed::Dashboard(range?);
    open(app, &caller, &headers, followed)
}

/// A calendar week pushed on every change.
#[utoipa::path(
    get,
    path = "/v1/live/calendar/week/{date}",
    tag = "live",
    params(
        ("date" = String, Path, format = Date, description = "Any local date (YYYY-MM-DD) of the week."),
        ("Last-Event-ID" = Option<String>, Header, description = LAST_EVENT_ID_DOC),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `event: update` messages whose data is the body of `GET /v1/calendar/week/{date}` as the caller may see it, `id` = `<position>.<fingerprint>`; comments as heartbeats.", body = super::schemas::CalendarWeekUpdate, content_type = "text/event-stream"),
        (status = 400, description = "Malformed date or unknown parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Analysts may not read the calendar.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many streams open for this user or this service.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn live_calendar_week(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    require_calendar_reader(&caller)?;
    let mut params = Params::parse(&uri, &[]);
    let date = path_date(&mut params, path);
    params.finish()?;
    let Some(date) = date else {
        return Err(bad_parameter("date", "missing"));
    };
    // A crew user without a crew-member record is refused now, not at the first render.
    super::crew_member_of(&app, &caller).await?;
    let followed = Followed::CalendarWeek {
        caller: caller.clone(),
        date,
    };
    open(app, &caller, &headers, followed)
}

/// The caller's unread counts pushed on every change.
#[utoipa::path(
    get,
    path = "/v1/live/me/unread-count",
    tag = "live",
    params(("Last-Event-ID" = Option<String>, Header, description = LAST_EVENT_ID_DOC)),
    responses(
        (status = 200, description = "`text/event-stream`: `event: update` messages whose data is the body of `GET /v1/me/unread-count` (the caller's own counts only), `id` = `<position>.<fingerprint>`; comments as heartbeats.", body = super::schemas::UnreadCountUpdate, content_type = "text/event-stream"),
        (status = 400, description = "Unknown parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many streams open for this user or this service.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn live_unread_count(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    Params::parse(&uri, &[]).finish()?;
    let followed = Followed::UnreadCount(caller.user_id);
    open(app, &caller, &headers, followed)
}

/// What one stream follows.
enum Followed {
    Dashboard(DashboardRange),
    CalendarWeek { caller: Caller, date: NaiveDate },
    UnreadCount(UserId),
}

impl Followed {
    fn model(&self) -> Model {
        match self {
            Followed::Dashboard(_) => Model::Dashboard,
            Followed::CalendarWeek { .. } => Model::Calendar,
            Followed::UnreadCount(_) => Model::Inbox,
        }
    }

    async fn render(&self, app: &App) -> Result<RenderedView, ApiError> {
        match self {
            Followed::Dashboard(range) => render_dashboard(app, *range).await,
            Followed::CalendarWeek { caller, date } => {
                render_calendar_week(app, caller, *date).await
            }
            Followed::UnreadCount(user) => {
                let gens = app.freshness.generations();
                let docs = PositionTracking::new(app.docs.as_ref());
                let view = query::unread_count(&docs, &gens, *user)
                    .await
                    .map_err(query_failed)?;
                let data = encode(&view).map_err(RenderError::into_api)?;
                let rendered = Rendered::view(data).from_docs_at(docs.highest_position());
                Ok(std::sync::Arc::new(rendered))
            }
        }
    }
}

/// Admits the stream and answers with it.
fn open(
    app: AppState,
    caller: &Caller,
    headers: &HeaderMap,
    followed: Followed,
) -> Result<Response, ApiError> {
    let admitted = app.push.admit(caller.user_id).map_err(|refused| {
        app.metrics.live_refused.fetch_add(1, Ordering::Relaxed);
        let detail = match refused {
            Refused::User(max) => format!("at most {max} streams may be open per user"),
            Refused::Total(max) => format!("this service serves at most {max} streams"),
        };
        ApiError::from(Problem::too_many_requests(detail, 5))
    })?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(fingerprint_of);
    let heartbeat = app.push_heartbeat;
    let stream = Following {
        changes: app.freshness.changes(),
        app,
        followed,
        last_sent: last_seen,
        started: false,
        _admitted: admitted,
    };
    Ok(Sse::new(updates(stream))
        .keep_alive(KeepAlive::new().interval(heartbeat))
        .into_response())
}

/// The fingerprint part of a message id (`<position>.<fingerprint>`).
fn fingerprint_of(id: &str) -> Option<u64> {
    let (_, fingerprint) = id.trim().split_once('.')?;
    u64::from_str_radix(fingerprint, 16).ok()
}

/// One open stream.
struct Following {
    app: AppState,
    followed: Followed,
    changes: Receiver<Change>,
    /// The fingerprint of the view the client has.
    last_sent: Option<u64>,
    started: bool,
    _admitted: Admitted,
}

fn updates(following: Following) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(following, |mut following| async move {
        let event = following.next_update().await?;
        Some((Ok(event), following))
    })
}

impl Following {
    /// The next view the client has not seen; `None` when the service shuts down.
    async fn next_update(&mut self) -> Option<Event> {
        loop {
            if self.started {
                self.wait_for_change().await?;
            }
            self.started = true;
            // The followed model's own checkpoint, read before the view, or the documents'
            // positions where they are further (read during a flush): the view includes
            // every event up to it.
            let checkpoint = self.app.freshness.model_position(self.followed.model());
            let view = match self.followed.render(&self.app).await {
                Ok(view) => view,
                Err(_) => {
                    // Already logged as it failed; the next change renders again.
                    tracing::debug!("a streamed view could not be rendered");
                    continue;
                }
            };
            let position = checkpoint.max(view.docs_position);
            let fingerprint = view.start.fingerprint();
            if self.last_sent == Some(fingerprint) {
                continue;
            }
            self.last_sent = Some(fingerprint);
            self.app
                .metrics
                .live_updates
                .fetch_add(1, Ordering::Relaxed);
            let body = format!(r#"{{"data":{},"position":{position}}}"#, view.data.get());
            return Some(
                Event::default()
                    .event("update")
                    .id(format!("{position}.{fingerprint:016x}"))
                    .data(body),
            );
        }
    }

    /// Waits for a change of the followed model; a stream that fell behind the
    /// announcements renders the latest view instead of each one it missed.
    async fn wait_for_change(&mut self) -> Option<()> {
        let model = self.followed.model();
        loop {
            let received = tokio::select! {
                () = self.app.shutdown.clone().wait() => return None,
                received = self.changes.recv() => received,
            };
            match received {
                Ok(change) if change.touches(model) => return Some(()),
                Ok(_) => {}
                Err(RecvError::Lagged(skipped)) => {
                    self.app
                        .metrics
                        .live_lagged
                        .fetch_add(skipped, Ordering::Relaxed);
                    return Some(());
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// How often an idle stream sends a heartbeat comment, by default.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
