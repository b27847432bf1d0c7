//! The system under fault: a private nats-server and database server, and the three services
//! as child processes from the binaries `./dev faults` builds, on ports of their own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::enums::Role;
use platform::auth::{Caller, JwtKeys};
use platform::config::Secret;
use serde_json::{json, Value};
use tests::{free_port, DatabaseServer, NatsServer, ServiceProcess};
use uuid::Uuid;

const JWT_SECRET: &str = "fault-suite-secret-0123456789";
const DATABASE: &str = "faults";
const STREAM: &str = "FAULTS";
const SUBJECT_PREFIX: &str = "faults.events";
/// A restarted service answers within this, or the suite fails.
const START_BOUND: Duration = Duration::from_secs(60);

/// Where `./dev faults` (and `./dev test`) put the services the suite runs: the command API
/// built with `--features fault-points`, kept apart from `target/debug`, where a build of
/// command-api without the feature (any `cargo test` of it) would replace it.
pub(crate) fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("fault-points")
}

pub(crate) const BINARIES: [&str; 3] = ["command-api", "projector", "query-api"];

pub(crate) struct System {
    pub(crate) http: reqwest::Client,
    pub(crate) admin_token: String,
    pub(crate) admin_id: Uuid,
    /// A second user, so that group threads have two participants.
    pub(crate) colleague_id: Uuid,
    pub(crate) crew_member_ids: Vec<Uuid>,
    pub(crate) command_api: Service,
    pub(crate) projector: Service,
    pub(crate) query_api: Service,
    // Declared after the services: they stop before the servers they use.
    pub(crate) nats: NatsServer,
    pub(crate) database: DatabaseServer,
}

/// A service process and the base URL it listens on.
pub(crate) struct Service {
    pub(crate) process: ServiceProcess,
    pub(crate) base: String,
}

impl System {
    pub(crate) async fn start(log_dir: &Path) -> System {
        let (nats, database) =
            tokio::task::block_in_place(|| (NatsServer::start(), DatabaseServer::start()));
        let env = service_env(&database.uri(), &nats.url());
        let start = |binary: &str| {
            let port = free_port();
            let args = vec!["--listen".to_owned(), format!("127.0.0.1:{port}")];
            let log = log_dir.join(format!("{binary}.log"));
            let process =
                ServiceProcess::start(binary, &bin_dir().join(binary), args, env.clone(), &log);
            Service {
                process,
                base: format!("http://127.0.0.1:{port}"),
            }
        };
        let (command_api, projector, query_api) =
            (start("command-api"), start("projector"), start("query-api"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("HTTP client");
        let admin_id = Uuid::now_v7();
        let mut system = System {
            admin_token: token(admin_id, "Ada Admin", Role::Admin),
            admin_id,
            colleague_id: Uuid::now_v7(),
            crew_member_ids: Vec::new(),
            http,
            command_api,
            projector,
            query_api,
            nats,
            database,
        };
        for service in [&system.command_api, &system.projector, &system.query_api] {
            service.wait_ready(&system.http).await;
        }
        system.register_staff().await;
        system
    }

    /// The first administrator (whose token signs its own registration), a colleague and
    /// three crew members.
    async fn register_staff(&mut self) {
        let users = [
            (self.admin_id, "Ada Admin", "admin"),
            (self.colleague_id, "Sam Sales", "sales"),
        ];
        for (id, name, role) in users {
            let email = format!(
                "{}@simplepro.example",
                name.to_lowercase().replace(' ', ".")
            );
            let body = json!({"user_id": id, "display_name": name, "email": email, "role": role});
            self.setup_command("/v1/users", body).await;
        }
        for n in 1..=3 {
            let body = json!({"name": format!("Crew {n}"), "skills": ["packing"]});
            let accepted = self.setup_command("/v1/crew-members", body).await;
            let id = accepted["aggregate_id"]
                .as_str()
                .and_then(|s| s.parse().ok());
            self.crew_member_ids
                .push(id.expect("a crew member's aggregate_id"));
        }
    }

    async fn setup_command(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.command_api.base))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path} answered {status}: {answer}");
        answer
    }

    /// What the projector reports at `GET /v1/checkpoint`, if it answers.
    pub(crate) async fn checkpoint(&self) -> Option<Checkpoint> {
        let url = format!("{}/v1/checkpoint", self.projector.base);
        let response = self.http.get(url).send().await.ok()?;
        let body: Value = response.json().await.ok()?;
        Some(Checkpoint {
            position: body["position"].as_u64()?,
            store_tail: body["store_tail"].as_u64()?,
        })
    }

    /// The environment and database names the rebuild command needs.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        service_env(&self.database.uri(), &self.nats.url())
    }

    pub(crate) fn database_uri(&self) -> String {
        self.database.uri()
    }

    pub(crate) fn database_name(&self) -> &'static str {
        DATABASE
    }

    pub(crate) fn stream_name(&self) -> &'static str {
        STREAM
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkpoint {
    /// The lowest position every read model has applied.
    pub(crate) position: u64,
    pub(crate) store_tail: u64,
}

impl Service {
    /// Waits until `/readyz` answers 200 (MongoDB and NATS reachable from the service).
    pub(crate) async fn wait_ready(&self, http: &reqwest::Client) {
        let deadline = tokio::time::Instant::now() + START_BOUND;
        loop {
            let ready = http.get(format!("{}/readyz", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} not ready within {START_BOUND:?} (log: {})",
                self.process.name(),
                self.process.log().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn token(id: Uuid, name: &str, role: Role) -> String {
    let caller = Caller {
        user_id: id.into(),
        name: name.to_owned(),
        role,
    };
    JwtKeys::new(&Secret::new(JWT_SECRET))
        .mint(&caller, chrono::Duration::hours(4))
        .expect("sign a token")
}

/// What every service (and `projector rebuild`) reads from its environment.
fn service_env(mongodb_uri: &str, nats_url: &str) -> Vec<(String, String)> {
    [
        ("MONGODB_URI", mongodb_uri),
        ("MONGODB_DB", DATABASE),
        ("NATS_URL", nats_url),
        ("SIMPLEPRO_NATS_STREAM", STREAM),
        ("SIMPLEPRO_SUBJECT_PREFIX", SUBJECT_PREFIX),
        ("SIMPLEPRO_JWT_SECRET", JWT_SECRET),
        ("SIMPLEPRO_TIMEZONE", "America/New_York"),
        // A few clients with one token from one address: the limits would measure themselves.
        ("SIMPLEPRO_RATE_PER_USER", "0"),
        ("SIMPLEPRO_RATE_PER_ADDRESS", "0"),
        ("RUST_LOG", "warn"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec()
}
