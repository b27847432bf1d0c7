//! `POST /v1/jobs` and the job lifecycle commands.

use axum::extract::State;
use axum::response::Response;
use chrono::{NaiveDate, Utc};
use domain::calendar::BusinessTimeZone;
use domain::crew_member::CrewMember;
use domain::customer::Customer;
use domain::enums::ServiceType;
use domain::job::{Job, JobCommand};
use domain::money::{Currency, Money};
use domain::values::{Address, CancelReason, TimeWindow};
use platform::auth::Caller;
use platform::problem::Problem;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::execute::{self, Decision};
use crate::parse::{self, text};
use crate::request::CommandHeaders;
use crate::request::{CommandContext, CommandRequest, PathIds};
use crate::routes::answers::{CommandAnswers, CreateAnswers};
use crate::routes::bodies::{
    AssignCrewBody, CancelJobBody, CompleteJobBody, CreateJobBody, RescheduleJobBody,
    ScheduleJobBody,
};
use crate::{authz, AppState};

pub(crate) const CREATE_FIELDS: &[&str] = &[
    "job_id",
    "customer_id",
    "service_type",
    "origin",
    "destination",
    "estimated_price",
    "notes",
];
pub(crate) const SCHEDULE_FIELDS: &[&str] = &["date", "window"];
pub(crate) const RESCHEDULE_FIELDS: &[&str] = &["date", "window", "reason"];
pub(crate) const ASSIGN_FIELDS: &[&str] = &["crew_member_id"];
pub(crate) const COMPLETE_FIELDS: &[&str] = &["actual_revenue"];
pub(crate) const CANCEL_FIELDS: &[&str] = &["reason"];

/// Longest job note, in characters.
pub(crate) const MAX_NOTES: usize = 2_000;
/// Longest reschedule reason, in characters.
pub(crate) const MAX_RESCHEDULE_REASON: usize = 500;

#[derive(Debug)]
pub(crate) struct NewJob {
    job_id: Option<Uuid>,
    customer_id: Uuid,
    service_type: ServiceType,
    origin: Address,
    destination: Address,
    estimated_price: Money,
    notes: Option<String>,
}

pub(crate) fn parse_create(
    body: Map<String, Value>,
    currency: Currency,
) -> Result<NewJob, Problem> {
    parse::body(body, CREATE_FIELDS, |f| {
        let job_id = f.optional("job_id", parse::uuid);
        let customer_id = f.required("customer_id", parse::uuid);
        let service_type = f.required("service_type", parse::choice);
        let origin = f.required("origin", parse::address);
        let destination = f.required("destination", parse::address);
        let estimated_price = f.required("estimated_price", parse::money(currency));
        let notes = f.optional("notes", parse::free_text(MAX_NOTES));
        Some(NewJob {
            job_id: job_id?,
            customer_id: customer_id?,
            service_type: service_type?,
            origin: origin?,
            destination: destination?,
            estimated_price: estimated_price?,
            notes: notes?.flatten(),
        })
    })
}

/// The customer must exist; that fact lives in another aggregate, so it is checked here (from
/// a state that may be behind the customer's, which is enough: customers are never removed).
#[utoipa::path(
    post,
    path = "/v1/jobs",
    summary = "Create a job",
    operation_id = "create_a_job",
    tag = "jobs",
    params(CommandHeaders),
    request_body = CreateJobBody,
    responses(CreateAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(app): State<AppState>,
    request: CommandRequest,
) -> Result<Response, Problem> {
    let context = &request.context;
    authz::create_jobs(&context.caller)?;
    let input = parse_create(request.body, app.currency)?;
    if let Some(done) = execute::replay::<Job>(&app, context).await? {
        return Ok(done.respond(true, |_, _| {}));
    }
    let customer =
        execute::load_existing::<Customer>(&app, input.customer_id, |c| c.customer.is_some())
            .await?;
    if customer.customer.is_none() {
        return Err(no_such("customer_id", "customer"));
    }
    let id = input.job_id.unwrap_or_else(Uuid::now_v7);
    let command = JobCommand::Create {
        job_id: id.into(),
        customer_id: input.customer_id.into(),
        service_type: input.service_type,
        origin: input.origin,
        destination: input.destination,
        estimated_price: input.estimated_price,
        notes: input.notes,
        created_at: Utc::now(),
    };
    run(&app, &request.context, id, command, true).await
}

fn parse_slot(
    body: Map<String, Value>,
    known: &[&str],
    business: BusinessTimeZone,
) -> Result<(NaiveDate, TimeWindow, Option<String>), Problem> {
    parse::body(body, known, |f| {
        let date = f.required("date", parse::date);
        let window = f.required("window", parse::window(business));
        let reason = f.optional("reason", parse::free_text(MAX_RESCHEDULE_REASON));
        Some((date?, window?, reason?.flatten()))
    })
}

#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/schedule",
    summary = "Schedule a job",
    operation_id = "schedule_a_job",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    request_body = ScheduleJobBody,
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn schedule(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    authz::plan_jobs(&request.context.caller)?;
    let id = ids.get("id")?;
    let (date, window, _) = parse_slot(request.body, SCHEDULE_FIELDS, app.time_zone)?;
    let command = JobCommand::Schedule {
        date,
        window,
        scheduled_at: Utc::now(),
    };
    run(&app, &request.context, id, command, false).await
}

#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/reschedule",
    summary = "Reschedule a job",
    operation_id = "reschedule_a_job",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    request_body = RescheduleJobBody,
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn reschedule(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    authz::plan_jobs(&request.context.caller)?;
    let id = ids.get("id")?;
    let (date, window, reason) = parse_slot(request.body, RESCHEDULE_FIELDS, app.time_zone)?;
    let command = JobCommand::Reschedule {
        date,
        window,
        reason,
        rescheduled_at: Utc::now(),
    };
    run(&app, &request.context, id, command, false).await
}

/// The crew member must exist; whether it is active goes into the command.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/crew",
    summary = "Assign a crew member to a job",
    operation_id = "assign_a_crew_member_to_a_job",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    request_body = AssignCrewBody,
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn assign_crew(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    authz::plan_jobs(&request.context.caller)?;
    let id = ids.get("id")?;
    let crew_member_id = parse::body(request.body, ASSIGN_FIELDS, |f| {
        f.required("crew_member_id", parse::uuid)
    })?;
    let (crew_member, _) = execute::load::<CrewMember>(&app, crew_member_id).await?;
    if crew_member.crew_member.is_none() {
        return Err(no_such("crew_member_id", "crew member"));
    }
    let command = JobCommand::AssignCrew {
        crew_member_id: crew_member_id.into(),
        crew_member_active: crew_member.active(),
        assigned_at: Utc::now(),
    };
    run(&app, &request.context, id, command, false).await
}

#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}/crew/{crew_member_id}",
    summary = "Unassign a crew member from a job",
    operation_id = "unassign_a_crew_member_from_a_job",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), ("crew_member_id" = Uuid, Path, description = "UUID of the crew member; a malformed one is a 400"), CommandHeaders),
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn unassign_crew(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    authz::plan_jobs(&request.context.caller)?;
    let id = ids.get("id")?;
    let crew_member_id = ids.get("crew_member_id")?;
    parse::body(request.body, &[], |_| Some(()))?;
    let command = JobCommand::UnassignCrew {
        crew_member_id: crew_member_id.into(),
        unassigned_at: Utc::now(),
    };
    run(&app, &request.context, id, command, false).await
}

#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/start",
    summary = "Start a job",
    operation_id = "start_a_job",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn start(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    authz::run_jobs(&request.context.caller)?;
    let id = ids.get("id")?;
    parse::body(request.body, &[], |_| Some(()))?;
    check_crew_assignment(&app, &request.context.caller, id).await?;
    let command = JobCommand::Start {
        started_at: Utc::now(),
    };
    run(&app, &request.context, id, command, false).await
}

#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/complete",
    summary = "Complete a job",
    operation_id = "complete_a_job",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    request_body = CompleteJobBody,
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn complete(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    authz::run_jobs(&request.context.caller)?;
    let id = ids.get("id")?;
    let actual_revenue = parse::body(request.body, COMPLETE_FIELDS, |f| {
        f.required("actual_revenue", parse::money(app.currency))
    })?;
    check_crew_assignment(&app, &request.context.caller, id).await?;
    let command = JobCommand::Complete {
        actual_revenue,
        completed_at: Utc::now(),
    };
    run(&app, &request.context, id, command, false).await
}

#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    summary = "Cancel a job",
    operation_id = "cancel_a_job",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    request_body = CancelJobBody,
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn cancel(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    authz::plan_jobs(&request.context.caller)?;
    let id = ids.get("id")?;
    let reason = parse::body(request.body, CANCEL_FIELDS, |f| {
        f.required("reason", text(CancelReason::parse))
    })?;
    let command = JobCommand::Cancel {
        reason,
        cancelled_at: Utc::now(),
    };
    run(&app, &request.context, id, command, false).await
}

/// A crew caller must be the user of one of the crew members assigned to the job. An unknown
/// job passes here and is answered 404 by the domain.
async fn check_crew_assignment(app: &AppState, caller: &Caller, id: Uuid) -> Result<(), Problem> {
    if !authz::needs_assignment(caller) {
        return Ok(());
    }
    let (job, _) = execute::load::<Job>(app, id).await?;
    let Some(job) = job.job else {
        return Ok(());
    };
    let loads = job
        .crew
        .iter()
        .map(|member| execute::load::<CrewMember>(app, member.as_uuid()));
    let mut assigned = false;
    for loaded in futures::future::join_all(loads).await {
        let (member, _) = loaded?;
        assigned |= member.user_id() == Some(caller.user_id);
    }
    authz::crew_on_job(assigned)
}

/// A 422 for a body field naming an aggregate that does not exist.
pub(crate) fn no_such(field: &str, aggregate: &str) -> Problem {
    parse::unknown_references(vec![platform::problem::FieldProblem {
        field: field.into(),
        reason: format!("no such {aggregate}"),
    }])
}

async fn run(
    app: &AppState,
    context: &CommandContext,
    id: Uuid,
    command: JobCommand,
    create: bool,
) -> Result<Response, Problem> {
    let accepted =
        execute::execute::<Job, _>(app, context, id, |_| Ok(Decision::Run(command.clone())))
            .await?;
    Ok(accepted.respond(create, |_, _| {}))
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

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn a_job_in_another_currency_is_refused_on_that_field() {
        let problem = parse_create(
            object(json!({
                "customer_id": Uuid::now_v7(), "service_type": "local_move",
                "origin": {"line1": "1 Main St", "city": "A"},
                "destination": {"line1": "2 Oak Ave", "city": "B"},
                "estimated_price": {"amount_minor": 1000, "currency": "EUR"}
            })),
            usd(),
        )
        .unwrap_err();
        assert_eq!(problem.errors.len(), 1);
        assert_eq!(problem.errors[0].field, "estimated_price.currency");
    }

    #[test]
    fn every_missing_job_field_is_listed() {
        let problem = parse_create(object(json!({"notes": 5})), usd()).unwrap_err();
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "customer_id",
                "service_type",
                "origin",
                "destination",
                "estimated_price",
                "notes"
            ]
        );
    }

    fn business() -> BusinessTimeZone {
        BusinessTimeZone::parse("America/Chicago").unwrap()
    }

    #[test]
    fn windows_accept_minutes_or_seconds_and_must_run_forward() {
        let (date, window, _) = parse_slot(
            object(json!({"date": "2025-03-10", "window": {"start": "08:00", "end": "12:00:00"}})),
            SCHEDULE_FIELDS,
            business(),
        )
        .unwrap();
        assert_eq!(date.to_string(), "2025-03-10");
        assert_eq!(window.end().to_string(), "12:00:00");
        let problem = parse_slot(
            object(json!({"date": "10/03/2025", "window": {"start": "12:00", "end": "08:00"}})),
            SCHEDULE_FIELDS,
            business(),
        )
        .unwrap_err();
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["date", "window"]);
        let problem = parse_slot(
            object(json!({"date": "2025-02-30", "window": {"start": "8am", "end": 9}})),
            SCHEDULE_FIELDS,
            business(),
        )
        .unwrap_err();
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["date", "window.start", "window.end"]);
    }

    #[test]
    fn a_window_is_in_the_business_zone_unless_it_names_another() {
        let body = |window| object(json!({"date": "2025-03-10", "window": window}));
        let (_, window, _) = parse_slot(
            body(json!({"start": "08:00", "end": "12:00"})),
            SCHEDULE_FIELDS,
            business(),
        )
        .unwrap();
        assert_eq!(window.time_zone(), business());
        let (_, window, _) = parse_slot(
            body(json!({"start": "08:00", "end": "12:00", "time_zone": "Europe/Lisbon"})),
            SCHEDULE_FIELDS,
            business(),
        )
        .unwrap();
        assert_eq!(window.time_zone().name(), "Europe/Lisbon");
        let problem = parse_slot(
            body(json!({"start": "08:00", "end": "12:00", "time_zone": "Mars/Olympus"})),
            SCHEDULE_FIELDS,
            business(),
        )
        .unwrap_err();
        assert_eq!(problem.errors[0].field, "window.time_zone");
        assert!(problem.errors[0].reason.contains("unknown IANA time zone"));
    }

    #[test]
    fn negative_money_is_refused() {
        let problem = parse::body(
            object(json!({"actual_revenue": {"amount_minor": -1, "currency": "USD"}})),
            COMPLETE_FIELDS,
            |f| f.required("actual_revenue", parse::money(usd())),
        )
        .unwrap_err();
        assert_eq!(problem.errors[0].field, "actual_revenue.amount_minor");
    }
}
