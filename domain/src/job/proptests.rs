//! Random command sequences never break the job invariants.

use proptest::prelude::*;

use super::tests::{at, create, crew, day, reason, usd, window};
use super::*;

fn slot(index: u8) -> TimeWindow {
    match index {
        0 => window(8, 12),
        1 => window(12, 16),
        _ => window(16, 20),
    }
}

fn command() -> impl Strategy<Value = JobCommand> {
    prop_oneof![
        1 => Just(create()),
        3 => (1u32..4, 0u8..3).prop_map(|(d, w)| JobCommand::Schedule {
            date: day(d),
            window: slot(w),
            scheduled_at: at(9),
        }),
        2 => (1u32..4, 0u8..3).prop_map(|(d, w)| JobCommand::Reschedule {
            date: day(d),
            window: slot(w),
            reason: None,
            rescheduled_at: at(10),
        }),
        4 => (0u128..4, prop::bool::weighted(0.8)).prop_map(|(n, active)| JobCommand::AssignCrew {
            crew_member_id: crew(n),
            crew_member_active: active,
            assigned_at: at(9),
        }),
        3 => (0u128..4).prop_map(|n| JobCommand::UnassignCrew {
            crew_member_id: crew(n),
            unassigned_at: at(11),
        }),
        3 => Just(JobCommand::Start { started_at: at(12) }),
        1 => (0i64..1_000, any::<bool>()).prop_map(|(amount, euros)| {
            let currency = Currency::parse(if euros { "EUR" } else { "USD" }).unwrap();
            JobCommand::Complete {
                actual_revenue: Money::parse(amount, currency).unwrap(),
                completed_at: at(17),
            }
        }),
        1 => Just(JobCommand::Cancel {
            reason: reason("changed plans"),
            cancelled_at: at(13),
        }),
    ]
}

fn transition_allowed(from: JobStatus, to: JobStatus) -> bool {
    use JobStatus::*;
    from == to
        || matches!(
            (from, to),
            (Created, Scheduled) | (Scheduled, InProgress) | (InProgress, Completed)
        )
        || (to == Cancelled && !from.is_terminal())
}

proptest! {
    #[test]
    fn job_invariants_hold_for_any_command_sequence(
        commands in prop::collection::vec(command(), 0..60),
    ) {
        let mut state = JobState::default();
        let mut log = Vec::new();
        for command in std::iter::once(create()).chain(commands) {
            let before = state.clone();
            let result = decide(&state, command);
            if before.status().is_some_and(JobStatus::is_terminal) {
                prop_assert!(result.is_err(), "terminal job accepted a command");
            }
            if let Ok(events) = result {
                state = events.iter().fold(state, evolve);
                log.extend(events);
            }
            if let (Some(from), Some(to)) = (before.status(), state.status()) {
                prop_assert!(transition_allowed(from, to), "{from} -> {to}");
            }
            let job = state.job.as_ref().expect("the first command creates the job");
            if job.status == JobStatus::InProgress {
                prop_assert!(!job.crew.is_empty(), "job in progress without crew");
            }
            if matches!(job.status, JobStatus::Scheduled | JobStatus::InProgress) {
                prop_assert!(job.schedule.is_some());
            }
            prop_assert!(job.crew.len() <= MAX_CREW);
            prop_assert_eq!(&Job::replay(&log), &state);
        }
    }

    #[test]
    fn revenue_of_completed_jobs_is_in_the_estimate_currency(
        commands in prop::collection::vec(command(), 0..60),
    ) {
        let mut state = JobState::default();
        for command in std::iter::once(create()).chain(commands) {
            if let Ok(events) = decide(&state, command) {
                for event in &events {
                    if let JobEvent::JobCompleted { actual_revenue, .. } = event {
                        prop_assert_eq!(actual_revenue.currency(), usd(0).currency());
                    }
                }
                state = events.iter().fold(state, evolve);
            }
        }
    }
}
