//! Deterministic, realistic data from a seed: staff users and crew, customers with referral
//! sources, jobs per customer skewed (a few big accounts), schedule dates over a year with
//! weekday peaks, crew assignment, completions with revenue, direct and group threads with
//! messages and read markers.
//!
//! The output is a list of domain commands ([`Op`]), not events: the loader decides them with
//! the aggregates (so every event is one the domain would produce), the HTTP seeder sends
//! them to the command API, and the baseline folds them into its current-state collections.

mod people;
pub mod rng;
mod threads;

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use domain::calendar::BusinessTimeZone;
use domain::crew_member::CrewMemberCommand;
use domain::customer::CustomerCommand;
use domain::enums::{CustomerStatus, ReferralSource, Role, ServiceType};
use domain::ids::{CrewMemberId, CustomerId, JobId, ThreadId, UserId};
use domain::job::JobCommand;
use domain::money::{Currency, Money};
use domain::thread::ThreadCommand;
use domain::user::UserCommand;
use domain::values::{CancelReason, PersonName, Skill, TimeWindow};

use rng::Rng;

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("generated value is invalid: {0}")]
    Field(String),
}

impl GenError {
    pub(crate) fn field(error: domain::FieldError) -> Self {
        GenError::Field(format!("{}: {}", error.field, error.reason))
    }
}

/// Data set sizes: S is a smoke test, M ≈ 100,000 events, L ≈ 1,000,000 events.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum Size {
    S,
    M,
    L,
}

impl Size {
    pub fn as_str(self) -> &'static str {
        match self {
            Size::S => "S",
            Size::M => "M",
            Size::L => "L",
        }
    }

    fn params(self) -> Params {
        match self {
            Size::S => Params {
                customers: 130,
                other_threads: 20,
                messages: 1_500,
            },
            Size::M => Params {
                customers: 3_300,
                other_threads: 300,
                messages: 41_000,
            },
            Size::L => Params {
                customers: 33_000,
                other_threads: 3_000,
                messages: 410_000,
            },
        }
    }
}

struct Params {
    customers: usize,
    /// Threads besides the focus user's 200.
    other_threads: usize,
    messages: usize,
}

pub const STAFF_USERS: usize = 200;
/// The focus user's direct threads (one per other user) and group threads.
const FOCUS_DIRECT_THREADS: usize = 150;
const FOCUS_GROUP_THREADS: usize = 50;

#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    pub size: Size,
    /// "Today": the data spans the year before it and two months after it.
    pub anchor: NaiveDate,
    pub time_zone: BusinessTimeZone,
}

/// One domain command for one aggregate instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    User(UserId, UserCommand),
    Crew(CrewMemberId, CrewMemberCommand),
    Customer(CustomerId, CustomerCommand),
    Job(JobId, JobCommand),
    Thread(ThreadId, ThreadCommand),
}

/// A command and the staff user who issues it.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub actor: UserId,
    pub command: Command,
}

#[derive(Debug, Clone)]
pub struct Staff {
    pub id: UserId,
    pub name: PersonName,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct CrewInfo {
    pub id: CrewMemberId,
    pub user: UserId,
    pub name: PersonName,
}

#[derive(Debug, Clone)]
pub struct JobInfo {
    pub id: JobId,
    pub customer: CustomerId,
    /// Scheduled, not started, with crew, date on or after the anchor.
    pub open_future: bool,
    /// Last scheduled date, if any.
    pub date: Option<NaiveDate>,
}

#[derive(Debug, Clone)]
pub struct ThreadInfo {
    pub id: ThreadId,
    pub participants: Vec<UserId>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub config: GenConfig,
    pub ops: Vec<Op>,
    pub users: Vec<Staff>,
    pub crew: Vec<CrewInfo>,
    /// A dispatcher taking part in ~200 threads.
    pub focus_user: UserId,
    /// An admin who issues customer and job commands in benchmarks.
    pub admin: UserId,
    pub customers: Vec<CustomerId>,
    pub jobs: Vec<JobInfo>,
    pub threads: Vec<ThreadInfo>,
    /// Last names present in the data, for search queries.
    pub last_names: Vec<String>,
}

impl Dataset {
    /// Monday of the week after the anchor's, typically the fullest week ahead.
    pub fn busy_week(&self) -> NaiveDate {
        domain::calendar::week_start(self.config.anchor + Duration::days(7))
    }
}

/// Generates the data set; the same config always gives the same ops.
pub fn generate(config: GenConfig) -> Result<Dataset, GenError> {
    let mut gen = Generator::new(config);
    gen.staff()?;
    gen.customers_and_jobs()?;
    gen.threads()?;
    Ok(gen.finish())
}

struct Generator {
    config: GenConfig,
    root: Rng,
    usd: Currency,
    now: DateTime<Utc>,
    ops: Vec<Op>,
    users: Vec<Staff>,
    crew: Vec<CrewInfo>,
    customers: Vec<CustomerId>,
    jobs: Vec<JobInfo>,
    threads: Vec<ThreadInfo>,
}

impl Generator {
    fn new(config: GenConfig) -> Self {
        let now = config.time_zone.start_of_day(config.anchor) + Duration::hours(17);
        Generator {
            root: Rng::new(config.seed),
            usd: Currency::parse("USD").unwrap_or_else(|_| unreachable!("USD is a valid code")),
            now,
            config,
            ops: Vec::new(),
            users: Vec::new(),
            crew: Vec::new(),
            customers: Vec::new(),
            jobs: Vec::new(),
            threads: Vec::new(),
        }
    }

    fn finish(self) -> Dataset {
        let admin = self.users[0].id;
        let focus_user = self.users[1].id;
        Dataset {
            config: self.config,
            ops: self.ops,
            users: self.users,
            crew: self.crew,
            focus_user,
            admin,
            customers: self.customers,
            jobs: self.jobs,
            threads: self.threads,
            last_names: people::LAST_NAMES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn push(&mut self, actor: UserId, command: Command) {
        self.ops.push(Op { actor, command });
    }

    /// The local time `time` on `date`, in UTC.
    fn at(&self, date: NaiveDate, hour: i64, minute: i64) -> DateTime<Utc> {
        self.config.time_zone.start_of_day(date) + Duration::minutes(hour * 60 + minute)
    }

    fn staff(&mut self) -> Result<(), GenError> {
        let mut rng = self.root.fork(1);
        let start = self.config.anchor - Duration::days(400);
        for index in 0..STAFF_USERS {
            let role = match index {
                0..=4 => Role::Admin,
                5..=24 => Role::Dispatcher,
                25..=49 => Role::Sales,
                50..=59 => Role::Analyst,
                _ => Role::Crew,
            };
            // Index 1 (the focus user) is a dispatcher: indices 0..=4 are admins, so swap.
            let role = if index == 1 { Role::Dispatcher } else { role };
            let first = *rng.pick(people::FIRST_NAMES);
            let last = *rng.pick(people::LAST_NAMES);
            let id = UserId::from_uuid(rng.uuid());
            let name = people::person_name(&format!("{first} {last}"))?;
            let registered_at = self.at(start, 9, index as i64);
            self.push(
                id,
                Command::User(
                    id,
                    UserCommand::Register {
                        user_id: id,
                        display_name: name.clone(),
                        email: people::email(first, last, index as u64, "staff.simplepro.test")?,
                        role,
                        registered_at,
                    },
                ),
            );
            if role == Role::Crew {
                self.crew_member(&mut rng, id, &name, registered_at + Duration::minutes(5))?;
            }
            self.users.push(Staff { id, name, role });
        }
        Ok(())
    }

    /// The crew member record of crew user `user`.
    fn crew_member(
        &mut self,
        rng: &mut Rng,
        user: UserId,
        name: &PersonName,
        registered_at: DateTime<Utc>,
    ) -> Result<(), GenError> {
        let crew_id = CrewMemberId::from_uuid(rng.uuid());
        let skills = ["packing", "driving", "piano moving", "assembly"]
            .iter()
            .filter(|_| rng.chance(0.5))
            .map(|s| Skill::parse(s).map_err(GenError::field))
            .collect::<Result<Vec<_>, _>>()?;
        self.push(
            user,
            Command::Crew(
                crew_id,
                CrewMemberCommand::Register {
                    crew_member_id: crew_id,
                    name: name.clone(),
                    skills,
                    user_id: Some(user),
                    registered_at,
                },
            ),
        );
        self.crew.push(CrewInfo {
            id: crew_id,
            user,
            name: name.clone(),
        });
        Ok(())
    }

    /// A date drawn around `from + offset` days with weekday peaks (Friday busiest, Sunday
    /// almost empty).
    fn weekday_date(rng: &mut Rng, from: NaiveDate, min_days: i64, max_days: i64) -> NaiveDate {
        loop {
            let date = from + Duration::days(rng.between(min_days, max_days));
            let weight = match date.weekday() {
                Weekday::Mon => 1.2,
                Weekday::Tue | Weekday::Wed => 1.0,
                Weekday::Thu => 1.1,
                Weekday::Fri => 1.4,
                Weekday::Sat => 0.6,
                Weekday::Sun => 0.1,
            };
            if rng.unit() * 1.4 < weight {
                return date;
            }
        }
    }

    fn sales_actor(&self, rng: &mut Rng) -> UserId {
        self.users[rng.between(5, 49) as usize].id
    }

    fn customers_and_jobs(&mut self) -> Result<(), GenError> {
        let mut rng = self.root.fork(2);
        let sources = ReferralSource::ALL;
        let source_weights = [0.35, 0.2, 0.25, 0.08, 0.1, 0.02];
        let anchor = self.config.anchor;
        for index in 0..self.config.size.params().customers {
            let customer_id = CustomerId::from_uuid(rng.uuid());
            let first = *rng.pick(people::FIRST_NAMES);
            let last = *rng.pick(people::LAST_NAMES);
            let registered_on = Self::weekday_date(&mut rng, anchor, -365, -1);
            let registered_at = self.at(registered_on, rng.between(8, 18), rng.between(0, 59));
            let actor = self.sales_actor(&mut rng);
            let command = CustomerCommand::Register {
                customer_id,
                first_name: people::person_name(first)?,
                last_name: people::person_name(last)?,
                email: people::email(first, last, index as u64, "example.com")?,
                phone: people::phone(&mut rng)?,
                referral_source: sources[rng.weighted(&source_weights)],
                address: people::address(&mut rng)?,
                registered_at,
            };
            self.push(actor, Command::Customer(customer_id, command));
            self.customers.push(customer_id);
            self.customer_jobs(&mut rng, customer_id, actor, registered_on)?;
        }
        Ok(())
    }

    /// The customer's jobs, the first of which makes the customer active; a few customers
    /// with jobs become inactive at the end.
    fn customer_jobs(
        &mut self,
        rng: &mut Rng,
        customer_id: CustomerId,
        actor: UserId,
        registered_on: NaiveDate,
    ) -> Result<(), GenError> {
        let anchor = self.config.anchor;
        let job_count = match rng.unit() {
            u if u < 0.15 => 0,
            u if u < 0.65 => 1,
            u if u < 0.82 => 2,
            u if u < 0.91 => 3,
            u if u < 0.98 => rng.between(4, 8),
            _ => rng.between(15, 60),
        };
        let mut first_job_at: Option<DateTime<Utc>> = None;
        let mut created_on = registered_on;
        for _ in 0..job_count {
            let created_at = self
                .at(created_on, rng.between(8, 18), rng.between(0, 59))
                .min(self.now - Duration::hours(1));
            if first_job_at.is_none() {
                first_job_at = Some(created_at);
                self.push(
                    actor,
                    Command::Customer(
                        customer_id,
                        CustomerCommand::ChangeStatus {
                            status: CustomerStatus::Active,
                            changed_at: created_at,
                        },
                    ),
                );
            }
            self.job(rng, customer_id, actor, created_at)?;
            // Repeat business: the next job comes weeks or months later.
            created_on = (created_on + Duration::days(rng.between(3, 90))).min(anchor);
        }
        if first_job_at.is_some() && rng.chance(0.04) {
            self.push(
                actor,
                Command::Customer(
                    customer_id,
                    CustomerCommand::ChangeStatus {
                        status: CustomerStatus::Inactive,
                        changed_at: self.now - Duration::hours(2),
                    },
                ),
            );
        }
        Ok(())
    }

    fn job(
        &mut self,
        rng: &mut Rng,
        customer_id: CustomerId,
        actor: UserId,
        created_at: DateTime<Utc>,
    ) -> Result<(), GenError> {
        let (job_id, estimate) = self.create_job(rng, customer_id, actor, created_at)?;
        let mut info = JobInfo {
            id: job_id,
            customer: customer_id,
            open_future: false,
            date: None,
        };
        if !rng.chance(0.08) {
            let date = self.schedule_job(rng, job_id, actor, created_at)?;
            info.date = Some(date);
            info.open_future = self.end_job(rng, job_id, actor, date, estimate)?;
        }
        self.jobs.push(info);
        Ok(())
    }

    /// Creates a job with a price estimate for its service type; returns its id and the
    /// estimate.
    fn create_job(
        &mut self,
        rng: &mut Rng,
        customer_id: CustomerId,
        actor: UserId,
        created_at: DateTime<Utc>,
    ) -> Result<(JobId, i64), GenError> {
        let job_id = JobId::from_uuid(rng.uuid());
        let service_weights = [0.45, 0.15, 0.15, 0.1, 0.12, 0.03];
        let service_type = ServiceType::ALL[rng.weighted(&service_weights)];
        let base = match service_type {
            ServiceType::LongDistance => 450_000,
            ServiceType::Commercial => 300_000,
            ServiceType::LocalMove => 120_000,
            ServiceType::Packing => 60_000,
            ServiceType::Storage => 40_000,
            ServiceType::Other => 30_000,
        };
        let estimate = base + rng.between(-base / 4, base / 2);
        self.push(
            actor,
            Command::Job(
                job_id,
                JobCommand::Create {
                    job_id,
                    customer_id,
                    service_type,
                    origin: people::address(rng)?,
                    destination: people::address(rng)?,
                    estimated_price: Money::parse(estimate, self.usd).map_err(GenError::field)?,
                    notes: rng
                        .chance(0.3)
                        .then(|| "Fragile items, handle with care".to_owned()),
                    created_at,
                },
            ),
        );
        Ok((job_id, estimate))
    }

    /// Schedules the job, assigns its crew and sometimes reschedules it; returns the date
    /// it ends up on.
    fn schedule_job(
        &mut self,
        rng: &mut Rng,
        job_id: JobId,
        actor: UserId,
        created_at: DateTime<Utc>,
    ) -> Result<NaiveDate, GenError> {
        let job = |command| Command::Job(job_id, command);
        let created_on = self.config.time_zone.local_date(created_at);
        let mut date = Self::weekday_date(rng, created_on, 2, 30);
        let window = Self::window(rng, self.config.time_zone)?;
        let scheduled_at = (created_at + Duration::hours(1)).min(self.now);
        self.push(
            actor,
            job(JobCommand::Schedule {
                date,
                window,
                scheduled_at,
            }),
        );
        let mut crew = BTreeSet::new();
        for _ in 0..rng.between(2, 4) {
            crew.insert(rng.below(self.crew.len() as u64) as usize);
        }
        for index in crew {
            self.push(
                actor,
                job(JobCommand::AssignCrew {
                    crew_member_id: self.crew[index].id,
                    crew_member_active: true,
                    assigned_at: scheduled_at,
                }),
            );
        }
        if rng.chance(0.1) {
            let new_date = date + Duration::days(rng.between(1, 7));
            let rescheduled_at = (scheduled_at + Duration::days(1)).min(self.now);
            self.push(
                actor,
                job(JobCommand::Reschedule {
                    date: new_date,
                    window: Self::window(rng, self.config.time_zone)?,
                    reason: Some("customer asked for another day".to_owned()),
                    rescheduled_at,
                }),
            );
            date = new_date;
        }
        Ok(date)
    }

    /// Most jobs scheduled in the past were done, a few cancelled; a few ahead are
    /// cancelled. Returns whether the job is still open and ahead.
    fn end_job(
        &mut self,
        rng: &mut Rng,
        job_id: JobId,
        actor: UserId,
        date: NaiveDate,
        estimate: i64,
    ) -> Result<bool, GenError> {
        let job = |command| Command::Job(job_id, command);
        if date < self.config.anchor {
            let roll = rng.unit();
            if roll < 0.86 {
                let started_at = self.at(date, 8, rng.between(0, 59));
                self.push(actor, job(JobCommand::Start { started_at }));
                let revenue = estimate + rng.between(-estimate / 5, estimate / 5);
                self.push(
                    actor,
                    job(JobCommand::Complete {
                        actual_revenue: Money::parse(revenue, self.usd).map_err(GenError::field)?,
                        completed_at: started_at + Duration::hours(rng.between(3, 9)),
                    }),
                );
            } else if roll < 0.94 {
                let at = self.at(date, 7, 0).min(self.now);
                let command = cancel(rng, at)?;
                self.push(actor, job(command));
            }
            Ok(false)
        } else if rng.chance(0.05) {
            let command = cancel(rng, self.now - Duration::minutes(30))?;
            self.push(actor, job(command));
            Ok(false)
        } else {
            Ok(true)
        }
    }

    fn window(rng: &mut Rng, zone: BusinessTimeZone) -> Result<TimeWindow, GenError> {
        let start = *rng.pick(&[8u32, 9, 12, 13]);
        let length = rng.between(3, 4) as u32;
        let time = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default();
        TimeWindow::parse(time(start), time(start + length), zone).map_err(GenError::field)
    }
}

fn cancel(rng: &mut Rng, at: DateTime<Utc>) -> Result<JobCommand, GenError> {
    Ok(JobCommand::Cancel {
        reason: CancelReason::parse(if rng.chance(0.5) {
            "customer cancelled"
        } else {
            "found another mover"
        })
        .map_err(GenError::field)?,
        cancelled_at: at,
    })
}

#[cfg(test)]
mod tests;
