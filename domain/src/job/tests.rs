use chrono::{NaiveTime, TimeZone};
use uuid::Uuid;

use super::*;
use crate::testing::{assert_payload_round_trips, given};
use crate::values::AddressInput;

pub(super) fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, hour, 0, 0).unwrap()
}

pub(super) fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
}

pub(super) fn window(start: u32, end: u32) -> TimeWindow {
    let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
    let zone = crate::calendar::BusinessTimeZone::parse("America/New_York").unwrap();
    TimeWindow::parse(t(start), t(end), zone).unwrap()
}

pub(super) fn crew(n: u128) -> CrewMemberId {
    CrewMemberId::from_uuid(Uuid::from_u128(0xc000 + n))
}

pub(super) fn usd(amount_minor: i64) -> Money {
    Money::parse(amount_minor, Currency::parse("USD").unwrap()).unwrap()
}

fn eur(amount_minor: i64) -> Money {
    Money::parse(amount_minor, Currency::parse("EUR").unwrap()).unwrap()
}

fn address(line1: &str) -> Address {
    Address::parse(AddressInput {
        line1: line1.into(),
        city: "Springfield".into(),
        ..AddressInput::default()
    })
    .unwrap()
}

pub(super) fn reason(text: &str) -> CancelReason {
    CancelReason::parse(text).unwrap()
}

pub(super) fn create() -> JobCommand {
    JobCommand::Create {
        job_id: JobId::from_uuid(Uuid::from_u128(7)),
        customer_id: CustomerId::from_uuid(Uuid::from_u128(1)),
        service_type: ServiceType::LocalMove,
        origin: address("1 Main St"),
        destination: address("2 Oak Ave"),
        estimated_price: usd(150_000),
        notes: Some("piano on 3rd floor".into()),
        created_at: at(8),
    }
}

fn created() -> JobEvent {
    JobEvent::JobCreated {
        job_id: JobId::from_uuid(Uuid::from_u128(7)),
        customer_id: CustomerId::from_uuid(Uuid::from_u128(1)),
        service_type: ServiceType::LocalMove,
        origin: address("1 Main St"),
        destination: address("2 Oak Ave"),
        estimated_price: usd(150_000),
        notes: Some("piano on 3rd floor".into()),
        created_at: at(8),
    }
}

fn scheduled() -> JobEvent {
    JobEvent::JobScheduled {
        date: day(10),
        window: window(8, 12),
        scheduled_at: at(9),
    }
}

fn assigned(n: u128) -> JobEvent {
    JobEvent::CrewAssigned {
        crew_member_id: crew(n),
        assigned_at: at(9),
    }
}

fn started() -> JobEvent {
    JobEvent::JobStarted { started_at: at(10) }
}

fn completed() -> JobEvent {
    JobEvent::JobCompleted {
        actual_revenue: usd(140_000),
        completed_at: at(16),
    }
}

fn cancelled(previous_status: JobStatus) -> JobEvent {
    JobEvent::JobCancelled {
        reason: reason("customer moved date"),
        previous_status,
        cancelled_at: at(11),
    }
}

fn in_progress() -> Vec<JobEvent> {
    vec![created(), scheduled(), assigned(1), started()]
}

fn schedule() -> JobCommand {
    JobCommand::Schedule {
        date: day(10),
        window: window(8, 12),
        scheduled_at: at(9),
    }
}

fn reschedule(d: u32) -> JobCommand {
    JobCommand::Reschedule {
        date: day(d),
        window: window(8, 12),
        reason: Some("truck in repair".into()),
        rescheduled_at: at(12),
    }
}

fn assign(n: u128, active: bool) -> JobCommand {
    JobCommand::AssignCrew {
        crew_member_id: crew(n),
        crew_member_active: active,
        assigned_at: at(9),
    }
}

fn unassign(n: u128) -> JobCommand {
    JobCommand::UnassignCrew {
        crew_member_id: crew(n),
        unassigned_at: at(9),
    }
}

fn start() -> JobCommand {
    JobCommand::Start { started_at: at(10) }
}

fn complete(revenue: Money) -> JobCommand {
    JobCommand::Complete {
        actual_revenue: revenue,
        completed_at: at(16),
    }
}

fn cancel() -> JobCommand {
    JobCommand::Cancel {
        reason: reason("customer moved date"),
        cancelled_at: at(11),
    }
}

#[test]
fn creating_a_job_starts_it_in_created() {
    let state = given::<Job>(vec![]).when(create()).then(vec![created()]);
    assert_eq!(state.status(), Some(JobStatus::Created));
}

#[test]
fn job_cannot_be_created_twice() {
    given::<Job>(vec![created()])
        .when(create())
        .then_err(DomainError::AlreadyExists { aggregate: "job" });
}

#[test]
fn commands_to_a_missing_job_are_not_found() {
    for command in [schedule(), start(), cancel(), assign(1, true)] {
        given::<Job>(vec![])
            .when(command)
            .then_err(DomainError::NotFound { aggregate: "job" });
    }
}

#[test]
fn created_job_can_be_scheduled() {
    let state = given::<Job>(vec![created()])
        .when(schedule())
        .then(vec![scheduled()]);
    assert_eq!(state.status(), Some(JobStatus::Scheduled));
}

#[test]
fn scheduled_job_cannot_be_scheduled_again() {
    given::<Job>(vec![created(), scheduled()])
        .when(schedule())
        .then_err(DomainError::JobAlreadyScheduled);
}

#[test]
fn job_in_progress_cannot_be_scheduled() {
    given::<Job>(in_progress())
        .when(schedule())
        .then_err(DomainError::JobNotSchedulable {
            status: JobStatus::InProgress,
        });
}

#[test]
fn scheduled_job_can_be_rescheduled() {
    let state = given::<Job>(vec![created(), scheduled()])
        .when(reschedule(11))
        .then(vec![JobEvent::JobRescheduled {
            from_date: day(10),
            from_window: window(8, 12),
            date: day(11),
            window: window(8, 12),
            reason: Some("truck in repair".into()),
            rescheduled_at: at(12),
        }]);
    assert_eq!(state.job.unwrap().schedule.unwrap().date, day(11));
}

#[test]
fn rescheduling_to_the_same_slot_emits_nothing() {
    given::<Job>(vec![created(), scheduled()])
        .when(reschedule(10))
        .then(vec![]);
}

#[test]
fn unscheduled_job_cannot_be_rescheduled() {
    given::<Job>(vec![created()])
        .when(reschedule(11))
        .then_err(DomainError::JobNotReschedulable {
            status: JobStatus::Created,
        });
}

#[test]
fn job_in_progress_cannot_be_rescheduled() {
    given::<Job>(in_progress())
        .when(reschedule(11))
        .then_err(DomainError::JobNotReschedulable {
            status: JobStatus::InProgress,
        });
}

#[test]
fn completed_job_cannot_be_rescheduled() {
    let mut history = in_progress();
    history.push(completed());
    given::<Job>(history)
        .when(reschedule(11))
        .then_err(DomainError::JobTerminal {
            status: JobStatus::Completed,
            action: "be rescheduled",
        });
}

#[test]
fn active_crew_member_can_be_assigned_before_and_during_the_job() {
    given::<Job>(vec![created()])
        .when(assign(1, true))
        .then(vec![assigned(1)]);
    given::<Job>(vec![created(), scheduled()])
        .when(assign(1, true))
        .then(vec![assigned(1)]);
    given::<Job>(in_progress())
        .when(assign(2, true))
        .then(vec![assigned(2)]);
}

#[test]
fn assigning_an_already_assigned_crew_member_emits_nothing() {
    given::<Job>(vec![created(), assigned(1)])
        .when(assign(1, true))
        .then(vec![]);
}

#[test]
fn inactive_crew_member_cannot_be_assigned() {
    given::<Job>(vec![created()])
        .when(assign(1, false))
        .then_err(DomainError::CrewMemberInactive {
            crew_member_id: crew(1),
        });
}

#[test]
fn job_cannot_have_more_than_twenty_crew() {
    let mut history = vec![created()];
    history.extend((0..20).map(assigned));
    given::<Job>(history)
        .when(assign(20, true))
        .then_err(DomainError::CrewLimitReached { max: 20 });
}

#[test]
fn assigned_crew_member_can_be_unassigned() {
    let state = given::<Job>(vec![created(), assigned(1)])
        .when(unassign(1))
        .then(vec![JobEvent::CrewUnassigned {
            crew_member_id: crew(1),
            unassigned_at: at(9),
        }]);
    assert!(!state.has_crew_member(crew(1)));
}

#[test]
fn unassigned_crew_member_cannot_be_unassigned() {
    given::<Job>(vec![created()])
        .when(unassign(1))
        .then_err(DomainError::CrewMemberNotAssigned {
            crew_member_id: crew(1),
        });
}

#[test]
fn last_crew_member_cannot_leave_a_job_in_progress() {
    given::<Job>(in_progress())
        .when(unassign(1))
        .then_err(DomainError::JobInProgressNeedsCrew);
    let mut two_crew = in_progress();
    two_crew.push(assigned(2));
    given::<Job>(two_crew)
        .when(unassign(1))
        .then(vec![JobEvent::CrewUnassigned {
            crew_member_id: crew(1),
            unassigned_at: at(9),
        }]);
}

#[test]
fn scheduled_job_with_crew_can_start() {
    let state = given::<Job>(vec![created(), scheduled(), assigned(1)])
        .when(start())
        .then(vec![started()]);
    assert_eq!(state.status(), Some(JobStatus::InProgress));
}

#[test]
fn job_cannot_start_without_crew() {
    given::<Job>(vec![created(), scheduled()])
        .when(start())
        .then_err(DomainError::JobWithoutCrew);
}

#[test]
fn unscheduled_job_cannot_start() {
    given::<Job>(vec![created(), assigned(1)])
        .when(start())
        .then_err(DomainError::JobNotStartable {
            status: JobStatus::Created,
        });
    given::<Job>(in_progress())
        .when(start())
        .then_err(DomainError::JobNotStartable {
            status: JobStatus::InProgress,
        });
}

#[test]
fn job_in_progress_can_be_completed() {
    let state = given::<Job>(in_progress())
        .when(complete(usd(140_000)))
        .then(vec![completed()]);
    assert_eq!(state.status(), Some(JobStatus::Completed));
}

#[test]
fn job_not_in_progress_cannot_be_completed() {
    given::<Job>(vec![created(), scheduled(), assigned(1)])
        .when(complete(usd(1)))
        .then_err(DomainError::JobNotInProgress {
            status: JobStatus::Scheduled,
        });
}

#[test]
fn revenue_must_be_in_the_estimate_currency() {
    given::<Job>(in_progress())
        .when(complete(eur(140_000)))
        .then_err(DomainError::RevenueCurrencyMismatch {
            expected: Currency::parse("USD").unwrap(),
            actual: Currency::parse("EUR").unwrap(),
        });
}

#[test]
fn open_jobs_can_be_cancelled_and_remember_their_previous_status() {
    given::<Job>(vec![created()])
        .when(cancel())
        .then(vec![cancelled(JobStatus::Created)]);
    given::<Job>(vec![created(), scheduled()])
        .when(cancel())
        .then(vec![cancelled(JobStatus::Scheduled)]);
    let state = given::<Job>(in_progress())
        .when(cancel())
        .then(vec![cancelled(JobStatus::InProgress)]);
    assert_eq!(state.status(), Some(JobStatus::Cancelled));
}

#[test]
fn terminal_jobs_refuse_every_command() {
    let mut done = in_progress();
    done.push(completed());
    let dropped = vec![created(), cancelled(JobStatus::Created)];
    for (history, status) in [
        (done, JobStatus::Completed),
        (dropped, JobStatus::Cancelled),
    ] {
        for (command, action) in [
            (schedule(), "be scheduled"),
            (reschedule(11), "be rescheduled"),
            (assign(3, true), "get crew assigned"),
            (unassign(1), "have crew unassigned"),
            (start(), "start"),
            (complete(usd(1)), "be completed"),
            (cancel(), "be cancelled"),
        ] {
            given::<Job>(history.clone())
                .when(command)
                .then_err(DomainError::JobTerminal { status, action });
        }
    }
}

#[test]
fn job_events_round_trip_through_payloads() {
    let rescheduled = JobEvent::JobRescheduled {
        from_date: day(10),
        from_window: window(8, 12),
        date: day(11),
        window: window(13, 17),
        reason: None,
        rescheduled_at: at(12),
    };
    let unassigned = JobEvent::CrewUnassigned {
        crew_member_id: crew(1),
        unassigned_at: at(9),
    };
    assert_payload_round_trips(&[
        created(),
        scheduled(),
        rescheduled,
        assigned(1),
        unassigned,
        started(),
        completed(),
        cancelled(JobStatus::Scheduled),
    ]);
    let payload = scheduled().to_payload();
    assert_eq!(payload["date"], "2025-03-10");
    assert_eq!(payload["window"]["start"], "08:00:00");
    let payload = completed().to_payload();
    assert_eq!(payload["actual_revenue"]["amount_minor"], 140_000);
    assert_eq!(
        cancelled(JobStatus::InProgress).to_payload()["previous_status"],
        "in_progress"
    );
}

#[test]
fn job_state_snapshot_round_trips() {
    let state = Job::replay(&in_progress());
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<JobState>(&json).unwrap(), state);
}
