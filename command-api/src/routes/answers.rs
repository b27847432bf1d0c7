//! The answers every command documents: [`CommandAccepted`] on success and a problem
//! document for each way it can be refused, so that the handlers' `#[utoipa::path]`s name
//! them with one word.

use std::collections::BTreeMap;

use platform::consistency::POSITION_HEADER;
use platform::problem::Problem;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::Header;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoResponses, ToSchema};

use crate::execute::CommandAccepted;

/// The answers of a command on an existing aggregate.
pub(crate) struct CommandAnswers;

/// The answers of a command that creates an aggregate.
pub(crate) struct CreateAnswers;

impl IntoResponses for CommandAnswers {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut answers = problems();
        answers.insert(
            "200".into(),
            accepted("Accepted; `event_ids` is empty when nothing changed").into(),
        );
        answers
    }
}

impl IntoResponses for CreateAnswers {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut answers = problems();
        answers.insert("201".into(), accepted("Created").into());
        answers.insert(
            "200".into(),
            accepted(
                "Nothing new to create (the same request again, or an existing direct thread)",
            )
            .into(),
        );
        answers
    }
}

/// A problem document answer.
pub(crate) fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build(),
        )
        .build()
}

fn accepted(description: &str) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(CommandAccepted::name())))
            .build(),
    );
    let headers = [
        (POSITION_HEADER, "Global position of the last event (when known), as the body's `position`: pass it to the query API as `min_position` or `X-Min-Position`.", Type::Integer),
        ("Idempotent-Replayed", "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.", Type::String),
        ("X-Correlation-Id", "The request's correlation id, recorded on its events.", Type::String),
    ];
    for (name, text, kind) in headers {
        let mut header = Header::new(ObjectBuilder::new().schema_type(kind).build());
        header.description = Some(text.to_owned());
        response = response.header(name, header);
    }
    response.build()
}

fn problems() -> BTreeMap<String, RefOr<Response>> {
    [
        ("400", "Malformed JSON, path id or header"),
        ("401", "Missing or invalid bearer token"),
        ("403", "The caller's role or relation does not allow this command"),
        ("404", "No such aggregate, or ids in the body that name nothing registered (each listed in `errors`)"),
        ("409", "Refused by a business rule (`rule` names it, and the problem `type` ends in it in kebab-case: `job_terminal` is `…/problems/job-terminal`), or a concurrency conflict"),
        ("412", "If-Match is stale; `current_version` is the version now"),
        ("413", "Body over the size limit"),
        ("415", "Body is not application/json"),
        ("422", "Invalid fields, all listed in `errors`, or an Idempotency-Key reused for another request"),
        ("429", "Over the caller's or the address's request rate; retry after `Retry-After` seconds"),
        ("500", "Internal error (logged)"),
        ("503", "A dependency is unavailable, or the service is `overloaded` (more requests in progress than `--max-in-flight`); retry after `Retry-After` seconds"),
    ]
    .into_iter()
    .map(|(status, description)| (status.to_owned(), problem(description).into()))
    .collect()
}
