//! The table: its rows, the spread of several runs, and the machine and load
//! every number was taken under.

use std::time::Duration;

/// One row of the printed table.
pub struct Row {
    pub name: String,
    /// What was measured (for timings: min / median / max over the runs).
    pub result: String,
    /// The target for this row, and whether every run met it.
    pub target: String,
    /// What the issue measured for grafana/ckit's own nodes (or `-`).
    pub ckit: String,
    /// `uptime`'s load averages when the row finished.
    pub load: String,
    pub notes: String,
}

impl Row {
    pub fn new(name: impl Into<String>) -> Row {
        Row {
            name: name.into(),
            result: String::new(),
            target: "-".into(),
            ckit: "-".into(),
            load: load(),
            notes: String::new(),
        }
    }

    pub fn failed(name: impl Into<String>, why: impl std::fmt::Display) -> Row {
        let mut row = Row::new(name);
        row.result = format!("failed: {why}");
        row
    }
}

/// Prints the table as markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| row | result | target | ckit (issue 14) | load | notes |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name, r.result, r.target, r.ckit, r.load, r.notes
        ));
    }
    out
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`): the machine is
/// shared, so every number is recorded next to the load it was taken under.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// CPU model, cores and kernel, for the table's heading.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Machine: {model}, {cores} cores, Linux {}; load at start {}",
        kernel.trim(),
        load()
    )
}

/// Several runs of one timing.
#[derive(Default, Clone)]
pub struct Spread(pub Vec<Duration>);

impl Spread {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    /// `min / median / max` (one value when there was one run).
    pub fn summary(&self) -> String {
        let v = self.sorted();
        match v.len() {
            0 => "-".into(),
            1 => secs(v[0]),
            n => format!("{} / {} / {}", secs(v[0]), secs(v[n / 2]), secs(v[n - 1])),
        }
    }

    /// Every run, in the order taken.
    pub fn runs(&self) -> String {
        self.0
            .iter()
            .map(|d| secs(*d))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Seconds with millisecond precision.
pub fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// "met in every run" or "missed in k of n runs" against `limit`.
pub fn verdict(limit: Duration, runs: &Spread, failed: usize) -> String {
    let missed = runs.0.iter().filter(|d| **d > limit).count() + failed;
    let total = runs.0.len() + failed;
    if missed == 0 {
        format!("{}: met in {total} of {total} runs", secs(limit))
    } else {
        format!("{}: **missed in {missed} of {total} runs**", secs(limit))
    }
}
