//! Requests at a fixed rate: the k-th is due k/rate seconds after the start whatever became
//! of the ones before it (open loop), with a bound on the requests in flight. A request that
//! falls due while the bound is full is skipped and counted instead of queued, so a service
//! that cannot keep up shows as a lower rate and skipped requests, not as a growing queue in
//! the load generator.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::measure::writes::{Outcome, Refused};
use crate::measure::Stats;

/// A fixed rate held for a duration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    pub per_second: f64,
    pub duration: Duration,
    pub max_in_flight: usize,
}

impl Pace {
    /// Requests due within the duration: one at 0, then one every 1/rate while before its end.
    pub(super) fn planned(&self) -> u64 {
        (self.per_second * self.duration.as_secs_f64()).ceil() as u64
    }

    /// When request `k` (from 0) is due, after the start.
    pub(super) fn due_at(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.per_second)
    }

    /// How many requests are due `elapsed` after the start, request 0 at once.
    pub(super) fn due_by(&self, elapsed: Duration) -> u64 {
        // The nudge keeps `due_by(due_at(k))` from rounding down below k + 1.
        let due = (elapsed.as_secs_f64() * self.per_second + 1e-9).floor() as u64 + 1;
        due.min(self.planned())
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    Status(u16),
    /// No answer within the client's timeout.
    Timeout,
    /// No answer for another reason (connection refused or reset, nothing to send).
    Failed,
}

impl Answer {
    /// A command sent with [`crate::measure::writes::Workload::send`].
    pub(super) fn of_command(result: &anyhow::Result<Outcome>) -> Answer {
        match result {
            Ok(_) => Answer::Status(200),
            Err(error) => {
                if let Some(refused) = error.downcast_ref::<Refused>() {
                    Answer::Status(refused.status.as_u16())
                } else {
                    Answer::of_transport(error.downcast_ref::<reqwest::Error>())
                }
            }
        }
    }

    /// A request that got no status, from its client error if it has one.
    pub(super) fn of_transport(error: Option<&reqwest::Error>) -> Answer {
        match error {
            Some(error) if error.is_timeout() => Answer::Timeout,
            _ => Answer::Failed,
        }
    }
}

/// What the requests of one fixed-rate load came to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Load {
    pub target_per_second: f64,
    pub planned: u64,
    /// Due while `max_in_flight` requests were unanswered, so not sent.
    pub skipped: u64,
    pub client_errors: usize,
    pub server_errors: usize,
    /// No answer, other than timeouts (those are `stats.timeouts`).
    pub failed: usize,
    /// 2xx answers: latency, count (`samples`) and rate over the load's duration; `errors`
    /// counts every other outcome of a sent request.
    pub stats: Stats,
}

impl Load {
    /// Requests sent per second over the load's duration.
    pub fn sent_per_second(&self, duration: Duration) -> f64 {
        (self.planned - self.skipped) as f64 / duration.as_secs_f64()
    }
}

#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    client_errors: usize,
    server_errors: usize,
    timeouts: usize,
    failed: usize,
    skipped: u64,
}

impl Tally {
    fn record(&mut self, answer: Answer, took: Duration) {
        match answer {
            Answer::Status(status) if (200..300).contains(&status) => self.latencies.push(took),
            Answer::Status(status) if (400..500).contains(&status) => self.client_errors += 1,
            Answer::Status(status) if status >= 500 => self.server_errors += 1,
            Answer::Timeout => self.timeouts += 1,
            Answer::Status(_) | Answer::Failed => self.failed += 1,
        }
    }

    fn into_load(self, pace: &Pace) -> Load {
        let errors = self.client_errors + self.server_errors + self.timeouts + self.failed;
        let mut stats = Stats::from_samples(self.latencies, errors, pace.duration);
        stats.timeouts = self.timeouts;
        Load {
            target_per_second: pace.per_second,
            planned: pace.planned(),
            skipped: self.skipped,
            client_errors: self.client_errors,
            server_errors: self.server_errors,
            failed: self.failed,
            stats,
        }
    }
}

/// Sends `request(k)` for every k the pace plans, each when it falls due, and waits for the
/// last answers.
pub(super) async fn drive<F, Fut>(pace: Pace, mut request: F) -> Load
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let in_flight = Arc::new(Semaphore::new(pace.max_in_flight));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let planned = pace.planned();
    let mut next = 0;
    while next < planned {
        let due = pace.due_by(started.elapsed());
        for k in next..due {
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                lock(&tally).skipped += 1;
                continue;
            };
            let (answer, tally) = (request(k), tally.clone());
            tasks.spawn(async move {
                let sent = Instant::now();
                let answer = answer.await;
                lock(&tally).record(answer, sent.elapsed());
                drop(permit);
            });
        }
        next = next.max(due);
        // Finished tasks go as they finish, so a long run holds only those in flight.
        while tasks.try_join_next().is_some() {}
        tokio::time::sleep_until((started + pace.due_at(next)).into()).await;
    }
    while tasks.join_next().await.is_some() {}
    let tally = std::mem::take(&mut *lock(&tally));
    tally.into_load(&pace)
}

/// The tally's lock; a task that panicked while holding it left counts that are still counts.
fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(per_second: f64, seconds: f64) -> Pace {
        Pace {
            per_second,
            duration: Duration::from_secs_f64(seconds),
            max_in_flight: 4,
        }
    }

    /// As many in flight as requests: none skipped, however late the sender wakes up.
    fn unbounded(per_second: f64, seconds: f64) -> Pace {
        let pace = pace(per_second, seconds);
        Pace {
            max_in_flight: pace.planned() as usize,
            ..pace
        }
    }

    #[test]
    fn a_rate_held_for_a_duration_plans_rate_times_duration_requests() {
        assert_eq!(pace(200.0, 600.0).planned(), 120_000);
        assert_eq!(pace(50.0, 30.0).planned(), 1_500);
        assert_eq!(pace(3.0, 0.5).planned(), 2);
    }

    #[test]
    fn each_request_is_due_one_interval_after_the_one_before() {
        let p = pace(2_000.0, 10.0);
        assert_eq!(p.due_at(0), Duration::ZERO);
        assert_eq!(p.due_at(1), Duration::from_micros(500));
        assert_eq!(p.due_at(2_000), Duration::from_secs(1));
        assert_eq!(p.due_by(Duration::ZERO), 1);
        assert_eq!(p.due_by(Duration::from_micros(499)), 1);
        for k in [1, 3, 7, 1_999, 2_000, 19_999] {
            assert_eq!(p.due_by(p.due_at(k)), k + 1, "request {k}");
        }
        assert_eq!(p.due_by(Duration::from_secs(3_600)), 20_000);
    }

    #[tokio::test]
    async fn requests_are_sent_at_the_rate_and_counted_by_answer() {
        let statuses = [200, 201, 404, 503, 302];
        let load = drive(unbounded(100.0, 0.5), |k| async move {
            match k % 6 {
                5 => Answer::Timeout,
                n => Answer::Status(statuses[n as usize]),
            }
        })
        .await;
        assert_eq!(load.planned, 50);
        assert_eq!(load.skipped, 0);
        assert_eq!(load.stats.samples, 18);
        assert_eq!((load.client_errors, load.server_errors), (8, 8));
        assert_eq!((load.stats.timeouts, load.failed), (8, 8));
        assert_eq!(load.stats.errors, 32);
    }

    #[tokio::test]
    async fn requests_due_while_the_bound_is_full_are_skipped_not_queued() {
        let load = drive(pace(100.0, 0.3), |_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Answer::Status(200)
        })
        .await;
        // The first four, due from 0 to 30 ms, are still in flight when the last falls due.
        assert_eq!(load.planned, 30);
        assert_eq!(load.stats.samples, 4);
        assert_eq!(load.skipped, 26);
    }
}
