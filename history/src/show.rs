//! `history show`: one aggregate's events up to a point, and its state there.
//!
//! The stream is read by following its commits by `_id` (a handful of point reads); the state
//! is folded with the domain's own `evolve` after upcasting, exactly as the command side
//! rebuilds it, so what is printed is what a command would have been decided against.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::codec::Codec;
use domain::{crew_member, customer, job, thread, user, Aggregate};
use events::{EventEnvelope, EventStore, StreamId};

use crate::{parse_aggregate_type, upcast_envelope, HistoryError};

/// Where in the stream's history to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Latest,
    /// Events recorded at or before this instant.
    AsOf(DateTime<Utc>),
    /// Events up to and including this version.
    AtVersion(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub stream: StreamId,
    pub point: Point,
    /// Upcast to the current schema.
    pub events: Vec<EventEnvelope>,
    /// The aggregate's state after `events`, as JSON.
    pub state: serde_json::Value,
}

impl Shown {
    pub fn version(&self) -> u64 {
        self.events.last().map_or(0, |e| e.version)
    }
}

/// Reads the stream up to `point` and folds its state.
pub async fn load(
    store: &EventStore,
    codec: &Codec,
    aggregate_type: &str,
    aggregate_id: &str,
    point: Point,
) -> Result<Shown, HistoryError> {
    let aggregate_type = parse_aggregate_type(aggregate_type)?;
    let stream = StreamId::new(aggregate_type, aggregate_id)
        .map_err(|_| HistoryError::input(format!("invalid aggregate id `{aggregate_id}`")))?;
    if point == Point::AtVersion(0) {
        return Err(HistoryError::input("--at-version starts at 1"));
    }
    let events = match point {
        Point::Latest => store.read_stream(&stream, 1).await?,
        Point::AsOf(time) => store.read_stream_as_of(&stream, time).await?,
        Point::AtVersion(version) => store.read_stream_at_version(&stream, version).await?,
    };
    if events.is_empty() {
        let latest = store.read_stream(&stream, 1).await?;
        return Err(HistoryError::NotFound(match (latest.first(), point) {
            (Some(first), Point::AsOf(time)) => format!(
                "{stream} did not exist yet at {}: its first event was recorded at {}",
                rfc3339(time),
                rfc3339(first.recorded_at)
            ),
            _ => format!("no such aggregate: {stream} has no events"),
        }));
    }
    if let Point::AtVersion(version) = point {
        let head = events.last().map_or(0, |e| e.version);
        if head < version {
            return Err(HistoryError::NotFound(format!(
                "{stream} has no version {version}: its latest version is {head}"
            )));
        }
    }
    let events = events
        .into_iter()
        .map(|event| upcast_envelope(codec, event))
        .collect::<Result<Vec<_>, _>>()?;
    let state = match aggregate_type {
        "customer" => fold::<customer::Customer>(codec, &events),
        "job" => fold::<job::Job>(codec, &events),
        "user" => fold::<user::User>(codec, &events),
        "crew_member" => fold::<crew_member::CrewMember>(codec, &events),
        _ => fold::<thread::Thread>(codec, &events),
    }?;
    Ok(Shown {
        stream,
        point,
        events,
        state,
    })
}

impl Shown {
    /// Replaces the text of the events' messages ([`domain::thread::privacy`]); the state,
    /// folded before, holds none.
    pub fn redact_private_text(&mut self) {
        for event in &mut self.events {
            domain::thread::privacy::redact_private_text(&event.event_type, &mut event.payload);
        }
    }
}

/// Folds the events with `A::evolve` and returns the state as JSON.
fn fold<A: Aggregate>(
    codec: &Codec,
    events: &[EventEnvelope],
) -> Result<serde_json::Value, HistoryError> {
    let mut state = A::State::default();
    for event in events {
        let decoded = codec
            .decode::<A::Event>(
                &event.event_type,
                event.schema_version,
                event.payload.clone(),
            )
            .map_err(|e| {
                HistoryError::Decode(format!(
                    "event {} ({} version {}) does not decode: {e}",
                    event.event_id, event.aggregate_type, event.version
                ))
            })?;
        state = A::evolve(state, &decoded);
    }
    serde_json::to_value(&state)
        .map_err(|e| HistoryError::Decode(format!("state does not serialize: {e}")))
}

/// Prints the events as an aligned table, then the state as pretty JSON.
pub fn render(shown: &Shown, out: &mut impl Write) -> std::io::Result<()> {
    let at = match shown.point {
        Point::Latest => "latest".to_owned(),
        Point::AsOf(time) => format!("as of {}", rfc3339(time)),
        Point::AtVersion(version) => format!("at version {version}"),
    };
    writeln!(
        out,
        "{} ({at}): {} events",
        shown.stream,
        shown.events.len()
    )?;
    writeln!(out)?;
    render_events(&shown.events, out)?;
    writeln!(out)?;
    writeln!(out, "state at version {}:", shown.version())?;
    let pretty = serde_json::to_string_pretty(&shown.state).map_err(std::io::Error::from)?;
    writeln!(out, "{pretty}")
}

const EVENT_HEADER: [&str; 6] = [
    "POSITION",
    "VERSION",
    "TYPE",
    "RECORDED_AT",
    "ACTOR",
    "PAYLOAD",
];

/// One line per event, each column as wide as its widest cell.
fn render_events(events: &[EventEnvelope], out: &mut impl Write) -> std::io::Result<()> {
    let rows: Vec<[String; 6]> = events
        .iter()
        .map(|e| {
            [
                e.position.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                e.version.to_string(),
                e.event_type.clone(),
                rfc3339(e.recorded_at),
                e.actor.clone(),
                e.payload.to_string(),
            ]
        })
        .collect();
    let mut widths = EVENT_HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6], out: &mut dyn Write| {
        writeln!(
            out,
            "{:>w0$}  {:>w1$}  {:<w2$}  {:<w3$}  {:<w4$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        )
    };
    line(EVENT_HEADER, out)?;
    for row in &rows {
        line(row.each_ref().map(String::as_str), out)?;
    }
    Ok(())
}

pub(crate) fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}
