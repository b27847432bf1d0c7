//! An accepted command survives a crash of the database server: commands are sent without a
//! pause while PostgreSQL and FerretDB are killed with SIGKILL; after a restart every command
//! that was answered 2xx is in the event store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use domain::enums::Role;
use events::StreamId;
use platform::auth::{Caller, JwtKeys};
use platform::config::Secret;
use serde_json::{json, Value};
use tests::{bodies, CommandApiTask, DatabaseServer, TestEnv};
use uuid::Uuid;

const JWT_SECRET: &str = "durability-test-secret-0123456789";
const CLIENTS: usize = 8;

/// Posts customers until `stop` is set; returns the ids of the accepted ones.
async fn post_customers(
    http: reqwest::Client,
    base: String,
    token: String,
    client: usize,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut accepted = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = bodies::customer(
            "Dura",
            &format!("Ble{client}x{n}"),
            &format!("dura.{client}.{n}@example.com"),
            "+1 555 010 0001",
        );
        let answer = http
            .post(format!("{base}/v1/customers"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => {
                let body: Value = response.json().await.expect("an accepted command's body");
                let id = body["aggregate_id"].as_str().expect("aggregate_id");
                accepted.push(id.to_owned());
            }
            // Refused or failed while the database is down: not accepted, nothing to check.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_answered_2xx_survive_a_kill_9_of_the_database_server() {
    let mut database = DatabaseServer::start();
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:34222".into());
    let env = TestEnv::with_nats(database.uri(), nats_url).await;

    // Eight clients share one token; the load is the point, not the user's rate limit.
    let api =
        CommandApiTask::start(&env, &["--jwt-secret", JWT_SECRET, "--rate-per-user", "0"]).await;
    let base = api.base.clone();

    let admin_id = Uuid::now_v7();
    let caller = Caller {
        user_id: admin_id.into(),
        name: "Ada Admin".into(),
        role: Role::Admin,
    };
    let token = JwtKeys::new(&Secret::new(JWT_SECRET))
        .mint(&caller, chrono::Duration::hours(1))
        .expect("sign a token");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let registered = http
            .post(format!("{base}/v1/users"))
            .bearer_auth(&token)
            .json(&json!({"user_id": admin_id, "display_name": "Ada Admin",
                "email": "ada@simplepro.example", "role": "admin"}))
            .send()
            .await;
        if registered.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "command API not up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            tokio::spawn(post_customers(
                http.clone(),
                base.clone(),
                token.clone(),
                client,
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The crash lands while commands are in flight.
    tokio::task::block_in_place(|| database.kill9());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut accepted = Vec::new();
    for client in clients {
        accepted.extend(client.await.expect("client task"));
    }
    api.stop().await;

    tokio::task::block_in_place(|| database.restart());
    assert!(
        accepted.len() >= 20,
        "too few commands were accepted before the crash to show anything: {}",
        accepted.len()
    );
    let store = env.store().await;
    let mut lost = Vec::new();
    for id in &accepted {
        let stream = StreamId::new("customer", id.as_str()).expect("a customer stream id");
        let events = store.read_stream(&stream, 1).await.expect("read a stream");
        if events.is_empty() {
            lost.push(id.clone());
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} accepted commands are missing after the crash: {lost:?}",
        lost.len(),
        accepted.len()
    );
}
