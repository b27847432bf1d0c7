use chrono::TimeZone;

use super::*;
use crate::testing::{assert_payload_round_trips, given};

pub(super) fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, minute, 0).unwrap()
}

pub(super) fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0xa000 + n))
}

pub(super) fn message(n: u128) -> MessageId {
    MessageId::from_uuid(Uuid::from_u128(0xb000 + n))
}

pub(super) fn body(text: &str) -> MessageBody {
    MessageBody::parse(text).unwrap()
}

fn title(text: &str) -> ThreadTitle {
    ThreadTitle::parse(text).unwrap()
}

fn group_id() -> ThreadId {
    ThreadId::from_uuid(Uuid::from_u128(0x6000))
}

fn job() -> JobId {
    JobId::from_uuid(Uuid::from_u128(0x7000))
}

fn start(
    thread_id: ThreadId,
    kind: ThreadKind,
    participants: &[u128],
    title_text: Option<&str>,
) -> ThreadCommand {
    ThreadCommand::Start {
        thread_id,
        kind,
        participants: participants.iter().copied().map(user).collect(),
        title: title_text.map(title),
        started_by: user(1),
        started_at: at(0),
    }
}

fn started(
    thread_id: ThreadId,
    kind: ThreadKind,
    participants: &[u128],
    title_text: Option<&str>,
) -> ThreadEvent {
    ThreadEvent::ThreadStarted {
        thread_id,
        kind,
        participants: participants.iter().copied().map(user).collect(),
        title: title_text.map(title),
        started_by: user(1),
        started_at: at(0),
    }
}

fn group_started() -> ThreadEvent {
    started(group_id(), ThreadKind::Group, &[1, 2, 3], Some("Crew chat"))
}

fn post(n: u128, author: u128) -> ThreadCommand {
    ThreadCommand::Post {
        message_id: message(n),
        author: user(author),
        body: body("on my way"),
        posted_at: at(1),
    }
}

fn posted(n: u128, seq: u64, author: u128) -> ThreadEvent {
    ThreadEvent::MessagePosted {
        message_id: message(n),
        seq,
        author: user(author),
        body: body("on my way"),
        posted_at: at(1),
    }
}

fn mark_read(reader: u128, up_to_seq: u64) -> ThreadCommand {
    ThreadCommand::MarkRead {
        user: user(reader),
        up_to_seq,
        read_at: at(2),
    }
}

fn read(reader: u128, up_to_seq: u64) -> ThreadEvent {
    ThreadEvent::ThreadRead {
        user: user(reader),
        up_to_seq,
        read_at: at(2),
    }
}

#[test]
fn direct_thread_id_is_the_same_whoever_starts_it() {
    assert_eq!(
        direct_thread_id(user(1), user(2)),
        direct_thread_id(user(2), user(1))
    );
    assert_ne!(
        direct_thread_id(user(1), user(2)),
        direct_thread_id(user(1), user(3))
    );
    assert_eq!(job_thread_id(job()), job_thread_id(job()));
}

#[test]
fn direct_thread_between_two_users_can_start() {
    let id = direct_thread_id(user(2), user(1));
    given::<Thread>(vec![])
        .when(start(id, ThreadKind::Direct, &[2, 1], None))
        .then(vec![started(id, ThreadKind::Direct, &[1, 2], None)]);
}

#[test]
fn direct_thread_needs_exactly_two_distinct_participants() {
    let id = direct_thread_id(user(1), user(1));
    given::<Thread>(vec![])
        .when(start(id, ThreadKind::Direct, &[1, 1], None))
        .then_err(DomainError::ThreadParticipantCount {
            kind: "direct",
            min: 2,
            max: 2,
            actual: 1,
        });
    given::<Thread>(vec![])
        .when(start(id, ThreadKind::Direct, &[1, 2, 3], None))
        .then_err(DomainError::ThreadParticipantCount {
            kind: "direct",
            min: 2,
            max: 2,
            actual: 3,
        });
}

#[test]
fn direct_thread_id_must_come_from_its_participants() {
    given::<Thread>(vec![])
        .when(start(group_id(), ThreadKind::Direct, &[1, 2], None))
        .then_err(DomainError::DirectThreadIdMismatch);
}

#[test]
fn group_thread_with_title_can_start() {
    given::<Thread>(vec![])
        .when(start(
            group_id(),
            ThreadKind::Group,
            &[3, 1, 2, 2],
            Some("Crew chat"),
        ))
        .then(vec![group_started()]);
}

#[test]
fn group_thread_needs_a_title() {
    given::<Thread>(vec![])
        .when(start(group_id(), ThreadKind::Group, &[1, 2], None))
        .then_err(DomainError::GroupThreadNeedsTitle);
}

#[test]
fn group_thread_needs_two_to_a_hundred_participants() {
    given::<Thread>(vec![])
        .when(start(group_id(), ThreadKind::Group, &[1], Some("Solo")))
        .then_err(DomainError::ThreadParticipantCount {
            kind: "group",
            min: 2,
            max: 100,
            actual: 1,
        });
    let crowd: Vec<u128> = (1..=101).collect();
    given::<Thread>(vec![])
        .when(start(
            group_id(),
            ThreadKind::Group,
            &crowd,
            Some("All hands"),
        ))
        .then_err(DomainError::ThreadParticipantCount {
            kind: "group",
            min: 2,
            max: 100,
            actual: 101,
        });
    given::<Thread>(vec![])
        .when(start(
            group_id(),
            ThreadKind::Group,
            &crowd[..100],
            Some("All hands"),
        ))
        .then(vec![started(
            group_id(),
            ThreadKind::Group,
            &crowd[..100],
            Some("All hands"),
        )]);
}

#[test]
fn job_thread_can_have_a_single_participant() {
    let kind = ThreadKind::Job { job_id: job() };
    let id = job_thread_id(job());
    given::<Thread>(vec![])
        .when(start(id, kind, &[1], None))
        .then(vec![started(id, kind, &[1], None)]);
    given::<Thread>(vec![])
        .when(start(id, kind, &[], None))
        .then_err(DomainError::ThreadParticipantCount {
            kind: "job",
            min: 1,
            max: 100,
            actual: 0,
        });
}

#[test]
fn starter_must_be_a_participant() {
    given::<Thread>(vec![])
        .when(start(
            group_id(),
            ThreadKind::Group,
            &[2, 3],
            Some("Crew chat"),
        ))
        .then_err(DomainError::StarterNotParticipant);
}

#[test]
fn thread_cannot_be_started_twice() {
    given::<Thread>(vec![group_started()])
        .when(start(
            group_id(),
            ThreadKind::Group,
            &[1, 2, 3],
            Some("Crew chat"),
        ))
        .then_err(DomainError::AlreadyExists {
            aggregate: "thread",
        });
}

#[test]
fn missing_thread_refuses_posts_and_reads() {
    for command in [post(1, 1), mark_read(1, 1)] {
        given::<Thread>(vec![])
            .when(command)
            .then_err(DomainError::NotFound {
                aggregate: "thread",
            });
    }
}

#[test]
fn posts_are_numbered_from_one_in_order() {
    given::<Thread>(vec![group_started()])
        .when(post(1, 2))
        .then(vec![posted(1, 1, 2)]);
    let state = given::<Thread>(vec![group_started(), posted(1, 1, 2)])
        .when(post(2, 3))
        .then(vec![posted(2, 2, 3)]);
    assert_eq!(state.thread.unwrap().last_seq, 2);
}

#[test]
fn only_thread_participants_can_post() {
    given::<Thread>(vec![group_started()])
        .when(post(1, 9))
        .then_err(DomainError::NotThreadParticipant { action: "post" });
}

#[test]
fn participant_can_mark_messages_read() {
    let state = given::<Thread>(vec![group_started(), posted(1, 1, 2), posted(2, 2, 3)])
        .when(mark_read(1, 2))
        .then(vec![read(1, 2)]);
    assert_eq!(state.thread.unwrap().read_marker(user(1)), 2);
}

#[test]
fn only_thread_participants_can_mark_messages_read() {
    given::<Thread>(vec![group_started(), posted(1, 1, 2)])
        .when(mark_read(9, 1))
        .then_err(DomainError::NotThreadParticipant {
            action: "mark messages read",
        });
}

#[test]
fn read_marker_must_point_at_an_existing_message() {
    given::<Thread>(vec![group_started()])
        .when(mark_read(1, 1))
        .then_err(DomainError::ReadMarkerOutOfRange {
            up_to_seq: 1,
            last_seq: 0,
        });
    given::<Thread>(vec![group_started(), posted(1, 1, 2)])
        .when(mark_read(1, 2))
        .then_err(DomainError::ReadMarkerOutOfRange {
            up_to_seq: 2,
            last_seq: 1,
        });
    given::<Thread>(vec![group_started(), posted(1, 1, 2)])
        .when(mark_read(1, 0))
        .then_err(DomainError::ReadMarkerOutOfRange {
            up_to_seq: 0,
            last_seq: 1,
        });
}

#[test]
fn read_markers_never_move_backwards() {
    let history = vec![
        group_started(),
        posted(1, 1, 2),
        posted(2, 2, 3),
        read(1, 2),
    ];
    given::<Thread>(history.clone())
        .when(mark_read(1, 1))
        .then(vec![]);
    given::<Thread>(history).when(mark_read(1, 2)).then(vec![]);
}

#[test]
fn thread_events_round_trip_through_payloads() {
    let job_started = started(
        job_thread_id(job()),
        ThreadKind::Job { job_id: job() },
        &[1],
        None,
    );
    assert_payload_round_trips(&[
        group_started(),
        job_started.clone(),
        posted(1, 1, 2),
        read(1, 1),
    ]);
    let payload = job_started.to_payload();
    assert_eq!(payload["kind"]["type"], "job");
    assert_eq!(payload["kind"]["job_id"], job().to_string());
    assert_eq!(posted(1, 7, 2).to_payload()["seq"], 7);
}

#[test]
fn malformed_payload_of_a_known_type_is_invalid() {
    let err =
        ThreadEvent::from_payload("MessagePosted", serde_json::json!({"seq": 1})).unwrap_err();
    assert!(
        matches!(err, crate::PayloadError::Invalid { .. }),
        "{err:?}"
    );
    let empty_body = serde_json::json!({
        "message_id": message(1), "seq": 1, "author": user(1), "body": "  ", "posted_at": at(1),
    });
    assert!(ThreadEvent::from_payload("MessagePosted", empty_body).is_err());
}

#[test]
fn thread_state_snapshot_round_trips_with_read_markers() {
    let state = Thread::replay(&[group_started(), posted(1, 1, 2), read(1, 1)]);
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<ThreadState>(&json).unwrap(), state);
}
