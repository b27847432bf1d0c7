//! Turns generated commands into the events the domain decides, one commit per command, with
//! stream versions and deterministic event ids.

use std::collections::HashMap;
use std::hash::Hash;

use chrono::{DateTime, Utc};
use domain::aggregate::Aggregate;
use domain::codec;
use domain::crew_member::{CrewMember, CrewMemberCommand};
use domain::customer::{Customer, CustomerCommand};
use domain::job::{Job, JobCommand};
use domain::thread::{Thread, ThreadCommand};
use domain::user::{User, UserCommand};
use domain::DomainError;
use events::store::Snapshot;
use events::StreamId;
use uuid::Uuid;

use crate::generator::rng::Rng;
use crate::generator::{Command, Op};

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("the domain refused generated command #{index} for {stream}: {error}")]
    Refused {
        index: usize,
        stream: String,
        error: DomainError,
    },
    #[error("the state of {stream} does not serialize: {error}")]
    Snapshot {
        stream: String,
        error: serde_json::Error,
    },
    #[error("invalid stream name: {0}")]
    Stream(#[from] events::envelope::InvalidStreamId),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedEvent {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

/// The events of one command on one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub stream: StreamId,
    pub first_version: u64,
    pub events: Vec<GeneratedEvent>,
    pub actor: String,
    pub occurred_at: DateTime<Utc>,
}

struct States<A: Aggregate, K> {
    streams: HashMap<K, (A::State, u64)>,
}

impl<A: Aggregate, K: Hash + Eq> Default for States<A, K> {
    fn default() -> Self {
        States {
            streams: HashMap::new(),
        }
    }
}

impl<A: Aggregate, K: Hash + Eq + Copy> States<A, K> {
    /// Decides `command`, folds the events in and returns them with the first version.
    fn decide(&mut self, key: K, command: A::Command) -> Result<(Vec<A::Event>, u64), DomainError> {
        let (state, version) = self.streams.entry(key).or_default();
        let events = A::decide(state, command)?;
        let first = *version + 1;
        for event in &events {
            *state = A::evolve(std::mem::take(state), event);
        }
        *version += events.len() as u64;
        Ok((events, first))
    }
}

impl<A: Aggregate> States<A, Uuid> {
    /// Each stream's state as the command API would have stored it with its last append.
    fn snapshots(
        &self,
        kind: &str,
        into: &mut HashMap<String, Snapshot>,
    ) -> Result<(), DecideError> {
        for (id, (state, _)) in &self.streams {
            let stream = StreamId::new(kind, id.to_string())?;
            let state = serde_json::to_value(state).map_err(|error| DecideError::Snapshot {
                stream: stream.to_string(),
                error,
            })?;
            into.insert(
                stream.to_string(),
                Snapshot {
                    schema: A::SNAPSHOT_VERSION,
                    state,
                },
            );
        }
        Ok(())
    }
}

/// Keeps every aggregate's state while a data set is decided, in op order.
pub struct Decider {
    rng: Rng,
    users: States<User, Uuid>,
    crew: States<CrewMember, Uuid>,
    customers: States<Customer, Uuid>,
    jobs: States<Job, Uuid>,
    threads: States<Thread, Uuid>,
    decided: usize,
}

impl Decider {
    pub fn new(seed: u64) -> Self {
        Decider {
            rng: Rng::new(seed).fork(99),
            users: States::default(),
            crew: States::default(),
            customers: States::default(),
            jobs: States::default(),
            threads: States::default(),
            decided: 0,
        }
    }

    /// The commit of `op`, or `None` when the domain decided nothing changes.
    pub fn decide(&mut self, op: &Op) -> Result<Option<Commit>, DecideError> {
        let index = self.decided;
        self.decided += 1;
        let occurred_at = command_time(&op.command);
        let (stream, first, events) = match op.command.clone() {
            Command::User(id, c) => run(&mut self.users, index, "user", id.as_uuid(), c)?,
            Command::Crew(id, c) => run(&mut self.crew, index, "crew_member", id.as_uuid(), c)?,
            Command::Customer(id, c) => {
                run(&mut self.customers, index, "customer", id.as_uuid(), c)?
            }
            Command::Job(id, c) => run(&mut self.jobs, index, "job", id.as_uuid(), c)?,
            Command::Thread(id, c) => run(&mut self.threads, index, "thread", id.as_uuid(), c)?,
        };
        if events.is_empty() {
            return Ok(None);
        }
        let events = events
            .into_iter()
            .map(|(event_type, schema_version, payload)| GeneratedEvent {
                event_id: self.rng.uuid(),
                event_type,
                schema_version,
                payload,
                occurred_at,
            })
            .collect();
        Ok(Some(Commit {
            stream,
            first_version: first,
            events,
            actor: op.actor.to_string(),
            occurred_at,
        }))
    }
}

impl Decider {
    /// The state of every stream after the ops decided so far, keyed by stream name: what
    /// the command API keeps as each stream's snapshot.
    pub fn snapshots(&self) -> Result<HashMap<String, Snapshot>, DecideError> {
        let mut snapshots = HashMap::new();
        self.users.snapshots("user", &mut snapshots)?;
        self.crew.snapshots("crew_member", &mut snapshots)?;
        self.customers.snapshots("customer", &mut snapshots)?;
        self.jobs.snapshots("job", &mut snapshots)?;
        self.threads.snapshots("thread", &mut snapshots)?;
        Ok(snapshots)
    }
}

type Decided = (StreamId, u64, Vec<(&'static str, u32, serde_json::Value)>);

fn run<A: Aggregate>(
    states: &mut States<A, Uuid>,
    index: usize,
    kind: &str,
    id: Uuid,
    command: A::Command,
) -> Result<Decided, DecideError> {
    let stream = StreamId::new(kind, id.to_string())?;
    let (events, first) = states
        .decide(id, command)
        .map_err(|error| DecideError::Refused {
            index,
            stream: stream.to_string(),
            error,
        })?;
    let events = events
        .iter()
        .map(|e| {
            let stored = codec::encode(e);
            (stored.event_type, stored.schema_version, stored.payload)
        })
        .collect();
    Ok((stream, first, events))
}

/// The time a command carries (the domain takes time from commands, never from a clock).
pub fn command_time(command: &Command) -> DateTime<Utc> {
    match command {
        Command::User(_, c) => match c {
            UserCommand::Register { registered_at, .. } => *registered_at,
            UserCommand::ChangeRole { changed_at, .. } => *changed_at,
            UserCommand::Deactivate { deactivated_at } => *deactivated_at,
        },
        Command::Crew(_, c) => match c {
            CrewMemberCommand::Register { registered_at, .. } => *registered_at,
            CrewMemberCommand::Deactivate { deactivated_at } => *deactivated_at,
        },
        Command::Customer(_, c) => match c {
            CustomerCommand::Register { registered_at, .. } => *registered_at,
            CustomerCommand::UpdateContact { updated_at, .. } => *updated_at,
            CustomerCommand::ChangeStatus { changed_at, .. } => *changed_at,
        },
        Command::Job(_, c) => match c {
            JobCommand::Create { created_at, .. } => *created_at,
            JobCommand::Schedule { scheduled_at, .. } => *scheduled_at,
            JobCommand::Reschedule { rescheduled_at, .. } => *rescheduled_at,
            JobCommand::AssignCrew { assigned_at, .. } => *assigned_at,
            JobCommand::UnassignCrew { unassigned_at, .. } => *unassigned_at,
            JobCommand::Start { started_at } => *started_at,
            JobCommand::Complete { completed_at, .. } => *completed_at,
            JobCommand::Cancel { cancelled_at, .. } => *cancelled_at,
        },
        Command::Thread(_, c) => match c {
            ThreadCommand::Start { started_at, .. } => *started_at,
            ThreadCommand::Post { posted_at, .. } => *posted_at,
            ThreadCommand::MarkRead { read_at, .. } => *read_at,
        },
    }
}

/// Decides every op of a data set.
pub fn decide_all(seed: u64, ops: &[Op]) -> Result<Vec<Commit>, DecideError> {
    Ok(decide_with_snapshots(seed, ops)?.0)
}

/// Decides every op of a data set, and takes each stream's final state as its snapshot.
pub fn decide_with_snapshots(
    seed: u64,
    ops: &[Op],
) -> Result<(Vec<Commit>, HashMap<String, Snapshot>), DecideError> {
    let mut decider = Decider::new(seed);
    let mut commits = Vec::with_capacity(ops.len());
    for op in ops {
        if let Some(commit) = decider.decide(op)? {
            commits.push(commit);
        }
    }
    Ok((commits, decider.snapshots()?))
}
