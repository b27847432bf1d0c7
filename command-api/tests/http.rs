//! The command API end to end: the service runs in-process on port 0 against the shared
//! FerretDB and NATS, each test in its own database, JetStream stream and subject prefix.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use command_api::Config;
use domain::enums::Role;
use events::{EventStore, StreamId};
use platform::auth::{Caller, JwtKeys};
use platform::config::Secret;
use platform::consistency::POSITION_HEADER;
use platform::shutdown::ShutdownTrigger;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::TestEnv;
use uuid::Uuid;

const SECRET: &str = "command-api-test-secret-0123456789";
const MAX_BODY: usize = 16 * 1024;

struct TestApp {
    base: String,
    client: reqwest::Client,
    env: Arc<TestEnv>,
    keys: JwtKeys,
    admin: String,
    stop: Option<ShutdownTrigger>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    /// Asserts a 200 answer that leaves the aggregate at `version`.
    #[track_caller]
    fn assert_ok_at(&self, version: u64) {
        assert_eq!(
            (self.status, self.version()),
            (StatusCode::OK, version),
            "{}",
            self.body
        );
    }

    /// Asserts the answer's status, showing the body when it differs.
    #[track_caller]
    fn assert_status(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.body);
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn id(&self) -> Uuid {
        self.body["aggregate_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no aggregate_id in {}", self.body))
    }

    fn version(&self) -> u64 {
        self.body["version"]
            .as_u64()
            .unwrap_or_else(|| panic!("no version in {}", self.body))
    }

    fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

async fn spawn_app() -> TestApp {
    spawn_on(Arc::new(TestEnv::new().await)).await
}

async fn spawn_on(env: Arc<TestEnv>) -> TestApp {
    spawn_with(env, &[]).await
}

/// A command API with `extra` flags.
async fn spawn_with(env: Arc<TestEnv>, extra: &[&str]) -> TestApp {
    let max_body = MAX_BODY.to_string();
    let mut args = vec!["command-api".to_owned()];
    args.extend(env.service_args());
    args.extend(
        [
            "--jwt-secret",
            SECRET,
            "--currency",
            "USD",
            "--max-body-bytes",
            &max_body,
            "--position-wait-ms",
            "5000",
        ]
        .map(str::to_owned),
    );
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let config = Config::try_parse_from(args).expect("test config parses");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, shutdown) = platform::shutdown::channel();
    let task = tokio::spawn(command_api::run(config, listener, shutdown));
    let keys = JwtKeys::new(&Secret::new(SECRET));
    let client = reqwest::Client::new();
    let mut app = TestApp {
        base,
        client,
        env,
        keys,
        admin: String::new(),
        stop: Some(stop),
        task: Some(task),
    };
    app.admin = app.token(Uuid::now_v7(), Role::Admin);
    for _ in 0..200 {
        if let Ok(reply) = app.client.get(format!("{}/healthz", app.base)).send().await {
            if reply.status().is_success() {
                return app;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("command API did not start");
}

impl TestApp {
    fn token(&self, user_id: Uuid, role: Role) -> String {
        let caller = Caller {
            user_id: user_id.into(),
            name: "Test User".into(),
            role,
        };
        self.keys.mint(&caller, chrono::Duration::hours(1)).unwrap()
    }

    fn role_token(&self, role: Role) -> String {
        self.token(Uuid::now_v7(), role)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(token), Some(body), &[])
            .await
    }

    async fn post_with(
        &self,
        path: &str,
        token: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.send(
            reqwest::Method::POST,
            path,
            Some(token),
            Some(body),
            headers,
        )
        .await
    }

    async fn raw(&self, path: &str, token: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn customer(&self) -> Uuid {
        let email = format!("{}@example.com", Uuid::now_v7().simple());
        let reply = self
            .post("/v1/customers", &self.admin, customer_body(&email))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.id()
    }

    async fn job(&self) -> Uuid {
        let customer = self.customer().await;
        let reply = self.post("/v1/jobs", &self.admin, job_body(customer)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.id()
    }

    /// A registered user and a token for them.
    async fn user(&self, role: Role) -> (Uuid, String) {
        let reply = self
            .post(
                "/v1/users",
                &self.admin,
                json!({"display_name": "Sam Staff", "email": format!("{}@simplepro.example", Uuid::now_v7().simple()), "role": role.as_str()}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let id = reply.id();
        (id, self.token(id, role))
    }

    async fn crew_member(&self, user_id: Option<Uuid>) -> Uuid {
        let reply = self
            .post(
                "/v1/crew-members",
                &self.admin,
                json!({"name": "Cris Crew", "skills": ["piano", "piano", "packing"], "user_id": user_id}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.id()
    }

    async fn store(&self) -> EventStore {
        self.env.store().await
    }

    /// Every event of the `kind` stream `id`, in version order.
    async fn events_of(&self, kind: &str, id: Uuid) -> Vec<events::EventEnvelope> {
        self.store()
            .await
            .read_stream(&stream(kind, id), 1)
            .await
            .expect("the stream reads")
    }

    async fn stop(mut self) -> Arc<TestEnv> {
        if let Some(stop) = self.stop.take() {
            stop.trigger();
        }
        if let Some(task) = self.task.take() {
            task.await.expect("run task").expect("run finished cleanly");
        }
        self.env.clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.trigger();
        }
    }
}

fn customer_body(email: &str) -> Value {
    tests::bodies::customer("Ana", "Silva", email, "555-123-4567")
}

fn job_body(customer: Uuid) -> Value {
    tests::bodies::job(customer)
}

fn slot(day: u32) -> Value {
    json!({"date": format!("2030-03-{day:02}"), "window": {"start": "08:00", "end": "12:00:00"}})
}

fn stream(kind: &str, id: Uuid) -> StreamId {
    StreamId::new(kind, id.to_string()).unwrap()
}

#[tokio::test]
async fn customer_commands_answer_with_version_events_and_position() {
    let app = spawn_app().await;
    let sales = app.role_token(Role::Sales);
    let reply = app
        .post_with(
            "/v1/customers",
            &sales,
            customer_body("Ana@Example.com"),
            &[("x-correlation-id", "corr-1")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["aggregate_type"], "customer");
    assert_eq!(reply.version(), 1);
    assert_eq!(reply.body["event_ids"].as_array().unwrap().len(), 1);
    let position = reply.body["position"].as_u64().expect("position known");
    assert_eq!(
        reply.header(POSITION_HEADER),
        Some(position.to_string().as_str())
    );
    assert_eq!(reply.header("x-correlation-id"), Some("corr-1"));
    let id = reply.id();

    let reply = app
        .post(
            &format!("/v1/customers/{id}/contact"),
            &sales,
            json!({"phone": "555-000-1111", "email": "ana.new@example.com"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.version(), 2);
    assert!(reply.body["position"].as_u64().unwrap() > position);

    let reply = app
        .post(
            &format!("/v1/customers/{id}/status"),
            &sales,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!((reply.status, reply.version()), (StatusCode::OK, 3));
    // The same status again is accepted and changes nothing.
    let reply = app
        .post(
            &format!("/v1/customers/{id}/status"),
            &sales,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!((reply.status, reply.version()), (StatusCode::OK, 3));
    assert_eq!(reply.body["event_ids"], json!([]));

    // The old email was released, the new one is taken.
    let reply = app
        .post("/v1/customers", &sales, customer_body("ana@example.com"))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = app
        .post(
            "/v1/customers",
            &sales,
            customer_body("ANA.NEW@example.com"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["rule"], "email_taken");
    assert_eq!(
        reply.body["type"],
        "https://simplepro.dev/problems/email-taken"
    );

    // Every event records who, and under which correlation id.
    let events = app.events_of("customer", id).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].correlation_id, "corr-1");
    assert_eq!(events[0].event_type, "CustomerRegistered");
    assert!(Uuid::parse_str(&events[0].actor).is_ok());
}

#[tokio::test]
async fn a_job_goes_through_its_whole_lifecycle() {
    let app = spawn_app().await;
    let dispatcher = app.role_token(Role::Dispatcher);
    let job = app.job().await;
    let (crew_user, crew_token) = app.user(Role::Crew).await;
    let member = app.crew_member(Some(crew_user)).await;
    let other_member = app.crew_member(None).await;
    let (_, other_crew_token) = app.user(Role::Crew).await;

    let path = |action: &str| format!("/v1/jobs/{job}/{action}");
    let reply = app.post(&path("schedule"), &dispatcher, slot(10)).await;
    reply.assert_ok_at(2);
    let reply = app.post(&path("reschedule"), &dispatcher, json!({"date": "2030-03-11", "window": {"start": "13:00", "end": "17:00"}, "reason": "truck"})).await;
    reply.assert_ok_at(3);
    let reply = app
        .post(
            &path("crew"),
            &dispatcher,
            json!({"crew_member_id": other_member}),
        )
        .await;
    reply.assert_ok_at(4);
    let reply = app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/jobs/{job}/crew/{other_member}"),
            Some(&dispatcher),
            None,
            &[],
        )
        .await;
    reply.assert_ok_at(5);
    let reply = app
        .post(
            &path("crew"),
            &dispatcher,
            json!({"crew_member_id": member}),
        )
        .await;
    reply.assert_ok_at(6);

    // Crew act only on jobs they are assigned to.
    let reply = app
        .send(
            reqwest::Method::POST,
            &path("start"),
            Some(&other_crew_token),
            None,
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let reply = app
        .send(
            reqwest::Method::POST,
            &path("start"),
            Some(&crew_token),
            None,
            &[],
        )
        .await;
    reply.assert_ok_at(7);
    let revenue = json!({"actual_revenue": {"amount_minor": 120000, "currency": "USD"}});
    let reply = app
        .post(&path("complete"), &crew_token, revenue.clone())
        .await;
    reply.assert_ok_at(8);

    // A completed job refuses further commands with the rule's code.
    let reply = app
        .post(&path("cancel"), &dispatcher, json!({"reason": "too late"}))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["rule"], "job_terminal");
    assert_eq!(
        reply.body["type"],
        "https://simplepro.dev/problems/job-terminal"
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );

    let second = app.job().await;
    let reply = app
        .post(
            &format!("/v1/jobs/{second}/cancel"),
            &dispatcher,
            json!({"reason": "customer moved the date"}),
        )
        .await;
    reply.assert_ok_at(2);
}

#[tokio::test]
async fn users_and_crew_members_are_managed_by_their_roles() {
    let app = spawn_app().await;
    let (user, _) = app.user(Role::Sales).await;
    let reply = app
        .post(
            &format!("/v1/users/{user}/role"),
            &app.admin,
            json!({"role": "dispatcher"}),
        )
        .await;
    reply.assert_ok_at(2);
    let reply = app
        .send(
            reqwest::Method::POST,
            &format!("/v1/users/{user}/deactivate"),
            Some(&app.admin),
            None,
            &[],
        )
        .await;
    reply.assert_ok_at(3);
    let reply = app
        .post(
            &format!("/v1/users/{user}/role"),
            &app.admin,
            json!({"role": "sales"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["rule"], "user_deactivated");

    // An administrator cannot lock themselves out; another administrator can.
    let (me, my_token) = app.user(Role::Admin).await;
    let own_role = app
        .post(
            &format!("/v1/users/{me}/role"),
            &my_token,
            json!({"role": "sales"}),
        )
        .await;
    let own_deactivation = app
        .send(
            reqwest::Method::POST,
            &format!("/v1/users/{me}/deactivate"),
            Some(&my_token),
            None,
            &[],
        )
        .await;
    for reply in [own_role, own_deactivation] {
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
        assert_eq!(reply.body["rule"], "own_account", "{}", reply.body);
    }
    app.send(
        reqwest::Method::POST,
        &format!("/v1/users/{me}/deactivate"),
        Some(&app.admin),
        None,
        &[],
    )
    .await
    .assert_ok_at(2);

    let dispatcher = app.role_token(Role::Dispatcher);
    let reply = app
        .post(
            "/v1/users",
            &dispatcher,
            json!({"display_name": "X", "email": "x@y.co", "role": "admin"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let member = app.crew_member(None).await;
    let path = format!("/v1/crew-members/{member}/deactivate");
    let reply = app
        .send(reqwest::Method::POST, &path, Some(&dispatcher), None, &[])
        .await;
    reply.assert_ok_at(2);
    let reply = app
        .send(reqwest::Method::POST, &path, Some(&dispatcher), None, &[])
        .await;
    assert_eq!(reply.body["rule"], "crew_member_already_deactivated");
    // An inactive crew member cannot be assigned.
    let job = app.job().await;
    let reply = app
        .post(
            &format!("/v1/jobs/{job}/crew"),
            &dispatcher,
            json!({"crew_member_id": member}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["rule"], "crew_member_inactive");
    let reply = app
        .post(
            &format!("/v1/jobs/{job}/crew"),
            &dispatcher,
            json!({"crew_member_id": Uuid::now_v7()}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.fields(), vec!["crew_member_id"]);
}

#[tokio::test]
async fn threads_start_once_and_only_participants_post_or_read() {
    let app = spawn_app().await;
    let (ana, ana_token) = app.user(Role::Sales).await;
    let (bo, bo_token) = app.user(Role::Crew).await;
    let (_, outsider_token) = app.user(Role::Dispatcher).await;

    let direct = json!({"kind": "direct", "participants": [ana, bo]});
    let reply = app.post("/v1/threads", &ana_token, direct).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let thread = reply.id();
    // The other side starting "the" direct thread gets the same one.
    let reply = app
        .post(
            "/v1/threads",
            &bo_token,
            json!({"kind": "direct", "participants": [bo, ana]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!((reply.id(), reply.version()), (thread, 1));
    assert_eq!(reply.body["event_ids"], json!([]));

    let messages = format!("/v1/threads/{thread}/messages");
    let reply = app
        .post(&messages, &ana_token, json!({"body": "hello"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["seq"], 1);
    assert!(reply.body["message_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .is_some());
    let reply = app.post(&messages, &bo_token, json!({"body": "hi"})).await;
    assert_eq!(reply.body["seq"], 2);
    let reply = app
        .post(&messages, &outsider_token, json!({"body": "me too"}))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app
        .post(
            &format!("/v1/threads/{thread}/read"),
            &outsider_token,
            json!({"up_to_seq": 1}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app
        .post(
            &format!("/v1/threads/{thread}/read"),
            &bo_token,
            json!({"up_to_seq": 2}),
        )
        .await;
    reply.assert_ok_at(4);
    let reply = app
        .post(
            &format!("/v1/threads/{thread}/read"),
            &bo_token,
            json!({"up_to_seq": 9}),
        )
        .await;
    assert_eq!(reply.body["rule"], "read_marker_out_of_range");

    let group = json!({"kind": "group", "title": "Crew chat", "participants": [ana, bo]});
    let reply = app.post("/v1/threads", &ana_token, group).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    // Starters must take part, participants must be active users.
    let reply = app
        .post(
            "/v1/threads",
            &outsider_token,
            json!({"kind": "group", "title": "t", "participants": [ana, bo]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let ghost = Uuid::now_v7();
    let reply = app
        .post(
            "/v1/threads",
            &ana_token,
            json!({"kind": "group", "title": "t", "participants": [ana, ghost]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.fields(), vec!["participants[1]"]);
    assert!(reply.body["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains(&ghost.to_string()));
    let analyst = app.role_token(Role::Analyst);
    let reply = app
        .post(
            "/v1/threads",
            &analyst,
            json!({"kind": "direct", "participants": [ana, bo]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_requests_get_the_right_problem_status() {
    let app = spawn_app().await;
    let admin = app.admin.clone();
    let reply = app
        .raw(
            "/v1/customers",
            &admin,
            "application/json",
            b"{\"first_name\": ".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let reply = app
        .raw("/v1/customers", &admin, "text/plain", b"hello".to_vec())
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!("{{\"first_name\": \"{}\"}}", "a".repeat(MAX_BODY * 2));
    let reply = app
        .raw(
            "/v1/customers",
            &admin,
            "application/json",
            big.into_bytes(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);

    let reply = app
        .post(
            "/v1/customers",
            &admin,
            json!({"first_name": "", "email": "nope", "address": {"city": 5}, "extra": 1}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.fields(),
        vec![
            "extra",
            "first_name",
            "last_name",
            "email",
            "phone",
            "referral_source",
            "address.line1",
            "address.city"
        ]
    );
    let mut nameless = customer_body("nameless@example.com");
    nameless[""] = json!(1);
    nameless["address"][""] = json!(2);
    let reply = app.post("/v1/customers", &admin, nameless).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.fields(), vec!["\"\"", "address.\"\""]);

    let reply = app
        .post(
            &format!("/v1/jobs/{}/schedule", Uuid::now_v7()),
            &admin,
            slot(3),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app
        .post("/v1/jobs/not-a-uuid/schedule", &admin, slot(3))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.fields(), vec!["id"]);
    let reply = app.post("/v1/jobs", &admin, job_body(Uuid::now_v7())).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.fields(), vec!["customer_id"]);
    let customer = app.customer().await;
    let mut euros = job_body(customer);
    euros["estimated_price"]["currency"] = json!("EUR");
    let reply = app.post("/v1/jobs", &admin, euros).await;
    assert_eq!(reply.fields(), vec!["estimated_price.currency"]);

    let job = app.job().await;
    let reply = app
        .send(
            reqwest::Method::POST,
            &format!("/v1/jobs/{job}/start"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["rule"], "job_not_startable");

    let reply = app
        .send(
            reqwest::Method::POST,
            "/v1/jobs",
            None,
            Some(job_body(customer)),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = app
        .send(
            reqwest::Method::POST,
            "/v1/jobs",
            Some("not.a.jwt"),
            Some(job_body(customer)),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let analyst = app.role_token(Role::Analyst);
    let reply = app.post("/v1/jobs", &analyst, job_body(customer)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let sales = app.role_token(Role::Sales);
    let reply = app
        .post(&format!("/v1/jobs/{job}/schedule"), &sales, slot(3))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app
        .post_with(
            &format!("/v1/jobs/{job}/schedule"),
            &admin,
            slot(3),
            &[("idempotency-key", "has space")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.fields(), vec!["Idempotency-Key"]);
    // A malformed If-Match is named as the header it is, in a problem document.
    let reply = app
        .post_with(
            &format!("/v1/jobs/{job}/schedule"),
            &admin,
            slot(3),
            &[("if-match", "three")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.fields(), vec!["If-Match"]);

    // Nothing above wrote to the job.
    let reply = app
        .post_with(
            &format!("/v1/jobs/{job}/schedule"),
            &admin,
            slot(3),
            &[("if-match", "\"1\"")],
        )
        .await;
    reply.assert_ok_at(2);
    let reply = app
        .post_with(
            &format!("/v1/jobs/{job}/reschedule"),
            &admin,
            slot(4),
            &[("if-match", "1")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(reply.body["current_version"], 2);
}

#[tokio::test]
async fn concurrent_updates_of_one_job_follow_if_match() {
    let app = Arc::new(spawn_app().await);
    let job = app.job().await;
    let reply = app
        .post(&format!("/v1/jobs/{job}/schedule"), &app.admin, slot(1))
        .await;
    assert_eq!(reply.version(), 2);

    let guarded = (0..10u32).map(|i| {
        let app = app.clone();
        async move {
            app.post_with(
                &format!("/v1/jobs/{job}/reschedule"),
                &app.admin,
                slot(10 + i),
                &[("if-match", "2")],
            )
            .await
        }
    });
    let replies = futures::future::join_all(guarded).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let stale = replies
        .iter()
        .filter(|r| r.status == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!(
        (ok, stale),
        (1, 9),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );

    let unguarded = (0..10u32).map(|i| {
        let app = app.clone();
        async move {
            app.post(
                &format!("/v1/jobs/{job}/reschedule"),
                &app.admin,
                slot(i + 1),
            )
            .await
        }
    });
    let replies = futures::future::join_all(unguarded).await;
    let mut versions: Vec<u64> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.version()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, (4..14).collect::<Vec<u64>>());
}

/// 64 writers race on one job, each with the version it last saw in `If-Match`, retrying
/// with the version a refusal names until its change is accepted: every version is won by
/// exactly one writer, every other attempt at it is a 412, and the stream holds each accepted
/// change once, in contiguous versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_on_one_job_win_one_version_each_and_are_otherwise_refused_with_412() {
    const WRITERS: u64 = 64;
    // About 2,000 requests from one admin within seconds: beyond any user's rate limit,
    // which is not what this test is about.
    let env = Arc::new(TestEnv::new().await);
    let app = Arc::new(spawn_with(env, &["--rate-per-user", "0"]).await);
    let job = app.job().await;
    let scheduled = app
        .post(&format!("/v1/jobs/{job}/schedule"), &app.admin, slot(1))
        .await;
    assert_eq!(scheduled.version(), 2);

    // Each writer asks for a slot of its own: a reschedule to the job's current slot changes
    // nothing and appends no event.
    let distinct_slot = |writer: u64| {
        let (start, end) =
            [("08:00", "12:00"), ("13:00", "17:00"), ("18:00", "21:00")][(writer / 28) as usize];
        json!({"date": format!("2030-03-{:02}", 2 + writer % 28),
            "window": {"start": start, "end": end}})
    };
    let writers = (0..WRITERS).map(|writer| {
        let app = app.clone();
        async move {
            let mut expected = 2;
            let mut refused = 0_u64;
            loop {
                let reply = app
                    .post_with(
                        &format!("/v1/jobs/{job}/reschedule"),
                        &app.admin,
                        distinct_slot(writer),
                        &[("if-match", &format!("\"{expected}\""))],
                    )
                    .await;
                match reply.status {
                    StatusCode::OK => return (reply.version(), refused),
                    StatusCode::PRECONDITION_FAILED => {
                        refused += 1;
                        let current = reply.body["current_version"].as_u64();
                        expected = current.unwrap_or_else(|| panic!("no version: {}", reply.body));
                    }
                    other => panic!("writer {writer}: {other} {}", reply.body),
                }
            }
        }
    });
    let results = futures::future::join_all(writers).await;
    let mut won: Vec<u64> = results.iter().map(|(version, _)| *version).collect();
    won.sort_unstable();
    assert_eq!(
        won,
        (3..3 + WRITERS).collect::<Vec<u64>>(),
        "one winner per version"
    );
    let refusals: u64 = results.iter().map(|(_, refused)| refused).sum();
    assert!(
        refusals >= WRITERS - 1,
        "racing writers were refused only {refusals} times"
    );

    let store = app.env.store().await;
    let events = store.read_stream(&stream("job", job), 1).await.unwrap();
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..3 + WRITERS).collect::<Vec<u64>>(),
        "nothing lost or doubled"
    );
}

#[tokio::test]
async fn a_retried_request_with_an_idempotency_key_is_answered_once_even_after_a_restart() {
    let app = spawn_app().await;
    let (ana, ana_token) = app.user(Role::Sales).await;
    let (bo, _) = app.user(Role::Crew).await;
    let thread = app
        .post(
            "/v1/threads",
            &ana_token,
            json!({"kind": "direct", "participants": [ana, bo]}),
        )
        .await
        .id();
    let path = format!("/v1/threads/{thread}/messages");
    let key = [("idempotency-key", "message-1")];
    let first = app
        .post_with(&path, &ana_token, json!({"body": "once"}), &key)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second = app
        .post_with(&path, &ana_token, json!({"body": "once"}), &key)
        .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    let other = app
        .post_with(&path, &ana_token, json!({"body": "different"}), &key)
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.fields(), vec!["Idempotency-Key"]);

    let env = app.stop().await;
    let app = spawn_on(env).await;
    let ana_token = app.token(ana, Role::Sales);
    let third = app
        .post_with(&path, &ana_token, json!({"body": "once"}), &key)
        .await;
    assert_eq!(third.body, first.body);
    assert_eq!(third.header("idempotent-replayed"), Some("true"));
    let events = app.events_of("thread", thread).await;
    let posted: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "MessagePosted")
        .collect();
    assert_eq!(posted.len(), 1);
    assert_eq!(
        posted[0].causation_id.as_deref(),
        Some(format!("{ana}:message-1").as_str())
    );
}

#[tokio::test]
async fn only_one_of_ten_concurrent_registrations_gets_an_email() {
    let app = Arc::new(spawn_app().await);
    let attempts = (0..10).map(|_| {
        let app = app.clone();
        async move {
            app.post(
                "/v1/customers",
                &app.admin,
                customer_body("same@example.com"),
            )
            .await
        }
    });
    let replies = futures::future::join_all(attempts).await;
    let created: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert_eq!(
        created.len(),
        1,
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert_eq!(reply.body["rule"], "email_taken");
    }
}

#[tokio::test]
async fn every_accepted_command_reaches_jetstream() {
    let app = spawn_app().await;
    let dispatcher = app.role_token(Role::Dispatcher);
    let mut expected = HashSet::new();
    let customer = app
        .post(
            "/v1/customers",
            &dispatcher,
            customer_body("js@example.com"),
        )
        .await;
    let job = app
        .post("/v1/jobs", &dispatcher, job_body(customer.id()))
        .await;
    let schedule = app
        .post(
            &format!("/v1/jobs/{}/schedule", job.id()),
            &dispatcher,
            slot(5),
        )
        .await;
    for reply in [&customer, &job, &schedule] {
        assert!(reply.status.is_success(), "{}", reply.body);
        for id in reply.body["event_ids"].as_array().unwrap() {
            expected.insert(id.as_str().unwrap().to_owned());
        }
    }
    assert_eq!(expected.len(), 3);

    let bus = app.env.bus().await;
    let mut published = HashSet::new();
    for _ in 0..100 {
        let mut js_stream = bus.ensure_stream().await.unwrap();
        let count = js_stream.info().await.unwrap().state.messages;
        if count as usize >= expected.len() {
            for sequence in 1..=count {
                let message = js_stream.get_raw_message(sequence).await.unwrap();
                let envelope: events::EventEnvelope =
                    serde_json::from_slice(&message.payload).unwrap();
                published.insert(envelope.event_id.to_string());
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(published, expected);
}

#[tokio::test]
async fn posting_the_300th_message_loads_a_snapshot_not_the_history() {
    let app = spawn_app().await;
    let (ana, ana_token) = app.user(Role::Sales).await;
    let (bo, _) = app.user(Role::Crew).await;
    let thread = app
        .post(
            "/v1/threads",
            &ana_token,
            json!({"kind": "direct", "participants": [ana, bo]}),
        )
        .await
        .id();
    let path = format!("/v1/threads/{thread}/messages");
    for n in 1..=300u64 {
        let reply = app
            .post(&path, &ana_token, json!({"body": format!("message {n}")}))
            .await;
        assert_eq!(reply.body["seq"], n, "{}", reply.body);
    }
    let loaded = app
        .store()
        .await
        .load(&stream("thread", thread))
        .await
        .unwrap();
    assert_eq!(loaded.head.version(), 301);
    let (snapshot_version, _, _) = loaded.snapshot.expect("a snapshot is kept");
    assert!(snapshot_version >= 299, "snapshot at {snapshot_version}");
    assert!(
        loaded.events.len() <= 2,
        "{} events after the snapshot",
        loaded.events.len()
    );
}

/// The head hint (with its snapshot) moves only every fourth version, and may be further
/// behind after a lost write or another process's appends: a load follows the commits after
/// it, so a hint left behind must neither lose a command, nor repeat a version, nor answer
/// from a stale state.
#[tokio::test]
async fn a_head_hint_left_behind_changes_no_answer() {
    // Without states kept in memory, every command loads its stream from the hint.
    let app = spawn_with(Arc::new(TestEnv::new().await), &["--state-cache-mib", "0"]).await;
    let sales = app.role_token(Role::Sales);
    let id = app.customer().await;
    let stream_key = stream("customer", id).to_string();
    let heads = app.env.database.collection::<bson::Document>("heads");
    let contact = format!("/v1/customers/{id}/contact");
    let phone = |n: u32| json!({"phone": format!("555-000-{n:04}")});
    for (n, version) in [(1, 2), (2, 3)] {
        app.post(&contact, &sales, phone(n))
            .await
            .assert_ok_at(version);
    }
    let no_hint = heads
        .find_one(bson::doc! {"_id": &stream_key})
        .await
        .unwrap();
    assert!(no_hint.is_none(), "no hint before version 4: {no_hint:?}");
    app.post(&contact, &sales, phone(3)).await.assert_ok_at(4);
    let hint_at_four = heads
        .find_one(bson::doc! {"_id": &stream_key})
        .await
        .unwrap()
        .expect("the head hint is written with the snapshot at version 4");
    assert_eq!(hint_at_four.get_i64("version").unwrap(), 4);
    let put_hint_back = || async {
        heads
            .replace_one(bson::doc! {"_id": &stream_key}, &hint_at_four)
            .await
            .unwrap();
    };
    let status = format!("/v1/customers/{id}/status");
    let active = json!({"status": "active"});

    let reply = app.post(&status, &sales, active.clone()).await;
    reply.assert_ok_at(5);

    // From the hint the customer is still a lead; in fact it is active already.
    put_hint_back().await;
    let reply = app.post(&status, &sales, active.clone()).await;
    reply.assert_ok_at(5);
    assert_eq!(reply.body["event_ids"], json!([]));

    put_hint_back().await;
    app.post(&contact, &sales, phone(4)).await.assert_ok_at(6);

    // If-Match is checked against the stream's head, not the hint's.
    put_hint_back().await;
    let reply = app
        .post_with(&status, &sales, active.clone(), &[("if-match", "6")])
        .await;
    reply.assert_ok_at(6);
    put_hint_back().await;
    let reply = app
        .post_with(
            &status,
            &sales,
            json!({"status": "inactive"}),
            &[("if-match", "4")],
        )
        .await;
    reply.assert_status(StatusCode::PRECONDITION_FAILED);

    let versions: Vec<u64> = app
        .events_of("customer", id)
        .await
        .iter()
        .map(|event| event.version)
        .collect();
    assert_eq!(versions, (1..=6).collect::<Vec<u64>>());

    // A job's customer exists also with no hint at all: the load follows the commits from
    // the first.
    heads
        .delete_one(bson::doc! {"_id": &stream_key})
        .await
        .unwrap();
    let admin = app.admin.clone();
    let reply = app.post("/v1/jobs", &admin, job_body(id)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = app.post("/v1/jobs", &admin, job_body(Uuid::now_v7())).await;
    reply.assert_status(StatusCode::NOT_FOUND);
}

/// Each process decides a stream's next command from the state its own last append left; with
/// two processes writing one stream, that state is often behind and must change no answer.
#[tokio::test]
async fn two_processes_writing_one_stream_keep_its_versions_and_answers() {
    let first = spawn_app().await;
    let second = spawn_on(first.env.clone()).await;
    let sales = first.role_token(Role::Sales);
    let id = first.customer().await;
    let status = format!("/v1/customers/{id}/status");
    let contact = format!("/v1/customers/{id}/contact");
    let phone = |n: u32| json!({"phone": format!("555-000-{n:04}")});

    let reply = first.post(&contact, &sales, phone(1)).await;
    reply.assert_ok_at(2);
    let reply = second.post(&contact, &sales, phone(2)).await;
    reply.assert_ok_at(3);
    // The first process last left the customer at version 2.
    let reply = first.post(&contact, &sales, phone(3)).await;
    reply.assert_ok_at(4);

    let reply = second
        .post(&status, &sales, json!({"status": "active"}))
        .await;
    reply.assert_ok_at(5);
    // Still a lead where the first process left it: the same status is no change.
    let reply = first
        .post(&status, &sales, json!({"status": "active"}))
        .await;
    reply.assert_ok_at(5);
    assert_eq!(reply.body["event_ids"], json!([]));
    let reply = second.post(&contact, &sales, phone(4)).await;
    reply.assert_ok_at(6);
    // If-Match holds against the stream, not against what a process last wrote.
    let reply = first
        .post_with(&contact, &sales, phone(5), &[("if-match", "6")])
        .await;
    reply.assert_ok_at(7);
    let reply = second
        .post_with(&contact, &sales, phone(6), &[("if-match", "6")])
        .await;
    reply.assert_status(StatusCode::PRECONDITION_FAILED);

    let events = first.events_of("customer", id).await;
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<u64>>()
    );
    let last_phone = events[6].payload.to_string();
    assert!(last_phone.contains("555-000-0005"), "{last_phone}");
}

#[tokio::test]
async fn health_metrics_and_openapi_are_served() {
    let app = spawn_app().await;
    app.customer().await;
    let get = |path: &'static str| app.client.get(format!("{}{path}", app.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text");
    let sample = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| s.value.clone())
            .unwrap_or_else(|| panic!("{name} {labels:?} missing in:\n{metrics}"))
    };
    assert_eq!(
        sample(
            "simplepro_events_appended_total",
            &[("service", "command-api")]
        ),
        prometheus_parse::Value::Counter(1.0)
    );
    assert!(matches!(
        sample("simplepro_command_api_responses_total", &[("class", "2xx")]),
        prometheus_parse::Value::Counter(n) if n >= 1.0
    ));
    assert_eq!(
        sample(
            "simplepro_command_api_commands_total",
            &[("aggregate", "customer"), ("outcome", "accepted")]
        ),
        prometheus_parse::Value::Counter(1.0)
    );
    // The customer's state is kept for its next command.
    assert!(matches!(
        sample("simplepro_command_api_state_cache_bytes", &[]),
        prometheus_parse::Value::Gauge(n) if n > 0.0
    ));
    for histogram in [
        "simplepro_events_append_duration_seconds",
        "simplepro_events_append_group_size",
    ] {
        assert!(matches!(
            sample(histogram, &[]),
            prometheus_parse::Value::Histogram(_)
        ));
    }
    let latency = sample(
        "simplepro_http_request_duration_seconds",
        &[("route", "/v1/customers"), ("method", "POST")],
    );
    assert!(matches!(latency, prometheus_parse::Value::Histogram(b) if !b.is_empty()));
    for sample in &scrape.samples {
        assert!(sample.metric.starts_with("simplepro_"), "{}", sample.metric);
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.metric.strip_suffix(suffix))
            .filter(|base| scrape.docs.contains_key(*base))
            .unwrap_or(&sample.metric);
        assert!(
            scrape.docs.contains_key(family),
            "no HELP for {}",
            sample.metric
        );
    }
    let document: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(document["paths"]["/v1/jobs/{id}/crew/{crew_member_id}"]["delete"].is_object());
    let reply = app
        .send(reqwest::Method::GET, "/v1/nowhere", None, None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_user_or_an_address_past_its_rate_gets_429_with_retry_after() {
    let app = spawn_with(
        Arc::new(TestEnv::new().await),
        &[
            "--rate-per-user",
            "1",
            "--rate-burst-per-user",
            "3",
            "--rate-per-address",
            "1",
            "--rate-burst-per-address",
            "8",
        ],
    )
    .await;
    let sales = app.role_token(Role::Sales);
    let app = &app;
    let list = |token: String| async move {
        app.send(
            reqwest::Method::POST,
            "/v1/customers",
            Some(&token),
            Some(json!({})),
            &[],
        )
        .await
    };
    // Three requests fit the user's burst (each a 422: the body is empty); the fourth does not.
    for _ in 0..3 {
        assert_eq!(
            list(sales.clone()).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    let limited = list(sales.clone()).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(limited.headers["content-type"], "application/problem+json");
    assert_eq!(
        limited.body["type"],
        "https://simplepro.dev/problems/rate-limited"
    );
    // Another user from the same address still has their own bucket…
    let other = list(app.role_token(Role::Sales)).await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.body
    );
    // …until the address's burst (8) is spent, with or without a token.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let anonymous = app
            .send(
                reqwest::Method::POST,
                "/v1/customers",
                None,
                Some(json!({})),
                &[],
            )
            .await;
        statuses.push(anonymous.status);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Health checks are not rate limited.
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// The served document and the router agree: every documented operation is routed, no
/// method of a documented path is routed undocumented, and every response body is described.
#[tokio::test]
async fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let document = app
        .send(reqwest::Method::GET, "/openapi.json", None, None, &[])
        .await
        .body;
    let documented = tests::openapi::operations(&document);
    assert!(documented.contains(&(
        "delete".into(),
        "/v1/jobs/{id}/crew/{crew_member_id}".into()
    )));
    let mut routed = std::collections::BTreeSet::new();
    let paths: std::collections::BTreeSet<String> =
        documented.iter().map(|(_, path)| path.clone()).collect();
    for path in &paths {
        for method in tests::openapi::METHODS {
            let reply = app
                .send(
                    method.to_uppercase().parse().unwrap(),
                    &tests::openapi::concrete_path(path),
                    Some(&app.admin),
                    None,
                    &[],
                )
                .await;
            let unrouted = reply.status == StatusCode::METHOD_NOT_ALLOWED
                || reply.body["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no route"));
            if !unrouted {
                routed.insert((method.to_owned(), path.clone()));
            }
        }
    }
    assert_eq!(routed, documented);
    assert_eq!(
        tests::openapi::bare_objects(&document),
        Vec::<String>::new()
    );
}
