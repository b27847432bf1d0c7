//! Random but valid command histories: commands are drawn at random over a pool of
//! aggregates, `decide` keeps the ones the domain accepts, and each accepted command becomes
//! one commit of the events it decided.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use domain::aggregate::Aggregate;
use domain::calendar::BusinessTimeZone;
use domain::codec;
use domain::crew_member::{CrewMember, CrewMemberCommand};
use domain::customer::{Customer, CustomerCommand};
use domain::enums::{CustomerStatus, ReferralSource, Role, ServiceType};
use domain::ids::{CrewMemberId, CustomerId, JobId, MessageId, ThreadId, UserId};
use domain::job::{Job, JobCommand};
use domain::money::{Currency, Money};
use domain::thread::{direct_thread_id, Thread, ThreadCommand, ThreadKind};
use domain::user::{User, UserCommand};
use domain::values::{
    Address, AddressInput, CancelReason, Email, MessageBody, PersonName, Phone, Skill, ThreadTitle,
    TimeWindow,
};
use events::{NewEvent, StreamId};
use uuid::Uuid;

/// SplitMix64: small, seeded, good enough to pick commands.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn uuid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(
            ((self.next() as u128) << 64 | self.next() as u128).to_be_bytes(),
        )
        .into_uuid()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// One accepted command: the events it decided on one stream.
pub(crate) struct GeneratedCommit {
    pub(crate) stream: StreamId,
    pub(crate) expected_version: u64,
    pub(crate) events: Vec<NewEvent>,
}

struct Streams<A: Aggregate> {
    states: HashMap<Uuid, (A::State, u64)>,
    ids: Vec<Uuid>,
}

impl<A: Aggregate> Default for Streams<A> {
    fn default() -> Self {
        Streams {
            states: HashMap::new(),
            ids: Vec::new(),
        }
    }
}

impl<A: Aggregate> Streams<A> {
    fn decide(
        &mut self,
        id: Uuid,
        command: A::Command,
        at: DateTime<Utc>,
    ) -> Option<GeneratedCommit> {
        let (state, version) = self.states.get(&id).cloned().unwrap_or_default();
        let decided = A::decide(&state, command).ok()?;
        if decided.is_empty() {
            return None;
        }
        let next = decided.iter().fold(state, A::evolve);
        if !self.states.contains_key(&id) {
            self.ids.push(id);
        }
        self.states
            .insert(id, (next, version + decided.len() as u64));
        Some(GeneratedCommit {
            stream: StreamId::new(A::TYPE, id.to_string()).ok()?,
            expected_version: version,
            events: decided
                .iter()
                .map(|e| {
                    let stored = codec::encode(e);
                    NewEvent::new(stored.event_type, stored.schema_version, at, stored.payload)
                })
                .collect(),
        })
    }
}

pub(crate) struct History {
    rng: Rng,
    now: DateTime<Utc>,
    users: Streams<User>,
    crew: Streams<CrewMember>,
    customers: Streams<Customer>,
    jobs: Streams<Job>,
    threads: Streams<Thread>,
    thread_members: HashMap<Uuid, Vec<UserId>>,
}

const FIRST: [&str; 8] = ["John", "Jon", "Mary", "Ana", "Luis", "Wei", "Olga", "Sam"];
const LAST: [&str; 6] = ["Smith", "Smyth", "Garcia", "Chen", "Novak", "Brown"];

impl History {
    pub(crate) fn new(seed: u64) -> Self {
        History {
            rng: Rng::new(seed),
            now: Utc
                .with_ymd_and_hms(2026, 1, 5, 13, 0, 0)
                .single()
                .unwrap_or_default(),
            users: Streams::default(),
            crew: Streams::default(),
            customers: Streams::default(),
            jobs: Streams::default(),
            threads: Streams::default(),
            thread_members: HashMap::new(),
        }
    }

    pub(crate) fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The next accepted command (tries until the domain accepts one).
    pub(crate) fn next_commit(&mut self) -> GeneratedCommit {
        loop {
            self.now += Duration::minutes(1 + self.rng.below(240) as i64);
            if let Some(commit) = self.try_one() {
                return commit;
            }
        }
    }

    fn try_one(&mut self) -> Option<GeneratedCommit> {
        let at = self.now;
        let roll = self.rng.below(100);
        match roll {
            0..=3 => self.register_user(at),
            4..=6 => self.register_crew(at),
            7..=16 => self.register_customer(at),
            17..=21 => self.customer_change(at),
            22..=33 => self.create_job(at),
            34..=61 => self.job_change(at),
            62..=67 => self.start_thread(at),
            68..=89 => self.post(at),
            _ => self.mark_read(at),
        }
    }

    fn name(&mut self, names: &[&str]) -> PersonName {
        let pick = names[self.rng.below(names.len())];
        PersonName::parse(pick).unwrap_or_else(|_| unreachable!("fixed names are valid"))
    }

    fn email(&mut self) -> Email {
        let n = self.rng.next() % 100_000;
        Email::parse(&format!("person.{n}@example.com")).unwrap_or_else(|_| unreachable!())
    }

    fn address(&mut self) -> Address {
        let n = self.rng.below(900) + 1;
        Address::parse(AddressInput {
            line1: format!("{n} Main St"),
            line2: None,
            city: "Springfield".into(),
            region: None,
            postal_code: "12345".into(),
        })
        .unwrap_or_else(|_| unreachable!())
    }

    fn register_user(&mut self, at: DateTime<Utc>) -> Option<GeneratedCommit> {
        if self.users.ids.len() >= 12 && !self.rng.chance(10) {
            return self.user_change(at);
        }
        let id = self.rng.uuid();
        let role = [Role::Admin, Role::Dispatcher, Role::Sales, Role::Crew][self.rng.below(4)];
        let command = UserCommand::Register {
            user_id: UserId::from_uuid(id),
            display_name: self.name(&FIRST),
            email: self.email(),
            role,
            registered_at: at,
        };
        self.users.decide(id, command, at)
    }

    fn user_change(&mut self, at: DateTime<Utc>) -> Option<GeneratedCommit> {
        let id = *self.rng.pick(&self.users.ids)?;
        let command = if self.rng.chance(20) {
            UserCommand::Deactivate { deactivated_at: at }
        } else {
            UserCommand::ChangeRole {
                role: [Role::Analyst, Role::Sales][self.rng.below(2)],
                changed_at: at,
            }
        };
        self.users.decide(id, command, at)
    }

    fn register_crew(&mut self, at: DateTime<Utc>) -> Option<GeneratedCommit> {
        if self.crew.ids.len() >= 8 {
            let id = *self.rng.pick(&self.crew.ids)?;
            if !self.rng.chance(5) {
                return None;
            }
            return self
                .crew
                .decide(id, CrewMemberCommand::Deactivate { deactivated_at: at }, at);
        }
        let id = self.rng.uuid();
        let user = self
            .rng
            .pick(&self.users.ids)
            .copied()
            .map(UserId::from_uuid);
        let command = CrewMemberCommand::Register {
            crew_member_id: CrewMemberId::from_uuid(id),
            name: self.name(&LAST),
            skills: vec![Skill::parse("packing").ok()?],
            user_id: user.filter(|_| self.rng.chance(50)),
            registered_at: at,
        };
        self.crew.decide(id, command, at)
    }

    fn register_customer(&mut self, at: DateTime<Utc>) -> Option<GeneratedCommit> {
        let id = self.rng.uuid();
        let sources = [
            ReferralSource::Website,
            ReferralSource::Referral,
            ReferralSource::Google,
            ReferralSource::Social,
        ];
        let command = CustomerCommand::Register {
            customer_id: CustomerId::from_uuid(id),
            first_name: self.name(&FIRST),
            last_name: self.name(&LAST),
            email: self.email(),
            phone: Phone::parse(&format!(
                "555-01{:02}-{:03}",
                self.rng.below(100),
                self.rng.below(1000)
            ))
            .ok()?,
            referral_source: sources[self.rng.below(sources.len())],
            address: self.address(),
            registered_at: at,
        };
        self.customers.decide(id, command, at)
    }

    fn customer_change(&mut self, at: DateTime<Utc>) -> Option<GeneratedCommit> {
        let id = *self.rng.pick(&self.customers.ids)?;
        let command = if self.rng.chance(50) {
            CustomerCommand::UpdateContact {
                first_name: Some(self.name(&FIRST)),
                last_name: self.rng.chance(30).then(|| self.name(&LAST)),
                email: self.rng.chance(30).then(|| self.email()),
                phone: None,
                address: None,
                updated_at: at,
            }
        } else {
            let to = [CustomerStatus::Active, CustomerStatus::Inactive][self.rng.below(2)];
            CustomerCommand::ChangeStatus {
                status: to,
                changed_at: at,
            }
        };
        self.customers.decide(id, command, at)
    }

    fn create_job(&mut self, at: DateTime<Utc>) -> Option<GeneratedCommit> {
        let customer = *self.rng.pick(&self.customers.ids)?;
        let id = self.rng.uuid();
        let services = [
            ServiceType::LocalMove,
            ServiceType::LongDistance,
            ServiceType::Packing,
            ServiceType::Storage,
        ];
        let command = JobCommand::Create {
            job_id: JobId::from_uuid(id),
            customer_id: CustomerId::from_uuid(customer),
            service_type: services[self.rng.below(services.len())],
            origin: self.address(),
            destination: self.address(),
            estimated_price: Money::parse(10_000 + self.rng.below(500_000) as i64, usd()?).ok()?,
            notes: None,
            created_at: at,
        };
        self.jobs.decide(id, command, at)
    }

    fn window(&mut self) -> Option<TimeWindow> {
        let start = 7 + self.rng.below(8) as u32;
        TimeWindow::parse(
            NaiveTime::from_hms_opt(start, 0, 0)?,
            NaiveTime::from_hms_opt(start + 2 + self.rng.below(3) as u32, 30, 0)?,
            BusinessTimeZone::parse("America/New_York").ok()?,
        )
        .ok()
    }

    fn job_change(&mut self, at: DateTime<Utc>) -> Option<GeneratedCommit> {
        let id = *self.rng.pick(&self.jobs.ids)?;
        let date = (at + Duration::days(self.rng.below(40) as i64 - 5)).date_naive();
        let command = match self.rng.below(10) {
            0 | 1 => JobCommand::Schedule {
                date,
                window: self.window()?,
                scheduled_at: at,
            },
            2 => JobCommand::Reschedule {
                date,
                window: self.window()?,
                reason: None,
                rescheduled_at: at,
            },
            3 | 4 => JobCommand::AssignCrew {
                crew_member_id: CrewMemberId::from_uuid(*self.rng.pick(&self.crew.ids)?),
                crew_member_active: true,
                assigned_at: at,
            },
            5 => JobCommand::UnassignCrew {
                crew_member_id: CrewMemberId::from_uuid(*self.rng.pick(&self.crew.ids)?),
                unassigned_at: at,
            },
            6 => JobCommand::Start { started_at: at },
            7 | 8 => JobCommand::Complete {
                actual_revenue: Money::parse(5_000 + self.rng.below(600_000) as i64, usd()?)
                    .ok()?,
                completed_at: at,
            },
            _ => JobCommand::Cancel {
                reason: CancelReason::parse("customer changed plans").ok()?,
                cancelled_at: at,
            },
        };
        self.jobs.decide(id, command, at)
    }

    fn start_thread(&mut self, at: DateTime<Utc>) -> Option<GeneratedCommit> {
        let a = UserId::from_uuid(*self.rng.pick(&self.users.ids)?);
        let b = UserId::from_uuid(*self.rng.pick(&self.users.ids)?);
        let (id, kind, participants, title) = match self.rng.below(3) {
            0 => (direct_thread_id(a, b), ThreadKind::Direct, vec![a, b], None),
            1 => {
                let c = UserId::from_uuid(*self.rng.pick(&self.users.ids)?);
                (
                    ThreadId::from_uuid(self.rng.uuid()),
                    ThreadKind::Group,
                    vec![a, b, c],
                    Some(ThreadTitle::parse("Crew planning").ok()?),
                )
            }
            _ => (
                ThreadId::from_uuid(self.rng.uuid()),
                ThreadKind::Job {
                    job_id: JobId::from_uuid(*self.rng.pick(&self.jobs.ids)?),
                },
                vec![a, b],
                None,
            ),
        };
        let uuid = id.as_uuid();
        let command = ThreadCommand::Start {
            thread_id: id,
            kind,
            participants: participants.clone(),
            title,
            started_by: a,
            started_at: at,
        };
        let commit = self.threads.decide(uuid, command, at)?;
        let mut members = participants;
        members.sort();
        members.dedup();
        self.thread_members.insert(uuid, members);
        Some(commit)
    }

    fn post(&mut self, at: DateTime<Utc>) -> Option<GeneratedCommit> {
        let id = *self.rng.pick(&self.threads.ids)?;
        let author = *self.rng.pick(self.thread_members.get(&id)?)?;
        let words = [
            "Truck",
            "is",
            "running",
            "late",
            "box",
            "count",
            "confirmed",
            "ok",
        ];
        let body: Vec<&str> = (0..1 + self.rng.below(25))
            .map(|_| words[self.rng.below(words.len())])
            .collect();
        let command = ThreadCommand::Post {
            message_id: MessageId::from_uuid(self.rng.uuid()),
            author,
            body: MessageBody::parse(&body.join(" ")).ok()?,
            posted_at: at,
        };
        self.threads.decide(id, command, at)
    }

    fn mark_read(&mut self, at: DateTime<Utc>) -> Option<GeneratedCommit> {
        let id = *self.rng.pick(&self.threads.ids)?;
        let user = *self.rng.pick(self.thread_members.get(&id)?)?;
        let last = self.threads.states.get(&id)?.0.thread.as_ref()?.last_seq;
        let command = ThreadCommand::MarkRead {
            user,
            up_to_seq: self.rng.below(last as usize + 1) as u64,
            read_at: at,
        };
        self.threads.decide(id, command, at)
    }
}

fn usd() -> Option<Currency> {
    Currency::parse("USD").ok()
}
