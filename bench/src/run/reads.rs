//! The read endpoints, each measured against the query API with and without its cache and
//! against the baseline: sequential latency, then `wrk` throughput where a request takes
//! less than seconds.

use std::time::Duration;

use chrono::Duration as Days;

use super::{Bench, Services};
use crate::measure::{latency, wrk, Stats};
use crate::report::{ReadResult, Results, BASELINE, NO_CACHE, WARM};
use crate::services::Service;

/// The read endpoints: name, query API path, baseline path. The deep customer page's query
/// API path is `DEEP`, resolved with [`deep_page`].
pub(super) fn endpoints(dataset: &crate::Dataset) -> Vec<(&'static str, String, String)> {
    let a = dataset.config.anchor;
    let week = dataset.busy_week();
    vec![
        (
            "dashboard 30 days",
            format!("/v1/dashboard?from={}&to={a}", a - Days::days(29)),
            format!("/v1/dashboard?from={}&to={a}&today={a}", a - Days::days(29)),
        ),
        (
            "dashboard 365 days",
            format!("/v1/dashboard?from={}&to={a}", a - Days::days(364)),
            format!(
                "/v1/dashboard?from={}&to={a}&today={a}",
                a - Days::days(364)
            ),
        ),
        (
            "calendar week",
            format!("/v1/calendar/week/{week}"),
            format!("/v1/calendar/week/{week}"),
        ),
        (
            "threads unread_only",
            "/v1/me/threads?unread_only=true&limit=100".into(),
            "/v1/threads?unread_only=true".into(),
        ),
        (
            "customer list first page",
            "/v1/customers?limit=20".into(),
            "/v1/customers".into(),
        ),
        (
            "customer list deep page",
            "DEEP".into(),
            "/v1/customers".into(),
        ),
        (
            "customer search",
            "/v1/customers?search=smith".into(),
            "/v1/customers?search=smith".into(),
        ),
    ]
}

/// Follows `next_cursor` `pages` times and returns the URL of the page reached.
pub(super) async fn deep_page(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    pages: usize,
) -> anyhow::Result<String> {
    let mut url = format!("{base}/v1/customers?limit=20");
    for _ in 0..pages {
        let body: serde_json::Value = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        match body.get("next_cursor").and_then(|c| c.as_str()) {
            Some(cursor) => url = format!("{base}/v1/customers?limit=20&cursor={cursor}"),
            None => break,
        }
    }
    Ok(url)
}

/// How many pages deep the deep customer page is: four fifths of the list, at most 100.
pub(super) fn deep_pages(dataset: &crate::Dataset) -> usize {
    ((dataset.customers.len() / 20) * 4 / 5).clamp(1, 100)
}

/// One endpoint of one design, as measured.
struct Target<'a> {
    name: &'static str,
    design: &'static str,
    url: String,
    /// The deep customer page (the baseline has no pages and answers the whole list).
    deep: bool,
    /// The no-cache URL of this endpoint and its p50: a probe of the database's load.
    database_probe: &'a mut Option<(String, Duration)>,
}

pub(super) async fn measure(bench: &Bench<'_>, services: &Services, results: &mut Results) {
    if let Err(error) = wrk::ensure_installed().await {
        results.failures.push(format!("wrk: {error:#}"));
    }
    let wrk_ok = tokio::process::Command::new("wrk")
        .arg("--version")
        .output()
        .await
        .is_ok();
    let deep_pages = deep_pages(bench.dataset);
    for (name, query_path, baseline_path) in endpoints(bench.dataset) {
        let mut database_probe: Option<(String, Duration)> = None;
        for (design, service) in [
            (WARM, &services.query),
            (NO_CACHE, &services.query_cold),
            (BASELINE, &services.baseline),
        ] {
            let deep = query_path == "DEEP";
            let url = match url(
                bench,
                service,
                design,
                &query_path,
                &baseline_path,
                deep_pages,
            )
            .await
            {
                Ok(url) => url,
                Err(error) => {
                    results
                        .failures
                        .push(format!("{name} ({design}): {error:#}"));
                    continue;
                }
            };
            let target = Target {
                name,
                design,
                url,
                deep,
                database_probe: &mut database_probe,
            };
            measure_read(bench, target, wrk_ok, results).await;
        }
    }
}

async fn url(
    bench: &Bench<'_>,
    service: &Service,
    design: &str,
    query_path: &str,
    baseline_path: &str,
    deep_pages: usize,
) -> anyhow::Result<String> {
    Ok(if query_path == "DEEP" && design != BASELINE {
        deep_page(&bench.client, &service.url(), &bench.reader, deep_pages).await?
    } else if design == BASELINE {
        format!("{}{baseline_path}", service.url())
    } else {
        format!("{}{query_path}", service.url())
    })
}

async fn measure_read(bench: &Bench<'_>, target: Target<'_>, wrk_ok: bool, results: &mut Results) {
    let (name, design, url) = (target.name, target.design, target.url.as_str());
    let plan = bench.plan;
    let (count, budget) = match design {
        WARM => (plan.seq_warm, Duration::from_secs(30)),
        NO_CACHE => (plan.seq_cold, Duration::from_secs(30)),
        _ => (plan.seq_cold, plan.baseline_budget),
    };
    let mut read = ReadResult {
        endpoint: name.into(),
        design: design.into(),
        sequential: None,
        wrk: None,
        note: None,
    };
    // The baseline has no cache to warm, and its slowest requests take minutes.
    let warmup = if design == BASELINE { 0 } else { 2 };
    let stats =
        match latency::sequential(&bench.client, url, &bench.reader, warmup, count, budget).await {
            Ok(stats) => stats,
            Err(error) => {
                results
                    .failures
                    .push(format!("{name} ({design}): {error:#}"));
                results.reads.push(read);
                return;
            }
        };
    let typical = Duration::from_secs_f64(stats.p50_ms / 1000.0);
    let timed_out = stats.timeouts > 0;
    let wrk_skipped = wrk_skipped(&stats, bench.args.quick, design);
    read.sequential = Some(stats);
    if target.deep && design == BASELINE {
        read.note = Some("no pagination: the whole list, as the old endpoint returned it".into());
    }
    if let Some(reason) = wrk_skipped {
        read.note = Some(reason.into());
    } else if wrk_ok {
        run_wrk(bench, &target, typical, &mut read, results).await;
    }
    if design == NO_CACHE {
        *target.database_probe = Some((url.to_owned(), typical));
    }
    if design == BASELINE && timed_out {
        settle_after_timeouts(bench, name, target.database_probe).await;
    }
    tracing::info!(
        endpoint = name,
        design,
        p50 = read.sequential.as_ref().map(|s| s.p50_ms),
        "read measured"
    );
    results.reads.push(read);
}

/// Why wrk is not run against this design, if it is not.
fn wrk_skipped(stats: &Stats, quick: bool, design: &str) -> Option<&'static str> {
    // Seconds per request, or no answer at all (timeouts count as slower than any
    // answer): 64 connections would only queue minutes of work in the database.
    let slow = stats.samples == 0 || stats.median().is_some_and(|m| m.ms > 1_000.0);
    if slow {
        Some("wrk skipped: seconds per request; sequential samples only")
    } else if quick && design != WARM {
        // The smoke run checks the wrk path once per endpoint; against the slow designs
        // a burst of 64 connections leaves minutes of queued work behind.
        Some("quick mode: wrk against the warm cache only")
    } else {
        None
    }
}

/// 64 connections for the plan's wrk seconds, then a wait until the service answers as
/// fast as before.
async fn run_wrk(
    bench: &Bench<'_>,
    target: &Target<'_>,
    typical: Duration,
    read: &mut ReadResult,
    results: &mut Results,
) {
    let (name, design) = (target.name, target.design);
    let wrk_seconds = bench.plan.wrk_seconds;
    let duration = Duration::from_secs(wrk_seconds);
    match wrk::run(&target.url, &bench.reader, 64, duration, &bench.args.out).await {
        Ok(Some(stats)) => read.wrk = Some(stats),
        Ok(None) => {
            read.note = Some(format!(
                "wrk: none of 64 concurrent requests completed within {wrk_seconds} s"
            ))
        }
        Err(error) => results
            .failures
            .push(format!("wrk {name} ({design}): {error:#}")),
    }
    let max_wait = Duration::from_secs(300);
    let waited =
        latency::settle(&bench.client, &target.url, &bench.reader, typical, max_wait).await;
    tracing::debug!(endpoint = name, design, ?waited, "settled after wrk");
}

/// The baseline's requests that timed out left their queries running in FerretDB, which
/// does not stop a query whose client has gone (the threads endpoint at L: 32 count queries
/// at a time, still running 10 minutes after the timeout). The next measurements must not
/// share the database with them: the query API without its cache reads the database, so it
/// answers as usual again once they are done. The wait is bounded; a longer one calls for
/// restarting FerretDB.
async fn settle_after_timeouts(
    bench: &Bench<'_>,
    name: &str,
    database_probe: &Option<(String, Duration)>,
) {
    let Some((probe, typical)) = database_probe else {
        return;
    };
    let waited = latency::settle(
        &bench.client,
        probe,
        &bench.reader,
        *typical,
        crate::measure::REQUEST_TIMEOUT,
    )
    .await;
    tracing::info!(endpoint = name, ?waited, "settled after timeouts");
}
