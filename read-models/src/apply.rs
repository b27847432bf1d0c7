//! Which model an event goes to, and how one event is decoded and handed to that model.

use std::fmt;
use std::str::FromStr;

use domain::calendar::BusinessTimeZone;
use domain::codec::Codec;
use domain::crew_member::CrewMemberEvent;
use domain::customer::CustomerEvent;
use domain::ids::{CrewMemberId, CustomerId, JobId, ThreadId, UserId};
use domain::job::JobEvent;
use domain::thread::ThreadEvent;
use domain::user::UserEvent;
use domain::DomainEvent;
use events::EventEnvelope;

use crate::cache::{DocCache, DocLoader, LoadError};
use crate::models;

/// The five read models; each is rebuilt on its own, in its own collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Model {
    Dashboard,
    Calendar,
    Inbox,
    Lists,
    Messages,
}

impl Model {
    pub const ALL: [Model; 5] = [
        Model::Dashboard,
        Model::Calendar,
        Model::Inbox,
        Model::Lists,
        Model::Messages,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Model::Dashboard => "dashboard",
            Model::Calendar => "calendar",
            Model::Inbox => "inbox",
            Model::Lists => "lists",
            Model::Messages => "messages",
        }
    }

    /// The collection kinds this model writes (besides `meta`).
    pub const fn kinds(self) -> &'static [&'static str] {
        match self {
            Model::Dashboard => models::dashboard::KINDS,
            Model::Calendar => models::calendar::KINDS,
            Model::Inbox => models::inbox::KINDS,
            Model::Lists => models::lists::KINDS,
            Model::Messages => models::messages::KINDS,
        }
    }

    /// The model's position in [`Model::ALL`], for arrays with one slot per model.
    pub(crate) const fn index(self) -> usize {
        match self {
            Model::Dashboard => 0,
            Model::Calendar => 1,
            Model::Inbox => 2,
            Model::Lists => 3,
            Model::Messages => 4,
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown model name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown read model {0:?}; expected one of dashboard, calendar, inbox, lists, messages")]
pub struct UnknownModel(pub String);

impl FromStr for Model {
    type Err = UnknownModel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Model::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| UnknownModel(s.to_owned()))
    }
}

/// What applying needs besides the event: the business time zone (every date bucket is a
/// local date in it) and the generation being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionContext {
    pub time_zone: BusinessTimeZone,
    pub generation: u32,
}

impl ProjectionContext {
    pub(crate) fn collection(&self, model: Model, kind: &str) -> String {
        crate::names::collection(model, self.generation, kind)
    }
}

/// Why an event could not be applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApplyError {
    /// Reading a document failed; nothing was changed, applying the same event again is right.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The event cannot be applied, whatever the retries: dead-letter it.
    #[error("event at position {position} ({event_type}) cannot be applied: {reason}")]
    Poison {
        position: u64,
        event_type: String,
        reason: String,
    },
}

impl ApplyError {
    /// True for events that no retry will apply (undecodable, missing position, impossible).
    pub fn is_poison(&self) -> bool {
        matches!(self, ApplyError::Poison { .. })
    }

    /// True when applying the same event again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApplyError::Load(e) if e.is_retryable())
    }

    pub(crate) fn poison(event: &EventEnvelope, reason: impl Into<String>) -> Self {
        ApplyError::Poison {
            position: event.position.unwrap_or(0),
            event_type: event.event_type.clone(),
            reason: reason.into(),
        }
    }
}

/// A decoded event of one of the aggregates the read models follow.
#[derive(Debug, Clone)]
pub(crate) enum Decoded {
    Customer(CustomerId, CustomerEvent),
    Job(JobId, JobEvent),
    User(UserId, UserEvent),
    Crew(CrewMemberId, CrewMemberEvent),
    Thread(ThreadId, ThreadEvent),
}

/// Decodes `event`; `Ok(None)` for aggregate or event types the read models ignore.
pub(crate) fn decode(codec: &Codec, event: &EventEnvelope) -> Result<Option<Decoded>, ApplyError> {
    fn stream<I: FromStr>(event: &EventEnvelope) -> Result<I, ApplyError> {
        event.aggregate_id.parse().map_err(|_| {
            ApplyError::poison(
                event,
                format!("aggregate id {:?} is not a UUID", event.aggregate_id),
            )
        })
    }
    Ok(match event.aggregate_type.as_str() {
        "customer" => match known_event(codec, event)? {
            Some(e) => Some(Decoded::Customer(stream(event)?, e)),
            None => None,
        },
        "job" => match known_event(codec, event)? {
            Some(e) => Some(Decoded::Job(stream(event)?, e)),
            None => None,
        },
        "user" => match known_event(codec, event)? {
            Some(e) => Some(Decoded::User(stream(event)?, e)),
            None => None,
        },
        "crew_member" => match known_event(codec, event)? {
            Some(e) => Some(Decoded::Crew(stream(event)?, e)),
            None => None,
        },
        "thread" => match known_event(codec, event)? {
            Some(e) => Some(Decoded::Thread(stream(event)?, e)),
            None => None,
        },
        _ => None,
    })
}

/// `event` as an `E`, through the codec; `Ok(None)` when `E` has no such event type.
fn known_event<E: DomainEvent>(
    codec: &Codec,
    event: &EventEnvelope,
) -> Result<Option<E>, ApplyError> {
    if !E::EVENT_TYPES.contains(&event.event_type.as_str()) {
        return Ok(None);
    }
    codec
        .decode(
            &event.event_type,
            event.schema_version,
            event.payload.clone(),
        )
        .map(Some)
        .map_err(|e| ApplyError::poison(event, e.to_string()))
}

/// Applies one event (with its position) to one model's documents.
///
/// Unknown aggregate or event types are ignored. On error the cache is left as it was before
/// the call, so the caller may retry the same event (after a [`ApplyError::Load`]) or skip it
/// (after a [`ApplyError::Poison`]); a cache made [`DocCache::without_rollback`] is torn
/// instead by a [`ApplyError::Load`] and must be dropped.
pub async fn apply(
    model: Model,
    ctx: &ProjectionContext,
    cache: &mut DocCache,
    loader: &impl DocLoader,
    event: &EventEnvelope,
) -> Result<(), ApplyError> {
    let Some(position) = event.position.filter(|p| *p > 0) else {
        return Err(ApplyError::poison(event, "event has no global position"));
    };
    let Some(decoded) = decode(&Codec::for_business(ctx.time_zone), event)? else {
        return Ok(());
    };
    cache.begin_event(position);
    let at = models::At { ctx, position };
    let result = match model {
        Model::Dashboard => models::dashboard::apply(&at, cache, loader, &decoded).await,
        Model::Calendar => models::calendar::apply(&at, cache, loader, &decoded).await,
        Model::Inbox => models::inbox::apply(&at, cache, loader, &decoded).await,
        Model::Lists => models::lists::apply(&at, cache, loader, &decoded).await,
        Model::Messages => models::messages::apply(&at, cache, loader, &decoded).await,
    };
    match result {
        Ok(()) => {
            cache.end_event();
            Ok(())
        }
        Err(error) => {
            cache.rollback_event();
            Err(ApplyError::Load(error))
        }
    }
}
