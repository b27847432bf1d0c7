//! Given/when/then helpers for aggregate tests.

use std::fmt;
use std::marker::PhantomData;

use crate::aggregate::Aggregate;
use crate::error::DomainError;

pub(crate) struct Given<A: Aggregate> {
    history: Vec<A::Event>,
    _aggregate: PhantomData<A>,
}

/// Starts a test from a history of events.
pub(crate) fn given<A: Aggregate>(history: Vec<A::Event>) -> Given<A> {
    Given {
        history,
        _aggregate: PhantomData,
    }
}

pub(crate) struct When<A: Aggregate> {
    history: Vec<A::Event>,
    state: A::State,
    result: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Given<A> {
    pub(crate) fn when(self, command: A::Command) -> When<A> {
        let state = A::replay(&self.history);
        let result = A::decide(&state, command);
        When {
            history: self.history,
            state,
            result,
        }
    }
}

impl<A: Aggregate> When<A>
where
    A::Event: fmt::Debug,
{
    /// Asserts the command emitted exactly `expected`, and returns the resulting state.
    #[track_caller]
    pub(crate) fn then(self, expected: Vec<A::Event>) -> A::State {
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                let state = events.iter().fold(self.state, A::evolve);
                let all: Vec<_> = self.history.iter().chain(&events).collect();
                assert_eq!(A::replay(all), state, "replay disagrees with evolve");
                state
            }
            Err(err) => panic!("expected events {expected:?}, got error: {err}"),
        }
    }

    /// Asserts the command was refused with `expected`.
    #[track_caller]
    pub(crate) fn then_err(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(err) => {
                assert_eq!(err, expected);
                assert!(!err.to_string().is_empty());
            }
        }
    }
}

/// Checks `from_payload(event_type, to_payload(e)) == e` for every sample, that samples cover
/// every declared event type, and that unknown types are refused.
#[track_caller]
pub(crate) fn assert_payload_round_trips<E: crate::aggregate::DomainEvent>(samples: &[E]) {
    use std::collections::BTreeSet;
    for event in samples {
        let payload = event.to_payload();
        assert!(payload.is_object(), "payload of {event:?} is not an object");
        assert!(payload.get("type").is_none());
        let back = E::from_payload(event.event_type(), payload);
        assert_eq!(back.as_ref(), Ok(event));
    }
    let covered: BTreeSet<_> = samples.iter().map(|e| e.event_type()).collect();
    let declared: BTreeSet<_> = E::EVENT_TYPES.iter().copied().collect();
    assert_eq!(covered, declared, "samples must cover every event type");
    let unknown = E::from_payload("NoSuchEvent", serde_json::json!({}));
    assert_eq!(
        unknown,
        Err(crate::error::PayloadError::UnknownEventType {
            event_type: "NoSuchEvent".into()
        })
    );
}
