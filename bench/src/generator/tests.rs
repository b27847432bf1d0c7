//! Determinism and shape of the generated data.

use super::*;

fn config(seed: u64) -> GenConfig {
    GenConfig {
        seed,
        size: Size::S,
        anchor: NaiveDate::from_ymd_opt(2025, 6, 4).unwrap(),
        time_zone: BusinessTimeZone::parse("America/New_York").unwrap(),
    }
}

#[test]
fn the_same_seed_gives_the_same_events_and_another_seed_does_not() {
    let first = crate::decide::decide_all(42, &generate(config(42)).unwrap().ops).unwrap();
    let second = crate::decide::decide_all(42, &generate(config(42)).unwrap().ops).unwrap();
    assert_eq!(first, second);
    let other = crate::decide::decide_all(43, &generate(config(43)).unwrap().ops).unwrap();
    assert_ne!(first, other);
}

#[test]
fn every_generated_command_is_accepted_by_the_domain_and_changes_something() {
    let dataset = generate(config(7)).unwrap();
    let commits = crate::decide::decide_all(7, &dataset.ops).unwrap();
    assert_eq!(commits.len(), dataset.ops.len());
    assert!(
        (3_000..8_000).contains(&commits.len()),
        "S has a few thousand events, got {}",
        commits.len()
    );
}

#[test]
fn the_focus_user_has_about_two_hundred_threads_and_big_accounts_exist() {
    let dataset = generate(config(42)).unwrap();
    let focus_threads = dataset
        .threads
        .iter()
        .filter(|t| t.participants.contains(&dataset.focus_user))
        .count();
    assert!((200..=230).contains(&focus_threads), "{focus_threads}");
    let mut per_customer = std::collections::HashMap::new();
    for job in &dataset.jobs {
        *per_customer.entry(job.customer).or_insert(0) += 1;
    }
    let busiest = per_customer.values().max().copied().unwrap_or(0);
    assert!(
        busiest >= 10,
        "some customers have many jobs, busiest has {busiest}"
    );
}

#[test]
fn schedule_dates_peak_on_weekdays() {
    let dataset = generate(GenConfig {
        size: Size::M,
        ..config(42)
    })
    .unwrap();
    let mut by_day = [0usize; 7];
    for date in dataset.jobs.iter().filter_map(|j| j.date) {
        by_day[date.weekday().num_days_from_monday() as usize] += 1;
    }
    assert!(by_day[4] > by_day[5] && by_day[5] > by_day[6], "{by_day:?}");
}

/// Replays the decided events of every stream of `kind` and compares the state with the
/// snapshot the loader stores for it.
fn assert_snapshots_replay<A: domain::aggregate::Aggregate>(
    kind: &str,
    commits: &[crate::decide::Commit],
    snapshots: &std::collections::HashMap<String, events::store::Snapshot>,
) -> usize {
    use domain::aggregate::DomainEvent;
    let mut states: std::collections::HashMap<String, A::State> = Default::default();
    for commit in commits.iter().filter(|c| c.stream.aggregate_type == kind) {
        let state = states.entry(commit.stream.to_string()).or_default();
        for event in &commit.events {
            let event = A::Event::from_payload(event.event_type, event.payload.clone()).unwrap();
            *state = A::evolve(std::mem::take(state), &event);
        }
    }
    for (stream, state) in &states {
        let snapshot = &snapshots[stream];
        assert_eq!(snapshot.schema, A::SNAPSHOT_VERSION, "{stream}");
        let stored: A::State = serde_json::from_value(snapshot.state.clone()).unwrap();
        assert_eq!(&stored, state, "{stream}");
    }
    states.len()
}

#[test]
fn each_stream_snapshot_is_the_state_its_events_replay_to() {
    use domain::{crew_member, customer, job, thread, user};
    let dataset = generate(config(11)).unwrap();
    let (commits, snapshots) = crate::decide::decide_with_snapshots(11, &dataset.ops).unwrap();
    let streams = assert_snapshots_replay::<user::User>("user", &commits, &snapshots)
        + assert_snapshots_replay::<crew_member::CrewMember>("crew_member", &commits, &snapshots)
        + assert_snapshots_replay::<customer::Customer>("customer", &commits, &snapshots)
        + assert_snapshots_replay::<job::Job>("job", &commits, &snapshots)
        + assert_snapshots_replay::<thread::Thread>("thread", &commits, &snapshots);
    assert_eq!(
        streams,
        snapshots.len(),
        "one snapshot per stream, no other"
    );
    assert!(streams > 500, "S has hundreds of streams, got {streams}");
}
