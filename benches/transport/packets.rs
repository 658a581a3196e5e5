//! The packet rows: 64 B and 1400 B one to one, one to ten, and open loop.

use crate::flow::{packet_flow, Between, FlowSpec};
use crate::harness::YIELD_EVERY;
use crate::report::{group, mb, stall_note, Baselines, Row};
use crate::{Cfg, Res};
use std::fmt::Write as _;

/// Packets outstanding per receiver in the closed-loop transport rows:
/// the default `peer_queue_size`, so no packet can be dropped by design.
pub const WINDOW: u64 = 1000;

pub async fn packets_row(
    cfg: &Cfg,
    base: &Baselines,
    name: &'static str,
    size: usize,
    receivers: usize,
) -> Res<Row> {
    let out = packet_flow(
        cfg,
        FlowSpec {
            size,
            receivers,
            window: WINDOW,
            between: Between::Nothing,
            dur: cfg.dur,
        },
    )
    .await?;
    let mut result = format!("{} pkt/s", group(out.rate));
    if size >= 1000 {
        let _ = write!(result, ", {:.0} MB/s", mb(out.rate * size as f64));
    }
    let per = if receivers > 1 {
        format!(" (total over {receivers} receivers)")
    } else {
        String::new()
    };
    Ok(Row {
        name,
        result: result + &per,
        drops: format!("{} (failed {})", out.dropped, out.failed),
        vs: base.vs_packets(out.rate),
        notes: format!(
            "closed loop: ≤{WINDOW} outstanding per receiver (= default peer_queue_size), default Options; sent {}, received {}{}",
            group(out.sent as f64),
            group(out.received as f64),
            stall_note(out.stalls)
        ),
    })
}

pub async fn open_loop_row(cfg: &Cfg, base: &Baselines) -> Res<Row> {
    let out = packet_flow(
        cfg,
        FlowSpec {
            size: 1400,
            receivers: 1,
            window: u64::MAX,
            between: Between::Nothing,
            dur: cfg.dur,
        },
    )
    .await?;
    Ok(Row {
        name: "packets 1400 B, 1→1, open loop",
        result: format!(
            "{} pkt/s, {:.0} MB/s delivered",
            group(out.rate),
            mb(out.rate * 1400.0)
        ),
        drops: format!(
            "{} of {} ({:.0}%)",
            group(out.dropped as f64),
            group(out.sent as f64),
            100.0 * out.dropped as f64 / out.sent.max(1) as f64
        ),
        vs: base.vs_packets(out.rate),
        notes: format!(
            "no window: write_to as fast as the producer can (yield every {YIELD_EVERY}); default Options; received {}",
            group(out.received as f64)
        ),
    })
}
