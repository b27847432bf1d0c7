//! How refusals and failures become problem documents: domain refusals are 4xx with a stable
//! `rule`, version conflicts 409/412, infrastructure failures 5xx (logged here, once).

use axum::http::StatusCode;
use domain::DomainError;
use events::{AppendError, StoreError};
use platform::problem::Problem;

/// A command the domain refused: 404 for an aggregate that does not exist, else 409 naming
/// the broken rule.
pub(crate) fn domain(error: &DomainError, aggregate: &str, id: &str) -> Problem {
    if error.is_not_found() {
        return Problem::not_found(format!("no such {aggregate} {id}"));
    }
    Problem::new(StatusCode::CONFLICT, error.rule(), error.to_string()).with("rule", error.rule())
}

pub(crate) fn store(error: &StoreError) -> Problem {
    match error {
        StoreError::Mongo(_) => {
            tracing::error!(%error, "event store unavailable");
            Problem::unavailable("the event store is not answering; try again shortly")
        }
        StoreError::Corrupt(_) | StoreError::Encoding(_) => {
            tracing::error!(%error, "event store failure");
            Problem::internal()
        }
    }
}

pub(crate) fn mongo(error: &mongodb::error::Error, doing: &str) -> Problem {
    tracing::error!(%error, "MongoDB failed while {doing}");
    Problem::unavailable("the database is not answering; try again shortly")
}

/// Failures of `append` other than a version conflict, which the caller handles itself.
pub(crate) fn append(error: &AppendError) -> Problem {
    match error {
        AppendError::IdempotencyKeyReused(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "this Idempotency-Key was already used for a different request",
        ),
        AppendError::IdempotencyInProgress(_) => Problem::new(
            StatusCode::CONFLICT,
            "idempotency-in-progress",
            "a request with this Idempotency-Key is still being processed; retry later",
        )
        .with("rule", "idempotency_in_progress"),
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
    Problem::new(
        StatusCode::CONFLICT,
        "concurrent-update",
        "the resource was changed by concurrent requests; retry",
    )
    .with("rule", "concurrent_update")
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
