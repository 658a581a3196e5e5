//! The table: its rows, the baselines the transport's rows are compared
//! with, and how numbers are written.

use crate::harness::STALL;
use crate::latency::Lat;
use crate::WORKERS;

pub struct Row {
    pub name: &'static str,
    pub result: String,
    pub drops: String,
    pub vs: String,
    pub notes: String,
}

#[derive(Default)]
pub struct Baselines {
    /// UDP 1400 B datagrams/s delivered (the better of closed and open loop).
    pub udp: Option<f64>,
    /// Raw hyper h2 requests/s.
    pub h2: Option<f64>,
    /// Raw TCP MB/s, one direction and both.
    pub tcp: Option<(f64, f64)>,
    pub udp_lat: Option<Lat>,
}

impl Baselines {
    pub fn vs_packets(&self, rate: f64) -> String {
        let udp = self
            .udp
            .map_or("-".to_string(), |b| format!("{:.2}", rate / b));
        let h2 = self
            .h2
            .map_or("-".to_string(), |b| format!("{:.2}", rate / b));
        format!("{udp}× UDP, {h2}× h2 req/s")
    }
}

pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "Machine: nproc {nproc}, CPU \"{model}\", {:.1} GiB RAM, Linux {}; tokio multi-thread runtime with {WORKERS} workers.\n",
        mem_kb as f64 / (1 << 20) as f64,
        kernel.trim()
    )
}

/// 1234567 → "1,234,567".
pub fn group(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn mb(bytes_per_s: f64) -> f64 {
    bytes_per_s / 1e6
}

/// Values rounded and listed, each followed by `unit`.
pub fn joined(v: &[f64], unit: &str) -> String {
    v.iter()
        .map(|x| format!("{x:.0}{unit}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn stall_note(stalls: u64) -> String {
    if stalls == 0 {
        String::new()
    } else {
        format!("; producer stalled {stalls}× for {STALL:?}")
    }
}

pub fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}
