//! `POST /v1/users`, `…/{id}/role`, `…/{id}/deactivate` (admins only).

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use domain::enums::Role;
use domain::ids::UserId;
use domain::user::{User, UserCommand};
use domain::values::{Email, PersonName};
use platform::problem::Problem;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::execute::{self, Decision};
use crate::parse::{self, text};
use crate::request::CommandHeaders;
use crate::request::{CommandContext, CommandRequest, PathIds};
use crate::routes::answers::{CommandAnswers, CreateAnswers};
use crate::routes::bodies::{ChangeRoleBody, RegisterUserBody};
use crate::{authz, AppState};

pub(crate) const REGISTER_FIELDS: &[&str] = &["user_id", "display_name", "email", "role"];
pub(crate) const ROLE_FIELDS: &[&str] = &["role"];

#[derive(Debug)]
pub(crate) struct NewUser {
    user_id: Option<Uuid>,
    display_name: PersonName,
    email: Email,
    role: Role,
}

pub(crate) fn parse_register(body: Map<String, Value>) -> Result<NewUser, Problem> {
    parse::body(body, REGISTER_FIELDS, |f| {
        let user_id = f.optional("user_id", parse::uuid);
        let display_name = f.required("display_name", text(PersonName::parse));
        let email = f.required("email", text(Email::parse));
        let role = f.required("role", parse::choice);
        Some(NewUser {
            user_id: user_id?,
            display_name: display_name?,
            email: email?,
            role: role?,
        })
    })
}

#[utoipa::path(
    post,
    path = "/v1/users",
    summary = "Register a staff user",
    operation_id = "register_a_staff_user",
    tag = "users",
    params(CommandHeaders),
    request_body = RegisterUserBody,
    responses(CreateAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn register(
    State(app): State<AppState>,
    request: CommandRequest,
) -> Result<Response, Problem> {
    authz::manage_users(&request.context.caller)?;
    let input = parse_register(request.body)?;
    let id = input.user_id.unwrap_or_else(Uuid::now_v7);
    let command = UserCommand::Register {
        user_id: id.into(),
        display_name: input.display_name,
        email: input.email,
        role: input.role,
        registered_at: Utc::now(),
    };
    run(&app, &request.context, id, command, true).await
}

#[utoipa::path(
    post,
    path = "/v1/users/{id}/role",
    summary = "Change a user's role",
    operation_id = "change_a_user_s_role",
    tag = "users",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    request_body = ChangeRoleBody,
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn change_role(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    authz::manage_users(&request.context.caller)?;
    let id = ids.get("id")?;
    authz::not_own_account(&request.context.caller, id, "change the role of")?;
    let role = parse::body(request.body, ROLE_FIELDS, |f| {
        f.required("role", parse::choice)
    })?;
    let command = UserCommand::ChangeRole {
        role,
        changed_at: Utc::now(),
    };
    run(&app, &request.context, id, command, false).await
}

#[utoipa::path(
    post,
    path = "/v1/users/{id}/deactivate",
    summary = "Deactivate a user",
    operation_id = "deactivate_a_user",
    tag = "users",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn deactivate(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    authz::manage_users(&request.context.caller)?;
    let id = ids.get("id")?;
    authz::not_own_account(&request.context.caller, id, "deactivate")?;
    parse::body(request.body, &[], |_| Some(()))?;
    let command = UserCommand::Deactivate {
        deactivated_at: Utc::now(),
    };
    run(&app, &request.context, id, command, false).await
}

async fn run(
    app: &AppState,
    context: &CommandContext,
    id: Uuid,
    command: UserCommand,
    create: bool,
) -> Result<Response, Problem> {
    let accepted =
        execute::execute::<User, _>(app, context, id, |_| Ok(Decision::Run(command.clone())))
            .await?;
    // The user's next request, to any service, must meet their new standing: this process
    // forgets it now, and the answer waits (bounded) until the event is on the bus, from
    // which every other service drops it. Waiting longer is better than a deactivated
    // user's token working for another moment; a bus that is down is bounded by the
    // standing's time to live instead.
    let user = UserId::from(id);
    app.auth.accounts.forget(user).await;
    let appended = !accepted.events.is_empty() && !accepted.replayed;
    if appended
        && !app
            .auth
            .accounts
            .published(user, accepted.version, app.position_wait)
            .await
    {
        tracing::warn!(%user, "user event not seen on the bus in time; other services rely on the standing's time to live");
    }
    Ok(accepted.respond(create, |_, _| {}))
}
