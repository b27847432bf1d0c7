//! Loads a generated data set into a running system through the command API, so a new
//! system has something to show: `bench seed --via-http http://127.0.0.1:8081 --token …`.
//!
//! Customer, job, user and crew commands are sent with the given token. Thread commands must
//! come from a participant: with `--jwt-secret` (the command API's secret) a token is minted
//! per author; without it, thread commands are skipped and counted.

use std::collections::HashMap;

use anyhow::{bail, Context};
use std::time::Duration as StdDuration;

use chrono::Duration;
use domain::crew_member::CrewMemberCommand;
use domain::customer::CustomerCommand;
use domain::enums::Role;
use domain::ids::{CrewMemberId, CustomerId, JobId, ThreadId, UserId};
use domain::job::JobCommand;
use domain::thread::{ThreadCommand, ThreadKind};
use domain::user::UserCommand;
use platform::auth::{Caller, JwtKeys};
use serde_json::{json, Value};

use crate::generator::{Command, Dataset, Op};

/// Path and JSON body of the command API request for `op`.
pub fn request(op: &Op) -> (String, Value) {
    match &op.command {
        Command::User(id, c) => user_request(*id, c),
        Command::Crew(id, c) => crew_request(*id, c),
        Command::Customer(id, c) => customer_request(*id, c),
        Command::Job(id, c) => job_request(*id, c),
        Command::Thread(id, c) => thread_request(*id, c),
    }
}

fn user_request(id: UserId, c: &UserCommand) -> (String, Value) {
    match c {
        UserCommand::Register {
            display_name,
            email,
            role,
            ..
        } => (
            "/v1/users".into(),
            json!({"user_id": id, "display_name": display_name, "email": email, "role": role}),
        ),
        UserCommand::ChangeRole { role, .. } => {
            (format!("/v1/users/{id}/role"), json!({"role": role}))
        }
        UserCommand::Deactivate { .. } => (format!("/v1/users/{id}/deactivate"), json!({})),
    }
}

fn crew_request(id: CrewMemberId, c: &CrewMemberCommand) -> (String, Value) {
    match c {
        CrewMemberCommand::Register {
            name,
            skills,
            user_id,
            ..
        } => (
            "/v1/crew-members".into(),
            json!({"crew_member_id": id, "name": name, "skills": skills, "user_id": user_id}),
        ),
        CrewMemberCommand::Deactivate { .. } => {
            (format!("/v1/crew-members/{id}/deactivate"), json!({}))
        }
    }
}

fn customer_request(id: CustomerId, c: &CustomerCommand) -> (String, Value) {
    match c {
        CustomerCommand::Register {
            first_name,
            last_name,
            email,
            phone,
            referral_source,
            address,
            ..
        } => (
            "/v1/customers".into(),
            json!({"customer_id": id, "first_name": first_name, "last_name": last_name, "email": email,
                   "phone": phone, "referral_source": referral_source, "address": address}),
        ),
        CustomerCommand::UpdateContact {
            first_name,
            last_name,
            email,
            phone,
            address,
            ..
        } => (
            format!("/v1/customers/{id}/contact"),
            json!({"first_name": first_name, "last_name": last_name, "email": email, "phone": phone, "address": address}),
        ),
        CustomerCommand::ChangeStatus { status, .. } => (
            format!("/v1/customers/{id}/status"),
            json!({"status": status}),
        ),
    }
}

fn job_request(id: JobId, c: &JobCommand) -> (String, Value) {
    match c {
        JobCommand::Create {
            customer_id,
            service_type,
            origin,
            destination,
            estimated_price,
            notes,
            ..
        } => (
            "/v1/jobs".into(),
            json!({"job_id": id, "customer_id": customer_id, "service_type": service_type, "origin": origin,
                   "destination": destination, "estimated_price": estimated_price, "notes": notes}),
        ),
        JobCommand::Schedule { date, window, .. } => (
            format!("/v1/jobs/{id}/schedule"),
            json!({"date": date, "window": window}),
        ),
        JobCommand::Reschedule {
            date,
            window,
            reason,
            ..
        } => (
            format!("/v1/jobs/{id}/reschedule"),
            json!({"date": date, "window": window, "reason": reason}),
        ),
        JobCommand::AssignCrew { crew_member_id, .. } => (
            format!("/v1/jobs/{id}/crew"),
            json!({"crew_member_id": crew_member_id}),
        ),
        JobCommand::UnassignCrew { crew_member_id, .. } => {
            (format!("/v1/jobs/{id}/crew/{crew_member_id}"), json!({}))
        }
        JobCommand::Start { .. } => (format!("/v1/jobs/{id}/start"), json!({})),
        JobCommand::Complete { actual_revenue, .. } => (
            format!("/v1/jobs/{id}/complete"),
            json!({"actual_revenue": actual_revenue}),
        ),
        JobCommand::Cancel { reason, .. } => {
            (format!("/v1/jobs/{id}/cancel"), json!({"reason": reason}))
        }
    }
}

fn thread_request(id: ThreadId, c: &ThreadCommand) -> (String, Value) {
    match c {
        ThreadCommand::Start {
            kind,
            participants,
            title,
            ..
        } => {
            let mut body = json!({"thread_id": id, "kind": kind.name(), "participants": participants, "title": title});
            if let ThreadKind::Job { job_id } = kind {
                body["job_id"] = json!(job_id);
            }
            ("/v1/threads".into(), body)
        }
        ThreadCommand::Post { body, .. } => {
            (format!("/v1/threads/{id}/messages"), json!({"body": body}))
        }
        ThreadCommand::MarkRead { up_to_seq, .. } => (
            format!("/v1/threads/{id}/read"),
            json!({"up_to_seq": up_to_seq}),
        ),
    }
}

/// Mints a token for `user` (tokens for benchmarks and seeding).
pub fn mint(keys: &JwtKeys, user: UserId, name: &str, role: Role) -> anyhow::Result<String> {
    keys.mint(
        &Caller {
            user_id: user,
            name: name.to_owned(),
            role,
        },
        chrono::Duration::hours(12),
    )
    .context("signing a token")
}

#[derive(Debug, Default, serde::Serialize)]
pub struct SeedOutcome {
    pub sent: usize,
    pub skipped_threads: usize,
    pub last_position: Option<u64>,
}

/// Sends every op of `dataset` in order (each stream's commands must arrive in order, so
/// they are sent one at a time).
pub async fn seed(
    base_url: &str,
    token: &str,
    keys: Option<&JwtKeys>,
    dataset: &Dataset,
) -> anyhow::Result<SeedOutcome> {
    let client = reqwest::Client::builder()
        .timeout(StdDuration::from_secs(30))
        .build()?;
    let mut tokens: HashMap<UserId, String> = HashMap::new();
    if let Some(keys) = keys {
        for user in &dataset.users {
            tokens.insert(user.id, mint(keys, user.id, user.name.as_str(), user.role)?);
        }
    }
    let mut outcome = SeedOutcome::default();
    let base = base_url.trim_end_matches('/');
    for op in &dataset.ops {
        let token = match &op.command {
            Command::Thread(..) => match tokens.get(&op.actor) {
                Some(token) => token.as_str(),
                None => {
                    outcome.skipped_threads += 1;
                    continue;
                }
            },
            _ => token,
        };
        let (path, body) = request(op);
        let response = client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path} answered {status}: {answer}");
        }
        outcome.sent += 1;
        outcome.last_position = answer
            .get("position")
            .and_then(Value::as_u64)
            .or(outcome.last_position);
    }
    Ok(outcome)
}

/// A date `days` after the data set's anchor, as the API expects it.
pub fn date_after(dataset: &Dataset, days: i64) -> String {
    (dataset.config.anchor + Duration::days(days)).to_string()
}
