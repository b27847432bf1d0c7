//! Request latencies counted into their histogram buckets on the request path, and handed to
//! the Prometheus histogram off it.
//!
//! The exporter's histogram keeps every sample (a lock-free list, an epoch pin and a clock
//! read per sample) until its upkeep folds them into buckets: on the warm read path that was
//! most of what request telemetry cost (the bench's `overhead` measure). A Prometheus
//! histogram is its bucket counts, its count and its sum, and those can be kept exactly with
//! two atomic additions: [`BucketedLatency::record`] adds one to the sample's bucket and its
//! nanoseconds to that bucket's total; [`BucketedLatency::drain_into`] then records each
//! bucket's mean as many times as the bucket counted. The mean of values inside one bucket
//! lies inside it, so every bucket count, the count and the sum come out as if each sample
//! had been recorded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::Histogram;

/// Counts and nanosecond totals per bucket of `bounds` (and one past the last, `+Inf`).
pub(crate) struct BucketedLatency {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    nanos: Box<[AtomicU64]>,
}

impl BucketedLatency {
    /// `bounds` ascending: the upper bounds (`le`) of the histogram's buckets, in seconds.
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        let slots = || (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        BucketedLatency {
            bounds,
            counts: slots(),
            nanos: slots(),
        }
    }

    pub(crate) fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        // The first bucket whose bound is at or above the value: Prometheus buckets are `le`.
        let bucket = self.bounds.partition_point(|bound| *bound < seconds);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.nanos[bucket].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records what was counted since the last drain into `histogram`, and starts again from
    /// zero. A sample recorded while this runs may have its count taken now and its time at
    /// the next drain: the sum then misses that one sample's time, but a mean is kept inside
    /// its bucket whatever it is, so no count is lost and none moves to another bucket.
    pub(crate) fn drain_into(&self, histogram: &Histogram) {
        for (bucket, (count, nanos)) in self.counts.iter().zip(self.nanos.iter()).enumerate() {
            let count = count.swap(0, Ordering::Relaxed);
            let nanos = nanos.swap(0, Ordering::Relaxed);
            if count == 0 {
                // Time without a count belongs to a sample counted at the last drain, whose
                // bucket has been given its mean already.
                continue;
            }
            let mean = nanos as f64 / 1e9 / count as f64;
            let above = match bucket {
                0 => 0.0,
                _ => self.bounds[bucket - 1].next_up(),
            };
            let at_most = self.bounds.get(bucket).copied().unwrap_or(f64::INFINITY);
            histogram.record_many(mean.clamp(above, at_most), count as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use metrics::HistogramFn;

    use super::*;

    const BOUNDS: &[f64] = &[0.001, 0.01, 0.1];

    /// Every sample a histogram was given.
    #[derive(Default)]
    struct Samples(Mutex<Vec<f64>>);

    impl HistogramFn for Samples {
        fn record(&self, value: f64) {
            self.0.lock().unwrap().push(value);
        }
    }

    fn bucket_of(value: f64) -> usize {
        BOUNDS.partition_point(|bound| *bound < value)
    }

    #[test]
    fn drained_samples_fill_the_same_buckets_with_the_same_count_and_sum() {
        let latency = BucketedLatency::new(BOUNDS);
        let recorded = [
            Duration::from_micros(200),
            Duration::from_micros(1000), // on a bound: that bucket, not the next
            Duration::from_micros(1001),
            Duration::from_millis(7),
            Duration::from_millis(9),
            Duration::from_millis(100),
            Duration::from_secs(3),
        ];
        recorded.iter().for_each(|d| latency.record(*d));
        let samples = Arc::new(Samples::default());
        latency.drain_into(&Histogram::from_arc(samples.clone()));

        let drained = samples.0.lock().unwrap().clone();
        let mut expected = [0; 4];
        recorded
            .iter()
            .for_each(|d| expected[bucket_of(d.as_secs_f64())] += 1);
        let mut got = [0; 4];
        drained.iter().for_each(|v| got[bucket_of(*v)] += 1);
        assert_eq!(got, expected);
        let sum: f64 = drained.iter().sum();
        let want: f64 = recorded.iter().map(Duration::as_secs_f64).sum();
        assert!((sum - want).abs() < 1e-9, "sum {sum} against {want}");
    }

    #[test]
    fn a_drain_starts_the_counts_again_from_zero() {
        let latency = BucketedLatency::new(BOUNDS);
        latency.record(Duration::from_millis(5));
        let samples = Arc::new(Samples::default());
        let histogram = Histogram::from_arc(samples.clone());
        latency.drain_into(&histogram);
        latency.drain_into(&histogram);
        latency.record(Duration::from_millis(50));
        latency.drain_into(&histogram);
        assert_eq!(*samples.0.lock().unwrap(), vec![0.005, 0.05]);
    }

    #[test]
    fn a_mean_rounded_past_its_bound_stays_in_its_bucket() {
        let latency = BucketedLatency::new(BOUNDS);
        // Three samples exactly on the 1 ms bound: their mean must not land above it.
        (0..3).for_each(|_| latency.record(Duration::from_millis(1)));
        let samples = Arc::new(Samples::default());
        latency.drain_into(&Histogram::from_arc(samples.clone()));
        let drained = samples.0.lock().unwrap().clone();
        assert_eq!(drained.len(), 3);
        assert!(drained.iter().all(|v| bucket_of(*v) == 0), "{drained:?}");
    }
}
