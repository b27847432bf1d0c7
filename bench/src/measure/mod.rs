//! Measurements. Each produces plain numbers (milliseconds, per-second rates, KiB) that the
//! report prints; none of them asserts anything.
//!
//! - [`ceilings`]: the substrate's raw rates with the driver alone, at 1, 16 and 64 clients.
//! - [`latency`]: sequential requests, one at a time, on a kept-alive connection.
//! - [`wrk`]: throughput at 64 connections with `wrk` and a Lua script for the token.
//! - [`writes`]: commands per second and latency at 1, 16 and 64 concurrent clients, and the
//!   outbox-to-JetStream delay.
//! - [`projection`]: catch-up rate on a backlog and end-to-end lag at a steady rate.
//! - [`push`]: command accepted → update received on a server-sent event stream.
//! - [`rebuild`]: `projector rebuild` of every model.
//! - [`memory`]: resident memory of each service.
//! - [`overhead`]: what request telemetry costs on the warm read path.
//! - [`history`]: `history export` and `history verify` against a driver read of the log.
//! - [`shapes`]: what a replace and a find by `_id` cost by the shape of the document.

pub mod ceilings;
pub mod history;
pub mod latency;
pub mod memory;
pub mod overhead;
pub mod projection;
pub mod push;
pub mod rebuild;
pub mod shapes;
pub mod writes;
pub mod wrk;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long the bench's HTTP client waits for one answer. It leaves room for the baseline's
/// threads endpoint (22 s per request at S, minutes at M, growing with the messages); a
/// request still unanswered then counts as an error and a timeout (`Stats::timeouts`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);

/// Latency percentiles in milliseconds and the rate achieved.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub samples: usize,
    pub errors: usize,
    /// Of the errors, requests that got no answer within [`REQUEST_TIMEOUT`]: each took at
    /// least that long, a lower bound on its latency.
    #[serde(default)]
    pub timeouts: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub per_second: f64,
}

/// A median latency in milliseconds, exact or (`at_least`) a lower bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Median {
    pub ms: f64,
    pub at_least: bool,
}

impl Stats {
    /// From individual durations and the wall time they took together.
    pub fn from_samples(mut samples: Vec<Duration>, errors: usize, wall: Duration) -> Stats {
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            ms(samples[rank - 1])
        };
        Stats {
            samples: samples.len(),
            errors,
            timeouts: 0,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: samples.last().copied().map(ms).unwrap_or(0.0),
            per_second: if wall.is_zero() {
                0.0
            } else {
                samples.len() as f64 / wall.as_secs_f64()
            },
        }
    }

    /// The sequential p50 to compare designs by. Requests that timed out count as slower than
    /// any answer: when more than half of the requests did, the client's bound is a lower bound
    /// on the median; otherwise it is the p50 of the answers.
    pub fn median(&self) -> Option<Median> {
        let answered = self.samples + self.timeouts;
        if answered == 0 {
            None
        } else if answered.div_ceil(2) > self.samples {
            Some(Median {
                ms: REQUEST_TIMEOUT.as_secs_f64() * 1000.0,
                at_least: true,
            })
        } else {
            Some(Median {
                ms: self.p50_ms,
                at_least: false,
            })
        }
    }

    /// The p99 to hold against a latency goal: `None` without any request, and infinite when
    /// more than 1 % of the requests failed (a failed request is slower than any answer).
    pub fn p99_for_goal(&self) -> Option<f64> {
        let total = self.samples + self.errors;
        if total == 0 {
            None
        } else if self.errors * 100 > total {
            Some(f64::INFINITY)
        } else {
            Some(self.p99_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let stats = Stats::from_samples(samples, 2, Duration::from_secs(10));
        assert_eq!(stats.p50_ms, 50.0);
        assert_eq!(stats.p99_ms, 99.0);
        assert_eq!(stats.max_ms, 100.0);
        assert_eq!(stats.per_second, 10.0);
        assert_eq!(stats.errors, 2);
        assert_eq!(
            Stats::from_samples(Vec::new(), 0, Duration::ZERO).p99_ms,
            0.0
        );
    }

    #[test]
    fn a_median_of_requests_that_timed_out_is_the_clients_bound_at_least() {
        let answers = |n: u64| (0..n).map(|_| Duration::from_millis(7)).collect::<Vec<_>>();
        let wall = Duration::from_secs(1);
        let with_timeouts = |answered: u64, timeouts: usize| {
            let mut stats = Stats::from_samples(answers(answered), timeouts, wall);
            stats.timeouts = timeouts;
            stats.median()
        };
        let bound = Median {
            ms: REQUEST_TIMEOUT.as_secs_f64() * 1000.0,
            at_least: true,
        };
        let exact = Median {
            ms: 7.0,
            at_least: false,
        };
        assert_eq!(with_timeouts(0, 1), Some(bound));
        assert_eq!(with_timeouts(1, 2), Some(bound));
        // Nearest rank, as for the p50 of the answers: the lower of two middle values.
        assert_eq!(with_timeouts(1, 1), Some(exact));
        assert_eq!(with_timeouts(2, 1), Some(exact));
        assert_eq!(with_timeouts(3, 0), Some(exact));
        assert_eq!(with_timeouts(0, 0), None);
        // Errors other than timeouts (refusals, failed statuses) say nothing of latency.
        assert_eq!(Stats::from_samples(Vec::new(), 4, wall).median(), None);
    }

    #[test]
    fn a_latency_goal_counts_failed_requests() {
        let fast = |n: u64| (0..n).map(|_| Duration::from_millis(1)).collect::<Vec<_>>();
        let wall = Duration::from_secs(1);
        assert_eq!(
            Stats::from_samples(Vec::new(), 0, wall).p99_for_goal(),
            None
        );
        assert_eq!(
            Stats::from_samples(Vec::new(), 3_001, wall).p99_for_goal(),
            Some(f64::INFINITY)
        );
        assert_eq!(
            Stats::from_samples(fast(98), 2, wall).p99_for_goal(),
            Some(f64::INFINITY)
        );
        assert_eq!(
            Stats::from_samples(fast(99), 1, wall).p99_for_goal(),
            Some(1.0)
        );
    }
}
