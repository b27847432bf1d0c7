//! The findings of `verify`, grouped by check, and how they are printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// Commit ids, numbering inside commits, and per-stream version chains.
    Versions,
    /// Dense, unique positions in `events`.
    Positions,
    /// `events` documents agree with the commits.
    LogMatchesCommits,
    /// Payloads upcast and decode.
    Decoding,
    /// Commits sequenced, outbox drained.
    Publication,
}

impl Check {
    pub const ALL: [Check; 5] = [
        Check::Versions,
        Check::Positions,
        Check::LogMatchesCommits,
        Check::Decoding,
        Check::Publication,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Check::Versions => "stream versions contiguous from 1",
            Check::Positions => "positions dense 1..N in the log",
            Check::LogMatchesCommits => "log matches commits",
            Check::Decoding => "every event decodes with the current schema",
            Check::Publication => "every commit sequenced and published",
        }
    }
}

/// Findings of one check: how many, and the first few.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub count: u64,
    pub shown: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub streams: u64,
    pub commits: u64,
    pub events_in_commits: u64,
    /// Documents in `events`.
    pub log_events: u64,
    pub highest_position: u64,
    pub outbox_entries: u64,
    pub violations: BTreeMap<Check, Findings>,
    /// Commits or outbox entries younger than the grace period.
    pub pending: Findings,
    pub elapsed: Duration,
    pub(super) max_shown: usize,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.values().all(|f| f.count == 0)
    }

    pub fn violation_count(&self) -> u64 {
        self.violations.values().map(|f| f.count).sum()
    }

    pub fn findings(&self, check: Check) -> Option<&Findings> {
        self.violations.get(&check).filter(|f| f.count > 0)
    }

    pub(super) fn violation(&mut self, check: Check, message: String) {
        let findings = self.violations.entry(check).or_default();
        findings.count += 1;
        if findings.shown.len() < self.max_shown {
            findings.shown.push(message);
        }
    }

    pub(super) fn pending(&mut self, message: String) {
        self.pending.count += 1;
        if self.pending.shown.len() < self.max_shown {
            self.pending.shown.push(message);
        }
    }

    pub fn render(&self, out: &mut impl Write) -> std::io::Result<()> {
        let seconds = self.elapsed.as_secs_f64();
        writeln!(
            out,
            "{} streams, {} commits holding {} events; {} events in the log (highest position {}); {} outbox entries",
            self.streams, self.commits, self.events_in_commits, self.log_events,
            self.highest_position, self.outbox_entries
        )?;
        writeln!(
            out,
            "checked in {seconds:.1} s ({:.0} events/s)",
            (self.events_in_commits + self.log_events) as f64 / 2.0 / seconds.max(1e-9)
        )?;
        writeln!(out)?;
        for check in Check::ALL {
            match self.findings(check) {
                None => writeln!(out, "ok    {}", check.describe())?,
                Some(findings) => {
                    writeln!(
                        out,
                        "FAIL  {}: {} violation(s)",
                        check.describe(),
                        findings.count
                    )?;
                    list(out, findings)?;
                }
            }
        }
        if self.pending.count > 0 {
            writeln!(
                out,
                "\nwarning: {} commit(s) or outbox entries pending publication (younger than the grace period)",
                self.pending.count
            )?;
            list(out, &self.pending)?;
        }
        writeln!(out)?;
        if self.is_clean() {
            writeln!(out, "store is consistent")
        } else {
            writeln!(out, "{} violation(s) found", self.violation_count())
        }
    }
}

fn list(out: &mut impl Write, findings: &Findings) -> std::io::Result<()> {
    for message in &findings.shown {
        writeln!(out, "      - {message}")?;
    }
    let hidden = findings.count - findings.shown.len() as u64;
    if hidden > 0 {
        writeln!(out, "      … and {hidden} more")?;
    }
    Ok(())
}
