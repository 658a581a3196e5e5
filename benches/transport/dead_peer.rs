//! The dead-peer rows: at saturation (`dead-peer`), paced below it
//! (`dead-peer-paced`), and one `write_to` to a dead peer on its own
//! (`dead-write`).

use crate::flow::{Between, Flow, FlowSpec};
use crate::harness::{close, dead_peers, metric, payload_pool, served, PAYLOADS};
use crate::latency::{age, stamp, ticker, Lat};
use crate::packets::WINDOW;
use crate::report::{group, joined, median, stall_note, Row};
use crate::{Cfg, Res};
use bytes::Bytes;
use gossiphttp::{Options, Server, Transport};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio::time::sleep;

/// Warm-up before each later round of the dead-peer row: the flows are
/// already connected and flowing by then.
const DEAD_REWARM: Duration = Duration::from_millis(100);

/// The dead-peer row: a clean flow, a dirty one (a write to a dead peer
/// after every live packet) and a floor flow (the caller's share of a write,
/// without the transport, after every live packet) take turns, one window
/// each per round, the order rotating every round.
pub async fn dead_peer_row(cfg: &Cfg) -> Res<Row> {
    let spec = |between| FlowSpec {
        size: 1400,
        receivers: 1,
        window: WINDOW,
        between,
        dur: cfg.dead_dur,
    };
    let mut flows = [
        Flow::start(&spec(Between::Nothing)).await?,
        Flow::start(&spec(Between::DeadWrite)).await?,
        Flow::start(&spec(Between::Floor)).await?,
    ];
    let window = cfg.dead_dur / cfg.dead_rounds;
    // Packets and seconds per flow, and each round's rates.
    let mut totals = [(0u64, 0.0f64); 3];
    let (mut dirty_rounds, mut floor_rounds) = (Vec::new(), Vec::new());
    for round in 0..cfg.dead_rounds {
        let warm = if round == 0 { cfg.warm } else { DEAD_REWARM };
        let mut rates = [0.0; 3];
        for k in 0..3 {
            let i = (round as usize + k) % 3;
            let (n, secs) = flows[i].run(warm, window).await?;
            rates[i] = n as f64 / secs;
            totals[i] = (totals[i].0 + n, totals[i].1 + secs);
        }
        dirty_rounds.push(100.0 * rates[1] / rates[0]);
        floor_rounds.push(100.0 * rates[2] / rates[0]);
    }
    let [clean_rate, dirty_rate, floor_rate] = totals.map(|(n, secs)| n as f64 / secs);
    let [clean, dirty, floor] = flows;
    let clean = clean.finish().await?;
    let dirty = dirty.finish().await?;
    let floor = floor.finish().await?;
    Ok(Row {
        name: "dead peer in the set",
        result: format!(
            "{:.0}% ({} vs {} pkt/s to the live peer; median round {:.0}%); floor {:.0}% (median round {:.0}%)",
            100.0 * dirty_rate / clean_rate,
            group(dirty_rate),
            group(clean_rate),
            median(&dirty_rounds),
            100.0 * floor_rate / clean_rate,
            median(&floor_rounds),
        ),
        drops: format!(
            "{} (failed {})",
            group(dirty.dropped as f64),
            group(dirty.failed as f64)
        ),
        vs: format!(
            "ratio to the same run without dead peers; each packet to a dead peer cost the live flow {:.0} ns, the floor's stand-in {:.0} ns",
            // Wall time per live packet, minus the clean flow's: what one
            // write to a dead peer (or the floor's stand-in) takes from the
            // live pipeline on this machine.
            1e9 / dirty_rate - 1e9 / clean_rate,
            1e9 / floor_rate - 1e9 / clean_rate
        ),
        notes: format!(
            "1400 B, closed loop (the live flow at saturation, so the ratio is the share of the producer's time the dead writes take); after every packet to the live peer one goes to a dead one, alternating a listener that accepts and never reads or answers, and a closed port; default Options (packet_timeout 5 s). Floor: the same flow with each dead write replaced by what any write costs its caller before the transport is involved (a payload clone, dropped, and a clock read for the `Instant` write_to returns), no transport call: no transport can score above it. {} rounds of a {window:?} window per flow, in turn (dead: {}; floor: {}){}{}",
            cfg.dead_rounds,
            joined(&dirty_rounds, "%"),
            joined(&floor_rounds, "%"),
            stall_note(dirty.stalls),
            if clean.dropped + floor.dropped > 0 {
                format!("; clean and floor flows dropped {}", clean.dropped + floor.dropped)
            } else {
                String::new()
            },
        ),
    })
}

/// Live packets per second offered in the paced dead-peer row: a fifth of
/// what the transport delivers at saturation here, the load a busy gossip
/// cluster puts on one peer being far lower still.
const PACED_RATE: u64 = 200_000;

/// A paced flow of stamped 1400 B packets to one receiver, with (when
/// asked) a write to a dead peer after each.
struct PacedFlow {
    sender: Transport,
    receiver: Transport,
    server: Option<Server>,
    addr: String,
    dead: Vec<String>,
    blackhole: Option<JoinHandle<()>>,
    dead_payloads: Vec<Bytes>,
    base: Instant,
    samples: Arc<Mutex<Vec<u64>>>,
    received: Arc<AtomicU64>,
    consumer: JoinHandle<()>,
    sent: u64,
}

impl PacedFlow {
    async fn start(with_dead: bool, base: Instant) -> Res<PacedFlow> {
        let (receiver, _reg, server, addr) = served(Options::default()).await?;
        let (sender, _) = Transport::new(Options::default())?;
        let (dead, blackhole) = dead_peers(with_dead).await?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(AtomicU64::new(0));
        let (s, r) = (samples.clone(), received.clone());
        let mut packets = receiver.packets();
        let consumer = tokio::spawn(async move {
            while let Some(p) = packets.recv().await {
                if let Some(a) = age(base, &p.payload) {
                    s.lock().unwrap().push(a);
                }
                r.fetch_add(1, Relaxed);
            }
        });
        Ok(PacedFlow {
            sender,
            receiver,
            server: Some(server),
            addr,
            dead,
            blackhole,
            dead_payloads: payload_pool(1400),
            base,
            samples,
            received,
            consumer,
            sent: 0,
        })
    }

    /// Offers `PACED_RATE` for `warm` + `dur`, a burst every millisecond;
    /// returns what arrived in `dur` (packets/s) and its latencies.
    async fn run(&mut self, warm: Duration, dur: Duration) -> Res<(f64, Vec<u64>)> {
        let mut tick = ticker();
        let mut d = 0usize;
        let t0 = Instant::now();
        let mut window: Option<(u64, Instant)> = None;
        loop {
            tick.tick().await;
            match window {
                None if t0.elapsed() >= warm => {
                    self.samples.lock().unwrap().clear();
                    window = Some((self.received.load(Relaxed), Instant::now()));
                }
                Some((_, w0)) if w0.elapsed() >= dur => break,
                _ => {}
            }
            for _ in 0..PACED_RATE / 1000 {
                self.sender.write_to(stamp(self.base, 1400), &self.addr)?;
                self.sent += 1;
                if !self.dead.is_empty() {
                    let _ = self.sender.write_to(
                        self.dead_payloads[d % PAYLOADS].clone(),
                        &self.dead[d % self.dead.len()],
                    );
                    d += 1;
                }
            }
        }
        let (c0, w0) = window.expect("the window opened");
        let rate = (self.received.load(Relaxed) - c0) as f64 / w0.elapsed().as_secs_f64();
        // Let what is in flight land, so the window's latencies are whole.
        sleep(Duration::from_millis(50)).await;
        let lat = std::mem::take(&mut *self.samples.lock().unwrap());
        Ok((rate, lat))
    }

    /// Closes the flow; returns the live packets never delivered.
    async fn finish(mut self) -> u64 {
        sleep(Duration::from_millis(100)).await;
        let lost = self.sent.saturating_sub(self.received.load(Relaxed));
        if let Some(b) = self.blackhole.take() {
            b.abort();
        }
        close(
            &[&self.sender, &self.receiver],
            self.server.take().into_iter().collect(),
        )
        .await;
        self.consumer.abort();
        lost
    }
}

/// What one `write_to` to a dead peer costs its caller's thread, next to
/// the floor flow's stand-in (the caller's part of any write), in a tight
/// loop on one thread: the transport's share of a dead write without the
/// pipeline's noise.
pub async fn dead_write_row(cfg: &Cfg) -> Res<Row> {
    let (t, _) = Transport::new(Options::default())?;
    let (dead, blackhole) = dead_peers(true).await?;
    let payloads = payload_pool(1400);
    let n = cfg.write_loop;
    // Fill the dead peers' queues first: the steady state is a full queue.
    for i in 0..2 * Options::default().peer_queue_size {
        let _ = t.write_to(payloads[i % PAYLOADS].clone(), &dead[i % dead.len()]);
    }
    let (mut dead_ns, mut floor_ns) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t0 = Instant::now();
        for i in 0..n {
            let _ = t.write_to(payloads[i % PAYLOADS].clone(), &dead[i % dead.len()]);
        }
        dead_ns.push(t0.elapsed().as_nanos() as f64 / n as f64);
        let t0 = Instant::now();
        for i in 0..n {
            let payload = payloads[i % PAYLOADS].clone();
            std::hint::black_box(Instant::now());
            drop(std::hint::black_box(payload));
        }
        floor_ns.push(t0.elapsed().as_nanos() as f64 / n as f64);
        // Let the runtime's other tasks (the dead peers' own) run.
        tokio::task::yield_now().await;
    }
    if let Some(b) = blackhole {
        b.abort();
    }
    close(&[&t], Vec::new()).await;
    let (d, f) = (median(&dead_ns), median(&floor_ns));
    Ok(Row {
        name: "write_to to a dead peer, one thread",
        result: format!(
            "{d:.0} ns per call; the caller's part alone {f:.0} ns; the transport's share {:.0} ns",
            d - f
        ),
        drops: "-".into(),
        vs: "the dead-peer row's floor flow does the caller's part".into(),
        notes: format!(
            "a tight loop on one runtime thread, {} calls per round alternating the two dead peers, queues full (each call drops the oldest); the caller's part: a payload clone, dropped, and a clock read; median of 5 rounds (dead: {} ns; caller's part: {} ns)",
            group(n as f64),
            joined(&dead_ns, ""),
            joined(&floor_ns, "")
        ),
    })
}

/// The dead-peer row below saturation: the same dead writes, with the live
/// flow paced at `PACED_RATE`, so what it shows is isolation (does the
/// live peer still get every packet, as fast), not CPU share.
pub async fn dead_peer_paced_row(cfg: &Cfg) -> Res<Row> {
    let base = Instant::now();
    let mut clean = PacedFlow::start(false, base).await?;
    let mut dirty = PacedFlow::start(true, base).await?;
    let (mut clean_rates, mut dirty_rates) = (Vec::new(), Vec::new());
    let (mut clean_lat, mut dirty_lat) = (Vec::new(), Vec::new());
    for round in 0..cfg.paced_rounds {
        let warm = if round == 0 { cfg.warm } else { DEAD_REWARM };
        let (cr, cl) = clean.run(warm, cfg.paced_window).await?;
        let (dr, dl) = dirty.run(warm, cfg.paced_window).await?;
        clean_rates.push(cr);
        dirty_rates.push(dr);
        clean_lat.extend(cl);
        dirty_lat.extend(dl);
    }
    let dropped = |f: &PacedFlow| {
        metric(
            f.sender.metrics(),
            "cluster_transport_tx_packets_dropped_total",
        )
    };
    let (clean_dropped, all_dropped) = (dropped(&clean), dropped(&dirty));
    let clean_lost = clean.finish().await;
    let dirty_lost = dirty.finish().await;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (clean_rate, dirty_rate) = (mean(&clean_rates), mean(&dirty_rates));
    let (cl, dl) = (Lat::from_nanos(clean_lat)?, Lat::from_nanos(dirty_lat)?);
    Ok(Row {
        name: "dead peer in the set, paced",
        result: format!(
            "{:.0}% ({} vs {} pkt/s delivered of {} offered); live p50 {:.0} vs {:.0} µs, p99 {:.0} vs {:.0} µs",
            100.0 * dirty_rate / clean_rate,
            group(dirty_rate),
            group(clean_rate),
            group(PACED_RATE as f64),
            dl.p50,
            cl.p50,
            dl.p99,
            cl.p99,
        ),
        drops: format!(
            "live: {} lost with dead peers, {} without ({} of them dropped from the full send queue); dead peers: {} dropped",
            group(dirty_lost as f64),
            group(clean_lost as f64),
            group(clean_dropped as f64),
            group(all_dropped.saturating_sub(dirty_lost) as f64)
        ),
        vs: "with dead peers vs without, same run".into(),
        notes: format!(
            "the dead-peer row's dead writes with the live flow paced at {} pkt/s (1400 B, stamped; a burst of {} every 1 ms tokio tick), below saturation: isolation, not CPU share; {} rounds of a {:?} window per flow, in turn",
            group(PACED_RATE as f64),
            PACED_RATE / 1000,
            cfg.paced_rounds,
            cfg.paced_window,
        ),
    })
}
