//! The authorization matrix: every route of both APIs × every role × the caller's own or
//! another user's data, kept as one table ([`MATRIX`]) from which the cases are generated,
//! plus one case per route without a token.
//!
//! "Own" and "other" mean what a route makes of the caller's relation to the data: for a
//! thread, whether the caller takes part in it; for a job a crew user runs or reads, whether
//! their crew-member record is assigned to it; for a user account, whether it is the caller's
//! own. Routes with no such relation answer both alike. Own cases are called by users who take
//! part in the world's thread and job (insiders), other cases by users who take part in
//! nothing (outsiders), so the reads of an outsider must reveal nothing of it.
//!
//! Every command case gets fresh aggregates of its own, so an accepted command changes no
//! other case's data. Besides the status, every answer is checked for the world's secret
//! message text: only a participant's reads of the thread (its messages, the thread list's
//! preview, the event log) may carry it.

use std::collections::BTreeSet;

use domain::enums::Role;
use futures::StreamExt;
use platform::consistency::MIN_POSITION_HEADER;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::system::{Staff, System};
use tests::bodies;

/// The body of an answer; of a server-sent event stream, which never ends, the data of its
/// first message (the body the matching read answers).
async fn answer_text(mut response: reqwest::Response) -> String {
    let streams = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streams {
        return response.text().await.unwrap_or_default();
    }
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let first = received
            .split_inclusive("\n\n")
            .find(|block| block.ends_with("\n\n") && block.contains("data:"));
        if let Some(block) = first {
            return block
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
        }
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => received.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return received,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    Command,
    Query,
}
use Api::{Command, Query};

/// One row: a route, then one letter per role in the order of [`ROLES`] for the caller's own
/// data and for another user's, then the answer without a token.
///
/// `A` allowed (2xx); `H` hidden: 200 that reveals nothing of other users' data (no id of
/// the world's jobs or thread, no message text, no nonzero count); `D` denied: 403 or 404,
/// never data; `R` refused: 409, the rule that an administrator's own account is changed only
/// by another administrator; `U` unauthenticated: 401.
type Row = (
    Api,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    char,
);

const ROLES: [Role; 5] = [
    Role::Admin,
    Role::Dispatcher,
    Role::Sales,
    Role::Crew,
    Role::Analyst,
];

#[rustfmt::skip]
const MATRIX: &[Row] = &[
    //                                                          own      other    anonymous
    //                                                          adsca    adsca
    (Command, "POST",   "/v1/customers",                        "AAADD", "AAADD", 'U'),
    (Command, "POST",   "/v1/customers/{id}/contact",           "AAADD", "AAADD", 'U'),
    (Command, "POST",   "/v1/customers/{id}/status",            "AAADD", "AAADD", 'U'),
    (Command, "POST",   "/v1/jobs",                             "AAADD", "AAADD", 'U'),
    (Command, "POST",   "/v1/jobs/{id}/schedule",               "AADDD", "AADDD", 'U'),
    (Command, "POST",   "/v1/jobs/{id}/reschedule",             "AADDD", "AADDD", 'U'),
    (Command, "POST",   "/v1/jobs/{id}/crew",                   "AADDD", "AADDD", 'U'),
    (Command, "DELETE", "/v1/jobs/{id}/crew/{crew_member_id}",  "AADDD", "AADDD", 'U'),
    (Command, "POST",   "/v1/jobs/{id}/start",                  "AADAD", "AADDD", 'U'),
    (Command, "POST",   "/v1/jobs/{id}/complete",               "AADAD", "AADDD", 'U'),
    (Command, "POST",   "/v1/jobs/{id}/cancel",                 "AADDD", "AADDD", 'U'),
    (Command, "POST",   "/v1/users",                            "ADDDD", "ADDDD", 'U'),
    (Command, "POST",   "/v1/users/{id}/role",                  "RDDDD", "ADDDD", 'U'),
    (Command, "POST",   "/v1/users/{id}/deactivate",            "RDDDD", "ADDDD", 'U'),
    (Command, "POST",   "/v1/crew-members",                     "AADDD", "AADDD", 'U'),
    (Command, "POST",   "/v1/crew-members/{id}/deactivate",     "AADDD", "AADDD", 'U'),
    (Command, "POST",   "/v1/threads",                          "AAAAD", "DDDDD", 'U'),
    (Command, "POST",   "/v1/threads/{id}/messages",            "AAAAD", "DDDDD", 'U'),
    (Command, "POST",   "/v1/threads/{id}/read",                "AAAAD", "DDDDD", 'U'),
    (Command, "GET",    "/metrics",                             "AAAAA", "AAAAA", 'A'),
    (Command, "GET",    "/openapi.json",                        "AAAAA", "AAAAA", 'A'),
    (Command, "GET",    "/healthz",                             "AAAAA", "AAAAA", 'A'),
    (Command, "GET",    "/readyz",                              "AAAAA", "AAAAA", 'A'),
    (Query,   "GET",    "/v1/dashboard",                        "AAADA", "AAADA", 'U'),
    (Query,   "GET",    "/v1/calendar/week/{date}",             "AAAAD", "AAAHD", 'U'),
    (Query,   "GET",    "/v1/me/threads",                       "AAAAA", "HHHHH", 'U'),
    (Query,   "GET",    "/v1/me/unread-count",                  "AAAAA", "HHHHH", 'U'),
    (Query,   "GET",    "/v1/live/dashboard",                   "AAADA", "AAADA", 'U'),
    (Query,   "GET",    "/v1/dashboard/as-of",                  "AAADA", "AAADA", 'U'),
    (Query,   "GET",    "/v1/live/calendar/week/{date}",        "AAAAD", "AAAHD", 'U'),
    (Query,   "GET",    "/v1/calendar/as-of",                   "AAAAD", "AAAHD", 'U'),
    (Query,   "GET",    "/v1/live/me/unread-count",             "AAAAA", "HHHHH", 'U'),
    (Query,   "GET",    "/v1/threads/{id}/messages",            "AAAAA", "DDDDD", 'U'),
    (Query,   "GET",    "/v1/customers",                        "AAADD", "AAADD", 'U'),
    (Query,   "GET",    "/v1/customers/{id}",                   "AAADD", "AAADD", 'U'),
    (Query,   "GET",    "/v1/jobs",                             "AAAAD", "AAAHD", 'U'),
    (Query,   "GET",    "/v1/jobs/{id}",                        "AAAAD", "AAADD", 'U'),
    (Query,   "GET",    "/v1/events",                           "ADDDA", "ADDDA", 'U'),
    (Query,   "GET",    "/v1/checkpoint",                       "AAAAA", "AAAAA", 'U'),
    (Query,   "GET",    "/metrics",                             "AAAAA", "AAAAA", 'A'),
    (Query,   "GET",    "/openapi.json",                        "AAAAA", "AAAAA", 'A'),
    (Query,   "GET",    "/healthz",                             "AAAAA", "AAAAA", 'A'),
    (Query,   "GET",    "/readyz",                              "AAAAA", "AAAAA", 'A'),
];

/// The text of the world's message: no answer may carry it but the thread's messages read by
/// one of its participants.
const SECRET: &str = "the gate code is 7731";
/// The day of the world's jobs, a Wednesday.
const JOB_DATE: &str = "2031-05-14";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Whose {
    Own,
    Other,
}

/// Who calls: a user of a role, or nobody (no token).
#[derive(Clone, Copy, Debug)]
enum Caller {
    Staff(Role),
    Anonymous,
}

struct Case {
    row: &'static Row,
    caller: Caller,
    whose: Whose,
    expect: char,
}

/// Every case of the table: each route × role × own/other, and each route without a token.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for row in MATRIX {
        let (_, _, path, own, other, anonymous) = row;
        for (whose, letters) in [(Whose::Own, own), (Whose::Other, other)] {
            assert_eq!(letters.len(), ROLES.len(), "{path}: one letter per role");
            for (role, expect) in ROLES.iter().zip(letters.chars()) {
                cases.push(Case {
                    row,
                    caller: Caller::Staff(*role),
                    whose,
                    expect,
                });
            }
        }
        cases.push(Case {
            row,
            caller: Caller::Anonymous,
            whose: Whose::Other,
            expect: *anonymous,
        });
    }
    cases
}

/// The data the cases read and act on, and the users who call.
struct World {
    system: System,
    http: reqwest::Client,
    /// Sets everything up; never a caller.
    boss: Staff,
    /// A user taking part in nothing of the cases' data, for threads the caller is not in.
    bystander: Uuid,
    /// Per role: a participant of `thread`; the crew insider's record is on `own_job`.
    insiders: Vec<Staff>,
    /// Per role: a user taking part in nothing; the crew outsider has a record on no job.
    outsiders: Vec<Staff>,
    insider_crew_member: Uuid,
    customer: Uuid,
    own_job: Uuid,
    other_job: Uuid,
    thread: Uuid,
    /// The position every world read waits for.
    position: u64,
}

impl World {
    async fn build() -> World {
        let system = System::start().await;
        let boss = system.first_admin().await;
        let mut insiders = Vec::new();
        let mut outsiders = Vec::new();
        for role in ROLES {
            let name = format!("In {}", role.as_str());
            insiders.push(system.member(&boss, &name, role).await);
            let name = format!("Out {}", role.as_str());
            outsiders.push(system.member(&boss, &name, role).await);
        }
        let bystander = system.member(&boss, "By Stander", Role::Sales).await.id;
        let crew = |staff: &[Staff]| staff[3].id;
        let insider_crew_member = crew_member(&system, &boss, Some(crew(&insiders))).await;
        crew_member(&system, &boss, Some(crew(&outsiders))).await;
        let unlinked = crew_member(&system, &boss, None).await;
        let customer = customer(&system, &boss).await;
        let own_job = crewed_job(&system, &boss, customer, insider_crew_member).await;
        let other_job = crewed_job(&system, &boss, customer, unlinked).await;
        for job in [own_job, other_job] {
            let path = format!("/v1/jobs/{job}/schedule");
            system.post(&path, &boss.token, slot(JOB_DATE)).await;
        }
        let mut participants = vec![boss.id];
        participants.extend(insiders.iter().map(|s| s.id));
        let thread = thread(&system, &boss, &participants).await;
        let message = system
            .post(
                &format!("/v1/threads/{thread}/messages"),
                &boss.token,
                json!({"body": SECRET}),
            )
            .await;
        World {
            http: reqwest::Client::new(),
            position: message.position,
            system,
            boss,
            bystander,
            insiders,
            outsiders,
            insider_crew_member,
            customer,
            own_job,
            other_job,
            thread,
        }
    }

    fn caller(&self, case: &Case) -> Option<&Staff> {
        let Caller::Staff(role) = case.caller else {
            return None;
        };
        let index = ROLES
            .iter()
            .position(|r| *r == role)
            .expect("a listed role");
        Some(match case.whose {
            Whose::Own => &self.insiders[index],
            Whose::Other => &self.outsiders[index],
        })
    }

    /// The request of a case: its path with the ids filled in, and its body. Command cases
    /// get fresh aggregates in the state the command needs.
    async fn prepare(&self, case: &Case, caller: Option<&Staff>) -> (String, Option<Value>) {
        let (_, _, template, ..) = case.row;
        let own = case.whose == Whose::Own;
        let caller_id = caller.map_or(self.bystander, |c| c.id);
        let boss = &self.boss;
        let s = &self.system;
        let ids = |id: Uuid| template.replace("{id}", &id.to_string());
        match *template {
            "/v1/customers" => (ids(Uuid::nil()), Some(customer_body())),
            "/v1/customers/{id}/contact" => (
                ids(customer(s, boss).await),
                Some(json!({"last_name": "Renamed"})),
            ),
            "/v1/customers/{id}/status" => (
                ids(customer(s, boss).await),
                Some(json!({"status": "active"})),
            ),
            "/v1/jobs" => (ids(Uuid::nil()), Some(bodies::job(self.customer))),
            "/v1/jobs/{id}/schedule" => (
                ids(job(s, boss, self.customer).await),
                Some(slot("2031-06-02")),
            ),
            "/v1/jobs/{id}/reschedule" => {
                let job = self.fresh_crewed_job(false).await;
                let mut body = slot("2031-06-03");
                body["reason"] = json!("customer asked");
                (ids(job), Some(body))
            }
            "/v1/jobs/{id}/crew" => {
                let member = crew_member(s, boss, None).await;
                let job = job(s, boss, self.customer).await;
                (ids(job), Some(json!({"crew_member_id": member})))
            }
            "/v1/jobs/{id}/crew/{crew_member_id}" => {
                let member = crew_member(s, boss, None).await;
                let job = crewed_job(s, boss, self.customer, member).await;
                let path = ids(job).replace("{crew_member_id}", &member.to_string());
                (path, None)
            }
            "/v1/jobs/{id}/start" => (ids(self.fresh_crewed_job(false).await), None),
            "/v1/jobs/{id}/complete" => (
                ids(self.fresh_crewed_job(true).await),
                Some(json!({"actual_revenue": {"amount_minor": 90_000, "currency": "USD"}})),
            ),
            "/v1/jobs/{id}/cancel" => (
                ids(job(s, boss, self.customer).await),
                Some(json!({"reason": "customer moved away"})),
            ),
            "/v1/users" => (ids(Uuid::nil()), Some(user_body(Uuid::now_v7()))),
            "/v1/users/{id}/role" | "/v1/users/{id}/deactivate" => {
                let user = if own {
                    caller_id
                } else {
                    fresh_user(s, boss).await
                };
                let body = template.ends_with("role").then(|| json!({"role": "sales"}));
                (ids(user), Some(body.unwrap_or_else(|| json!({}))))
            }
            "/v1/crew-members" => (ids(Uuid::nil()), Some(json!({"name": "Nia New"}))),
            "/v1/crew-members/{id}/deactivate" => {
                (ids(crew_member(s, boss, None).await), Some(json!({})))
            }
            "/v1/threads" => {
                let with = if own { caller_id } else { self.bystander };
                let body =
                    json!({"kind": "group", "title": "Case", "participants": [boss.id, with]});
                (ids(Uuid::nil()), Some(body))
            }
            "/v1/threads/{id}/messages" | "/v1/threads/{id}/read" if case.row.0 == Command => {
                let with = if own { caller_id } else { self.bystander };
                let thread = thread(s, boss, &[boss.id, with]).await;
                s.post(
                    &format!("/v1/threads/{thread}/messages"),
                    &boss.token,
                    json!({"body": "hello"}),
                )
                .await;
                let body = if template.ends_with("read") {
                    json!({"up_to_seq": 1})
                } else {
                    json!({"body": "hello back"})
                };
                (ids(thread), Some(body))
            }
            "/v1/threads/{id}/messages" => (ids(self.thread), None),
            "/v1/calendar/week/{date}" | "/v1/live/calendar/week/{date}" => {
                (template.replace("{date}", JOB_DATE), None)
            }
            "/v1/customers/{id}" => (ids(self.customer), None),
            "/v1/jobs/{id}" => (ids(if own { self.own_job } else { self.other_job }), None),
            "/v1/events" => ("/v1/events?limit=100".to_owned(), None),
            "/v1/dashboard/as-of" => ("/v1/dashboard/as-of?position=1".to_owned(), None),
            // The end of a date after every write: the week with all of the world's jobs.
            "/v1/calendar/as-of" => (
                format!("/v1/calendar/as-of?date=2099-12-31&week={JOB_DATE}"),
                None,
            ),
            "/v1/dashboard" | "/v1/live/dashboard" => {
                (format!("{template}?from=2031-05-01&to=2031-05-31"), None)
            }
            "/metrics"
            | "/openapi.json"
            | "/healthz"
            | "/readyz"
            | "/v1/me/threads"
            | "/v1/me/unread-count"
            | "/v1/live/me/unread-count"
            | "/v1/checkpoint" => ((*template).to_owned(), None),
            other => panic!("the matrix has no preparation for {other}"),
        }
    }

    /// A new job with the insider crew member on it, scheduled, and started if `started`.
    async fn fresh_crewed_job(&self, started: bool) -> Uuid {
        let (s, boss) = (&self.system, &self.boss);
        let job = crewed_job(s, boss, self.customer, self.insider_crew_member).await;
        s.post(
            &format!("/v1/jobs/{job}/schedule"),
            &boss.token,
            slot(JOB_DATE),
        )
        .await;
        if started {
            s.command(
                Method::POST,
                &format!("/v1/jobs/{job}/start"),
                &boss.token,
                None,
            )
            .await;
        }
        job
    }

    /// Runs one case; `Err` says how its answer broke the table.
    async fn run(&self, case: &Case) -> Result<(), String> {
        let (api, method, template, ..) = case.row;
        let caller = self.caller(case);
        let (path, body) = self.prepare(case, caller).await;
        let (command, query) = self.system.base_urls();
        let base = if *api == Command { command } else { query };
        let method: Method = method.parse().expect("an HTTP method");
        let mut request = self.http.request(method.clone(), format!("{base}{path}"));
        if let Some(caller) = caller {
            request = request.bearer_auth(&caller.token);
        }
        if *api == Query {
            request = request.header(MIN_POSITION_HEADER, self.position.to_string());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let text = answer_text(response).await;
        let name = format!(
            "{method} {template} as {:?}, {:?} data",
            case.caller, case.whose
        );
        // A participant of the world's thread (an own-data caller) reads its text in the
        // thread's messages, in the preview of their thread list and in the event log (whose
        // redaction spares the threads the caller takes part in); nobody else, nowhere else.
        let participant_reads = *api == Query
            && case.whose == Whose::Own
            && matches!(
                *template,
                "/v1/threads/{id}/messages" | "/v1/me/threads" | "/v1/events"
            );
        if text.contains(SECRET) && !participant_reads {
            return Err(format!(
                "{name}: answered {status} with the secret message: {text}"
            ));
        }
        if !expected(case.expect, status) {
            return Err(format!(
                "{name}: expected {}, answered {status}: {text}",
                case.expect
            ));
        }
        if case.expect == 'H' {
            self.reveals_nothing(&text)
                .map_err(|e| format!("{name}: {e}: {text}"))?;
        }
        Ok(())
    }

    /// A hidden answer names none of the world's jobs or thread and counts nothing.
    fn reveals_nothing(&self, text: &str) -> Result<(), String> {
        for id in [self.own_job, self.other_job, self.thread] {
            if text.contains(&id.to_string()) {
                return Err(format!("it names {id}"));
            }
        }
        let body: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for count in ["unread", "unread_threads", "threads"] {
            if body["data"][count].as_u64().is_some_and(|n| n > 0) {
                return Err(format!("it counts {count}"));
            }
        }
        Ok(())
    }
}

fn expected(letter: char, status: StatusCode) -> bool {
    match letter {
        'A' => status.is_success(),
        'H' => status == StatusCode::OK,
        'D' => status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        'R' => status == StatusCode::CONFLICT,
        'U' => status == StatusCode::UNAUTHORIZED,
        other => panic!("no such letter in the matrix: {other}"),
    }
}

fn slot(date: &str) -> Value {
    json!({"date": date, "window": {"start": "08:00", "end": "12:00"}})
}

fn customer_body() -> Value {
    let tag = Uuid::now_v7().simple().to_string();
    bodies::customer(
        "Mat",
        "Rix",
        &format!("mat.{tag}@example.com"),
        "+1 555 010 0303",
    )
}

fn user_body(id: Uuid) -> Value {
    let email = format!("user.{}@simplepro.example", id.simple());
    json!({"user_id": id, "display_name": "Una User", "email": email, "role": "crew"})
}

async fn customer(system: &System, boss: &Staff) -> Uuid {
    system
        .post("/v1/customers", &boss.token, customer_body())
        .await
        .id
}

async fn job(system: &System, boss: &Staff, customer: Uuid) -> Uuid {
    system
        .post("/v1/jobs", &boss.token, bodies::job(customer))
        .await
        .id
}

/// A new job with `member` assigned.
async fn crewed_job(system: &System, boss: &Staff, customer: Uuid, member: Uuid) -> Uuid {
    let job = job(system, boss, customer).await;
    let body = json!({"crew_member_id": member});
    system
        .post(&format!("/v1/jobs/{job}/crew"), &boss.token, body)
        .await;
    job
}

async fn crew_member(system: &System, boss: &Staff, user: Option<Uuid>) -> Uuid {
    let body = json!({"name": "Cal Crew", "skills": ["packing"], "user_id": user});
    system.post("/v1/crew-members", &boss.token, body).await.id
}

async fn fresh_user(system: &System, boss: &Staff) -> Uuid {
    let id = Uuid::now_v7();
    system
        .post("/v1/users", &boss.token, user_body(id))
        .await
        .id
}

async fn thread(system: &System, boss: &Staff, participants: &[Uuid]) -> Uuid {
    let body = json!({"kind": "group", "title": "Matrix", "participants": participants});
    system.post("/v1/threads", &boss.token, body).await.id
}

/// The `(METHOD, path)` pairs an API's served OpenAPI document lists.
async fn documented_routes(http: &reqwest::Client, base: &str) -> BTreeSet<(String, String)> {
    let document: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the OpenAPI document")
        .json()
        .await
        .expect("an OpenAPI document in JSON");
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, operations)| {
            let methods = operations.as_object().expect("operations").keys();
            methods.map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_the_authorization_matrix_says() {
    let world = World::build().await;
    let (command, query) = world.system.base_urls();
    for (api, base) in [(Command, command), (Query, query)] {
        let documented = documented_routes(&world.http, base).await;
        let listed: BTreeSet<(String, String)> = MATRIX
            .iter()
            .filter(|row| row.0 == api)
            .map(|row| (row.1.to_owned(), row.2.to_owned()))
            .collect();
        let missing: Vec<_> = documented.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "{api:?} routes missing from the matrix: {missing:?}"
        );
        let unknown: Vec<_> = listed.difference(&documented).collect();
        assert!(
            unknown.is_empty(),
            "{api:?} routes the API does not serve: {unknown:?}"
        );
    }
    let cases = cases();
    let failures: Vec<String> = futures::stream::iter(&cases)
        .map(|case| world.run(case))
        .buffer_unordered(6)
        .filter_map(|result| async move { result.err() })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the matrix:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    world.system.stop().await;
}
