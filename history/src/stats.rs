//! `history stats`: how many events of each type, of each aggregate type and on each day,
//! in one streaming pass over the log. Days are local dates of `recorded_at` in the chosen
//! time zone (UTC unless one is given).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use domain::calendar::BusinessTimeZone;
use events::store::ReadAllOptions;
use events::EventStore;
use serde::Serialize;

use crate::time::TimeRange;
use crate::HistoryError;

#[derive(Debug, Clone)]
pub struct StatsOptions {
    pub time: TimeRange,
    /// `None` = UTC dates.
    pub timezone: Option<BusinessTimeZone>,
    pub batch_size: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub total: u64,
    pub timezone: String,
    pub first_recorded_at: Option<DateTime<Utc>>,
    pub last_recorded_at: Option<DateTime<Utc>>,
    pub by_type: BTreeMap<String, u64>,
    pub by_aggregate_type: BTreeMap<String, u64>,
    pub by_day: BTreeMap<NaiveDate, u64>,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Counts the events recorded within `options.time`.
pub async fn collect(store: &EventStore, options: &StatsOptions) -> Result<Stats, HistoryError> {
    let started = Instant::now();
    let mut stats = Stats {
        timezone: options.timezone.map_or("UTC", |tz| tz.name()).to_owned(),
        ..Stats::default()
    };
    let mut batches = store.read_all(ReadAllOptions {
        after_position: 0,
        batch_size: options.batch_size,
    });
    while let Some(batch) = batches.next().await {
        for event in batch? {
            if !options.time.contains(event.recorded_at) {
                continue;
            }
            stats.total += 1;
            let day = match options.timezone {
                Some(tz) => tz.local_date(event.recorded_at),
                None => event.recorded_at.date_naive(),
            };
            *stats.by_day.entry(day).or_default() += 1;
            bump(&mut stats.by_type, &event.event_type);
            bump(&mut stats.by_aggregate_type, &event.aggregate_type);
            let at = event.recorded_at;
            stats.first_recorded_at = Some(stats.first_recorded_at.map_or(at, |t| t.min(at)));
            stats.last_recorded_at = Some(stats.last_recorded_at.map_or(at, |t| t.max(at)));
        }
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Counting by `&str` first avoids an allocation per event once a key exists.
fn bump(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(count) => *count += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

pub fn render_json(stats: &Stats, out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, stats).map_err(std::io::Error::from)?;
    writeln!(out)
}

/// Aligned tables: by type and by aggregate type (largest first), then by day.
pub fn render_table(stats: &Stats, out: &mut impl Write) -> std::io::Result<()> {
    let span = match (stats.first_recorded_at, stats.last_recorded_at) {
        (Some(first), Some(last)) => format!(
            ", recorded {} .. {}",
            crate::show::rfc3339(first),
            crate::show::rfc3339(last)
        ),
        _ => String::new(),
    };
    writeln!(out, "{} events{span}", stats.total)?;
    let largest_first = |counts: &BTreeMap<String, u64>| {
        let mut rows: Vec<(String, u64)> = counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows
    };
    table(
        out,
        "EVENT TYPE",
        &largest_first(&stats.by_type),
        stats.total,
    )?;
    table(
        out,
        "AGGREGATE TYPE",
        &largest_first(&stats.by_aggregate_type),
        stats.total,
    )?;
    let days: Vec<(String, u64)> = stats
        .by_day
        .iter()
        .map(|(day, count)| (day.to_string(), *count))
        .collect();
    table(
        out,
        &format!("DAY ({})", stats.timezone),
        &days,
        stats.total,
    )
}

fn table(
    out: &mut impl Write,
    title: &str,
    rows: &[(String, u64)],
    total: u64,
) -> std::io::Result<()> {
    let key_width = rows
        .iter()
        .map(|(key, _)| key.chars().count())
        .chain([title.len()])
        .max()
        .unwrap_or(0);
    let count_width = rows
        .iter()
        .map(|(_, count)| count.to_string().len())
        .chain(["EVENTS".len()])
        .max()
        .unwrap_or(0);
    writeln!(out)?;
    writeln!(
        out,
        "{title:<key_width$}  {:>count_width$}  SHARE",
        "EVENTS"
    )?;
    for (key, count) in rows {
        let share = 100.0 * *count as f64 / total.max(1) as f64;
        writeln!(
            out,
            "{key:<key_width$}  {count:>count_width$}  {share:>5.1}%"
        )?;
    }
    Ok(())
}
