//! The soak's verdict from its samples. The first third of the run is warm-up (caches fill,
//! the allocator finds its working set), so each check compares or fits the later two
//! thirds: memory is flat when each service's mean RSS over the last third, less what its
//! bounded cache holds (the command API's recent states, the query API's documents: each
//! says on `/metrics`), is less than 10 % above the same over the second; the outbox and the projector keep up when their backlog
//! ends within a bound and the least-squares line through the later two thirds rises by
//! less than that bound.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::samples::Sample;

/// Largest growth of mean RSS from the second third to the last that still counts as flat.
pub(super) const MEMORY_GROWTH_LIMIT: f64 = 0.10;

/// One line of the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub goal: String,
    pub met: bool,
    pub measured: String,
}

/// How large a backlog still counts as keeping up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Bounds {
    pub outbox_pending: f64,
    pub projector_lag_events: f64,
}

impl Bounds {
    /// One second of commands waiting in the outbox (the relay publishes several times a
    /// second) and ten seconds of events behind in the projector (it applies and writes in
    /// batches); at least 10 and 100, so that a slow rate does not make noise a miss.
    pub(super) fn for_rate(commands_per_second: f64) -> Bounds {
        Bounds {
            outbox_pending: commands_per_second.max(10.0),
            projector_lag_events: (commands_per_second * 10.0).max(100.0),
        }
    }
}

pub(super) fn verdict(
    samples: &[Sample],
    duration: Duration,
    services: &[String],
    bounds: Bounds,
) -> Vec<Check> {
    let run = Run { samples, duration };
    let mut checks: Vec<Check> = services
        .iter()
        .map(|service| run.memory_flat(service))
        .collect();
    let mut outbox = run.keeps_up(
        "outbox not growing",
        |s| s.outbox_pending,
        bounds.outbox_pending,
        "entries",
    );
    let oldest = samples
        .iter()
        .filter_map(|s| s.outbox_oldest_age_seconds)
        .fold(None, |max: Option<f64>, age| {
            Some(max.map_or(age, |m| m.max(age)))
        });
    if let Some(oldest) = oldest {
        outbox.measured += &format!("; oldest entry at most {oldest:.1} s old");
    }
    checks.push(outbox);
    checks.push(run.keeps_up(
        "projector lag bounded",
        |s| s.projector_lag_events,
        bounds.projector_lag_events,
        "events",
    ));
    // The gauge counts from the tail the projector last polled; what readers wait for is
    // the checkpoint against the store's actual tail.
    checks.push(run.keeps_up(
        "projector checkpoint keeps up with the store",
        |s| s.projector_behind_store_events,
        bounds.projector_lag_events,
        "events behind",
    ));
    checks
}

struct Run<'a> {
    samples: &'a [Sample],
    duration: Duration,
}

impl Run<'_> {
    /// The samples of the second third of the run (`1`) or of the last (`2`), the end
    /// included in the last.
    fn third(&self, which: u8) -> impl Iterator<Item = &Sample> {
        let whole = self.duration.as_secs_f64();
        let (from, to) = (f64::from(which), f64::from(which) + 1.0);
        self.samples.iter().filter(move |s| {
            let at = 3.0 * s.seconds;
            at >= from * whole && (at < to * whole || which == 2)
        })
    }

    /// Flat when the RSS net of the service's bounded cache grew less than the limit: a
    /// cache filling up to its configured bound is memory the service was given, not a leak.
    /// Both figures are said.
    fn memory_flat(&self, service: &str) -> Check {
        let rss = |which| {
            mean(
                self.third(which)
                    .filter_map(|s| s.rss_mib.get(service).copied()),
            )
        };
        let cache = |which| {
            mean(self.third(which).filter_map(|s| {
                s.rss_mib
                    .get(service)
                    .and(s.cache_mib.get(service).copied())
            }))
        };
        let goal = format!("memory flat: {service}");
        let (Some(second), Some(last)) = (rss(1), rss(2)) else {
            return not_measured(goal, "no RSS samples in the second or last third");
        };
        let growth = last / second - 1.0;
        let mut measured = format!(
            "mean RSS {second:.1} MiB in the second third, {last:.1} MiB in the last: {:+.1} %",
            growth * 100.0
        );
        let net_growth = match (cache(1), cache(2)) {
            (Some(cached_second), Some(cached_last)) => {
                let (net_second, net_last) = (second - cached_second, last - cached_last);
                let net_growth = net_last / net_second.max(1e-9) - 1.0;
                measured += &format!(
                    "; less its bounded cache ({cached_second:.1} → {cached_last:.1} MiB): {net_second:.1} → {net_last:.1} MiB, {:+.1} %",
                    net_growth * 100.0
                );
                net_growth
            }
            _ => growth,
        };
        measured += &format!(" (limit +{:.0} %)", MEMORY_GROWTH_LIMIT * 100.0);
        Check {
            goal,
            met: net_growth < MEMORY_GROWTH_LIMIT,
            measured,
        }
    }

    /// The backlog `value` ends within `bound` and does not rise by `bound` or more over
    /// the later two thirds.
    fn keeps_up(
        &self,
        goal: &str,
        value: impl Fn(&Sample) -> Option<f64>,
        bound: f64,
        unit: &str,
    ) -> Check {
        let later: Vec<(f64, f64)> = self
            .third(1)
            .chain(self.third(2))
            .filter_map(|s| Some((s.seconds, value(s)?)))
            .collect();
        let (Some(&(_, end)), Some(rise)) = (later.last(), rise(&later)) else {
            return not_measured(goal.to_owned(), "fewer than two samples after the warm-up");
        };
        let highest = later.iter().map(|(_, v)| *v).fold(f64::MIN, f64::max);
        Check {
            goal: goal.to_owned(),
            met: end <= bound && rise < bound,
            measured: format!(
                "{end:.0} {unit} at the end, at most {highest:.0} after the warm-up, trend {rise:+.1} over the later two thirds (bound {bound:.0} for both)"
            ),
        }
    }
}

fn not_measured(goal: String, why: &str) -> Check {
    Check {
        goal,
        met: false,
        measured: format!("not measured: {why}"),
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(sum, n), v| (sum + v, n + 1));
    (count > 0).then(|| sum / count as f64)
}

/// How much the least-squares line through `points` (seconds, value) rises from the first
/// point's time to the last's; `None` with fewer than two distinct times.
fn rise(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_t = points.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_v = points.iter().map(|(_, v)| v).sum::<f64>() / n;
    let spread: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    if points.len() < 2 || spread == 0.0 {
        return None;
    }
    let covariance: f64 = points
        .iter()
        .map(|(t, v)| (t - mean_t) * (v - mean_v))
        .sum();
    let span = points.last()?.0 - points.first()?.0;
    Some(covariance / spread * span)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples every 10 s of a 90 s run, each service's RSS and the backlogs from `at`.
    fn run(at: impl Fn(f64) -> (f64, f64, f64)) -> Vec<Sample> {
        (0..=9)
            .map(|i| {
                let seconds = f64::from(i) * 10.0;
                let (rss, pending, lag) = at(seconds);
                Sample {
                    seconds,
                    rss_mib: [("command-api".to_owned(), rss)].into(),
                    cache_mib: Default::default(),
                    outbox_pending: Some(pending),
                    outbox_oldest_age_seconds: Some(pending / 100.0),
                    projector_lag_events: Some(lag),
                    projector_behind_store_events: Some(lag),
                }
            })
            .collect()
    }

    fn checks(samples: &[Sample]) -> Vec<Check> {
        verdict(
            samples,
            Duration::from_secs(90),
            &["command-api".to_owned()],
            Bounds::for_rate(200.0),
        )
    }

    fn met(checks: &[Check]) -> Vec<bool> {
        checks.iter().map(|c| c.met).collect()
    }

    fn checks_of(at: impl Fn(f64) -> (f64, f64, f64)) -> Vec<Check> {
        checks(&run(at))
    }

    #[test]
    fn growth_during_the_warm_up_does_not_count_against_flat_memory() {
        // 30 → 70 MiB in the first third, then 100 → 104 MiB.
        let checks = checks_of(|t| {
            let rss = if t < 30.0 {
                30.0 + t * 2.0
            } else {
                100.0 + (t - 30.0) / 15.0
            };
            (rss, 5.0, 20.0)
        });
        assert_eq!(met(&checks), [true, true, true, true]);
        assert_eq!(
            checks[0].measured,
            "mean RSS 100.7 MiB in the second third, 103.0 MiB in the last: +2.3 % (limit +10 %)"
        );
    }

    #[test]
    fn memory_that_keeps_growing_is_not_flat() {
        let checks = checks_of(|t| (50.0 + t, 0.0, 0.0));
        assert!(!checks[0].met, "{:?}", checks[0]);
        assert!(checks[0].measured.contains("+38.9 %"), "{:?}", checks[0]);
    }

    #[test]
    fn a_bounded_cache_filling_up_is_not_growth_but_growth_beside_it_is() {
        // 60 → 96 MiB after the warm-up, the cache 10 → 46 MiB of it.
        let filling = |t: f64| 10.0 + (t - 30.0).max(0.0) * 0.6;
        let mut samples = run(|t| (50.0 + filling(t), 0.0, 0.0));
        for sample in &mut samples {
            let cached = filling(sample.seconds);
            sample.cache_mib.insert("command-api".to_owned(), cached);
        }
        let flat = checks(&samples);
        assert!(flat[0].met, "{:?}", flat[0]);
        assert_eq!(
            flat[0].measured,
            "mean RSS 66.0 MiB in the second third, 87.0 MiB in the last: +31.8 %; less its bounded cache (16.0 → 37.0 MiB): 50.0 → 50.0 MiB, +0.0 % (limit +10 %)"
        );
        // The same cache beside memory that grows on its own.
        for sample in &mut samples {
            *sample.rss_mib.get_mut("command-api").unwrap() += sample.seconds;
        }
        let growing = checks(&samples);
        assert!(!growing[0].met, "{:?}", growing[0]);
    }

    #[test]
    fn an_outbox_that_ends_within_the_bound_but_rose_all_along_is_growing() {
        // 0 → 300 by 80 s, then 150 at the end.
        let pending = |t: f64| {
            if t >= 90.0 {
                150.0
            } else {
                (t - 30.0).max(0.0) * 6.0
            }
        };
        let checks = checks_of(|t| (80.0, pending(t), 0.0));
        assert!(!checks[1].met, "{:?}", checks[1]);
        assert_eq!(
            checks[1].measured,
            "150 entries at the end, at most 300 after the warm-up, trend +225.0 over the later two thirds (bound 200 for both); oldest entry at most 3.0 s old"
        );
    }

    #[test]
    fn an_outbox_that_ends_above_the_bound_is_a_miss_without_a_trend() {
        let checks = checks_of(|_| (80.0, 250.0, 0.0));
        assert!(!checks[1].met, "{:?}", checks[1]);
    }

    #[test]
    fn a_backlog_that_spikes_and_drains_keeps_up() {
        let checks = checks_of(|t| (80.0, if t == 50.0 { 150.0 } else { 3.0 }, 40.0));
        assert!(checks[1].met, "{:?}", checks[1]);
        assert!(
            checks[1]
                .measured
                .ends_with("oldest entry at most 1.5 s old"),
            "{:?}",
            checks[1]
        );
    }

    #[test]
    fn a_projector_falling_behind_is_not_bounded() {
        let checks = checks_of(|t| (80.0, 0.0, t * 40.0));
        assert_eq!(met(&checks), [true, true, false, false]);
    }

    #[test]
    fn a_stale_lag_gauge_does_not_hide_a_checkpoint_falling_behind() {
        let mut samples = run(|_| (80.0, 0.0, 565.0));
        for sample in &mut samples {
            sample.projector_behind_store_events = Some(sample.seconds * 40.0);
        }
        let checks = checks(&samples);
        assert_eq!(met(&checks), [true, true, true, false]);
        assert!(
            checks[3]
                .measured
                .starts_with("3600 events behind at the end"),
            "{:?}",
            checks[3]
        );
    }

    #[test]
    fn missing_metrics_are_a_miss_said_as_such() {
        let mut samples = run(|_| (80.0, 0.0, 0.0));
        for sample in &mut samples {
            sample.outbox_pending = None;
            sample.rss_mib.clear();
        }
        let checks = checks(&samples);
        assert_eq!(met(&checks), [false, false, true, true]);
        assert!(checks[0].measured.starts_with("not measured"));
        assert!(checks[1].measured.starts_with("not measured"));
    }

    #[test]
    fn the_rise_is_the_fitted_lines_not_the_last_minus_the_first() {
        assert_eq!(rise(&[(0.0, 0.0), (10.0, 10.0), (20.0, 20.0)]), Some(20.0));
        assert_eq!(rise(&[(0.0, 10.0), (10.0, 0.0), (20.0, 10.0)]), Some(0.0));
        assert_eq!(rise(&[(5.0, 1.0)]), None);
        assert_eq!(rise(&[]), None);
    }
}
