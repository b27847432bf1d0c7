//! Several projector instances share the read models: two instances (their binary, processes
//! of their own) with disjoint preferred models under a command load each hold only their own
//! models' leases; one killed with SIGKILL mid-load has its models taken over by the survivor
//! within a bound; restarted, it gets them back; and the read models then equal a replay of
//! the log. One stopped gracefully hands its models to the other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Document};
use clap::Parser;
use domain::enums::Role;
use futures::TryStreamExt;
use platform::auth::{Caller, JwtKeys};
use platform::config::Secret;
use read_models::Model;
use serde_json::{json, Value};
use tests::{bodies, free_port, CommandApiTask, ServiceProcess, TestEnv};
use tokio::time::Instant;
use uuid::Uuid;

const JWT_SECRET: &str = "projector-sharing-secret-0123456789";
const TIME_ZONE: &str = "America/New_York";
const LEASE_TTL_MS: &str = "2000";
/// Longer than an instance takes to start, so neither takes the other's models at start.
const GRACE_MS: &str = "4000";
/// The survivor holds a dead instance's models within this: the TTL, the grace and a few
/// rounds of the keeper, with room for a loaded machine.
const TAKEOVER_BOUND: Duration = Duration::from_secs(15);
const A_MODELS: [Model; 2] = [Model::Dashboard, Model::Calendar];
const B_MODELS: [Model; 3] = [Model::Inbox, Model::Lists, Model::Messages];

fn projector_binary() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("debug/projector")
}

/// The projector built with `--features fault-points` (by `./dev test`'s fault-suite build).
fn fault_point_projector_binary() -> PathBuf {
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("fault-points/projector");
    assert!(
        binary.exists(),
        "{} is missing: `./dev test` builds it (the fault suite's build)",
        binary.display()
    );
    binary
}

fn projector(env: &TestEnv, instance: &str, models: &[Model]) -> ServiceProcess {
    projector_from(&projector_binary(), env, instance, models, Vec::new())
}

fn projector_from(
    binary: &Path,
    env: &TestEnv,
    instance: &str,
    models: &[Model],
    vars: Vec<(String, String)>,
) -> ServiceProcess {
    let mut args = env.service_args();
    let models = names(models);
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    args.extend(
        [
            "--listen",
            &listen,
            "--timezone",
            TIME_ZONE,
            "--instance-id",
            instance,
            "--models",
            &models,
            "--poll-ms",
            "100",
            "--lease-ttl-ms",
            LEASE_TTL_MS,
            "--takeover-grace-ms",
            GRACE_MS,
            "--log-filter",
            "info",
        ]
        .map(str::to_owned),
    );
    let log = std::env::temp_dir().join(format!("{}-{instance}.log", env.db_name));
    ServiceProcess::start(&format!("projector {instance}"), binary, args, vars, &log)
}

/// `--models` of `models`.
fn names(models: &[Model]) -> String {
    models
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Every epoch of every model's lease: model → holders by epoch.
async fn lease_history(env: &TestEnv) -> BTreeMap<Model, BTreeMap<i64, String>> {
    let docs: Vec<Document> = env
        .read_models
        .collection::<Document>("rm_leases")
        .find(doc! {})
        .await
        .expect("read the leases")
        .try_collect()
        .await
        .expect("read the leases");
    let mut history: BTreeMap<Model, BTreeMap<i64, String>> = BTreeMap::new();
    for lease in docs {
        let id = lease.get_str("_id").unwrap_or_default();
        let Some((model, epoch)) = id.split_once('/') else {
            continue;
        };
        let (Ok(model), Ok(epoch)) = (model.parse::<Model>(), epoch.parse::<i64>()) else {
            continue;
        };
        let holder = lease.get_str("holder").unwrap_or_default().to_owned();
        history.entry(model).or_default().insert(epoch, holder);
    }
    history
}

/// The holder of each model's latest epoch.
async fn holders(env: &TestEnv) -> BTreeMap<Model, String> {
    lease_history(env)
        .await
        .into_iter()
        .filter_map(|(model, epochs)| Some((model, epochs.into_values().next_back()?)))
        .collect()
}

/// Waits until the latest epoch of every model in `models` is held by `instance`; returns how
/// long that took.
async fn wait_held(env: &TestEnv, models: &[Model], instance: &str, bound: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = holders(env).await;
        if models
            .iter()
            .all(|m| now.get(m).map(String::as_str) == Some(instance))
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{instance} does not hold {models:?} within {bound:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every model's checkpoint (in its live generation) reached the log's tail.
async fn wait_quiet(env: &TestEnv, store: &events::EventStore) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tail = events::relay::sequenced_tail(store).await.expect("tail");
        let registry: Vec<Document> = env
            .read_models
            .collection::<Document>(read_models::names::REGISTRY_COLLECTION)
            .find(doc! {})
            .await
            .expect("registry")
            .try_collect()
            .await
            .expect("registry");
        let mut behind = Vec::new();
        for model in Model::ALL {
            let generation = registry
                .iter()
                .find(|d| d.get_str("_id").ok() == Some(model.as_str()))
                .and_then(|d| d.get_i64("generation").ok())
                .unwrap_or(1);
            let checkpoint = env
                .read_models
                .collection::<Document>(&read_models::names::meta_collection(
                    model,
                    generation as u32,
                ))
                .find_one(doc! {"_id": read_models::names::CHECKPOINT_ID})
                .await
                .expect("checkpoint")
                .and_then(|d| d.get_i64("position").ok())
                .unwrap_or(0);
            if (checkpoint as u64) < tail {
                behind.push((model, checkpoint));
            }
        }
        if behind.is_empty() && tail > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "models behind the tail {tail}: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `projector rebuild --verify` of every model: each must equal a replay of the log.
async fn verify_against_a_replay(env: &TestEnv) {
    let mut args = vec!["projector".to_owned()];
    args.extend(env.service_args());
    args.extend(
        [
            "--timezone",
            TIME_ZONE,
            "rebuild",
            "--verify",
            "--drop-delay-secs",
            "1",
        ]
        .map(str::to_owned),
    );
    let config = projector::Config::try_parse_from(args).expect("rebuild flags");
    let Some(projector::Command::Rebuild(rebuild)) = config.command.clone() else {
        panic!("rebuild arguments not parsed");
    };
    let reports = projector::rebuild(&config, &rebuild)
        .await
        .expect("rebuild");
    for report in reports {
        let verify = report.verify.expect("verified");
        assert_eq!(
            verify.different, 0,
            "{}: differs from a replay: {:?}",
            report.model, verify.examples
        );
    }
}

/// Commands touching every model (customers and scheduled jobs, threads and messages) until
/// `stop`; returns how many were accepted.
async fn load(
    http: reqwest::Client,
    base: String,
    token: String,
    users: [Uuid; 2],
    client: usize,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut accepted = 0;
    let mut n = 0;
    let post = |path: String, body: Value| {
        let (http, token) = (http.clone(), token.clone());
        let url = format!("{base}{path}");
        async move {
            let answer = http.post(url).bearer_auth(token).json(&body).send().await;
            match answer {
                Ok(response) if response.status().is_success() => {
                    let body: Value = response.json().await.ok()?;
                    body["aggregate_id"].as_str().map(str::to_owned)
                }
                _ => None,
            }
        }
    };
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let customer = bodies::customer(
            "Shared",
            &format!("Load{client}x{n}"),
            &format!("shared.{client}.{n}@example.com"),
            "+1 555 010 0001",
        );
        let Some(customer) = post("/v1/customers".into(), customer).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        accepted += 1;
        let customer: Uuid = customer.parse().expect("a customer id");
        if let Some(job) = post("/v1/jobs".into(), bodies::job(customer)).await {
            accepted += 1;
            let day = 10 + (n % 15);
            let slot = json!({"date": format!("2030-03-{day:02}"),
                "window": {"start": "08:00", "end": "12:00"}});
            if post(format!("/v1/jobs/{job}/schedule"), slot)
                .await
                .is_some()
            {
                accepted += 1;
            }
        }
        if n % 3 == 0 {
            let thread = json!({"kind": "direct", "participants": users});
            if let Some(thread) = post("/v1/threads".into(), thread).await {
                accepted += 1;
                let message = json!({"body": format!("note {client}/{n}")});
                if post(format!("/v1/threads/{thread}/messages"), message)
                    .await
                    .is_some()
                {
                    accepted += 1;
                }
            }
        }
    }
    accepted
}

struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<usize>>,
}

impl Load {
    fn start(http: &reqwest::Client, base: &str, token: &str, users: [Uuid; 2]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..3)
            .map(|client| {
                tokio::spawn(load(
                    http.clone(),
                    base.to_owned(),
                    token.to_owned(),
                    users,
                    client,
                    stop.clone(),
                ))
            })
            .collect();
        Load { stop, clients }
    }

    async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let mut accepted = 0;
        for client in self.clients {
            accepted += client.await.expect("load client");
        }
        accepted
    }
}

async fn register(http: &reqwest::Client, base: &str, token: &str, id: Uuid, role: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let registered = http
            .post(format!("{base}/v1/users"))
            .bearer_auth(token)
            .json(
                &json!({"user_id": id, "display_name": format!("User {role}"),
                "email": format!("{id}@simplepro.example"), "role": role}),
            )
            .send()
            .await;
        if registered.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(Instant::now() < deadline, "command API not up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The command API in this process, with an admin and a colleague registered.
struct Commands {
    api: CommandApiTask,
    base: String,
    token: String,
    users: [Uuid; 2],
    http: reqwest::Client,
}

impl Commands {
    async fn start(env: &TestEnv) -> Commands {
        let flags = [
            "--jwt-secret",
            JWT_SECRET,
            "--rate-per-user",
            "0",
            "--timezone",
            TIME_ZONE,
        ];
        let api = CommandApiTask::start(env, &flags).await;
        let base = api.base.clone();
        let admin = Uuid::now_v7();
        let colleague = Uuid::now_v7();
        let token = JwtKeys::new(&Secret::new(JWT_SECRET))
            .mint(
                &Caller {
                    user_id: admin.into(),
                    name: "User admin".into(),
                    role: Role::Admin,
                },
                chrono::Duration::hours(1),
            )
            .expect("sign a token");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        register(&http, &base, &token, admin, "admin").await;
        register(&http, &base, &token, colleague, "dispatcher").await;
        Commands {
            api,
            base,
            token,
            users: [admin, colleague],
            http,
        }
    }

    fn load(&self) -> Load {
        Load::start(&self.http, &self.base, &self.token, self.users)
    }

    async fn stop(self) {
        self.api.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn projector_instances_share_the_models_take_over_and_give_back() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let commands = Commands::start(&env).await;

    // (a) Two instances with disjoint preferred models, under load.
    let mut a = projector(&env, "a", &A_MODELS);
    let mut b = projector(&env, "b", &B_MODELS);
    let load = commands.load();
    wait_held(&env, &A_MODELS, "a", Duration::from_secs(30)).await;
    wait_held(&env, &B_MODELS, "b", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = load.stop().await;
    assert!(accepted > 20, "too little load: {accepted} commands");
    wait_quiet(&env, &store).await;
    // One writer per model: every epoch of a model's lease was its preferred instance's.
    for (model, epochs) in lease_history(&env).await {
        let owner = if A_MODELS.contains(&model) { "a" } else { "b" };
        assert!(
            epochs.values().all(|holder| holder == owner),
            "{model:?} was held by others than {owner}: {epochs:?}"
        );
    }
    verify_against_a_replay(&env).await;

    // (b) A dies mid-load: B takes its models over within the bound.
    let load = commands.load();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| a.kill9());
    let took = wait_held(&env, &A_MODELS, "b", TAKEOVER_BOUND).await;
    eprintln!("the survivor took over after {took:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // (c) A restarted gets its preferred models back; B keeps its own.
    tokio::task::block_in_place(|| a.restart());
    let back = wait_held(&env, &A_MODELS, "a", TAKEOVER_BOUND).await;
    eprintln!("the restarted instance got its models back after {back:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = load.stop().await;
    assert!(accepted > 20, "too little load: {accepted} commands");
    wait_quiet(&env, &store).await;
    let history = lease_history(&env).await;
    for model in B_MODELS {
        assert!(
            history[&model].values().all(|holder| holder == "b"),
            "{model:?} left b: {:?}",
            history[&model]
        );
    }
    for model in A_MODELS {
        let holders: Vec<&str> = history[&model].values().map(String::as_str).collect();
        assert!(
            holders.contains(&"b") && holders.last() == Some(&"a"),
            "{model:?}: {holders:?}"
        );
    }
    // No duplicate or lost effects across the takeover and the give-back.
    verify_against_a_replay(&env).await;

    // (d) B drained (SIGTERM): it releases its leases and A takes its models after the grace.
    tokio::task::block_in_place(|| b.stop());
    let drained = wait_held(&env, &B_MODELS, "a", TAKEOVER_BOUND).await;
    eprintln!("a drained instance's models moved after {drained:?}");
    tokio::task::block_in_place(|| a.stop());
    commands.stop().await;
}

/// Creates `count` customers (each changes the day's dashboard, the customer lists and their
/// buckets), one after the other.
async fn create_customers(commands: &Commands, tag: &str, count: usize) {
    for n in 0..count {
        let body = bodies::customer(
            "Fenced",
            &format!("{tag}x{n}"),
            &format!("fenced.{tag}.{n}@example.com"),
            "+1 555 010 0002",
        );
        let created = commands
            .http
            .post(format!("{}/v1/customers", commands.base))
            .bearer_auth(&commands.token)
            .json(&body)
            .send()
            .await
            .expect("create a customer");
        assert!(created.status().is_success(), "{}", created.status());
    }
}

/// Waits until `process`'s log has a line containing `text`.
async fn wait_logged(process: &ServiceProcess, text: &str, bound: Duration) {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(process.log()).unwrap_or_default();
        if log.contains(text) {
            return;
        }
        assert!(
            started.elapsed() < bound,
            "{} did not log {text:?} within {bound:?}",
            process.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An instance frozen between its lease check and its writes (SIGSTOP in a fault point's
/// wait) past its lease, while another takes its models over and writes newer versions of the
/// same documents: resumed, it must not put its older versions back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_former_owner_resumed_after_a_freeze_does_not_put_back_older_documents() {
    const FROZEN_MODELS: [Model; 4] = [
        Model::Dashboard,
        Model::Calendar,
        Model::Inbox,
        Model::Lists,
    ];
    let env = TestEnv::new().await;
    let store = env.store().await;
    let commands = Commands::start(&env).await;
    let stall = [
        ("SIMPLEPRO_FAULT_STALL_MS", "5000"),
        ("SIMPLEPRO_FAULT_STALL_KIND", "customers"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let mut a = projector_from(
        &fault_point_projector_binary(),
        &env,
        "a",
        &FROZEN_MODELS,
        stall,
    );
    let mut b = projector(&env, "b", &[Model::Messages]);
    wait_held(&env, &FROZEN_MODELS, "a", Duration::from_secs(30)).await;
    wait_held(&env, &[Model::Messages], "b", Duration::from_secs(30)).await;

    // A's first flush of customer documents stops in the fault point; A is frozen there.
    create_customers(&commands, "before", 3).await;
    wait_logged(&a, "fault point: stalling", Duration::from_secs(30)).await;
    a.pause();

    // B takes A's models over, catches up from A's checkpoints and writes newer versions of
    // the documents A holds (the day's dashboard, the customer lists).
    wait_held(&env, &FROZEN_MODELS, "b", TAKEOVER_BOUND).await;
    create_customers(&commands, "after", 3).await;
    wait_quiet(&env, &store).await;

    // A resumes where it stopped: it writes, finds newer versions stored, and lets go.
    a.resume();
    wait_logged(
        &a,
        "documents not written: a newer version is stored",
        Duration::from_secs(30),
    )
    .await;
    // A is live again and prefers its models: B gives them back.
    wait_held(&env, &FROZEN_MODELS, "a", TAKEOVER_BOUND).await;
    create_customers(&commands, "back", 2).await;
    wait_quiet(&env, &store).await;
    verify_against_a_replay(&env).await;

    tokio::task::block_in_place(|| {
        a.stop();
        b.stop();
    });
    commands.stop().await;
}
