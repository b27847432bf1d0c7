//! `history export`: the log in position order as JSON Lines or CSV.
//!
//! One cursor through `events` ([`EventStore::read_all`] prefetches the next batch while this
//! one is written), so memory stays constant whatever the store size. A file is written under
//! a temporary name beside the target and renamed when complete: a file with the target's
//! name is always a whole export, and a failed or interrupted one leaves nothing behind (the
//! temporary file is removed when it is dropped).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use clap::ValueEnum;
use domain::codec::Codec;
use domain::thread::privacy::redact_private_text;
use events::store::ReadAllOptions;
use events::{EventEnvelope, EventStore};
use indicatif::ProgressBar;

use crate::filter::Filter;
use crate::{upcast_envelope, HistoryError};

/// Write buffer: large enough that the writes to the file are few and big.
const WRITE_BUFFER: usize = 1 << 20;

pub const CSV_COLUMNS: [&str; 13] = [
    "position",
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "version",
    "type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "correlation_id",
    "causation_id",
    "actor",
    "payload",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON event envelope per line.
    #[default]
    Jsonl,
    /// One row per event; the payload is a JSON string in the last column.
    Csv,
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: Format,
    pub filter: Filter,
    pub batch_size: usize,
    /// Keep the text of messages; without it every `MessagePosted` body is redacted
    /// ([`domain::thread::privacy`]), as an export goes to people outside the threads.
    pub include_message_bodies: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// Events read from the log (before filtering).
    pub read: u64,
    pub written: u64,
    /// The highest position read; resume with `--after-position` set to it.
    pub last_position: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        write!(
            f,
            "exported {} events ({} read, up to position {}) in {:.1} s, {:.0} events/s",
            self.written,
            self.read,
            self.last_position,
            seconds,
            self.read as f64 / seconds.max(1e-9)
        )
    }
}

/// Writes the filtered log to `out` (unbuffered writers should be wrapped by the caller).
pub async fn export<W: Write>(
    store: &EventStore,
    codec: &Codec,
    options: &ExportOptions,
    out: W,
    progress: &ProgressBar,
) -> Result<ExportSummary, HistoryError> {
    let started = Instant::now();
    let mut sink = Sink::new(options.format, out)?;
    let mut batches = store.read_all(ReadAllOptions {
        after_position: options.filter.after_position,
        batch_size: options.batch_size,
    });
    let mut summary = ExportSummary {
        read: 0,
        written: 0,
        last_position: options.filter.after_position,
        elapsed: Duration::ZERO,
    };
    'batches: while let Some(batch) = batches.next().await {
        let batch = batch?;
        let count = batch.len() as u64;
        for event in batch {
            if options.filter.is_past_end(event.position) {
                break 'batches;
            }
            summary.read += 1;
            summary.last_position = event.position.unwrap_or(summary.last_position);
            if !options.filter.matches(&event) {
                continue;
            }
            let mut event = upcast_envelope(codec, event)?;
            if !options.include_message_bodies {
                redact_private_text(&event.event_type, &mut event.payload);
            }
            sink.write(&event)?;
            summary.written += 1;
        }
        progress.inc(count);
    }
    sink.finish()?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Exports into `path` through a temporary file in the same directory, renamed at the end.
pub async fn export_to_file(
    store: &EventStore,
    codec: &Codec,
    options: &ExportOptions,
    path: &Path,
    progress: &ProgressBar,
) -> Result<ExportSummary, HistoryError> {
    let shown = path.display().to_string();
    let (directory, name) = directory_and_name(path, &shown)?;
    // A device or pipe (`/dev/null`, a FIFO) is written in place: renaming a regular file
    // over it would replace the device node itself.
    if std::fs::metadata(path).is_ok_and(|metadata| !metadata.is_file()) {
        let target = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(HistoryError::io(format!("opening `{shown}`")))?;
        return export(
            store,
            codec,
            options,
            BufWriter::with_capacity(WRITE_BUFFER, target),
            progress,
        )
        .await;
    }
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".partial")
        .tempfile_in(directory)
        .map_err(HistoryError::io(format!(
            "creating a temporary file in `{}`",
            directory.display()
        )))?;
    let summary = export(
        store,
        codec,
        options,
        BufWriter::with_capacity(WRITE_BUFFER, temporary.as_file_mut()),
        progress,
    )
    .await?;
    temporary
        .as_file()
        .sync_all()
        .map_err(HistoryError::io(format!("writing `{shown}`")))?;
    temporary.persist(path).map_err(|e| HistoryError::Io {
        context: format!("renaming the finished export to `{shown}`"),
        source: e.error,
    })?;
    Ok(summary)
}

/// The directory the temporary file goes into and the output's file name; refuses a
/// directory as the output.
fn directory_and_name<'a>(
    path: &'a Path,
    shown: &str,
) -> Result<(&'a Path, &'a std::ffi::OsStr), HistoryError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| HistoryError::input(format!("--output `{shown}` is not a file name")))?;
    if path.is_dir() {
        return Err(HistoryError::input(format!(
            "--output `{shown}` is a directory"
        )));
    }
    Ok((directory, name))
}

/// About how many events the log holds, from the collection's metadata (no read of the log).
/// Positions are dense, so this is also about the highest position: enough for a progress
/// bar and for sizing, which is all it is used for.
pub async fn estimated_log_size(store: &EventStore) -> Result<u64, HistoryError> {
    Ok(store.estimated_log_size().await?)
}

enum Sink<W: Write> {
    Jsonl(W),
    Csv { writer: Box<csv::Writer<W>> },
}

impl<W: Write> Sink<W> {
    fn new(format: Format, out: W) -> Result<Self, HistoryError> {
        Ok(match format {
            Format::Jsonl => Sink::Jsonl(out),
            Format::Csv => {
                let mut writer = csv::WriterBuilder::new()
                    .buffer_capacity(64 * 1024)
                    .from_writer(out);
                writer.write_record(CSV_COLUMNS).map_err(csv_error)?;
                Sink::Csv {
                    writer: Box::new(writer),
                }
            }
        })
    }

    fn write(&mut self, event: &EventEnvelope) -> Result<(), HistoryError> {
        match self {
            Sink::Jsonl(out) => {
                serde_json::to_writer(&mut *out, event).map_err(|e| HistoryError::Io {
                    context: "writing the export".into(),
                    source: e.into(),
                })?;
                out.write_all(b"\n")
                    .map_err(HistoryError::io("writing the export"))
            }
            Sink::Csv { writer } => {
                let payload =
                    serde_json::to_string(&event.payload).map_err(|e| HistoryError::Io {
                        context: "writing the export".into(),
                        source: e.into(),
                    })?;
                let time = |t: chrono::DateTime<chrono::Utc>| {
                    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
                };
                writer
                    .write_record([
                        event.position.map(|p| p.to_string()).unwrap_or_default(),
                        event.event_id.to_string(),
                        event.aggregate_type.clone(),
                        event.aggregate_id.clone(),
                        event.version.to_string(),
                        event.event_type.clone(),
                        event.schema_version.to_string(),
                        time(event.occurred_at),
                        time(event.recorded_at),
                        event.correlation_id.clone(),
                        event.causation_id.clone().unwrap_or_default(),
                        event.actor.clone(),
                        payload,
                    ])
                    .map_err(csv_error)
            }
        }
    }

    fn finish(self) -> Result<(), HistoryError> {
        let flushed = match self {
            Sink::Jsonl(mut out) => out.flush(),
            Sink::Csv { mut writer } => writer.flush(),
        };
        flushed.map_err(HistoryError::io("writing the export"))
    }
}

fn csv_error(error: csv::Error) -> HistoryError {
    HistoryError::Io {
        context: "writing the export".into(),
        source: error.into(),
    }
}
