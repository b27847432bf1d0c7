//! A steady command load of mixed types from a few paced clients (customers, jobs for them
//! taken through crew, schedule, start and completion, group threads and their messages), and
//! readers polling the query API, while a fault comes and goes. With several instances of an
//! API the clients take turns among them, and a request that finds no one listening goes to
//! the next, as a load balancer would send it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::bodies;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::system::System;

#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadShape {
    pub(crate) writers: usize,
    pub(crate) commands_per_second: f64,
    pub(crate) readers: usize,
    pub(crate) read_interval: Duration,
}

/// What the clients saw while the load ran.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) sent: u64,
    /// Commands answered 2xx.
    pub(crate) accepted: u64,
    /// The event ids those answers named.
    pub(crate) event_ids: Vec<Uuid>,
    pub(crate) reads_ok: u64,
    pub(crate) reads_failed: u64,
    pub(crate) seconds: f64,
    /// How long each command and each read took, answered or not.
    pub(crate) command_latencies: Vec<Duration>,
    pub(crate) read_latencies: Vec<Duration>,
}

impl Tally {
    /// The 99th percentile of `latencies` (nearest rank), in milliseconds.
    pub(crate) fn p99_ms(latencies: &[Duration]) -> f64 {
        let mut sorted = latencies.to_vec();
        sorted.sort_unstable();
        let rank = ((sorted.len() as f64 * 0.99).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted
            .get(rank - 1)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    started: Instant,
    writers: Vec<JoinHandle<Tally>>,
    readers: Vec<JoinHandle<Tally>>,
}

/// Who the clients act as and where they send.
#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    command_apis: Vec<String>,
    query_apis: Vec<String>,
    token: String,
    participants: [Uuid; 2],
    crew_member_ids: Vec<Uuid>,
}

impl Load {
    pub(crate) fn start(system: &System, shape: LoadShape) -> Load {
        let target = Target {
            http: system.http.clone(),
            command_apis: system.command_apis.iter().map(|s| s.base.clone()).collect(),
            query_apis: system.query_apis.iter().map(|s| s.base.clone()).collect(),
            token: system.admin_token.clone(),
            participants: [system.admin_id, system.colleague_id],
            crew_member_ids: system.crew_member_ids.clone(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let period = Duration::from_secs_f64(shape.writers as f64 / shape.commands_per_second);
        let writers = (0..shape.writers)
            .map(|n| {
                let writer = Writer::new(target.clone(), n);
                tokio::spawn(writer.run(period, stop.clone()))
            })
            .collect();
        let readers = (0..shape.readers)
            .map(|_| tokio::spawn(read(target.clone(), shape.read_interval, stop.clone())))
            .collect();
        Load {
            stop,
            started: Instant::now(),
            writers,
            readers,
        }
    }

    /// Stops the clients after their requests in flight and adds up what they saw.
    pub(crate) async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Tally {
            seconds: self.started.elapsed().as_secs_f64(),
            ..Tally::default()
        };
        for client in self.writers.into_iter().chain(self.readers) {
            let tally = client.await.expect("a load client");
            total.sent += tally.sent;
            total.accepted += tally.accepted;
            total.event_ids.extend(tally.event_ids);
            total.reads_ok += tally.reads_ok;
            total.reads_failed += tally.reads_failed;
            total.command_latencies.extend(tally.command_latencies);
            total.read_latencies.extend(tally.read_latencies);
        }
        total
    }
}

/// A job and the step it takes next.
#[derive(Debug, Clone, Copy)]
enum Step {
    Crew,
    Schedule,
    Start,
    Complete,
}

/// One paced client with the aggregates it created.
struct Writer {
    target: Target,
    dice: Dice,
    n: usize,
    customers: Vec<Uuid>,
    jobs: Vec<(Uuid, Step)>,
    threads: Vec<Uuid>,
    tally: Tally,
}

/// What one command came to.
enum Outcome {
    Accepted(Value),
    /// Refused (4xx): sending it again cannot help.
    Refused,
    /// Failed (5xx, timeout, no connection): it may or may not have been stored.
    Failed,
}

impl Writer {
    fn new(target: Target, n: usize) -> Writer {
        Writer {
            target,
            dice: Dice::new(),
            n,
            customers: Vec::new(),
            jobs: Vec::new(),
            threads: Vec::new(),
            tally: Tally::default(),
        }
    }

    async fn run(mut self, period: Duration, stop: Arc<AtomicBool>) -> Tally {
        let mut pace = tokio::time::interval(period);
        // After a stall the load resumes at its rate rather than in a burst.
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            pace.tick().await;
            self.next_command().await;
        }
        self.tally
    }

    /// A command chosen from the mix: 20 % customers, 20 % jobs, 30 % job steps, 10 % threads,
    /// 20 % messages; whatever needs an aggregate the writer does not have yet creates one.
    async fn next_command(&mut self) {
        let roll = self.dice.below(100);
        if self.customers.is_empty() || roll < 20 {
            self.new_customer().await
        } else if roll < 40 || (roll < 70 && self.jobs.is_empty()) {
            self.new_job().await
        } else if roll < 70 {
            self.job_step().await
        } else if roll < 80 || self.threads.is_empty() {
            self.new_thread().await
        } else {
            self.new_message().await
        }
    }

    async fn new_customer(&mut self) {
        let (n, sent) = (self.n, self.tally.sent);
        let body = bodies::customer(
            "Fault",
            &format!("Load{n}x{sent}"),
            &format!("fault.{n}.{sent}@example.com"),
            "+1 555 010 0001",
        );
        if let Outcome::Accepted(id) = self.send("/v1/customers".into(), Some(body)).await {
            self.customers.push(id_of(&id));
        }
    }

    async fn new_job(&mut self) {
        let customer = self.customers[self.dice.below(self.customers.len())];
        let body = bodies::job(customer);
        if let Outcome::Accepted(id) = self.send("/v1/jobs".into(), Some(body)).await {
            self.jobs.push((id_of(&id), Step::Crew));
        }
    }

    /// Takes a job one step on; a refused step drops the job (a step that failed may have
    /// been stored, and its repetition is then refused).
    async fn job_step(&mut self) {
        let index = self.dice.below(self.jobs.len());
        let (job, step) = self.jobs[index];
        let crew = self.target.crew_member_ids[self.dice.below(3)];
        let day = 1 + self.dice.below(28);
        let (action, body, next) = match step {
            Step::Crew => (
                "crew",
                Some(json!({"crew_member_id": crew})),
                Some(Step::Schedule),
            ),
            Step::Schedule => (
                "schedule",
                Some(json!({"date": format!("2030-03-{day:02}"),
                    "window": {"start": "08:00", "end": "12:00"}})),
                Some(Step::Start),
            ),
            Step::Start => ("start", None, Some(Step::Complete)),
            Step::Complete => (
                "complete",
                Some(json!({"actual_revenue": {"amount_minor": 120_000, "currency": "USD"}})),
                None,
            ),
        };
        match (
            self.send(format!("/v1/jobs/{job}/{action}"), body).await,
            next,
        ) {
            (Outcome::Accepted(_), Some(next)) => self.jobs[index].1 = next,
            (Outcome::Accepted(_), None) | (Outcome::Refused, _) => {
                self.jobs.swap_remove(index);
            }
            (Outcome::Failed, _) => {}
        }
    }

    async fn new_thread(&mut self) {
        let title = format!("Crew talk {}.{}", self.n, self.tally.sent);
        let body = json!({"kind": "group", "participants": self.target.participants,
            "title": title});
        if let Outcome::Accepted(id) = self.send("/v1/threads".into(), Some(body)).await {
            self.threads.push(id_of(&id));
        }
    }

    async fn new_message(&mut self) {
        let thread = self.threads[self.dice.below(self.threads.len())];
        let body = json!({"body": format!("Truck {} is loaded", self.tally.sent)});
        self.send(format!("/v1/threads/{thread}/messages"), Some(body))
            .await;
    }

    /// Sends a command; an accepted one's event ids go into the tally.
    async fn send(&mut self, path: String, body: Option<Value>) -> Outcome {
        self.tally.sent += 1;
        let started = Instant::now();
        let sent = self
            .target
            .send_to_any(
                &self.target.command_apis,
                self.tally.sent as usize,
                |base| {
                    let request = self
                        .target
                        .http
                        .post(format!("{base}{path}"))
                        .bearer_auth(&self.target.token);
                    match &body {
                        Some(body) => request.json(body),
                        None => request,
                    }
                },
            )
            .await;
        let outcome = self.outcome(&path, sent).await;
        self.tally.command_latencies.push(started.elapsed());
        outcome
    }

    async fn outcome(
        &mut self,
        path: &str,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Outcome {
        let Ok(response) = sent else {
            return Outcome::Failed;
        };
        let status = response.status();
        if status.is_client_error() {
            return Outcome::Refused;
        }
        let answer: Option<Value> = response.json().await.ok();
        match answer {
            Some(answer) if status.is_success() => {
                self.tally.accepted += 1;
                let ids = answer["event_ids"].as_array().cloned().unwrap_or_default();
                for id in ids {
                    let id = id.as_str().and_then(|s| s.parse::<Uuid>().ok());
                    let id = id.unwrap_or_else(|| panic!("{path}: event_ids in {answer}"));
                    self.tally.event_ids.push(id);
                }
                Outcome::Accepted(answer)
            }
            _ => Outcome::Failed,
        }
    }
}

impl Target {
    /// Sends the request `build` makes for one instance of `bases`, starting with the
    /// `turn`-th; one that cannot be connected to (the request never left) goes to the next.
    async fn send_to_any(
        &self,
        bases: &[String],
        turn: usize,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut attempt = 0;
        loop {
            let base = &bases[(turn + attempt) % bases.len()];
            match build(base).send().await {
                Err(error) if error.is_connect() && attempt + 1 < bases.len() => attempt += 1,
                answer => return answer,
            }
        }
    }
}

fn id_of(answer: &Value) -> Uuid {
    answer["aggregate_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no aggregate_id in {answer}"))
}

/// Polls a few of the query API's views until `stop`, counting the answers.
async fn read(target: Target, interval: Duration, stop: Arc<AtomicBool>) -> Tally {
    const VIEWS: [&str; 4] = [
        "/v1/customers",
        "/v1/jobs",
        "/v1/dashboard",
        "/v1/me/unread-count",
    ];
    let mut tally = Tally::default();
    for (turn, view) in VIEWS.iter().cycle().enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let started = Instant::now();
        let answer = target
            .send_to_any(&target.query_apis, turn, |base| {
                target
                    .http
                    .get(format!("{base}{view}"))
                    .bearer_auth(&target.token)
            })
            .await;
        tally.read_latencies.push(started.elapsed());
        match answer {
            Ok(response) if response.status() == StatusCode::OK => tally.reads_ok += 1,
            _ => tally.reads_failed += 1,
        }
        tokio::time::sleep(interval).await;
    }
    tally
}

/// Cheap pseudo-random numbers (xorshift), seeded from a random UUID.
pub(crate) struct Dice(u64);

impl Dice {
    pub(crate) fn new() -> Dice {
        Dice((Uuid::new_v4().as_u128() as u64) | 1)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
