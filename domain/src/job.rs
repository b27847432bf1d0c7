//! Job aggregate: one piece of work for a customer, from creation through scheduling, crew
//! assignment and execution to completion or cancellation.
//!
//! Lifecycle: `created → scheduled → in_progress → completed`; `cancelled` from any
//! non-terminal status. Completed and cancelled jobs refuse every command.
//!
//! Assigning a crew member who is already assigned is accepted and emits nothing, so retried
//! requests are harmless. The caller checks the customer exists and tells whether the crew
//! member is active (`crew_member_active`), since those facts live in other aggregates.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::enums::{JobStatus, ServiceType};
use crate::error::DomainError;
use crate::ids::{CrewMemberId, CustomerId, JobId};
use crate::money::{Currency, Money};
use crate::values::{Address, CancelReason, TimeWindow};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// Marker type implementing [`Aggregate`] for jobs.
#[derive(Debug, Clone, Copy)]
pub struct Job;

/// Snapshot version of [`JobState`]; bump when its shape changes.
pub const SNAPSHOT_VERSION: u32 = 2;

/// At most this many crew members can be assigned to one job.
pub const MAX_CREW: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// `None` until created.
    pub job: Option<JobRecord>,
}

impl JobState {
    pub fn status(&self) -> Option<JobStatus> {
        self.job.as_ref().map(|job| job.status)
    }

    /// Whether `crew_member_id` is assigned (the API uses it to let crew act on their jobs).
    pub fn has_crew_member(&self, crew_member_id: CrewMemberId) -> bool {
        self.job
            .as_ref()
            .is_some_and(|job| job.crew.contains(&crew_member_id))
    }
}

/// What the job rules need; addresses, notes and prices live only in events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: JobId,
    pub customer_id: CustomerId,
    pub service_type: ServiceType,
    pub status: JobStatus,
    /// Currency of the estimate; actual revenue must use it too.
    pub currency: Currency,
    pub schedule: Option<JobSchedule>,
    pub crew: BTreeSet<CrewMemberId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSchedule {
    /// Local date in the business time zone.
    pub date: NaiveDate,
    pub window: TimeWindow,
}

#[allow(
    clippy::large_enum_variant,
    reason = "short-lived values moved once per command; boxing the addresses would only make matching clumsier"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobCommand {
    Create {
        job_id: JobId,
        customer_id: CustomerId,
        service_type: ServiceType,
        origin: Address,
        destination: Address,
        estimated_price: Money,
        notes: Option<String>,
        created_at: DateTime<Utc>,
    },
    Schedule {
        date: NaiveDate,
        window: TimeWindow,
        scheduled_at: DateTime<Utc>,
    },
    Reschedule {
        date: NaiveDate,
        window: TimeWindow,
        reason: Option<String>,
        rescheduled_at: DateTime<Utc>,
    },
    AssignCrew {
        crew_member_id: CrewMemberId,
        /// Looked up by the caller from the crew member aggregate.
        crew_member_active: bool,
        assigned_at: DateTime<Utc>,
    },
    UnassignCrew {
        crew_member_id: CrewMemberId,
        unassigned_at: DateTime<Utc>,
    },
    Start {
        started_at: DateTime<Utc>,
    },
    Complete {
        actual_revenue: Money,
        completed_at: DateTime<Utc>,
    },
    Cancel {
        reason: CancelReason,
        cancelled_at: DateTime<Utc>,
    },
}

impl JobCommand {
    /// How the command reads in "a completed job cannot …".
    fn action(&self) -> &'static str {
        match self {
            Self::Create { .. } => "be created again",
            Self::Schedule { .. } => "be scheduled",
            Self::Reschedule { .. } => "be rescheduled",
            Self::AssignCrew { .. } => "get crew assigned",
            Self::UnassignCrew { .. } => "have crew unassigned",
            Self::Start { .. } => "start",
            Self::Complete { .. } => "be completed",
            Self::Cancel { .. } => "be cancelled",
        }
    }
}

#[allow(
    clippy::large_enum_variant,
    reason = "short-lived values moved once per command; boxing the addresses would only make matching clumsier"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data")]
pub enum JobEvent {
    JobCreated {
        job_id: JobId,
        customer_id: CustomerId,
        service_type: ServiceType,
        origin: Address,
        destination: Address,
        estimated_price: Money,
        notes: Option<String>,
        created_at: DateTime<Utc>,
    },
    JobScheduled {
        date: NaiveDate,
        window: TimeWindow,
        scheduled_at: DateTime<Utc>,
    },
    JobRescheduled {
        from_date: NaiveDate,
        from_window: TimeWindow,
        date: NaiveDate,
        window: TimeWindow,
        reason: Option<String>,
        rescheduled_at: DateTime<Utc>,
    },
    CrewAssigned {
        crew_member_id: CrewMemberId,
        assigned_at: DateTime<Utc>,
    },
    CrewUnassigned {
        crew_member_id: CrewMemberId,
        unassigned_at: DateTime<Utc>,
    },
    JobStarted {
        started_at: DateTime<Utc>,
    },
    JobCompleted {
        actual_revenue: Money,
        completed_at: DateTime<Utc>,
    },
    JobCancelled {
        reason: CancelReason,
        previous_status: JobStatus,
        cancelled_at: DateTime<Utc>,
    },
}

impl DomainEvent for JobEvent {
    const EVENT_TYPES: &'static [&'static str] = &[
        "JobCreated",
        "JobScheduled",
        "JobRescheduled",
        "CrewAssigned",
        "CrewUnassigned",
        "JobStarted",
        "JobCompleted",
        "JobCancelled",
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Self::JobCreated { .. } => "JobCreated",
            Self::JobScheduled { .. } => "JobScheduled",
            Self::JobRescheduled { .. } => "JobRescheduled",
            Self::CrewAssigned { .. } => "CrewAssigned",
            Self::CrewUnassigned { .. } => "CrewUnassigned",
            Self::JobStarted { .. } => "JobStarted",
            Self::JobCompleted { .. } => "JobCompleted",
            Self::JobCancelled { .. } => "JobCancelled",
        }
    }
}

pub fn decide(state: &JobState, command: JobCommand) -> Result<Vec<JobEvent>, DomainError> {
    const AGGREGATE: &str = "job";
    let (job, command) = match (&state.job, command) {
        (
            None,
            JobCommand::Create {
                job_id,
                customer_id,
                service_type,
                origin,
                destination,
                estimated_price,
                notes,
                created_at,
            },
        ) => {
            return Ok(vec![JobEvent::JobCreated {
                job_id,
                customer_id,
                service_type,
                origin,
                destination,
                estimated_price,
                notes,
                created_at,
            }])
        }
        (Some(_), JobCommand::Create { .. }) => {
            return Err(DomainError::AlreadyExists {
                aggregate: AGGREGATE,
            })
        }
        (None, _) => {
            return Err(DomainError::NotFound {
                aggregate: AGGREGATE,
            })
        }
        (Some(job), command) if job.status.is_terminal() => {
            return Err(DomainError::JobTerminal {
                status: job.status,
                action: command.action(),
            })
        }
        (Some(job), command) => (job, command),
    };
    decide_existing(job, command)
}

/// Commands to a job that exists and is not terminal.
fn decide_existing(job: &JobRecord, command: JobCommand) -> Result<Vec<JobEvent>, DomainError> {
    match command {
        JobCommand::Create { .. } => Err(DomainError::AlreadyExists { aggregate: "job" }),
        JobCommand::Schedule {
            date,
            window,
            scheduled_at,
        } => schedule(job, date, window, scheduled_at),
        JobCommand::Reschedule {
            date,
            window,
            reason,
            rescheduled_at,
        } => reschedule(job, JobSchedule { date, window }, reason, rescheduled_at),
        JobCommand::AssignCrew {
            crew_member_id,
            crew_member_active,
            assigned_at,
        } => assign_crew(job, crew_member_id, crew_member_active, assigned_at),
        JobCommand::UnassignCrew {
            crew_member_id,
            unassigned_at,
        } => unassign_crew(job, crew_member_id, unassigned_at),
        JobCommand::Start { started_at } => start(job, started_at),
        JobCommand::Complete {
            actual_revenue,
            completed_at,
        } => complete(job, actual_revenue, completed_at),
        JobCommand::Cancel {
            reason,
            cancelled_at,
        } => Ok(vec![JobEvent::JobCancelled {
            reason,
            previous_status: job.status,
            cancelled_at,
        }]),
    }
}

fn schedule(
    job: &JobRecord,
    date: NaiveDate,
    window: TimeWindow,
    scheduled_at: DateTime<Utc>,
) -> Result<Vec<JobEvent>, DomainError> {
    match job.status {
        JobStatus::Created => Ok(vec![JobEvent::JobScheduled {
            date,
            window,
            scheduled_at,
        }]),
        JobStatus::Scheduled => Err(DomainError::JobAlreadyScheduled),
        status => Err(DomainError::JobNotSchedulable { status }),
    }
}

/// Rescheduling to the slot the job already has is accepted and emits nothing.
fn reschedule(
    job: &JobRecord,
    to: JobSchedule,
    reason: Option<String>,
    rescheduled_at: DateTime<Utc>,
) -> Result<Vec<JobEvent>, DomainError> {
    let (JobStatus::Scheduled, Some(current)) = (job.status, job.schedule) else {
        return Err(DomainError::JobNotReschedulable { status: job.status });
    };
    if current == to {
        return Ok(vec![]);
    }
    Ok(vec![JobEvent::JobRescheduled {
        from_date: current.date,
        from_window: current.window,
        date: to.date,
        window: to.window,
        reason,
        rescheduled_at,
    }])
}

fn assign_crew(
    job: &JobRecord,
    crew_member_id: CrewMemberId,
    crew_member_active: bool,
    assigned_at: DateTime<Utc>,
) -> Result<Vec<JobEvent>, DomainError> {
    if job.crew.contains(&crew_member_id) {
        Ok(vec![])
    } else if !crew_member_active {
        Err(DomainError::CrewMemberInactive { crew_member_id })
    } else if job.crew.len() >= MAX_CREW {
        Err(DomainError::CrewLimitReached { max: MAX_CREW })
    } else {
        Ok(vec![JobEvent::CrewAssigned {
            crew_member_id,
            assigned_at,
        }])
    }
}

fn unassign_crew(
    job: &JobRecord,
    crew_member_id: CrewMemberId,
    unassigned_at: DateTime<Utc>,
) -> Result<Vec<JobEvent>, DomainError> {
    if !job.crew.contains(&crew_member_id) {
        Err(DomainError::CrewMemberNotAssigned { crew_member_id })
    } else if job.status == JobStatus::InProgress && job.crew.len() == 1 {
        Err(DomainError::JobInProgressNeedsCrew)
    } else {
        Ok(vec![JobEvent::CrewUnassigned {
            crew_member_id,
            unassigned_at,
        }])
    }
}

fn start(job: &JobRecord, started_at: DateTime<Utc>) -> Result<Vec<JobEvent>, DomainError> {
    if job.status != JobStatus::Scheduled {
        Err(DomainError::JobNotStartable { status: job.status })
    } else if job.crew.is_empty() {
        Err(DomainError::JobWithoutCrew)
    } else {
        Ok(vec![JobEvent::JobStarted { started_at }])
    }
}

fn complete(
    job: &JobRecord,
    actual_revenue: Money,
    completed_at: DateTime<Utc>,
) -> Result<Vec<JobEvent>, DomainError> {
    if job.status != JobStatus::InProgress {
        Err(DomainError::JobNotInProgress { status: job.status })
    } else if actual_revenue.currency() != job.currency {
        Err(DomainError::RevenueCurrencyMismatch {
            expected: job.currency,
            actual: actual_revenue.currency(),
        })
    } else {
        Ok(vec![JobEvent::JobCompleted {
            actual_revenue,
            completed_at,
        }])
    }
}

pub fn evolve(mut state: JobState, event: &JobEvent) -> JobState {
    if let JobEvent::JobCreated {
        job_id,
        customer_id,
        service_type,
        estimated_price,
        ..
    } = event
    {
        state.job = Some(JobRecord {
            job_id: *job_id,
            customer_id: *customer_id,
            service_type: *service_type,
            status: JobStatus::Created,
            currency: estimated_price.currency(),
            schedule: None,
            crew: BTreeSet::new(),
        });
        return state;
    }
    let Some(job) = &mut state.job else {
        return state;
    };
    match event {
        JobEvent::JobCreated { .. } => {}
        JobEvent::JobScheduled { date, window, .. }
        | JobEvent::JobRescheduled { date, window, .. } => {
            job.status = JobStatus::Scheduled;
            job.schedule = Some(JobSchedule {
                date: *date,
                window: *window,
            });
        }
        JobEvent::CrewAssigned { crew_member_id, .. } => {
            job.crew.insert(*crew_member_id);
        }
        JobEvent::CrewUnassigned { crew_member_id, .. } => {
            job.crew.remove(crew_member_id);
        }
        JobEvent::JobStarted { .. } => job.status = JobStatus::InProgress,
        JobEvent::JobCompleted { .. } => job.status = JobStatus::Completed,
        JobEvent::JobCancelled { .. } => job.status = JobStatus::Cancelled,
    }
    state
}

impl Aggregate for Job {
    const TYPE: &'static str = "job";
    const SNAPSHOT_VERSION: u32 = SNAPSHOT_VERSION;
    type State = JobState;
    type Command = JobCommand;
    type Event = JobEvent;

    fn decide(state: &JobState, command: JobCommand) -> Result<Vec<JobEvent>, DomainError> {
        decide(state, command)
    }

    fn evolve(state: JobState, event: &JobEvent) -> JobState {
        evolve(state, event)
    }
}
