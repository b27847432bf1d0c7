//! `POST /v1/threads`, `…/{id}/messages`, `…/{id}/read`.

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use domain::ids::UserId;
use domain::job::Job;
use domain::thread::{
    direct_thread_id, Thread, ThreadCommand, ThreadEvent, ThreadKind, MAX_PARTICIPANTS,
};
use domain::user::User;
use domain::values::{MessageBody, ThreadTitle};
use platform::problem::{FieldProblem, Problem};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::execute::{self, Decision};
use crate::parse::{self, text};
use crate::request::CommandHeaders;
use crate::request::{CommandRequest, PathIds};
use crate::routes::answers::{CommandAnswers, CreateAnswers};
use crate::routes::bodies::{MarkReadBody, PostMessageBody, StartThreadBody};
use crate::routes::jobs::no_such;
use crate::{authz, AppState};

pub(crate) const START_FIELDS: &[&str] = &["thread_id", "kind", "job_id", "participants", "title"];
pub(crate) const MESSAGE_FIELDS: &[&str] = &["body"];
pub(crate) const READ_FIELDS: &[&str] = &["up_to_seq"];

#[derive(Debug)]
pub(crate) struct NewThread {
    thread_id: Option<Uuid>,
    kind: ThreadKind,
    participants: Vec<Uuid>,
    title: Option<ThreadTitle>,
}

pub(crate) fn parse_start(body: Map<String, Value>) -> Result<NewThread, Problem> {
    parse::body(body, START_FIELDS, |f| {
        let thread_id = f.optional("thread_id", parse::uuid);
        let kind = f.required("kind", |f, name, value| {
            let raw = parse::string(f, name, value)?;
            match raw.as_str() {
                "direct" | "group" | "job" => Some(raw),
                other => {
                    f.error(
                        name,
                        format!("unknown value {other:?}; expected one of: direct, group, job"),
                    );
                    None
                }
            }
        });
        let job_id = f.optional("job_id", parse::uuid);
        let participants = f.required(
            "participants",
            parse::list(MAX_PARTICIPANTS * 2, parse::uuid),
        );
        let title = f.optional("title", text(ThreadTitle::parse));
        let job_id = job_id?;
        let kind = match (kind?.as_str(), job_id) {
            ("job", Some(job_id)) => ThreadKind::Job {
                job_id: job_id.into(),
            },
            ("job", None) => {
                f.error("job_id", "is required for a job thread");
                return None;
            }
            (_, Some(_)) => {
                f.error("job_id", "is only for job threads");
                return None;
            }
            ("direct", None) => ThreadKind::Direct,
            _ => ThreadKind::Group,
        };
        Some(NewThread {
            thread_id: thread_id?,
            kind,
            participants: participants?,
            title: title?,
        })
    })
}

/// The caller must take part; every participant must be a registered, active user; a job
/// thread's job must exist. Starting a direct thread that exists answers with that thread.
#[utoipa::path(
    post,
    path = "/v1/threads",
    summary = "Start a thread",
    operation_id = "start_a_thread",
    tag = "threads",
    params(CommandHeaders),
    request_body = StartThreadBody,
    responses(CreateAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn start(
    State(app): State<AppState>,
    request: CommandRequest,
) -> Result<Response, Problem> {
    let context = &request.context;
    let caller = &context.caller;
    authz::use_threads(caller)?;
    let input = parse_start(request.body)?;
    if !input.participants.contains(&caller.user_id.as_uuid()) {
        return Err(Problem::forbidden(
            "the user starting a thread must be one of its participants",
        ));
    }
    check_participants(&app, &input.participants).await?;
    if let ThreadKind::Job { job_id } = input.kind {
        let (job, _) = execute::load::<Job>(&app, job_id.as_uuid()).await?;
        if job.job.is_none() {
            return Err(no_such("job_id", "job"));
        }
    }
    let participants: Vec<UserId> = input
        .participants
        .iter()
        .copied()
        .map(UserId::from)
        .collect();
    let mut distinct = participants.clone();
    distinct.sort();
    distinct.dedup();
    let id = match (input.thread_id, input.kind, distinct.as_slice()) {
        (Some(id), _, _) => id,
        (None, ThreadKind::Direct, [a, b]) => direct_thread_id(*a, *b).as_uuid(),
        (None, _, _) => Uuid::now_v7(),
    };
    let command = ThreadCommand::Start {
        thread_id: id.into(),
        kind: input.kind,
        participants,
        title: input.title,
        started_by: caller.user_id,
        started_at: Utc::now(),
    };
    let accepted = execute::execute::<Thread, _>(&app, context, id, |state| {
        if state.thread.is_some() && input.kind == ThreadKind::Direct {
            Ok(Decision::Unchanged)
        } else {
            Ok(Decision::Run(command.clone()))
        }
    })
    .await?;
    Ok(accepted.respond(true, |_, _| {}))
}

async fn check_participants(app: &AppState, participants: &[Uuid]) -> Result<(), Problem> {
    let loads = participants
        .iter()
        .map(|id| execute::load::<User>(app, *id));
    let mut errors = Vec::new();
    for (index, loaded) in futures::future::join_all(loads)
        .await
        .into_iter()
        .enumerate()
    {
        let (user, _) = loaded?;
        if user.active_role().is_none() {
            errors.push(FieldProblem {
                field: format!("participants[{index}]"),
                reason: format!("{} is not a registered, active user", participants[index]),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(parse::unknown_references(errors))
    }
}

#[utoipa::path(
    post,
    path = "/v1/threads/{id}/messages",
    summary = "Post a message",
    operation_id = "post_a_message",
    tag = "threads",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    request_body = PostMessageBody,
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn post_message(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    let context = &request.context;
    let caller = &context.caller;
    authz::use_threads(caller)?;
    let id = ids.get("id")?;
    let body = parse::body(request.body, MESSAGE_FIELDS, |f| {
        f.required("body", text(MessageBody::parse))
    })?;
    let message_id = Uuid::now_v7();
    let posted_at = Utc::now();
    let accepted = execute::execute::<Thread, _>(&app, context, id, |state| {
        if state.thread.is_some() {
            authz::participant(state.is_participant(caller.user_id), "post messages")?;
        }
        Ok(Decision::Run(ThreadCommand::Post {
            message_id: message_id.into(),
            author: caller.user_id,
            body: body.clone(),
            posted_at,
        }))
    })
    .await?;
    Ok(accepted.respond(false, |events, response| {
        for event in events {
            if let ThreadEvent::MessagePosted {
                seq, message_id, ..
            } = event
            {
                response.seq = Some(*seq);
                response.message_id = Some(message_id.as_uuid());
            }
        }
    }))
}

#[utoipa::path(
    post,
    path = "/v1/threads/{id}/read",
    summary = "Mark a thread's messages read",
    operation_id = "mark_a_thread_s_messages_read",
    tag = "threads",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    request_body = MarkReadBody,
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn mark_read(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    let context = &request.context;
    let caller = &context.caller;
    authz::use_threads(caller)?;
    let id = ids.get("id")?;
    let up_to_seq = parse::body(request.body, READ_FIELDS, |f| {
        f.required("up_to_seq", parse::unsigned)
    })?;
    let read_at = Utc::now();
    let accepted = execute::execute::<Thread, _>(&app, context, id, |state| {
        if state.thread.is_some() {
            authz::participant(state.is_participant(caller.user_id), "mark messages read")?;
        }
        Ok(Decision::Run(ThreadCommand::MarkRead {
            user: caller.user_id,
            up_to_seq,
            read_at,
        }))
    })
    .await?;
    Ok(accepted.respond(false, |_, _| {}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_job_thread_needs_its_job_id_and_other_kinds_refuse_one() {
        let problem = parse_start(object(json!({"kind": "job", "participants": []}))).unwrap_err();
        assert_eq!(problem.errors[0].field, "job_id");
        let problem = parse_start(object(
            json!({"kind": "direct", "job_id": Uuid::now_v7(), "participants": []}),
        ))
        .unwrap_err();
        assert_eq!(problem.errors[0].field, "job_id");
    }

    #[test]
    fn bad_participants_are_named_by_index() {
        let problem = parse_start(object(json!({
            "kind": "chat", "participants": [Uuid::now_v7(), "x", 3]
        })))
        .unwrap_err();
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["kind", "participants[1]", "participants[2]"]);
    }
}
