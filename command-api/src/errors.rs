//! How refusals and failures become problem documents: domain refusals are 4xx with a stable
//! `rule`, version conflicts 409/412, infrastructure failures 5xx (logged here, once).

use axum::http::StatusCode;
use domain::DomainError;
use events::{AppendError, StoreError};
use platform::problem::{FieldProblem, Problem};

/// A command the domain refused: 404 for an aggregate that does not exist, else 409 naming
/// the broken rule.
pub(crate) fn domain(error: &DomainError, aggregate: &str, id: &str) -> Problem {
    if error.is_not_found() {
        return Problem::not_found(format!("no such {aggregate} {id}"));
    }
    refused(error.rule(), error.to_string())
}

/// 409 for the broken rule `rule` (snake_case, e.g. `job_terminal`): the `rule` member names
/// it as it is, the problem type in kebab-case like every other (`…/problems/job-terminal`).
pub(crate) fn refused(rule: &str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::CONFLICT, &rule.replace('_', "-"), detail).with("rule", rule)
}

pub(crate) fn store(error: &StoreError) -> Problem {
    match error {
        StoreError::Mongo(_) => {
            tracing::error!(%error, "event store unavailable");
            Problem::unavailable("the event store is not answering; try again shortly")
        }
        StoreError::Corrupt(_) | StoreError::Encoding(_) | StoreError::Layout { .. } => {
            tracing::error!(%error, "event store failure");
            Problem::internal()
        }
    }
}

/// A store failure while `doing` something besides appending or loading.
pub(crate) fn store_while(error: &StoreError, doing: &str) -> Problem {
    tracing::error!(%error, "the event store failed while {doing}");
    store(error)
}

/// Failures of `append` other than a version conflict, which the caller handles itself.
pub(crate) fn append(error: &AppendError) -> Problem {
    match error {
        AppendError::IdempotencyKeyReused(_) => {
            let mut problem = Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "this Idempotency-Key was already used for a different request",
            );
            problem.errors = vec![FieldProblem {
                field: "Idempotency-Key".into(),
                reason: "was already used for a different request".into(),
            }];
            problem
        }
        AppendError::IdempotencyInProgress(_) => refused(
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being processed; retry later",
        ),
        AppendError::Conflict { actual, .. } => version_conflict(*actual),
        AppendError::Store(error) => store(error),
        AppendError::NoEvents => {
            tracing::error!("append attempted without events");
            Problem::internal()
        }
    }
}

/// The stream moved on while the command was being decided, and retries did not help.
pub(crate) fn version_conflict(current_version: u64) -> Problem {
    refused(
        "concurrent_update",
        "the resource was changed by concurrent requests; retry",
    )
    .with("current_version", current_version)
}

/// `If-Match` named a version that is no longer current.
pub(crate) fn stale(expected: u64, current_version: u64) -> Problem {
    Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "stale-version",
        format!("If-Match names version {expected} but the current version is {current_version}"),
    )
    .with("current_version", current_version)
}

#[cfg(test)]
mod tests {
    use platform::problem::is_problem_code;

    use super::*;

    fn code(problem: &Problem) -> &str {
        problem
            .type_uri
            .strip_prefix("https://simplepro.dev/problems/")
            .unwrap()
    }

    #[test]
    fn a_refused_rule_keeps_its_name_and_has_a_kebab_case_type() {
        let problem = domain(&DomainError::JobWithoutCrew, "job", "j1");
        assert_eq!(problem.status, StatusCode::CONFLICT);
        assert_eq!(code(&problem), "job-without-crew");
        assert_eq!(problem.extra["rule"], "job_without_crew");
        let conflict = version_conflict(3);
        assert_eq!(code(&conflict), "concurrent-update");
        assert_eq!(conflict.extra["rule"], "concurrent_update");
        assert_eq!(conflict.extra["current_version"], 3);
        for problem in [
            stale(1, 2),
            append(&AppendError::NoEvents),
            Problem::not_found("x"),
        ] {
            assert!(is_problem_code(code(&problem)), "{}", problem.type_uri);
        }
    }
}
