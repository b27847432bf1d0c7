//! The one path every command takes: load the aggregate (snapshot + later events), decide,
//! append with the loaded head as the concurrency guard and a fresh snapshot, then wait for
//! the global position of the new events (the consistency token).
//!
//! Without `If-Match` a lost race is retried from the load (at most [`ATTEMPTS`] times), so
//! concurrent commands to one aggregate all succeed in some order; with `If-Match` the caller
//! asked for a specific version, so a race is a 412. An `Idempotency-Key` whose request
//! already completed answers with the original result and writes nothing.
//!
//! Within one process, commands to one stream take turns ([`StreamLocks`]): they would only
//! lose the append race to each other and burn their retries. The unique commit id stays the
//! guard between processes, and it is also why the first decision of a command may start
//! from the state this process's last append left ([`RecentStates`]) without reading the
//! store: a decision from a stale head cannot be appended, and an answer without an append is
//! given only from a current load.
//!
//! An append carries a snapshot of the new state only when it reaches a multiple of
//! [`SNAPSHOT_EVERY`] versions: the store writes the stream's head hint only with a snapshot
//! (a read-modify-write of that document per append on FerretDB), and a load follows at most
//! `SNAPSHOT_EVERY - 1` commits after it.
//!
//! The path up to the append is generic over the event log ([`Writer`] over any
//! [`EventLog`]), so unit tests run it on an in-memory log; waiting for the position, which
//! only the MongoDB store's relay gives, is the HTTP path's last step ([`execute`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use domain::codec::{self, Codec};
use domain::Aggregate;
use events::store::{Snapshot, StreamHead};
use events::{
    AppendError, AppendOutcome, AppendRequest, EventEnvelope, EventLog, EventMetadata, EventStore,
    Expected, NewEvent, StreamId,
};
use platform::consistency::POSITION_HEADER;
use platform::problem::Problem;
use serde::Serialize;
use uuid::Uuid;

use tracing::Instrument;

use crate::errors;
use crate::observe::Outcome;
use crate::request::CommandContext;
use crate::states::RecentStates;
use crate::AppState;

/// Loads, decides and appends at most this many times when other writers keep winning.
const ATTEMPTS: usize = 3;

/// What the load → decide → append path needs: an event log, and this process's memory of
/// the streams it writes (the state each was left in, one turn at a time per stream).
pub(crate) struct Writer<'a, L> {
    pub(crate) log: &'a L,
    pub(crate) codec: &'a Codec,
    pub(crate) states: &'a RecentStates,
    pub(crate) locks: &'a StreamLocks,
}

impl AppState {
    /// The command path over the MongoDB store.
    pub(crate) fn writer(&self) -> Writer<'_, EventStore> {
        Writer {
            log: &self.store,
            codec: &self.codec,
            states: &self.states,
            locks: &self.locks,
        }
    }
}

/// One async lock per stream that has a command in flight in this process.
#[derive(Default)]
pub(crate) struct StreamLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl StreamLocks {
    async fn lock(&self, stream: &StreamId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Entries nobody holds or waits for are dropped, so the map stays as small as the
            // number of streams being written right now.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(stream.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// The answer to every accepted command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CommandAccepted {
    /// `customer`, `job`, `user`, `crew_member` or `thread`.
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    /// The aggregate's version after the command; send it back as `If-Match`.
    pub version: u64,
    /// Ids of the appended events; empty when the command changed nothing.
    pub event_ids: Vec<Uuid>,
    /// Global position of the last appended event (also in `X-Position`): pass it as
    /// `min_position` (or `X-Min-Position`) to the query API to read your own write. Null
    /// when it was not known in time or nothing changed.
    pub position: Option<u64>,
    /// Number of the posted message within its thread (message posts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Id of the posted message (message posts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
}

/// What a handler decided to do once it saw the current state.
pub(crate) enum Decision<C> {
    Run(C),
    /// Nothing to do (e.g. the direct thread already exists): answer with the current version.
    Unchanged,
}

/// An accepted command: the events it produced (or, for a replay, produced the first time).
pub(crate) struct Accepted<A: Aggregate> {
    pub(crate) id: Uuid,
    pub(crate) version: u64,
    pub(crate) event_ids: Vec<Uuid>,
    pub(crate) events: Vec<A::Event>,
    pub(crate) position: Option<u64>,
    pub(crate) replayed: bool,
}

/// An accepted command as the log left it: the position of its events is known only when
/// the log gave one at once (a replay of a sequenced commit, an in-memory log).
pub(crate) struct Written<A: Aggregate> {
    pub(crate) accepted: Accepted<A>,
    /// The commit the answer names: appended now or replayed; none when nothing changed.
    pub(crate) commit: Option<AppendOutcome>,
}

impl<A: Aggregate> Accepted<A> {
    /// 201 for a create that created something, else 200; the body and headers.
    pub(crate) fn respond(
        self,
        create: bool,
        extra: impl FnOnce(&[A::Event], &mut CommandAccepted),
    ) -> Response {
        let status = if create && !self.event_ids.is_empty() {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut body = CommandAccepted {
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: self.id,
            version: self.version,
            event_ids: self.event_ids,
            position: self.position,
            seq: None,
            message_id: None,
        };
        extra(&self.events, &mut body);
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(position) = self.position {
            headers.insert(POSITION_HEADER, HeaderValue::from(position));
        }
        if self.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

pub(crate) fn stream_of<A: Aggregate>(id: Uuid) -> StreamId {
    StreamId {
        aggregate_type: A::TYPE.to_owned(),
        aggregate_id: id.to_string(),
    }
}

/// The current state of an aggregate and the head it was read at. A snapshot of another
/// schema version (or one that no longer deserializes) is ignored and the state rebuilt
/// from the first event.
pub(crate) async fn load<A: Aggregate>(
    app: &AppState,
    id: Uuid,
) -> Result<(A::State, StreamHead), Problem> {
    load_as::<A, _>(&app.writer(), id).await
}

/// The state of an aggregate a command refers to, for a check that needs only to know that
/// it exists (`exists`): no aggregate ever stops existing, so a state showing it from this
/// process's last append to it is as good as a current one, and a load is needed only when
/// this process has not appended to it lately.
pub(crate) async fn load_existing<A: Aggregate>(
    app: &AppState,
    id: Uuid,
    exists: fn(&A::State) -> bool,
) -> Result<A::State, Problem> {
    let writer = app.writer();
    if let Some((state, _)) = writer.states.get::<A>(&stream_of::<A>(id)).await {
        if exists(&state) {
            return Ok(state);
        }
    }
    Ok(load_as::<A, _>(&writer, id).await?.0)
}

/// How current the state a command decides from must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    /// The stream's head when read.
    Current,
    /// What this process's last append left (see `RecentStates`), else a load: possibly
    /// behind, which only an append can tell (a conflict).
    Recent,
}

async fn load_as<A: Aggregate, L: EventLog>(
    writer: &Writer<'_, L>,
    id: Uuid,
) -> Result<(A::State, StreamHead), Problem> {
    let stream = stream_of::<A>(id);
    let loaded = writer
        .log
        .load(&stream)
        .await
        .map_err(|e| errors::store(&e))?;
    let from_snapshot = match loaded.snapshot {
        None => Some(A::State::default()),
        Some((_, schema, state)) if schema == A::SNAPSHOT_VERSION => {
            match serde_json::from_value::<A::State>(state) {
                Ok(state) => Some(state),
                Err(error) => {
                    tracing::warn!(%error, %stream, "snapshot does not deserialize; replaying");
                    None
                }
            }
        }
        Some(_) => None,
    };
    let (state, envelopes) = match from_snapshot {
        Some(state) => (state, loaded.events),
        None => {
            let all = writer
                .log
                .read_stream(&stream, 1)
                .await
                .map_err(|e| errors::store(&e))?;
            (A::State::default(), all)
        }
    };
    let head = loaded.head;
    let mut state = state;
    for envelope in envelopes
        .into_iter()
        .filter(|e| e.version <= head.version())
    {
        let event = decode::<A>(writer.codec, envelope, &stream)?;
        state = A::evolve(state, &event);
    }
    Ok((state, head))
}

fn decode<A: Aggregate>(
    codec: &Codec,
    envelope: EventEnvelope,
    stream: &StreamId,
) -> Result<A::Event, Problem> {
    codec
        .decode(
            &envelope.event_type,
            envelope.schema_version,
            envelope.payload,
        )
        .map_err(|error| {
            tracing::error!(%error, %stream, "stored event does not decode");
            Problem::internal()
        })
}

/// The answer an earlier request with the same idempotency key got, if it completed.
pub(crate) async fn replay<A: Aggregate>(
    app: &AppState,
    context: &CommandContext,
) -> Result<Option<Accepted<A>>, Problem> {
    match replay_from::<A, _>(&app.writer(), context).await? {
        Some(written) => Ok(Some(with_position(app, written).await)),
        None => Ok(None),
    }
}

async fn replay_from<A: Aggregate, L: EventLog>(
    writer: &Writer<'_, L>,
    context: &CommandContext,
) -> Result<Option<Written<A>>, Problem> {
    let Some(key) = &context.idempotency else {
        return Ok(None);
    };
    match writer.log.idempotent_outcome(key).await {
        Ok(None) => Ok(None),
        Ok(Some(outcome)) => replayed::<A, L>(writer, outcome).await.map(Some),
        Err(error) => Err(errors::append(&error)),
    }
}

async fn replayed<A: Aggregate, L: EventLog>(
    writer: &Writer<'_, L>,
    outcome: AppendOutcome,
) -> Result<Written<A>, Problem> {
    let id = Uuid::parse_str(&outcome.stream.aggregate_id).map_err(|_| {
        tracing::error!(stream = %outcome.stream, "idempotent outcome of a stream that is not ours");
        Problem::internal()
    })?;
    // The original events, so that per-command extras (a message's seq) are answered again.
    let envelopes = writer
        .log
        .read_stream(&outcome.stream, outcome.first_version)
        .await
        .map_err(|e| errors::store(&e))?;
    let mut events = Vec::new();
    for envelope in envelopes
        .into_iter()
        .filter(|e| e.version <= outcome.last_version)
    {
        events.push(decode::<A>(writer.codec, envelope, &outcome.stream)?);
    }
    Ok(written(id, outcome, events, true))
}

/// The answer naming `outcome`'s commit, with its position when the log knows it already.
fn written<A: Aggregate>(
    id: Uuid,
    outcome: AppendOutcome,
    events: Vec<A::Event>,
    replayed: bool,
) -> Written<A> {
    let accepted = Accepted {
        id,
        version: outcome.last_version,
        event_ids: outcome.event_ids.clone(),
        events,
        position: outcome.position.map(|first| last_position(&outcome, first)),
        replayed,
    };
    Written {
        accepted,
        commit: Some(outcome),
    }
}

/// Position of the last event of a commit whose first event is at `first`.
fn last_position(outcome: &AppendOutcome, first: u64) -> u64 {
    first + outcome.event_ids.len().saturating_sub(1) as u64
}

/// The answer with the position of its commit's events, waited for (the store's relay gives
/// it) when the log did not know it yet.
async fn with_position<A: Aggregate>(app: &AppState, written: Written<A>) -> Accepted<A> {
    let Written {
        mut accepted,
        commit,
    } = written;
    if let (None, Some(commit)) = (accepted.position, commit) {
        accepted.position = app
            .store
            .wait_for_position(&commit.commit_id, app.position_wait)
            .await
            .map(|first| last_position(&commit, first));
    }
    accepted
}

/// Loads aggregate `id`, lets `command` look at its state and pick a command, decides it and
/// appends the events. `command` may refuse (403, 422…) after seeing the state.
pub(crate) async fn execute<A, F>(
    app: &AppState,
    context: &CommandContext,
    id: Uuid,
    command: F,
) -> Result<Accepted<A>, Problem>
where
    A: Aggregate,
    F: FnMut(&A::State) -> Result<Decision<A::Command>, Problem>,
{
    let span = tracing::info_span!("command", aggregate = A::TYPE, %id);
    let result = async {
        let written = decide_and_append::<A, F, _>(&app.writer(), context, id, command).await?;
        Ok(with_position(app, written).await)
    }
    .instrument(span)
    .await;
    app.metrics.command(A::TYPE, Outcome::of(&result));
    result
}

/// The load → decide → append path of [`execute`] on any event log, up to the position.
pub(crate) async fn decide_and_append<A, F, L>(
    writer: &Writer<'_, L>,
    context: &CommandContext,
    id: Uuid,
    mut command: F,
) -> Result<Written<A>, Problem>
where
    A: Aggregate,
    F: FnMut(&A::State) -> Result<Decision<A::Command>, Problem>,
    L: EventLog,
{
    if let Some(done) = replay_from::<A, L>(writer, context).await? {
        return Ok(done);
    }
    let stream = stream_of::<A>(id);
    // Held until the state is remembered; the stream's next command need not wait for this
    // one's position.
    let _turn = writer.locks.lock(&stream).await;
    // A caller who named the version gets its answer from one attempt.
    let attempts = context.if_match.map_or(ATTEMPTS, |_| 1);
    // The first decision starts from the state this process's last append of the stream left
    // (no read), or else from a load. Whatever is decided from a stale head is either an
    // append, which then conflicts and is retried from a current load, or an answer without
    // one (unchanged, refused, a stale If-Match), which is decided again from a current load
    // before it is given.
    let mut freshness = Freshness::Recent;
    let mut last_conflict = 0;
    let mut attempt = 0;
    while attempt < attempts {
        if attempt > 0 {
            pause_before_retry().await;
        }
        let (state, head) = state_for::<A, L>(writer, id, &stream, freshness).await?;
        let decided = decide_for::<A, F>(&state, &head, id, context, &mut command);
        let events = match decided {
            Ok(Some(events)) => events,
            Ok(None) | Err(_) if freshness == Freshness::Recent => {
                freshness = Freshness::Current;
                continue;
            }
            Ok(None) => {
                return Ok(Written {
                    accepted: unchanged(id, &head),
                    commit: None,
                })
            }
            Err(problem) => return Err(problem),
        };
        let new_state = events.iter().fold(state, A::evolve);
        let request = append_request::<A>(&stream, head, &events, &new_state, context);
        let append = tracing::info_span!("append", %stream, attempt);
        let outcome = match writer.log.append(request).instrument(append).await {
            Ok(outcome) => outcome,
            Err(error) => {
                let states = writer.states;
                match after_failed_append(states, &stream, context, freshness, error).await? {
                    Retry::FromCurrent => freshness = Freshness::Current,
                    Retry::Attempt { actual } => {
                        last_conflict = actual;
                        attempt += 1;
                    }
                }
                continue;
            }
        };
        if outcome.replayed {
            return replayed::<A, L>(writer, outcome).await;
        }
        writer
            .states
            .remember::<A>(outcome.head(), &new_state)
            .await;
        return Ok(written(id, outcome, events, false));
    }
    Err(errors::version_conflict(last_conflict))
}

/// What is left to do after an append that did not land.
enum Retry {
    /// Decide again from a current load; not counted as an attempt.
    FromCurrent,
    /// Another attempt, after a conflict with the stream at version `actual`.
    Attempt { actual: u64 },
}

/// Forgets the stream's remembered state (stale, or of unknown truth) and tells whether a
/// conflict is retried or answered.
async fn after_failed_append(
    states: &RecentStates,
    stream: &StreamId,
    context: &CommandContext,
    freshness: Freshness,
    error: AppendError,
) -> Result<Retry, Problem> {
    states.forget(stream).await;
    match error {
        // The remembered state was behind the stream: decided again from the current head,
        // which does not count as an attempt.
        AppendError::Conflict { .. } if freshness == Freshness::Recent => Ok(Retry::FromCurrent),
        AppendError::Conflict { actual, .. } => match context.if_match {
            Some(expected) => Err(errors::stale(expected, actual)),
            None => Ok(Retry::Attempt { actual }),
        },
        // The append's outcome is unknown.
        error => Err(errors::append(&error)),
    }
}

/// Another process won the race; a little jitter keeps the losers from colliding again.
async fn pause_before_retry() {
    let jitter = Uuid::new_v4().as_u128() % 20;
    tokio::time::sleep(Duration::from_millis(5 + jitter as u64)).await;
}

/// The state to decide from: what this process's last append left (when a recent one will
/// do), or a load.
async fn state_for<A: Aggregate, L: EventLog>(
    writer: &Writer<'_, L>,
    id: Uuid,
    stream: &StreamId,
    freshness: Freshness,
) -> Result<(A::State, StreamHead), Problem> {
    let recent = match freshness {
        Freshness::Recent => writer.states.get::<A>(stream).await,
        Freshness::Current => None,
    };
    match recent {
        Some(recent) => Ok(recent),
        None => load_as::<A, L>(writer, id).await,
    }
}

/// Versions between two snapshots of a stream: a load reads the snapshot and at most
/// `SNAPSHOT_EVERY - 1` commits after it, and one append in `SNAPSHOT_EVERY` rewrites the
/// stream's head document.
pub(crate) const SNAPSHOT_EVERY: u64 = 4;

/// Whether an append of `count` events after version `head` reaches a multiple of
/// [`SNAPSHOT_EVERY`], and so keeps a snapshot of the new state.
fn takes_snapshot(head: u64, count: usize) -> bool {
    (head + count as u64) / SNAPSHOT_EVERY > head / SNAPSHOT_EVERY
}

/// The append of `events` decided at `head`, stamped now, with a snapshot of `new_state` when
/// it is due ([`takes_snapshot`]).
fn append_request<A: Aggregate>(
    stream: &StreamId,
    head: StreamHead,
    events: &[A::Event],
    new_state: &A::State,
    context: &CommandContext,
) -> AppendRequest {
    let now = Utc::now();
    let snapshot = if takes_snapshot(head.version(), events.len()) {
        match serde_json::to_value(new_state) {
            Ok(state) => Some(Snapshot {
                schema: A::SNAPSHOT_VERSION,
                state,
            }),
            Err(error) => {
                tracing::warn!(%error, %stream, "state does not serialize; no snapshot");
                None
            }
        }
    } else {
        None
    };
    AppendRequest {
        stream: stream.clone(),
        expected: Expected::Head(head),
        events: events
            .iter()
            .map(|e| {
                let stored = codec::encode(e);
                NewEvent::new(
                    stored.event_type,
                    stored.schema_version,
                    now,
                    stored.payload,
                )
            })
            .collect(),
        metadata: EventMetadata {
            correlation_id: context.correlation_id.clone(),
            causation_id: context.idempotency.as_ref().map(|key| key.key.clone()),
            actor: context.caller.user_id.to_string(),
            // The request's trace, continued by the projection of these events.
            traceparent: platform::trace_context::current_traceparent(),
        },
        idempotency: context.idempotency.clone(),
        snapshot,
    }
}

/// The events `command` decides on `state`, or `None` when nothing is to change.
fn decide_for<A, F>(
    state: &A::State,
    head: &StreamHead,
    id: Uuid,
    context: &CommandContext,
    command: &mut F,
) -> Result<Option<Vec<A::Event>>, Problem>
where
    A: Aggregate,
    F: FnMut(&A::State) -> Result<Decision<A::Command>, Problem>,
{
    if let Some(expected) = context.if_match {
        if expected != head.version() {
            return Err(errors::stale(expected, head.version()));
        }
    }
    let _decide = tracing::info_span!("decide", aggregate = A::TYPE).entered();
    let command = match command(state)? {
        Decision::Run(command) => command,
        Decision::Unchanged => return Ok(None),
    };
    let events =
        A::decide(state, command).map_err(|e| errors::domain(&e, A::TYPE, &id.to_string()))?;
    Ok((!events.is_empty()).then_some(events))
}

fn unchanged<A: Aggregate>(id: Uuid, head: &StreamHead) -> Accepted<A> {
    Accepted {
        id,
        version: head.version(),
        event_ids: Vec::new(),
        events: Vec::new(),
        position: None,
        replayed: false,
    }
}

#[cfg(test)]
mod tests;
