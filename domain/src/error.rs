//! Errors: field parse failures, refused commands and unreadable payloads.

use crate::enums::{CustomerStatus, JobStatus};
use crate::ids::CrewMemberId;
use crate::money::Currency;

/// An input that could not become a value type, e.g. an email without `@`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// The input field, in snake_case (`email`, `address.line1`).
    pub field: &'static str,
    /// Plain-language reason the input was refused.
    pub reason: String,
}

impl FieldError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A stored payload that does not decode into a known event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("unknown event type {event_type:?}")]
    UnknownEventType { event_type: String },
    #[error("invalid {event_type} payload: {reason}")]
    Invalid { event_type: String, reason: String },
}

/// A command refused by a business rule. Every variant is one rule; the message names it.
///
/// The HTTP layer maps [`DomainError::NotFound`] to 404 and everything else to 409, so
/// [`DomainError::rule`] gives clients a stable machine code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{aggregate} not found; only its create command is accepted before it exists")]
    NotFound { aggregate: &'static str },
    #[error("{aggregate} already exists; its create command cannot be repeated")]
    AlreadyExists { aggregate: &'static str },

    #[error("customer status cannot change from {from} to {to}; a customer never returns to lead")]
    CustomerStatusTransition {
        from: CustomerStatus,
        to: CustomerStatus,
    },

    #[error("job is {}; a {} job cannot {action}", status.describe(), status.describe())]
    JobTerminal {
        status: JobStatus,
        action: &'static str,
    },
    #[error("job is already scheduled; use reschedule to change its date or window")]
    JobAlreadyScheduled,
    #[error("job is {}; only a newly created job can be scheduled", status.describe())]
    JobNotSchedulable { status: JobStatus },
    #[error("job is {}; only a scheduled job can be rescheduled", status.describe())]
    JobNotReschedulable { status: JobStatus },
    #[error("job is {}; only a scheduled job can start", status.describe())]
    JobNotStartable { status: JobStatus },
    #[error("job has no crew assigned; a job cannot start without crew")]
    JobWithoutCrew,
    #[error("job is {}; only a job in progress can be completed", status.describe())]
    JobNotInProgress { status: JobStatus },
    #[error("actual revenue is in {actual} but the estimate is in {expected}; revenue must use the estimate's currency")]
    RevenueCurrencyMismatch {
        expected: Currency,
        actual: Currency,
    },
    #[error("crew member {crew_member_id} is inactive; only active crew members can be assigned")]
    CrewMemberInactive { crew_member_id: CrewMemberId },
    #[error("job already has {max} crew members; a job can have at most {max}")]
    CrewLimitReached { max: usize },
    #[error("crew member {crew_member_id} is not assigned to this job")]
    CrewMemberNotAssigned { crew_member_id: CrewMemberId },
    #[error("job is in progress; its last crew member cannot be unassigned")]
    JobInProgressNeedsCrew,

    #[error("user is deactivated; a deactivated user's role cannot change")]
    UserDeactivated,
    #[error("user is already deactivated")]
    UserAlreadyDeactivated,

    #[error("crew member is already deactivated")]
    CrewMemberAlreadyDeactivated,
    #[error("a crew member can have at most {max} skills")]
    TooManySkills { max: usize },

    #[error("a {kind} thread needs {} distinct participants, got {actual}", count_range(*min, *max))]
    ThreadParticipantCount {
        kind: &'static str,
        min: usize,
        max: usize,
        actual: usize,
    },
    #[error("a group thread needs a title")]
    GroupThreadNeedsTitle,
    #[error("the user starting a thread must be one of its participants")]
    StarterNotParticipant,
    #[error("a direct thread's id must be direct_thread_id of its two participants")]
    DirectThreadIdMismatch,
    #[error("only thread participants can {action}")]
    NotThreadParticipant { action: &'static str },
    #[error("cannot mark messages read up to {up_to_seq}; the thread's messages are numbered 1 to {last_seq}")]
    ReadMarkerOutOfRange { up_to_seq: u64, last_seq: u64 },
}

fn count_range(min: usize, max: usize) -> String {
    if min == max {
        format!("exactly {min}")
    } else {
        format!("{min} to {max}")
    }
}

impl DomainError {
    /// Stable machine code of the broken rule, e.g. `"job_not_schedulable"`.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::CustomerStatusTransition { .. } => "customer_status_transition_not_allowed",
            Self::JobTerminal { .. } => "job_terminal",
            Self::JobAlreadyScheduled => "job_already_scheduled",
            Self::JobNotSchedulable { .. } => "job_not_schedulable",
            Self::JobNotReschedulable { .. } => "job_not_reschedulable",
            Self::JobNotStartable { .. } => "job_not_startable",
            Self::JobWithoutCrew => "job_without_crew",
            Self::JobNotInProgress { .. } => "job_not_in_progress",
            Self::RevenueCurrencyMismatch { .. } => "revenue_currency_mismatch",
            Self::CrewMemberInactive { .. } => "crew_member_inactive",
            Self::CrewLimitReached { .. } => "crew_limit_reached",
            Self::CrewMemberNotAssigned { .. } => "crew_member_not_assigned",
            Self::JobInProgressNeedsCrew => "job_in_progress_needs_crew",
            Self::UserDeactivated => "user_deactivated",
            Self::UserAlreadyDeactivated => "user_already_deactivated",
            Self::CrewMemberAlreadyDeactivated => "crew_member_already_deactivated",
            Self::TooManySkills { .. } => "too_many_skills",
            Self::ThreadParticipantCount { .. } => "thread_participant_count",
            Self::GroupThreadNeedsTitle => "group_thread_needs_title",
            Self::StarterNotParticipant => "starter_not_participant",
            Self::DirectThreadIdMismatch => "direct_thread_id_mismatch",
            Self::NotThreadParticipant { .. } => "not_thread_participant",
            Self::ReadMarkerOutOfRange { .. } => "read_marker_out_of_range",
        }
    }

    /// True for [`DomainError::NotFound`], which the HTTP layer maps to 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_rule_plainly() {
        let err = DomainError::JobTerminal {
            status: JobStatus::Completed,
            action: "be rescheduled",
        };
        assert_eq!(
            err.to_string(),
            "job is completed; a completed job cannot be rescheduled"
        );
        assert_eq!(
            DomainError::JobWithoutCrew.to_string(),
            "job has no crew assigned; a job cannot start without crew"
        );
        let err = DomainError::ThreadParticipantCount {
            kind: "direct",
            min: 2,
            max: 2,
            actual: 1,
        };
        assert_eq!(
            err.to_string(),
            "a direct thread needs exactly 2 distinct participants, got 1"
        );
        assert_eq!(
            DomainError::NotThreadParticipant { action: "post" }.to_string(),
            "only thread participants can post"
        );
    }

    #[test]
    fn only_not_found_is_not_found() {
        assert!(DomainError::NotFound { aggregate: "job" }.is_not_found());
        assert!(!DomainError::JobWithoutCrew.is_not_found());
        assert_eq!(DomainError::JobWithoutCrew.rule(), "job_without_crew");
    }
}
