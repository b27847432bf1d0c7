//! Random valid event histories: random commands decided by the domain aggregates, so every
//! event is one the command API could have produced.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use domain::crew_member::{CrewMember, CrewMemberCommand, CrewMemberState};
use domain::customer::{Customer, CustomerCommand, CustomerState};
use domain::enums::JobStatus;
use domain::enums::{CustomerStatus, ReferralSource, Role, ServiceType};
use domain::ids::{CrewMemberId, CustomerId, JobId, MessageId, ThreadId, UserId};
use domain::job::{Job, JobCommand, JobRecord, JobState};
use domain::money::{Currency, Money};
use domain::thread::{direct_thread_id, Thread, ThreadCommand, ThreadKind, ThreadState};
use domain::user::{User, UserCommand, UserState};
use domain::values::{
    Address, AddressInput, CancelReason, Email, MessageBody, PersonName, Phone, ThreadTitle,
    TimeWindow,
};
use domain::{Aggregate, DomainEvent};
use events::EventEnvelope;
use proptest::prelude::*;
use uuid::Uuid;

pub(crate) const FIRST_NAMES: &[&str] = &[
    "John", "Jon", "Ana", "Maria", "Li", "Omar", "Johanna", "Smith",
];
pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith", "Smyth", "Silva", "Jones", "O'Neil", "Nguyen", "Schmidt",
];
const USER_NAMES: &[&str] = &["Dana Dispatch", "Sam Sales", "Alex Admin", "Casey Crew"];
const CREW_NAMES: &[&str] = &["Carl", "Bea", "Ivan", "Zoe"];
const BODIES: &[&str] = &[
    "On my way",
    "Customer asked to move the piano first, please bring the straps and the dolly, thanks! \
     Also remember the parking permit for the truck on the main street.",
    "ok",
    "Done for today",
];

/// One random step: which command, and numbers to pick its arguments with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    kind: u8,
    a: u32,
    b: u32,
    c: u32,
    /// Minutes to advance the clock by before the command.
    advance: u32,
}

pub(crate) fn steps(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Step>> {
    let step = (
        0u8..100,
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        0u32..3000,
    )
        .prop_map(|(kind, a, b, c, advance)| Step {
            kind,
            a,
            b,
            c,
            advance,
        });
    proptest::collection::vec(step, len)
}

#[derive(Default)]
struct World {
    users: Vec<(UserId, UserState)>,
    crew: Vec<(CrewMemberId, CrewMemberState)>,
    customers: Vec<(CustomerId, CustomerState)>,
    jobs: Vec<(JobId, JobState)>,
    threads: Vec<(ThreadId, ThreadState)>,
    versions: std::collections::HashMap<String, u64>,
    events: Vec<EventEnvelope>,
    ids: u128,
}

fn pick<T>(items: &[T], n: u32) -> Option<&T> {
    (!items.is_empty()).then(|| &items[n as usize % items.len()])
}

fn name(raw: &str) -> PersonName {
    PersonName::parse(raw).unwrap_or_else(|_| PersonName::parse("Anonymous").expect("valid name"))
}

fn address() -> Address {
    Address::parse(AddressInput {
        line1: "1 Main St".into(),
        city: "Springfield".into(),
        ..AddressInput::default()
    })
    .expect("valid address")
}

fn usd(amount: i64) -> Money {
    Money::parse(amount, Currency::parse("USD").expect("valid currency")).expect("valid money")
}

fn window(n: u32) -> TimeWindow {
    let start = 7 + n % 8;
    let t = |h| NaiveTime::from_hms_opt(h, (n % 2) * 30, 0).expect("valid time");
    let zone = super::pipeline::time_zone();
    TimeWindow::parse(t(start), t(start + 1 + n % 3), zone).expect("valid window")
}

impl World {
    fn next_uuid(&mut self, kind: u128) -> Uuid {
        self.ids += 1;
        Uuid::from_u128((kind << 96) | self.ids)
    }

    fn record<E: DomainEvent>(
        &mut self,
        aggregate_type: &str,
        id: Uuid,
        events: &[E],
        at: DateTime<Utc>,
    ) {
        for event in events {
            let stream = format!("{aggregate_type}/{id}");
            let version = self.versions.entry(stream).or_insert(0);
            *version += 1;
            let position = self.events.len() as u64 + 1;
            self.events.push(EventEnvelope {
                event_id: Uuid::from_u128(u128::from(position)),
                aggregate_type: aggregate_type.to_owned(),
                aggregate_id: id.to_string(),
                version: *version,
                position: Some(position),
                event_type: event.event_type().to_owned(),
                schema_version: domain::codec::current_version(event.event_type()),
                occurred_at: at,
                recorded_at: at,
                correlation_id: format!("c{position}"),
                causation_id: None,
                actor: "tester".to_owned(),
                traceparent: None,
                payload: event.to_payload(),
            });
        }
    }
}

/// Decides `command` on `state`; on success records and folds the events.
fn run<A: Aggregate>(
    world: &mut World,
    state: &mut A::State,
    id: Uuid,
    command: A::Command,
    at: DateTime<Utc>,
) -> bool {
    match A::decide(state, command) {
        Ok(events) => {
            world.record(A::TYPE, id, &events, at);
            *state = events.iter().fold(state.clone(), A::evolve);
            true
        }
        Err(_) => false,
    }
}

/// A history of valid events from `steps`, starting at 2025-01-01 UTC. The first steps
/// register a few users, crew members and customers (including "John Smith").
pub(crate) fn history(steps: &[Step]) -> Vec<EventEnvelope> {
    history_from(steps, Duration::zero())
}

/// The same history with every instant `offset` later: instants finer than the millisecond a
/// stored BSON date keeps.
pub(crate) fn history_off_the_millisecond(steps: &[Step]) -> Vec<EventEnvelope> {
    history_from(steps, Duration::nanoseconds(123_457))
}

fn history_from(steps: &[Step], offset: Duration) -> Vec<EventEnvelope> {
    let mut world = World::default();
    let mut now = Utc
        .with_ymd_and_hms(2025, 1, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
        + offset;
    for (i, first) in ["John", "Ana"].iter().enumerate() {
        register_customer(&mut world, now, first, LAST_NAMES[i * 2], i as u32);
    }
    for i in 0..2 {
        register_user(&mut world, now, i);
        register_crew(&mut world, now, i, i);
    }
    for step in steps {
        now += Duration::minutes(i64::from(step.advance));
        apply_step(&mut world, now, step);
    }
    world.events
}

/// The registrations of customers with these first and last names, in this order (their ids
/// increase with it), on 2025-01-01.
pub(crate) fn customers_named(names: &[(&str, &str)]) -> Vec<EventEnvelope> {
    let mut world = World::default();
    let now = Utc
        .with_ymd_and_hms(2025, 1, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    for (n, (first, last)) in names.iter().enumerate() {
        register_customer(&mut world, now, first, last, n as u32);
    }
    world.events
}

fn register_customer(world: &mut World, now: DateTime<Utc>, first: &str, last: &str, n: u32) {
    let id = CustomerId::from_uuid(world.next_uuid(1));
    let slug: String = format!("{first}.{last}")
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '.')
        .collect();
    let command = CustomerCommand::Register {
        customer_id: id,
        first_name: name(first),
        last_name: name(last),
        email: Email::parse(&format!("{slug}{}@example.com", world.ids)).expect("valid email"),
        phone: Phone::parse(&format!("555-01{:02}-{:04}", n % 100, world.ids % 10_000))
            .expect("valid phone"),
        referral_source: ReferralSource::ALL[n as usize % ReferralSource::ALL.len()],
        address: address(),
        registered_at: now,
    };
    let mut state = CustomerState::default();
    run::<Customer>(world, &mut state, id.as_uuid(), command, now);
    world.customers.push((id, state));
}

fn register_user(world: &mut World, now: DateTime<Utc>, n: u32) {
    let id = UserId::from_uuid(world.next_uuid(2));
    let command = UserCommand::Register {
        user_id: id,
        display_name: name(USER_NAMES[n as usize % USER_NAMES.len()]),
        email: Email::parse(&format!("user{}@simplepro.example", world.ids)).expect("valid email"),
        role: Role::ALL[n as usize % Role::ALL.len()],
        registered_at: now,
    };
    let mut state = UserState::default();
    run::<User>(world, &mut state, id.as_uuid(), command, now);
    world.users.push((id, state));
}

fn register_crew(world: &mut World, now: DateTime<Utc>, n: u32, user: u32) {
    let id = CrewMemberId::from_uuid(world.next_uuid(3));
    let command = CrewMemberCommand::Register {
        crew_member_id: id,
        name: name(CREW_NAMES[n as usize % CREW_NAMES.len()]),
        skills: Vec::new(),
        user_id: pick(&world.users, user).map(|(u, _)| *u),
        registered_at: now,
    };
    let mut state = CrewMemberState::default();
    run::<CrewMember>(world, &mut state, id.as_uuid(), command, now);
    world.crew.push((id, state));
}

/// Runs the command `command` builds for the `n`-th job (modulo) among those `fits` keeps.
fn with_job(
    world: &mut World,
    n: u32,
    now: DateTime<Utc>,
    fits: impl Fn(&JobRecord) -> bool,
    command: impl FnOnce(&World, &JobRecord) -> Option<JobCommand>,
) {
    let candidates: Vec<usize> = (0..world.jobs.len())
        .filter(|i| world.jobs[*i].1.job.as_ref().is_some_and(&fits))
        .collect();
    let Some(index) = pick(&candidates, n).copied() else {
        return;
    };
    let (id, mut state) = world.jobs[index].clone();
    let Some(record) = state.job.clone() else {
        return;
    };
    let Some(command) = command(world, &record) else {
        return;
    };
    run::<Job>(world, &mut state, id.as_uuid(), command, now);
    world.jobs[index].1 = state;
}

fn date_near(now: DateTime<Utc>, n: u32) -> NaiveDate {
    now.date_naive() + Duration::days(i64::from(n % 40) - 5)
}

fn apply_step(world: &mut World, now: DateTime<Utc>, s: &Step) {
    let Step { kind, a, b, c, .. } = *s;
    match kind {
        0..=2 => register_user(world, now, a),
        3..=5 => register_crew(world, now, a, b),
        6..=13 => {
            let first = FIRST_NAMES[a as usize % FIRST_NAMES.len()];
            let last = LAST_NAMES[b as usize % LAST_NAMES.len()];
            register_customer(world, now, first, last, c);
        }
        14..=17 => {
            let Some(index) =
                (!world.customers.is_empty()).then(|| a as usize % world.customers.len())
            else {
                return;
            };
            let (id, mut state) = world.customers[index].clone();
            let command = CustomerCommand::UpdateContact {
                first_name: (b % 2 == 0).then(|| name(FIRST_NAMES[c as usize % FIRST_NAMES.len()])),
                last_name: (b % 3 == 0).then(|| name(LAST_NAMES[c as usize % LAST_NAMES.len()])),
                email: (b % 5 == 0)
                    .then(|| Email::parse(&format!("moved{c}@example.org")).expect("valid email")),
                phone: (b % 7 == 0).then(|| {
                    Phone::parse(&format!("555-99{:02}-{:04}", c % 100, b % 10_000))
                        .expect("valid phone")
                }),
                address: None,
                updated_at: now,
            };
            run::<Customer>(world, &mut state, id.as_uuid(), command, now);
            world.customers[index].1 = state;
        }
        18..=21 => {
            let Some(index) =
                (!world.customers.is_empty()).then(|| a as usize % world.customers.len())
            else {
                return;
            };
            let (id, mut state) = world.customers[index].clone();
            let status = CustomerStatus::ALL[b as usize % CustomerStatus::ALL.len()];
            let command = CustomerCommand::ChangeStatus {
                status,
                changed_at: now,
            };
            run::<Customer>(world, &mut state, id.as_uuid(), command, now);
            world.customers[index].1 = state;
        }
        22..=29 => {
            let Some((customer_id, _)) = pick(&world.customers, a).cloned() else {
                return;
            };
            let id = JobId::from_uuid(world.next_uuid(4));
            let command = JobCommand::Create {
                job_id: id,
                customer_id,
                service_type: ServiceType::ALL[b as usize % ServiceType::ALL.len()],
                origin: address(),
                destination: address(),
                estimated_price: usd(i64::from(c % 500_000)),
                notes: None,
                created_at: now,
            };
            let mut state = JobState::default();
            run::<Job>(world, &mut state, id.as_uuid(), command, now);
            world.jobs.push((id, state));
        }
        30..=37 => with_job(
            world,
            a,
            now,
            |j| j.status == JobStatus::Created,
            |_, _| {
                Some(JobCommand::Schedule {
                    date: date_near(now, b),
                    window: window(c),
                    scheduled_at: now,
                })
            },
        ),
        38..=42 => with_job(
            world,
            a,
            now,
            |j| j.status == JobStatus::Scheduled,
            |_, _| {
                Some(JobCommand::Reschedule {
                    date: date_near(now, b),
                    window: window(c),
                    reason: None,
                    rescheduled_at: now,
                })
            },
        ),
        43..=52 => with_job(
            world,
            a,
            now,
            |j| !j.status.is_terminal(),
            |w, _| {
                let (crew_member_id, state) = pick(&w.crew, b)?;
                Some(JobCommand::AssignCrew {
                    crew_member_id: *crew_member_id,
                    crew_member_active: state.active(),
                    assigned_at: now,
                })
            },
        ),
        53..=55 => with_job(
            world,
            a,
            now,
            |j| !j.crew.is_empty() && !j.status.is_terminal(),
            |_, j| {
                let crew: Vec<CrewMemberId> = j.crew.iter().copied().collect();
                let crew_member_id = pick(&crew, b)?;
                Some(JobCommand::UnassignCrew {
                    crew_member_id: *crew_member_id,
                    unassigned_at: now,
                })
            },
        ),
        56..=61 => with_job(
            world,
            a,
            now,
            |j| j.status == JobStatus::Scheduled && !j.crew.is_empty(),
            |_, _| Some(JobCommand::Start { started_at: now }),
        ),
        62..=68 => with_job(
            world,
            a,
            now,
            |j| j.status == JobStatus::InProgress,
            |_, _| {
                Some(JobCommand::Complete {
                    actual_revenue: usd(i64::from(b % 300_000)),
                    completed_at: now,
                })
            },
        ),
        69..=72 => with_job(
            world,
            a,
            now,
            |j| !j.status.is_terminal(),
            |_, _| {
                Some(JobCommand::Cancel {
                    reason: CancelReason::parse("customer changed plans").expect("valid reason"),
                    cancelled_at: now,
                })
            },
        ),
        73..=77 => start_thread(world, now, a, b, c),
        78..=93 => {
            let Some(index) = (!world.threads.is_empty()).then(|| a as usize % world.threads.len())
            else {
                return;
            };
            let (id, mut state) = world.threads[index].clone();
            let Some(author) = state.thread.as_ref().and_then(|t| {
                t.participants
                    .iter()
                    .nth(b as usize % t.participants.len())
                    .copied()
            }) else {
                return;
            };
            let message_id = MessageId::from_uuid(world.next_uuid(6));
            let body = MessageBody::parse(BODIES[c as usize % BODIES.len()]).expect("valid body");
            let command = ThreadCommand::Post {
                message_id,
                author,
                body,
                posted_at: now,
            };
            run::<Thread>(world, &mut state, id.as_uuid(), command, now);
            world.threads[index].1 = state;
        }
        _ => {
            let Some(index) = (!world.threads.is_empty()).then(|| a as usize % world.threads.len())
            else {
                return;
            };
            let (id, mut state) = world.threads[index].clone();
            let Some((user, last)) = state.thread.as_ref().and_then(|t| {
                let user = t
                    .participants
                    .iter()
                    .nth(b as usize % t.participants.len())?;
                Some((*user, t.last_seq))
            }) else {
                return;
            };
            if last == 0 {
                return;
            }
            let command = ThreadCommand::MarkRead {
                user,
                up_to_seq: 1 + u64::from(c) % last,
                read_at: now,
            };
            run::<Thread>(world, &mut state, id.as_uuid(), command, now);
            world.threads[index].1 = state;
        }
    }
}

fn start_thread(world: &mut World, now: DateTime<Utc>, a: u32, b: u32, c: u32) {
    if world.users.len() < 2 {
        return;
    }
    let users: Vec<UserId> = world.users.iter().map(|(u, _)| *u).collect();
    let first = users[a as usize % users.len()];
    let second = users[b as usize % users.len()];
    let (thread_id, kind, participants, title) = match c % 3 {
        0 => (
            direct_thread_id(first, second),
            ThreadKind::Direct,
            vec![first, second],
            None,
        ),
        1 => {
            let count = 2 + c as usize % users.len().max(2);
            let members: Vec<UserId> = users
                .iter()
                .cycle()
                .skip(a as usize % users.len())
                .take(count)
                .copied()
                .collect();
            let title = ThreadTitle::parse(&format!("Group {}", world.ids)).ok();
            (
                ThreadId::from_uuid(world.next_uuid(5)),
                ThreadKind::Group,
                members,
                title,
            )
        }
        _ => {
            let Some((job_id, _)) = pick(&world.jobs, c).cloned() else {
                return;
            };
            (
                ThreadId::from_uuid(world.next_uuid(5)),
                ThreadKind::Job { job_id },
                vec![first, second],
                None,
            )
        }
    };
    if world.threads.iter().any(|(id, _)| *id == thread_id) {
        return;
    }
    let command = ThreadCommand::Start {
        thread_id,
        kind,
        participants,
        title,
        started_by: first,
        started_at: now,
    };
    let mut state = ThreadState::default();
    if run::<Thread>(world, &mut state, thread_id.as_uuid(), command, now) {
        world.threads.push((thread_id, state));
    }
}
