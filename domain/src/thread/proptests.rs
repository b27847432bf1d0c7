//! Random posts and reads never break the thread invariants.

use proptest::prelude::*;

use super::tests::{at, body, message, user};
use super::*;

#[derive(Debug, Clone)]
enum Action {
    Post { author: u128 },
    MarkRead { reader: u128, up_to_seq: u64 },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0u128..6).prop_map(|author| Action::Post { author }),
        (0u128..6, 0u64..12).prop_map(|(reader, up_to_seq)| Action::MarkRead { reader, up_to_seq }),
    ]
}

fn start_command() -> impl Strategy<Value = ThreadCommand> {
    // Mostly valid starts (starter among the participants), sometimes not.
    let starter = prop_oneof![9 => Just(None), 1 => (0u128..6).prop_map(Some)];
    (prop::collection::vec(0u128..6, 1..6), starter, 0u8..3).prop_map(
        |(members, outsider, kind)| {
            let starter = outsider.map_or(user(members[0]), user);
            let participants: Vec<UserId> = members.into_iter().map(user).collect();
            let (kind, thread_id) = match kind {
                0 => {
                    let first = participants.first().copied().unwrap_or(user(0));
                    let second = participants.get(1).copied().unwrap_or(user(1));
                    (ThreadKind::Direct, direct_thread_id(first, second))
                }
                1 => (ThreadKind::Group, ThreadId::from_uuid(Uuid::from_u128(1))),
                _ => {
                    let job_id = JobId::from_uuid(Uuid::from_u128(2));
                    (ThreadKind::Job { job_id }, job_thread_id(job_id))
                }
            };
            ThreadCommand::Start {
                thread_id,
                kind,
                participants,
                title: ThreadTitle::parse("Chat").ok(),
                started_by: starter,
                started_at: at(0),
            }
        },
    )
}

proptest! {
    #[test]
    fn thread_invariants_hold_for_any_history(
        start in start_command(),
        actions in prop::collection::vec(action(), 0..60),
    ) {
        let mut state = ThreadState::default();
        let mut log = Vec::new();
        if let Ok(events) = decide(&state, start) {
            state = events.iter().fold(state, evolve);
            log.extend(events);
        }
        for (n, action) in actions.into_iter().enumerate() {
            let command = match action {
                Action::Post { author } => ThreadCommand::Post {
                    message_id: message(n as u128),
                    author: user(author),
                    body: body("hi"),
                    posted_at: at(1),
                },
                Action::MarkRead { reader, up_to_seq } => ThreadCommand::MarkRead {
                    user: user(reader),
                    up_to_seq,
                    read_at: at(2),
                },
            };
            let before = state.clone();
            let Ok(events) = decide(&state, command) else { continue };
            for event in &events {
                let last_seq = state.thread.as_ref().map_or(0, |t| t.last_seq);
                match event {
                    ThreadEvent::MessagePosted { seq, author, .. } => {
                        prop_assert_eq!(*seq, last_seq + 1);
                        prop_assert!(state.is_participant(*author));
                    }
                    ThreadEvent::ThreadRead { user, up_to_seq, .. } => {
                        prop_assert!(state.is_participant(*user));
                        prop_assert!(*up_to_seq >= 1 && *up_to_seq <= last_seq);
                    }
                    ThreadEvent::ThreadStarted { .. } => prop_assert!(false, "started twice"),
                }
                state = evolve(state, event);
            }
            log.extend(events);
            let (Some(old), Some(new)) = (&before.thread, &state.thread) else {
                prop_assert!(before.thread.is_none() && state.thread.is_none());
                continue;
            };
            prop_assert!(new.participants.len() <= MAX_PARTICIPANTS);
            prop_assert!(new.read_up_to.len() <= new.participants.len());
            for (reader, marker) in &new.read_up_to {
                prop_assert!(*marker >= old.read_marker(*reader), "read marker moved back");
                prop_assert!(*marker <= new.last_seq, "read marker beyond last message");
            }
            prop_assert_eq!(&Thread::replay(&log), &state);
        }
    }
}
