//! The system under fault: a private nats-server (or a NATS cluster) and database server, and
//! the three services (one or more instances of each) as child processes from the binaries
//! `./dev faults` builds, on ports of their own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::enums::Role;
use platform::auth::{Caller, JwtKeys};
use platform::config::Secret;
use serde_json::{json, Value};
use tests::{free_port, DatabaseServer, NatsCluster, ServiceProcess};
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

/// How many of each the system runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Topology {
    pub(crate) nats_nodes: usize,
    /// Instances of each service.
    pub(crate) instances: usize,
    /// A query API without a cache besides the others, to compare their answers with.
    pub(crate) reference_reader: bool,
}

impl Topology {
    pub(crate) const ONE_OF_EACH: Topology = Topology {
        nats_nodes: 1,
        instances: 1,
        reference_reader: false,
    };
}

pub(crate) struct System {
    pub(crate) http: reqwest::Client,
    pub(crate) admin_token: String,
    pub(crate) admin_id: Uuid,
    /// A second user, so that group threads have two participants.
    pub(crate) colleague_id: Uuid,
    pub(crate) crew_member_ids: Vec<Uuid>,
    pub(crate) command_apis: Vec<Service>,
    pub(crate) projectors: Vec<Service>,
    pub(crate) query_apis: Vec<Service>,
    /// The query API without a cache (`Topology::reference_reader`).
    pub(crate) reference_reader: Option<Service>,
    // Declared after the services: they stop before the servers they use.
    pub(crate) nats: NatsCluster,
    pub(crate) database: DatabaseServer,
}

/// A service process and the base URL it listens on.
pub(crate) struct Service {
    pub(crate) process: ServiceProcess,
    pub(crate) base: String,
}

impl System {
    pub(crate) async fn start(log_dir: &Path, topology: Topology) -> System {
        let (nats, database) = tokio::task::block_in_place(|| {
            (
                NatsCluster::start(topology.nats_nodes),
                DatabaseServer::start(),
            )
        });
        let mut env = service_env(&database.uri(), &nats.urls());
        env.push((
            "SIMPLEPRO_NATS_REPLICAS".into(),
            topology.nats_nodes.min(3).to_string(),
        ));
        let start = |binary: &str, instance: usize, extra_env: &[(&str, &str)]| {
            let port = free_port();
            let args = vec!["--listen".to_owned(), format!("127.0.0.1:{port}")];
            let name = match instance {
                0 => binary.to_owned(),
                n => format!("{binary}-{}", n + 1),
            };
            let log = log_dir.join(format!("{name}.log"));
            let mut env = env.clone();
            env.extend(
                extra_env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            let process = ServiceProcess::start(&name, &bin_dir().join(binary), args, env, &log);
            Service {
                process,
                base: format!("http://127.0.0.1:{port}"),
            }
        };
        let each = |binary: &str| -> Vec<Service> {
            (0..topology.instances)
                .map(|n| start(binary, n, &instance_env(binary, n, topology.instances)))
                .collect()
        };
        let (command_apis, projectors, query_apis) =
            (each("command-api"), each("projector"), each("query-api"));
        let reference_reader = topology
            .reference_reader
            .then(|| start("query-api", 99, &[("SIMPLEPRO_NO_CACHE", "true")]));
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
            command_apis,
            projectors,
            query_apis,
            reference_reader,
            nats,
            database,
        };
        for service in system.services() {
            service.wait_ready(&system.http).await;
        }
        system.register_staff().await;
        system
    }

    /// Every service instance, the reference reader included.
    pub(crate) fn services(&self) -> impl Iterator<Item = &Service> {
        self.command_apis
            .iter()
            .chain(&self.projectors)
            .chain(&self.query_apis)
            .chain(&self.reference_reader)
    }

    pub(crate) fn command_api(&mut self) -> &mut Service {
        &mut self.command_apis[0]
    }

    pub(crate) fn projector(&mut self) -> &mut Service {
        &mut self.projectors[0]
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
            .post(format!("{}{path}", self.command_apis[0].base))
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

    /// What the projectors report at `GET /v1/checkpoint`: the lowest position, and the
    /// store's tail, among those that answer; `None` when none does.
    pub(crate) async fn checkpoint(&self) -> Option<Checkpoint> {
        let mut lowest: Option<Checkpoint> = None;
        for projector in &self.projectors {
            let url = format!("{}/v1/checkpoint", projector.base);
            let Ok(response) = self.http.get(url).send().await else {
                continue;
            };
            let Ok(body) = response.json::<Value>().await else {
                continue;
            };
            let (Some(position), Some(store_tail)) =
                (body["position"].as_u64(), body["store_tail"].as_u64())
            else {
                continue;
            };
            lowest = Some(match lowest {
                Some(c) => Checkpoint {
                    position: c.position.min(position),
                    store_tail: c.store_tail.max(store_tail),
                },
                None => Checkpoint {
                    position,
                    store_tail,
                },
            });
        }
        lowest
    }

    /// The environment and database names the rebuild command needs.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        service_env(&self.database.uri(), &self.nats.urls())
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

/// What instance `n` of `count` of a service reads besides the common environment: each
/// projector a name of its own, kept across restarts (a restarted instance takes its leases
/// back at once and keeps its JetStream consumer), and with several, its share of the models.
fn instance_env(binary: &str, n: usize, count: usize) -> Vec<(&'static str, &'static str)> {
    const NAMES: [&str; 2] = ["projector-1", "projector-2"];
    const SHARES: [&str; 2] = ["dashboard,calendar,inbox", "lists,messages"];
    match (binary, count) {
        ("projector", 1) => vec![("SIMPLEPRO_PROJECTOR_INSTANCE", NAMES[0])],
        ("projector", 2) => vec![
            ("SIMPLEPRO_PROJECTOR_INSTANCE", NAMES[n]),
            ("SIMPLEPRO_PROJECTOR_MODELS", SHARES[n]),
        ],
        ("projector", _) => panic!("the fault suite runs one or two projectors"),
        _ => Vec::new(),
    }
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
