//! What the analysts' tools sustain over a whole store: `history export` (JSON lines, every
//! event upcast and encoded, written to nowhere) and `history verify` (every check), against
//! the same events read with the driver alone in the same run, the rate a reader of the log
//! cannot beat. Each runs in this process through the `history` library, as the CLI does,
//! while a sampler records this process's resident memory: the tools read the log in pages,
//! so the peak must not grow with the store.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bson::{doc, RawDocumentBuf};
use domain::calendar::BusinessTimeZone;
use domain::codec::Codec;
use events::EventStore;
use futures::TryStreamExt;
use history::export::{ExportOptions, Format};
use history::filter::Filter;
use history::verify::VerifyOptions;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

/// Events per page, as the CLI reads them.
const BATCH: usize = 10_000;

/// One pass over the store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pass {
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    /// Highest resident memory of the process during the pass.
    pub peak_rss_mib: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistoryRates {
    /// `find({})` on the log with the driver, every document decoded no further than raw BSON.
    pub driver_read: Pass,
    /// The same of every collection `history verify` reads whole: the log, the commits and
    /// the positions (`events` counts the log's documents, the rate is per log event).
    pub driver_read_verified: Pass,
    pub export: Pass,
    pub verify: Pass,
    /// Resident memory before the passes.
    pub baseline_rss_mib: f64,
}

fn ratio(pass: &Pass, driver: &Pass) -> f64 {
    pass.events_per_second / driver.events_per_second.max(1e-9)
}

/// Measures the passes over the store in `store`'s database.
pub async fn measure(store: &EventStore, time_zone: &str) -> anyhow::Result<HistoryRates> {
    let codec = Codec::for_business(
        BusinessTimeZone::parse(time_zone)
            .map_err(|e| anyhow::anyhow!("time zone {time_zone}: {}", e.reason))?,
    );
    let baseline_rss_mib = rss_mib();
    let driver_read = sampled(read_raw(store, &["events"]))
        .await
        .context("driver read")?;
    let driver_read_verified = sampled(read_raw(store, &["events", "commits", "positions"]))
        .await
        .context("driver read of what verify reads")?;
    let options = ExportOptions {
        format: Format::Jsonl,
        filter: Filter::default(),
        batch_size: BATCH,
        include_message_bodies: true,
    };
    let hidden = ProgressBar::hidden();
    let export = sampled(async {
        let summary =
            history::export::export(store, &codec, &options, std::io::sink(), &hidden).await?;
        Ok(summary.read)
    })
    .await
    .context("history export")?;
    let verify = sampled(async {
        let report = history::verify::verify(store, &codec, &VerifyOptions::default()).await?;
        anyhow::ensure!(
            report.is_clean(),
            "history verify found violations in the store measured"
        );
        Ok(report.log_events)
    })
    .await
    .context("history verify")?;
    Ok(HistoryRates {
        driver_read,
        driver_read_verified,
        export,
        verify,
        baseline_rss_mib,
    })
}

/// Every document of `collections`, raw; returns how many the first holds. The driver on the
/// store's collections directly, as `ceilings` does: the rate no reader of them can beat.
async fn read_raw(store: &EventStore, collections: &[&str]) -> anyhow::Result<u64> {
    let mut first = None;
    for name in collections {
        let collection = store.database().collection::<RawDocumentBuf>(name);
        let mut cursor = collection.find(doc! {}).batch_size(BATCH as u32).await?;
        let mut documents = 0;
        while let Some(document) = cursor.try_next().await? {
            documents += u64::from(!document.as_bytes().is_empty());
        }
        first.get_or_insert(documents);
    }
    Ok(first.unwrap_or(0))
}

/// Runs `pass`, timing it and sampling the process's RSS every 20 ms meanwhile.
async fn sampled(
    pass: impl std::future::Future<Output = anyhow::Result<u64>>,
) -> anyhow::Result<Pass> {
    let peak_kib = Arc::new(AtomicU64::new(rss_kib()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak_kib, done) = (peak_kib.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak_kib.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let events = pass.await;
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    peak_kib.fetch_max(rss_kib(), Ordering::Relaxed);
    let events = events?;
    Ok(Pass {
        events,
        seconds,
        events_per_second: events as f64 / seconds.max(1e-9),
        peak_rss_mib: peak_kib.load(Ordering::Relaxed) as f64 / 1024.0,
    })
}

fn rss_kib() -> u64 {
    crate::services::rss_kib(std::process::id()).unwrap_or(0)
}

fn rss_mib() -> f64 {
    rss_kib() as f64 / 1024.0
}

/// The figures as a Markdown table.
pub fn table(rates: &HistoryRates) -> String {
    let mut out = String::from(
        "| pass | events | seconds | events/s | of the driver's rate | peak RSS MiB |\n|---|---|---|---|---|---|\n",
    );
    for (name, pass, driver) in [
        (
            "driver read of the log (raw BSON)",
            &rates.driver_read,
            &rates.driver_read,
        ),
        (
            "history export (JSON lines)",
            &rates.export,
            &rates.driver_read,
        ),
        (
            "driver read of the log, commits and positions",
            &rates.driver_read_verified,
            &rates.driver_read_verified,
        ),
        ("history verify", &rates.verify, &rates.driver_read_verified),
    ] {
        out.push_str(&format!(
            "| {name} | {} | {:.1} | {:.0} | {:.0} % | {:.1} |\n",
            pass.events,
            pass.seconds,
            pass.events_per_second,
            ratio(pass, driver) * 100.0,
            pass.peak_rss_mib
        ));
    }
    out.push_str(&format!(
        "\nExport is compared with the driver's read of the log, verify with its read of the \
         three collections verify reads whole. Resident memory before the passes: {:.1} MiB.\n",
        rates.baseline_rss_mib
    ));
    out
}
