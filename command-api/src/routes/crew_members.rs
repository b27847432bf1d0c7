//! `POST /v1/crew-members`, `…/{id}/deactivate`.

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use domain::crew_member::{CrewMember, CrewMemberCommand, MAX_SKILLS};
use domain::user::User;
use domain::values::{PersonName, Skill};
use platform::problem::Problem;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::execute::{self, Decision};
use crate::parse::{self, text};
use crate::request::CommandHeaders;
use crate::request::{CommandRequest, PathIds};
use crate::routes::answers::{CommandAnswers, CreateAnswers};
use crate::routes::bodies::RegisterCrewMemberBody;
use crate::routes::jobs::no_such;
use crate::{authz, AppState};

pub(crate) const REGISTER_FIELDS: &[&str] = &["crew_member_id", "name", "skills", "user_id"];

#[derive(Debug)]
pub(crate) struct NewCrewMember {
    crew_member_id: Option<Uuid>,
    name: PersonName,
    skills: Vec<Skill>,
    user_id: Option<Uuid>,
}

pub(crate) fn parse_register(body: Map<String, Value>) -> Result<NewCrewMember, Problem> {
    parse::body(body, REGISTER_FIELDS, |f| {
        let crew_member_id = f.optional("crew_member_id", parse::uuid);
        let name = f.required("name", text(PersonName::parse));
        // Duplicates are merged by the domain, so allow some slack before counting.
        let skills = f.optional("skills", parse::list(MAX_SKILLS * 5, text(Skill::parse)));
        let user_id = f.optional("user_id", parse::uuid);
        Some(NewCrewMember {
            crew_member_id: crew_member_id?,
            name: name?,
            skills: skills?.unwrap_or_default(),
            user_id: user_id?,
        })
    })
}

/// A linked user must be registered, so crew can later log in and act on their jobs.
#[utoipa::path(
    post,
    path = "/v1/crew-members",
    summary = "Register a crew member",
    operation_id = "register_a_crew_member",
    tag = "crew-members",
    params(CommandHeaders),
    request_body = RegisterCrewMemberBody,
    responses(CreateAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn register(
    State(app): State<AppState>,
    request: CommandRequest,
) -> Result<Response, Problem> {
    let context = &request.context;
    authz::manage_crew_members(&context.caller)?;
    let input = parse_register(request.body)?;
    if let Some(user_id) = input.user_id {
        let (user, _) = execute::load::<User>(&app, user_id).await?;
        if user.user.is_none() {
            return Err(no_such("user_id", "user"));
        }
    }
    let id = input.crew_member_id.unwrap_or_else(Uuid::now_v7);
    let command = CrewMemberCommand::Register {
        crew_member_id: id.into(),
        name: input.name,
        skills: input.skills,
        user_id: input.user_id.map(Into::into),
        registered_at: Utc::now(),
    };
    let accepted = execute::execute::<CrewMember, _>(&app, context, id, |_| {
        Ok(Decision::Run(command.clone()))
    })
    .await?;
    Ok(accepted.respond(true, |_, _| {}))
}

#[utoipa::path(
    post,
    path = "/v1/crew-members/{id}/deactivate",
    summary = "Deactivate a crew member",
    operation_id = "deactivate_a_crew_member",
    tag = "crew-members",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn deactivate(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    let context = &request.context;
    authz::manage_crew_members(&context.caller)?;
    let id = ids.get("id")?;
    parse::body(request.body, &[], |_| Some(()))?;
    let deactivated_at = Utc::now();
    let accepted = execute::execute::<CrewMember, _>(&app, context, id, |_| {
        Ok(Decision::Run(CrewMemberCommand::Deactivate {
            deactivated_at,
        }))
    })
    .await?;
    Ok(accepted.respond(false, |_, _| {}))
}
