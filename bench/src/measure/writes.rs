//! Writes: commands per second and latency at several concurrency levels with the mix
//! messages 50 %, scheduling 20 %, new customers 10 %, new jobs 10 %, completions 10 %;
//! events appended per second; and the outbox-to-JetStream delay seen by a subscriber.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use domain::enums::Role;
use domain::ids::{JobId, UserId};
use futures::StreamExt;
use platform::auth::JwtKeys;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Stats;
use crate::generator::rng::Rng;
use crate::generator::{Dataset, ThreadInfo};
use crate::seed::{date_after, mint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandMix {
    Message,
    Scheduling,
    NewCustomer,
    NewJob,
    Completion,
}

impl CommandMix {
    /// The mix by index: 5 of 10 messages, 2 scheduling, 1 each of the rest.
    pub fn for_index(index: u64) -> Self {
        match index % 10 {
            0 | 2 | 4 | 6 | 8 => CommandMix::Message,
            1 | 5 => CommandMix::Scheduling,
            3 => CommandMix::NewCustomer,
            7 => CommandMix::NewJob,
            _ => CommandMix::Completion,
        }
    }
}

/// A command the command API answered with a status other than 2xx: callers that count
/// answers by status find it with `anyhow::Error::downcast_ref`.
#[derive(Debug, thiserror::Error)]
#[error("POST {path} answered {status}: {answer}")]
pub struct Refused {
    pub path: String,
    pub status: reqwest::StatusCode,
    pub answer: Value,
}

pub struct Outcome {
    pub position: Option<u64>,
    pub events: usize,
}

/// What the write commands act on, and the tokens to send them with.
pub struct Workload {
    base_url: String,
    admin_token: String,
    tokens: HashMap<UserId, String>,
    threads: Vec<ThreadInfo>,
    reschedulable: Vec<JobId>,
    customers: Vec<domain::ids::CustomerId>,
    crew: Vec<domain::ids::CrewMemberId>,
    in_progress: Mutex<Vec<JobId>>,
    next_unique: AtomicUsize,
    anchor_days: Vec<String>,
    reader: String,
    /// The reader (the data set's focus user) and the threads they take part in.
    reader_id: UserId,
    reader_threads: std::collections::HashSet<domain::ids::ThreadId>,
}

impl Workload {
    pub fn new(base_url: &str, keys: &JwtKeys, dataset: &Dataset) -> anyhow::Result<Workload> {
        let mut tokens = HashMap::new();
        for user in &dataset.users {
            tokens.insert(user.id, mint(keys, user.id, user.name.as_str(), user.role)?);
        }
        let admin_token = tokens.get(&dataset.admin).cloned().context("admin token")?;
        Ok(Workload {
            base_url: base_url.trim_end_matches('/').to_owned(),
            reader: tokens
                .get(&dataset.focus_user)
                .cloned()
                .context("focus token")?,
            admin_token,
            tokens,
            threads: authors_of_threads(dataset),
            reschedulable: dataset
                .jobs
                .iter()
                .filter(|j| j.open_future)
                .map(|j| j.id)
                .collect(),
            customers: dataset.customers.clone(),
            crew: dataset.crew.iter().map(|c| c.id).collect(),
            in_progress: Mutex::new(Vec::new()),
            next_unique: AtomicUsize::new(0),
            anchor_days: (1..=60).map(|d| date_after(dataset, d)).collect(),
            reader_id: dataset.focus_user,
            reader_threads: dataset
                .threads
                .iter()
                .filter(|t| t.participants.contains(&dataset.focus_user))
                .map(|t| t.id)
                .collect(),
        })
    }

    /// Whether command `index` of kind `mix` is a message by someone else in one of the
    /// reader's threads, which changes the reader's unread counts.
    pub fn reaches_reader_inbox(&self, mix: CommandMix, index: u64) -> bool {
        if mix != CommandMix::Message {
            return false;
        }
        let (thread, author) = self.message_target(&mut Rng::new(index));
        self.reader_threads.contains(&thread.id) && *author != self.reader_id
    }

    /// The thread and author of a message command: [`Workload::send`] picks them with the
    /// command's own `Rng` first.
    fn message_target(&self, rng: &mut Rng) -> (&ThreadInfo, &UserId) {
        let thread = rng.pick(&self.threads);
        (thread, rng.pick(&thread.participants))
    }

    pub fn reader_token(&self) -> &str {
        &self.reader
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        token: &str,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Outcome> {
        let response = client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(Refused {
                path: path.to_owned(),
                status,
                answer,
            }
            .into());
        }
        Ok(Outcome {
            position: answer.get("position").and_then(Value::as_u64),
            events: answer
                .get("event_ids")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
        })
    }

    fn unique(&self) -> usize {
        self.next_unique.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends one command of kind `mix`; `index` picks its target deterministically.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        mix: CommandMix,
        index: u64,
    ) -> anyhow::Result<Outcome> {
        let mut rng = Rng::new(index);
        match mix {
            CommandMix::Message => self.post_message(client, &mut rng, index).await,
            CommandMix::Scheduling => self.reschedule(client, &mut rng).await,
            CommandMix::NewCustomer => {
                let n = self.unique();
                let body = json!({"first_name": "Bench", "last_name": format!("Customer{n}"),
                    "email": format!("bench.{}.{n}@example.org", Utc::now().timestamp_millis()), "phone": "+1 (617) 555-0101",
                    "referral_source": "website", "address": {"line1": "1 Main St", "city": "Boston", "postal_code": "02101"}});
                self.post(client, &self.admin_token, "/v1/customers", body)
                    .await
            }
            CommandMix::NewJob => self
                .create_job(client, &mut rng)
                .await
                .map(|(outcome, _)| outcome),
            CommandMix::Completion => self.complete_job(client, &mut rng).await,
        }
    }

    /// A message by one of the thread's participants, as that participant.
    async fn post_message(
        &self,
        client: &reqwest::Client,
        rng: &mut Rng,
        index: u64,
    ) -> anyhow::Result<Outcome> {
        let (thread, author) = self.message_target(rng);
        let token = self.tokens.get(author).context("author token")?;
        let body =
            json!({"body": format!("Benchmark message {index}: on my way, ETA 15 minutes.")});
        let path = format!("/v1/threads/{}/messages", thread.id);
        self.post(client, token, &path, body).await
    }

    async fn reschedule(&self, client: &reqwest::Client, rng: &mut Rng) -> anyhow::Result<Outcome> {
        let job = rng.pick(&self.reschedulable);
        let hour = rng.between(7, 12);
        let body = json!({"date": rng.pick(&self.anchor_days), "window": {"start": format!("{hour:02}:00:00"), "end": format!("{:02}:00:00", hour + 4)}});
        let path = format!("/v1/jobs/{job}/reschedule");
        self.post(client, &self.admin_token, &path, body).await
    }

    /// Completes one of the jobs [`Workload::prepare_completions`] started.
    async fn complete_job(
        &self,
        client: &reqwest::Client,
        rng: &mut Rng,
    ) -> anyhow::Result<Outcome> {
        let job = self.in_progress.lock().ok().and_then(|mut pool| pool.pop());
        let Some(job) = job else {
            bail!("no started job left to complete")
        };
        let body = json!({"actual_revenue": {"amount_minor": 100_000 + rng.between(0, 50_000), "currency": "USD"}});
        let path = format!("/v1/jobs/{job}/complete");
        self.post(client, &self.admin_token, &path, body).await
    }

    async fn create_job(
        &self,
        client: &reqwest::Client,
        rng: &mut Rng,
    ) -> anyhow::Result<(Outcome, JobId)> {
        let job_id = JobId::from_uuid(rng.uuid());
        let body = json!({"job_id": job_id, "customer_id": rng.pick(&self.customers), "service_type": "local_move",
            "origin": {"line1": "1 Main St", "city": "Boston"}, "destination": {"line1": "9 Elm St", "city": "Newton"},
            "estimated_price": {"amount_minor": 120_000, "currency": "USD"}});
        Ok((
            self.post(client, &self.admin_token, "/v1/jobs", body)
                .await?,
            job_id,
        ))
    }

    /// Untimed preparation: `count` jobs created, scheduled, crewed and started, ready for
    /// the completions of the mix.
    /// Their ids derive from `seed`: another preparation against the same store needs
    /// another seed.
    pub async fn prepare_completions(
        &self,
        client: &reqwest::Client,
        count: usize,
        seed: u64,
    ) -> anyhow::Result<()> {
        let results = futures::stream::iter(0..count)
            .map(|i| async move {
                let mut rng = Rng::new(seed + i as u64);
                let (_, job) = self.create_job(client, &mut rng).await?;
                let admin = &self.admin_token;
                self.post(client, admin, &format!("/v1/jobs/{job}/schedule"),
                    json!({"date": self.anchor_days[0], "window": {"start": "08:00:00", "end": "12:00:00"}})).await?;
                self.post(client, admin, &format!("/v1/jobs/{job}/crew"), json!({"crew_member_id": rng.pick(&self.crew)})).await?;
                self.post(client, admin, &format!("/v1/jobs/{job}/start"), json!({})).await?;
                anyhow::Ok(job)
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        let mut pool = self
            .in_progress
            .lock()
            .map_err(|_| anyhow::anyhow!("pool lock poisoned"))?;
        for result in results {
            pool.push(result?);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteLevel {
    pub concurrency: usize,
    pub commands: Stats,
    pub events_per_second: f64,
}

/// Each thread with the participants who may post in it: analysts read threads but may not post.
fn authors_of_threads(dataset: &Dataset) -> Vec<ThreadInfo> {
    let may_post: std::collections::HashSet<UserId> = dataset
        .users
        .iter()
        .filter(|u| u.role != Role::Analyst)
        .map(|u| u.id)
        .collect();
    dataset
        .threads
        .iter()
        .filter_map(|thread| {
            let authors: Vec<UserId> = thread
                .participants
                .iter()
                .copied()
                .filter(|id| may_post.contains(id))
                .collect();
            (!authors.is_empty()).then_some(ThreadInfo {
                id: thread.id,
                participants: authors,
            })
        })
        .collect()
}

/// The seed of [`Workload::prepare_completions`] in `bench run`.
pub const PREPARE_SEED: u64 = 0xC0FFEE;

/// `total` commands of the mix at `concurrency` clients, closed loop. New jobs and the
/// targets of the other commands derive from the command's index, from `first_index` on.
pub async fn run_level(
    workload: Arc<Workload>,
    concurrency: usize,
    total: usize,
    budget: Duration,
    first_index: u64,
) -> WriteLevel {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (workload, client, next) = (workload.clone(), client.clone(), next.clone());
        tokio::spawn(async move {
            let (mut samples, mut errors, mut events) = (Vec::new(), 0usize, 0usize);
            loop {
                // Stops at `total` commands or once the budget is spent, whichever comes first:
                // the rate is commands completed over the wall time either way.
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total || started.elapsed() > budget {
                    break;
                }
                let index = first_index + n as u64;
                let sent = Instant::now();
                match workload
                    .send(&client, CommandMix::for_index(index), index)
                    .await
                {
                    Ok(outcome) => {
                        samples.push(sent.elapsed());
                        events += outcome.events;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "command failed");
                        errors += 1;
                    }
                }
            }
            (samples, errors, events)
        })
    });
    let (mut samples, mut errors, mut events) = (Vec::new(), 0, 0);
    for worker in futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
    {
        samples.extend(worker.0);
        errors += worker.1;
        events += worker.2;
    }
    let wall = started.elapsed();
    WriteLevel {
        concurrency,
        commands: Stats::from_samples(samples, errors, wall),
        events_per_second: events as f64 / wall.as_secs_f64(),
    }
}

/// Collects `now − recorded_at` of every event published under `prefix` until stopped.
pub struct PublishDelay {
    samples: Arc<Mutex<Vec<Duration>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PublishDelay {
    pub async fn start(nats: &async_nats::Client, prefix: &str) -> anyhow::Result<PublishDelay> {
        let mut subscriber = nats
            .subscribe(format!("{prefix}.>"))
            .await
            .context("subscribing to events")?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = samples.clone();
        let task = tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let Ok(envelope) =
                    serde_json::from_slice::<events::EventEnvelope>(&message.payload)
                else {
                    continue;
                };
                let delay = (Utc::now() - envelope.recorded_at)
                    .to_std()
                    .unwrap_or_default();
                if let Ok(mut samples) = sink.lock() {
                    samples.push(delay);
                }
            }
        });
        Ok(PublishDelay { samples, task })
    }

    pub fn finish(self) -> Stats {
        self.task.abort();
        let samples = self
            .samples
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        Stats::from_samples(samples, 0, Duration::ZERO)
    }
}

/// Tokens for read benchmarks.
pub fn reader(keys: &JwtKeys, dataset: &Dataset) -> anyhow::Result<String> {
    mint(
        keys,
        dataset.focus_user,
        "Focus Dispatcher",
        Role::Dispatcher,
    )
}
