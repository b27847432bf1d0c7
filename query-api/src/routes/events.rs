//! `GET /v1/events`: the raw event log in position order, for admins and analysts.
//!
//! Message text is private to a thread's participants: a reader outside the thread gets it
//! redacted ([`domain::thread::privacy`]) unless an admin asks for it explicitly.
//!
//! Positions are dense, so a page is a run of point reads after `after_position`. With type
//! filters the service reads ahead at most [`SCAN_BUDGET`] positions per request and returns
//! a cursor after the last position it examined, so a rare type costs bounded work per page.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use domain::codec::Codec;
use domain::enums::Role;
use domain::ids::ThreadId;
use domain::thread::privacy;
use domain::{crew_member, customer, job, thread, user, Aggregate, DomainEvent};
use events::EventEnvelope;
use platform::auth::Caller;
use platform::stored::upcast_in_place;
use read_models::query;

use super::AppState;
use crate::params::Params;
use crate::respond::{json_ok, ApiError, PageBody};

/// Positions examined at most per request when filtering by type.
pub const SCAN_BUDGET: u64 = 5_000;
/// Far beyond any real log, and far enough below `i64::MAX` that a scan cannot overflow.
pub const MAX_AFTER_POSITION: u64 = 9_000_000_000_000_000_000;
/// First read-ahead chunk when filtering; chunks double up to [`MAX_CHUNK`].
const FIRST_CHUNK: u64 = 100;
const MAX_CHUNK: u64 = 500;

pub const AGGREGATE_TYPES: [&str; 5] = [
    customer::Customer::TYPE,
    job::Job::TYPE,
    user::User::TYPE,
    crew_member::CrewMember::TYPE,
    thread::Thread::TYPE,
];

fn event_types() -> impl Iterator<Item = &'static str> {
    customer::CustomerEvent::EVENT_TYPES
        .iter()
        .chain(job::JobEvent::EVENT_TYPES)
        .chain(user::UserEvent::EVENT_TYPES)
        .chain(crew_member::CrewMemberEvent::EVENT_TYPES)
        .chain(thread::ThreadEvent::EVENT_TYPES)
        .copied()
}

/// The name of an event type any aggregate records: what the `type` filter accepts.
pub struct EventTypeName;

impl utoipa::PartialSchema for EventTypeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .enum_values(Some(event_types()))
            .into()
    }
}

impl utoipa::ToSchema for EventTypeName {}

/// The raw event log after a position, optionally filtered by event and aggregate type.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(
        ("after_position" = Option<u64>, Query, minimum = 0, maximum = 9_000_000_000_000_000_000_u64, description = "Return events after this position (0 = from the start). Pass the previous page's `next_cursor` here."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Events per page, 1..=100 (default 20)."),
        ("type" = inline(Option<EventTypeName>), Query, description = "Only events of this type, e.g. `JobScheduled`."),
        ("aggregate_type" = Option<super::schemas::AggregateTypeParam>, Query, description = "Only events of this aggregate type: customer, job, user, crew_member, thread."),
        ("include_message_bodies" = Option<bool>, Query, description = "Admins only: include the text of messages in threads the caller is not part of. Without it, such a `MessagePosted` has `body` = `[redacted]` and `body_redacted` = true."),
        super::MinPositionQuery,
    ),
    responses(
        (status = 200, description = "A page of events in position order. `next_cursor` is the last position examined (pass it as `after_position`); with type filters at most 5,000 positions are examined per request, so a page may hold fewer than `limit` events while `has_more` is true. `has_more` is false only at the tail of the log. No `total`.", body = EventPage, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "Invalid parameters.", body = platform::problem::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = platform::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only admin and analyst may read the event log.", body = platform::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = platform::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_events(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin, Role::Analyst], "read the event log")?;
    let mut params = Params::parse(
        &uri,
        &[
            "after_position",
            "limit",
            "type",
            "aggregate_type",
            "include_message_bodies",
        ],
    );
    let min_position = params.min_position(&headers);
    let query = EventQuery::parse(&mut params, &caller);
    params.finish()?;
    let position = app.consistent(min_position).await?;
    let Scanned {
        mut data,
        last,
        at_tail,
    } = scan(&app, &query).await?;
    upcast_to_current(&app, &mut data);
    if !query.include_message_bodies {
        redact_foreign_messages(&app, &caller, &mut data).await?;
    }
    let body = PageBody {
        data,
        next_cursor: Some(last.to_string()),
        has_more: !at_tail,
        position,
        total: None,
    };
    Ok(json_ok(&headers, position, &body))
}

/// What a request for a page of the log asks for; its bad parameters are left in `params`.
struct EventQuery {
    after: u64,
    limit: u64,
    event_type: Option<String>,
    aggregate_type: Option<String>,
    include_message_bodies: bool,
}

impl EventQuery {
    fn parse(params: &mut Params, caller: &Caller) -> Self {
        let after = params
            .integer("after_position", MAX_AFTER_POSITION)
            .unwrap_or(0);
        let limit = params.limit() as u64;
        let event_type: Option<String> = params.parsed::<String>("type");
        if let Some(t) = &event_type {
            if !event_types().any(|known| known == t) {
                params.push_error(
                    "type",
                    "not a known event type, e.g. CustomerRegistered or JobScheduled",
                );
            }
        }
        let aggregate_type: Option<String> = params.parsed::<String>("aggregate_type");
        if let Some(t) = &aggregate_type {
            if !AGGREGATE_TYPES.contains(&t.as_str()) {
                params.push_error(
                    "aggregate_type",
                    format!("must be one of: {}", AGGREGATE_TYPES.join(", ")),
                );
            }
        }
        let include_message_bodies = params.boolean("include_message_bodies").unwrap_or(false);
        if include_message_bodies && caller.role != Role::Admin {
            params.push_error(
                "include_message_bodies",
                "only admins may read the message text of threads they are not part of",
            );
        }
        EventQuery {
            after,
            limit,
            event_type,
            aggregate_type,
            include_message_bodies,
        }
    }

    fn filtered(&self) -> bool {
        self.event_type.is_some() || self.aggregate_type.is_some()
    }

    fn matches(&self, e: &EventEnvelope) -> bool {
        self.event_type.as_deref().is_none_or(|t| e.event_type == t)
            && self
                .aggregate_type
                .as_deref()
                .is_none_or(|t| e.aggregate_type == t)
    }
}

/// The events of one page and how far the log was examined for them.
struct Scanned {
    data: Vec<EventEnvelope>,
    /// The last position examined: the page's cursor.
    last: u64,
    at_tail: bool,
}

/// Reads the log after `query.after` in growing chunks until the page is full, the log ends
/// or [`SCAN_BUDGET`] positions are examined.
async fn scan(app: &AppState, query: &EventQuery) -> Result<Scanned, ApiError> {
    let (after, limit) = (query.after, query.limit);
    let mut data = Vec::new();
    let mut last = after;
    let mut at_tail = false;
    let mut chunk = if query.filtered() {
        FIRST_CHUNK.max(limit)
    } else {
        limit
    };
    'scan: while (data.len() as u64) < limit && last - after < SCAN_BUDGET {
        let want = chunk.min(SCAN_BUDGET - (last - after));
        let events = app
            .store
            .read_positions(last, want as usize)
            .await
            .map_err(|e| ApiError::internal("reading the event log", e))?;
        let got = events.len() as u64;
        for event in events {
            last = event.position.unwrap_or(last + 1);
            if query.matches(&event) {
                data.push(event);
                if data.len() as u64 == limit {
                    break 'scan;
                }
            }
        }
        if got < want {
            at_tail = true;
            break;
        }
        chunk = (chunk * 2).min(MAX_CHUNK);
    }
    Ok(Scanned {
        data,
        last,
        at_tail,
    })
}

/// Brings every event to the current schema of its type, as every other reader sees it. An
/// event this build cannot upcast (written by a newer one) is served as stored, with its own
/// schema version, rather than failing the page.
fn upcast_to_current(app: &AppState, events: &mut [EventEnvelope]) {
    let codec = Codec::for_business(app.time_zone);
    for event in events {
        if let Err(error) = upcast_in_place(&codec, event) {
            tracing::warn!(%error, event_id = %event.event_id, "served as stored");
        }
    }
}

/// Redacts the text of messages in threads `caller` is not a participant of
/// ([`domain::thread::privacy`]). Participation is read from the thread's header in the read
/// models; a thread not projected yet counts as not the caller's, so the text is withheld
/// rather than leaked.
async fn redact_foreign_messages(
    app: &AppState,
    caller: &Caller,
    events: &mut [EventEnvelope],
) -> Result<(), ApiError> {
    let generations = app.freshness.generations();
    let mut participates: HashMap<String, bool> = HashMap::new();
    for event in events
        .iter_mut()
        .filter(|e| e.event_type == "MessagePosted")
    {
        let member = match participates.get(&event.aggregate_id) {
            Some(member) => *member,
            None => {
                let member = match event.aggregate_id.parse::<ThreadId>() {
                    Ok(thread) => query::thread_meta(app.docs.as_ref(), &generations, thread)
                        .await
                        .map_err(|e| ApiError::internal("reading a thread's participants", e))?
                        .is_some_and(|meta| meta.is_participant(caller.user_id)),
                    Err(_) => false,
                };
                participates.insert(event.aggregate_id.clone(), member);
                member
            }
        };
        if !member {
            privacy::redact_private_text(&event.event_type, &mut event.payload);
        }
    }
    Ok(())
}

/// A page of the event log (schema for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the JSON list_events answers")]
pub struct EventPage {
    data: Vec<EventItem>,
    /// The last position examined; pass it as `after_position`.
    next_cursor: Option<String>,
    has_more: bool,
    position: u64,
}

/// An event as stored (`events::EventEnvelope`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "describes the JSON of events::EventEnvelope")]
pub struct EventItem {
    event_id: uuid::Uuid,
    aggregate_type: super::schemas::AggregateTypeParam,
    aggregate_id: String,
    /// 1, 2, 3 … within the stream, without gaps.
    version: u64,
    /// Global order of the whole store, dense from 1.
    position: Option<u64>,
    #[serde(rename = "type")]
    event_type: String,
    schema_version: u32,
    occurred_at: chrono::DateTime<chrono::Utc>,
    recorded_at: chrono::DateTime<chrono::Utc>,
    correlation_id: String,
    causation_id: Option<String>,
    actor: String,
    /// The W3C `traceparent` of the command that recorded the event, when it had one.
    #[serde(default)]
    traceparent: Option<String>,
    #[schema(schema_with = event_payload)]
    payload: serde_json::Value,
}

/// The event's own fields: their JSON Schema, per `type` and `schema_version`, is recorded
/// in `domain/schemas/events/`.
fn event_payload() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Object)
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(true)))
        .description(Some(
            "The event's fields; their JSON Schema per `type` and `schema_version` is in domain/schemas/events/ of the source.",
        ))
        .build()
}
