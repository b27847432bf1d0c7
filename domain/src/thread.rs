//! Thread aggregate: a conversation among staff users (direct, group, or about a job).
//!
//! Messages are events (`MessagePosted`), numbered 1, 2, 3… per thread; the state keeps only
//! the last number and each participant's read marker, so its size does not grow with the
//! number of messages. Posting does not move the author's read marker; the API sends
//! `MarkRead` for that if it wants to.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use crate::ids::{JobId, MessageId, ThreadId, UserId};
use crate::values::{MessageBody, ThreadTitle};

pub mod privacy;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// Marker type implementing [`Aggregate`] for threads.
#[derive(Debug, Clone, Copy)]
pub struct Thread;

/// Snapshot version of [`ThreadState`]; bump when its shape changes.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Most participants any thread can have.
pub const MAX_PARTICIPANTS: usize = 100;

/// Fixed namespaces so derived thread ids are stable across deployments. Never change them.
const DIRECT_THREAD_NAMESPACE: Uuid = Uuid::from_u128(0x6b1c_3d5e_0a2f_4e71_9c38_5d0f_2a7e_41d3);
const JOB_THREAD_NAMESPACE: Uuid = Uuid::from_u128(0x2f8e_91a4_7b6c_4d05_8e13_c4a9_6f20_b857);

/// The one id of the direct thread between `a` and `b`, whichever of them starts it
/// (UUIDv5 over the two ids, sorted).
pub fn direct_thread_id(a: UserId, b: UserId) -> ThreadId {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut name = [0u8; 32];
    name[..16].copy_from_slice(low.as_uuid().as_bytes());
    name[16..].copy_from_slice(high.as_uuid().as_bytes());
    ThreadId::from_uuid(Uuid::new_v5(&DIRECT_THREAD_NAMESPACE, &name))
}

/// A stable id for "the" thread about a job (UUIDv5 over the job id). Optional: job threads
/// may use any id, this is for callers that want one thread per job.
pub fn job_thread_id(job_id: JobId) -> ThreadId {
    ThreadId::from_uuid(Uuid::new_v5(
        &JOB_THREAD_NAMESPACE,
        job_id.as_uuid().as_bytes(),
    ))
}

/// JSON: `{"type": "direct"}`, `{"type": "group"}`, `{"type": "job", "job_id": "…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThreadKind {
    /// Exactly two distinct participants; id must be [`direct_thread_id`].
    Direct,
    /// 2–100 participants and a title.
    Group,
    /// 1–100 participants, about one job.
    Job { job_id: JobId },
}

impl ThreadKind {
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Group => "group",
            Self::Job { .. } => "job",
        }
    }

    /// Inclusive bounds on the number of distinct participants.
    pub const fn participant_bounds(&self) -> (usize, usize) {
        match self {
            Self::Direct => (2, 2),
            Self::Group => (2, MAX_PARTICIPANTS),
            Self::Job { .. } => (1, MAX_PARTICIPANTS),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadState {
    /// `None` until started.
    pub thread: Option<ThreadRecord>,
}

impl ThreadState {
    pub fn is_participant(&self, user: UserId) -> bool {
        self.thread
            .as_ref()
            .is_some_and(|t| t.participants.contains(&user))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRecord {
    pub thread_id: ThreadId,
    pub kind: ThreadKind,
    pub participants: BTreeSet<UserId>,
    /// Seq of the last message; 0 when there are none.
    pub last_seq: u64,
    /// Highest seq each participant has read; absent means 0 (nothing read).
    pub read_up_to: BTreeMap<UserId, u64>,
}

impl ThreadRecord {
    pub fn read_marker(&self, user: UserId) -> u64 {
        self.read_up_to.get(&user).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadCommand {
    /// Duplicate participants are merged.
    Start {
        thread_id: ThreadId,
        kind: ThreadKind,
        participants: Vec<UserId>,
        title: Option<ThreadTitle>,
        started_by: UserId,
        started_at: DateTime<Utc>,
    },
    Post {
        message_id: MessageId,
        author: UserId,
        body: MessageBody,
        posted_at: DateTime<Utc>,
    },
    MarkRead {
        user: UserId,
        up_to_seq: u64,
        read_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data")]
pub enum ThreadEvent {
    /// `participants` are distinct and sorted.
    ThreadStarted {
        thread_id: ThreadId,
        kind: ThreadKind,
        participants: Vec<UserId>,
        title: Option<ThreadTitle>,
        started_by: UserId,
        started_at: DateTime<Utc>,
    },
    MessagePosted {
        message_id: MessageId,
        seq: u64,
        author: UserId,
        body: MessageBody,
        posted_at: DateTime<Utc>,
    },
    ThreadRead {
        user: UserId,
        up_to_seq: u64,
        read_at: DateTime<Utc>,
    },
}

impl DomainEvent for ThreadEvent {
    const EVENT_TYPES: &'static [&'static str] = &["ThreadStarted", "MessagePosted", "ThreadRead"];

    fn event_type(&self) -> &'static str {
        match self {
            Self::ThreadStarted { .. } => "ThreadStarted",
            Self::MessagePosted { .. } => "MessagePosted",
            Self::ThreadRead { .. } => "ThreadRead",
        }
    }
}

pub fn decide(
    state: &ThreadState,
    command: ThreadCommand,
) -> Result<Vec<ThreadEvent>, DomainError> {
    const AGGREGATE: &str = "thread";
    match (&state.thread, command) {
        (
            None,
            ThreadCommand::Start {
                thread_id,
                kind,
                participants,
                title,
                started_by,
                started_at,
            },
        ) => start(
            thread_id,
            kind,
            participants.into_iter().collect(),
            title,
            started_by,
            started_at,
        ),
        (Some(_), ThreadCommand::Start { .. }) => Err(DomainError::AlreadyExists {
            aggregate: AGGREGATE,
        }),
        (None, _) => Err(DomainError::NotFound {
            aggregate: AGGREGATE,
        }),
        (
            Some(thread),
            ThreadCommand::Post {
                message_id,
                author,
                body,
                posted_at,
            },
        ) => post(thread, message_id, author, body, posted_at),
        (
            Some(thread),
            ThreadCommand::MarkRead {
                user,
                up_to_seq,
                read_at,
            },
        ) => mark_read(thread, user, up_to_seq, read_at),
    }
}

fn start(
    thread_id: ThreadId,
    kind: ThreadKind,
    participants: BTreeSet<UserId>,
    title: Option<ThreadTitle>,
    started_by: UserId,
    started_at: DateTime<Utc>,
) -> Result<Vec<ThreadEvent>, DomainError> {
    let (min, max) = kind.participant_bounds();
    if !(min..=max).contains(&participants.len()) {
        return Err(DomainError::ThreadParticipantCount {
            kind: kind.name(),
            min,
            max,
            actual: participants.len(),
        });
    }
    if kind == ThreadKind::Group && title.is_none() {
        return Err(DomainError::GroupThreadNeedsTitle);
    }
    if !participants.contains(&started_by) {
        return Err(DomainError::StarterNotParticipant);
    }
    if kind == ThreadKind::Direct {
        let mut pair = participants.iter().copied();
        if let (Some(a), Some(b)) = (pair.next(), pair.next()) {
            if direct_thread_id(a, b) != thread_id {
                return Err(DomainError::DirectThreadIdMismatch);
            }
        }
    }
    Ok(vec![ThreadEvent::ThreadStarted {
        thread_id,
        kind,
        participants: participants.into_iter().collect(),
        title,
        started_by,
        started_at,
    }])
}

fn post(
    thread: &ThreadRecord,
    message_id: MessageId,
    author: UserId,
    body: MessageBody,
    posted_at: DateTime<Utc>,
) -> Result<Vec<ThreadEvent>, DomainError> {
    if !thread.participants.contains(&author) {
        return Err(DomainError::NotThreadParticipant { action: "post" });
    }
    Ok(vec![ThreadEvent::MessagePosted {
        message_id,
        seq: thread.last_seq + 1,
        author,
        body,
        posted_at,
    }])
}

/// Marking read up to a message already read is accepted and emits nothing.
fn mark_read(
    thread: &ThreadRecord,
    user: UserId,
    up_to_seq: u64,
    read_at: DateTime<Utc>,
) -> Result<Vec<ThreadEvent>, DomainError> {
    if !thread.participants.contains(&user) {
        return Err(DomainError::NotThreadParticipant {
            action: "mark messages read",
        });
    }
    if up_to_seq == 0 || up_to_seq > thread.last_seq {
        return Err(DomainError::ReadMarkerOutOfRange {
            up_to_seq,
            last_seq: thread.last_seq,
        });
    }
    if up_to_seq <= thread.read_marker(user) {
        return Ok(vec![]);
    }
    Ok(vec![ThreadEvent::ThreadRead {
        user,
        up_to_seq,
        read_at,
    }])
}

pub fn evolve(mut state: ThreadState, event: &ThreadEvent) -> ThreadState {
    match event {
        ThreadEvent::ThreadStarted {
            thread_id,
            kind,
            participants,
            ..
        } => {
            state.thread = Some(ThreadRecord {
                thread_id: *thread_id,
                kind: *kind,
                participants: participants.iter().copied().collect(),
                last_seq: 0,
                read_up_to: BTreeMap::new(),
            });
        }
        ThreadEvent::MessagePosted { seq, .. } => {
            if let Some(thread) = &mut state.thread {
                thread.last_seq = thread.last_seq.max(*seq);
            }
        }
        ThreadEvent::ThreadRead {
            user, up_to_seq, ..
        } => {
            if let Some(thread) = &mut state.thread {
                let marker = thread.read_up_to.entry(*user).or_insert(0);
                *marker = (*marker).max(*up_to_seq);
            }
        }
    }
    state
}

impl Aggregate for Thread {
    const TYPE: &'static str = "thread";
    const SNAPSHOT_VERSION: u32 = SNAPSHOT_VERSION;
    type State = ThreadState;
    type Command = ThreadCommand;
    type Event = ThreadEvent;

    fn decide(
        state: &ThreadState,
        command: ThreadCommand,
    ) -> Result<Vec<ThreadEvent>, DomainError> {
        decide(state, command)
    }

    fn evolve(state: ThreadState, event: &ThreadEvent) -> ThreadState {
        evolve(state, event)
    }
}
