//! The services of the system running in this process against a `TestEnv`, and request
//! helpers that check what every answer must carry.

use std::time::Duration;

use clap::Parser;
use domain::enums::Role;
use platform::auth::{Caller, JwtKeys};
use platform::config::Secret;
use platform::consistency::{MIN_POSITION_PARAM, POSITION_HEADER};
use platform::shutdown::{self, ShutdownTrigger};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::TestEnv;
use uuid::Uuid;

const JWT_SECRET: &str = "end-to-end-test-secret-0123456789";
pub(super) const TIME_ZONE: &str = "America/New_York";
/// Long enough for a loaded machine; a healthy pipeline answers in milliseconds.
const WAIT_MS: &str = "15000";

/// One service running in this process.
struct Service {
    name: &'static str,
    base: String,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Service {
    /// Binds port 0, then runs the service there until `stop`.
    async fn start<F>(
        name: &'static str,
        run: impl FnOnce(tokio::net::TcpListener, shutdown::Shutdown) -> F,
    ) -> Service
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let (trigger, stop) = shutdown::channel();
        let task = tokio::spawn(run(listener, stop));
        Service {
            name,
            base,
            trigger,
            task,
        }
    }

    /// Waits until `/readyz` answers 200 (MongoDB and NATS reachable from the service).
    async fn wait_ready(&self, http: &reqwest::Client) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{}/readyz", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(!self.task.is_finished(), "{} stopped at start", self.name);
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} not ready within 20 s",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Requests a graceful shutdown and checks that the service ends without an error.
    async fn stop(self) {
        self.trigger.trigger();
        let ended = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .unwrap_or_else(|_| panic!("{} stops within 20 s", self.name));
        if let Err(error) = ended.expect("service task") {
            panic!("{} failed: {error:#}", self.name);
        }
    }
}

/// Flags every service takes: the test's own database, stream and subject prefix, and one
/// business time zone.
fn args(env: &TestEnv, program: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![program.to_owned()];
    args.extend(env.service_args());
    let shared = ["--timezone", TIME_ZONE];
    args.extend(shared.iter().chain(extra).map(|a| (*a).to_owned()));
    args
}

pub(super) struct System {
    http: reqwest::Client,
    keys: JwtKeys,
    command: Service,
    projector: Service,
    query: Service,
    // Declared last: the services stop before the test's database and stream are dropped.
    env: TestEnv,
}

/// What a query answered.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Value,
}

/// A staff member as the services know them: a registered user and a bearer token.
pub(super) struct Staff {
    pub(super) id: Uuid,
    pub(super) token: String,
}

/// What the command API answered for an accepted command.
pub(super) struct Accepted {
    pub(super) id: Uuid,
    pub(super) position: u64,
    pub(super) body: Value,
}

impl System {
    pub(super) async fn start() -> System {
        let env = TestEnv::new().await;
        let command_config = command_api::Config::try_parse_from(args(
            &env,
            "command-api",
            &["--jwt-secret", JWT_SECRET, "--position-wait-ms", WAIT_MS],
        ))
        .expect("command API flags");
        let projector_config =
            projector::Config::try_parse_from(args(&env, "projector", &["--poll-ms", "100"]))
                .expect("projector flags");
        let query_config = query_api::Config::try_parse_from(args(
            &env,
            "query-api",
            &["--jwt-secret", JWT_SECRET, "--consistency-wait-ms", WAIT_MS],
        ))
        .expect("query API flags");
        let command = Service::start("command API", |listener, stop| {
            command_api::run(command_config, listener, stop)
        })
        .await;
        let projector = Service::start("projector", |listener, stop| {
            projector::run(projector_config, listener, stop)
        })
        .await;
        let query = Service::start("query API", |listener, stop| {
            query_api::run(query_config, listener, stop)
        })
        .await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        for service in [&command, &projector, &query] {
            service.wait_ready(&http).await;
        }
        System {
            http,
            keys: JwtKeys::new(&Secret::new(JWT_SECRET)),
            command,
            projector,
            query,
            env,
        }
    }

    /// The base URLs of the command API and the query API, for requests of any shape.
    pub(super) fn base_urls(&self) -> (&str, &str) {
        (&self.command.base, &self.query.base)
    }

    /// The read models' database, as a MongoDB user reaches it.
    pub(super) fn read_models(&self) -> &read_models::dbs::ReadModelDbs {
        &self.env.read_models
    }

    /// Each service's name and `/metrics` address.
    pub(super) fn metrics_urls(&self) -> [(&'static str, String); 3] {
        [&self.command, &self.projector, &self.query]
            .map(|s| (s.name, format!("{}/metrics", s.base)))
    }

    /// The event stream on JetStream, as the services share it.
    pub(super) async fn bus(&self) -> events::Bus {
        self.env.bus().await
    }

    /// The event store, as the services share it.
    pub(super) async fn store(&self) -> events::EventStore {
        self.env.store().await
    }

    /// Rebuilds every read model from the log beside the live ones and compares them; the
    /// reports say how many documents were equal and which differed.
    pub(super) async fn rebuild_and_verify(&self) -> Vec<projector::RebuildReport> {
        let flags = ["rebuild", "--verify", "--drop-delay-secs", "1"];
        let config = projector::Config::try_parse_from(args(&self.env, "projector", &flags))
            .expect("rebuild flags");
        let Some(projector::Command::Rebuild(rebuild)) = config.command.clone() else {
            panic!("rebuild arguments not parsed");
        };
        projector::rebuild(&config, &rebuild)
            .await
            .expect("rebuild")
    }

    pub(super) async fn stop(self) {
        self.query.stop().await;
        self.projector.stop().await;
        self.command.stop().await;
    }

    pub(super) fn token(&self, id: Uuid, name: &str, role: Role) -> String {
        let caller = Caller {
            user_id: id.into(),
            name: name.to_owned(),
            role,
        };
        self.keys
            .mint(&caller, chrono::Duration::hours(1))
            .expect("sign a token")
    }

    /// Sends a command and expects it accepted (200 or 201) with its position.
    pub(super) async fn command(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Accepted {
        let (Reply { status, body }, header) = self.send_command(method, path, token, body).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::CREATED,
            "{path} answered {status}: {body}"
        );
        // The command API names the token as the query API does: `X-Position` and `position`.
        assert_eq!(header, body["position"].as_u64(), "{path}: {body}");
        Accepted {
            id: body["aggregate_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{path}: no aggregate_id in {body}")),
            position: body["position"]
                .as_u64()
                .unwrap_or_else(|| panic!("{path}: no position in {body}")),
            body,
        }
    }

    pub(super) async fn post(&self, path: &str, token: &str, body: Value) -> Accepted {
        self.command(Method::POST, path, token, Some(body)).await
    }

    /// The first administrator, registered with a token that signs its own registration.
    pub(super) async fn first_admin(&self) -> Staff {
        let id = Uuid::now_v7();
        let bootstrap = self.token(id, "Ada Admin", Role::Admin);
        self.staff(&bootstrap, id, "Ada Admin", Role::Admin).await
    }

    /// A new user registered by `admin`, with a token.
    pub(super) async fn member(&self, admin: &Staff, name: &str, role: Role) -> Staff {
        self.staff(&admin.token, Uuid::now_v7(), name, role).await
    }

    /// Registers a user (as `admin`) and signs a token for them.
    pub(super) async fn staff(&self, admin: &str, id: Uuid, name: &str, role: Role) -> Staff {
        let email = format!(
            "{}@simplepro.example",
            name.to_lowercase().replace(' ', ".")
        );
        let accepted = self
            .post(
                "/v1/users",
                admin,
                json!({"user_id": id, "display_name": name, "email": email, "role": role.as_str()}),
            )
            .await;
        assert_eq!(accepted.id, id);
        Staff {
            id,
            token: self.token(id, name, role),
        }
    }

    /// Reads from the query API once the read models include `min_position`. A 200 must be
    /// current to at least that position, in its `X-Position` header and body alike.
    pub(super) async fn read(&self, path: &str, token: &str, min_position: u64) -> Reply {
        let separator = if path.contains('?') { '&' } else { '?' };
        let response = self
            .http
            .get(format!(
                "{}{path}{separator}{MIN_POSITION_PARAM}={min_position}",
                self.query.base
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("query API answers");
        let status = response.status();
        let header = position_header(response.headers());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == StatusCode::OK {
            let position = header.unwrap_or_else(|| panic!("{path}: no X-Position header"));
            assert!(
                position >= min_position,
                "{path} is at {position}, asked for {min_position}"
            );
            assert_eq!(body["position"].as_u64(), Some(position), "{path}: {body}");
        }
        Reply { status, body }
    }

    /// The caller's unread counts once the read models include `min_position`.
    pub(super) async fn unread(&self, staff: &Staff, min_position: u64) -> Value {
        self.get("/v1/me/unread-count", &staff.token, min_position)
            .await["data"]
            .take()
    }

    /// Sends a command that may be refused; what the command API answered.
    pub(super) async fn attempt(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Reply {
        self.send_command(method, path, token, body).await.0
    }

    /// Posts a command that may be refused.
    pub(super) async fn try_post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.attempt(Method::POST, path, token, Some(body)).await
    }

    /// What the command API answered, and its `X-Position` header.
    async fn send_command(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (Reply, Option<u64>) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.command.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("command API answers");
        let status = response.status();
        let header = position_header(response.headers());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (Reply { status, body }, header)
    }

    /// A read that must succeed; returns its body.
    pub(super) async fn get(&self, path: &str, token: &str, min_position: u64) -> Value {
        let reply = self.read(path, token, min_position).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        reply.body
    }
}

/// The position an answer names in its `X-Position` header, if any.
fn position_header(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(POSITION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}
