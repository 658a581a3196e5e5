//! The closed-loop packet flow: a producer writing to live receivers at most
//! a window ahead of what they took, and (for the dead-peer rows) a write to
//! a dead peer or its stand-in after each packet.

use crate::harness::{
    close, consume, dead_peers, metric, payload_pool, served, BURST, STALL, YIELD_EVERY,
};
use crate::{Cfg, Res};
use bytes::Bytes;
use gossiphttp::{MetricsRegistry, Options, Server, Transport};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

struct Target {
    addr: String,
    received: Arc<AtomicU64>,
    sent: u64,
}

/// What a producer does after each write to a live receiver.
#[derive(Clone, Copy, PartialEq)]
pub enum Between {
    Nothing,
    /// One write to a dead peer (alternating between the flow's two).
    DeadWrite,
    /// What any write costs its caller before the transport is involved: a
    /// payload clone, dropped, and a clock read (the `Instant` `write_to`
    /// returns); no transport call. The floor under the dead-peer ratio: no
    /// transport can make a dead write cheaper than this.
    Floor,
}

struct Producer {
    transport: Transport,
    targets: Vec<Target>,
    between: Between,
    /// The dead peers for `Between::DeadWrite`.
    dead: Vec<String>,
    /// Distinct buffers written in turn. An application writes a fresh
    /// buffer per packet; one `Bytes` cloned for every write would instead
    /// have both cores hammer a single reference count, a contention no
    /// real sender has (and which doubles with the dead-peer row's writes).
    payloads: Vec<Bytes>,
    next: usize,
    window: u64,
    notify: Arc<Notify>,
    stop: Arc<AtomicBool>,
}

impl Producer {
    /// Writes until stopped, at most `window` outstanding per target;
    /// returns how often it stalled.
    async fn run(&mut self) -> u64 {
        let (mut since_yield, mut d, mut stalls) = (0u64, 0usize, 0u64);
        while !self.stop.load(Relaxed) {
            let mut wrote = false;
            for tg in self.targets.iter_mut() {
                let out = tg.sent.saturating_sub(tg.received.load(Relaxed));
                let n = self.window.saturating_sub(out).min(BURST);
                for _ in 0..n {
                    if self
                        .transport
                        .write_to(self.payloads[self.next].clone(), &tg.addr)
                        .is_err()
                    {
                        return stalls;
                    }
                    tg.sent += 1;
                    self.next = (self.next + 1) % self.payloads.len();
                    match self.between {
                        Between::Nothing => {}
                        Between::DeadWrite => {
                            let _ = self.transport.write_to(
                                self.payloads[self.next].clone(),
                                &self.dead[d % self.dead.len()],
                            );
                            self.next = (self.next + 1) % self.payloads.len();
                            d += 1;
                        }
                        Between::Floor => {
                            let payload = self.payloads[self.next].clone();
                            std::hint::black_box(Instant::now());
                            drop(std::hint::black_box(payload));
                            self.next = (self.next + 1) % self.payloads.len();
                        }
                    }
                }
                wrote |= n > 0;
                since_yield += n;
            }
            if !wrote {
                if timeout(STALL, self.notify.notified()).await.is_err() {
                    stalls += 1;
                    for tg in self.targets.iter_mut() {
                        tg.sent = tg.received.load(Relaxed);
                    }
                }
            } else if since_yield >= YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
        stalls
    }
}

pub struct FlowSpec {
    pub size: usize,
    pub receivers: usize,
    pub window: u64,
    pub between: Between,
    pub dur: Duration,
}

pub struct FlowOut {
    /// Packets/s taken by the live receivers' applications.
    pub rate: f64,
    pub sent: u64,
    pub received: u64,
    pub dropped: u64,
    pub failed: u64,
    pub stalls: u64,
}

/// A packet flow set up and ready to run: live receivers, a sender, and
/// (when asked) the dead peers. It can run several measurement windows, so
/// that two flows can take turns (see [`crate::dead_peer::dead_peer_row`]).
pub struct Flow {
    producer: Option<Producer>,
    receivers: Vec<(Transport, Server, Arc<AtomicU64>)>,
    consumers: Vec<JoinHandle<()>>,
    sender: Transport,
    sender_reg: MetricsRegistry,
    blackhole: Option<JoinHandle<()>>,
    stalls: u64,
}

impl Flow {
    pub async fn start(spec: &FlowSpec) -> Res<Flow> {
        let notify = Arc::new(Notify::new());
        let mut receivers = Vec::new();
        let mut targets = Vec::new();
        let mut consumers = Vec::new();
        for _ in 0..spec.receivers {
            let (t, _reg, server, addr) = served(Options::default()).await?;
            let (received, task) = consume(&t, notify.clone());
            consumers.push(task);
            targets.push(Target {
                addr,
                received: received.clone(),
                sent: 0,
            });
            receivers.push((t, server, received));
        }
        let (sender, sender_reg) = Transport::new(Options::default())?;

        // Dead peers: one that accepts TCP and never answers (nor reads), and
        // a closed port.
        let (dead, blackhole) = dead_peers(spec.between == Between::DeadWrite).await?;
        Ok(Flow {
            producer: Some(Producer {
                transport: sender.clone(),
                targets,
                between: spec.between,
                dead,
                payloads: payload_pool(spec.size),
                next: 0,
                window: spec.window,
                notify,
                stop: Arc::new(AtomicBool::new(false)),
            }),
            receivers,
            consumers,
            sender,
            sender_reg,
            blackhole,
            stalls: 0,
        })
    }

    /// Packets taken by the live receivers' applications so far.
    pub fn received(&self) -> u64 {
        self.receivers.iter().map(|r| r.2.load(Relaxed)).sum()
    }

    /// Runs the producer for `warm` + `dur`; returns the delivered rate in
    /// `dur` as (packets, seconds).
    pub async fn run(&mut self, warm: Duration, dur: Duration) -> Res<(u64, f64)> {
        let mut producer = self.producer.take().ok_or("flow already failed")?;
        let stop = producer.stop.clone();
        stop.store(false, Relaxed);
        let task = tokio::spawn(async move {
            let stalls = producer.run().await;
            (producer, stalls)
        });
        sleep(warm).await;
        let (c0, t0) = (self.received(), Instant::now());
        sleep(dur).await;
        let (c1, dt) = (self.received(), t0.elapsed());
        stop.store(true, Relaxed);
        let (producer, stalls) = task.await?;
        self.stalls += stalls;
        self.producer = Some(producer);
        Ok((c1 - c0, dt.as_secs_f64()))
    }

    pub async fn finish(mut self) -> Res<FlowOut> {
        let sent = self
            .producer
            .as_ref()
            .map_or(0, |p| p.targets.iter().map(|t| t.sent).sum());
        let dropped = metric(
            &self.sender_reg,
            "cluster_transport_tx_packets_dropped_total",
        );
        let failed = metric(
            &self.sender_reg,
            "cluster_transport_tx_packets_failed_total",
        );
        // Let what is in flight land before counting what arrived in all.
        sleep(Duration::from_millis(100)).await;
        let received = self.received();

        if let Some(b) = self.blackhole.take() {
            b.abort();
        }
        let (rts, servers): (Vec<Transport>, Vec<Server>) =
            self.receivers.drain(..).map(|(t, s, _)| (t, s)).unzip();
        let mut all: Vec<&Transport> = vec![&self.sender];
        all.extend(rts.iter());
        close(&all, servers).await;
        for c in self.consumers.drain(..) {
            c.abort();
        }
        Ok(FlowOut {
            rate: 0.0,
            sent,
            received,
            dropped,
            failed,
            stalls: self.stalls,
        })
    }
}

/// One flow, one window.
pub async fn packet_flow(cfg: &Cfg, spec: FlowSpec) -> Res<FlowOut> {
    let mut flow = Flow::start(&spec).await?;
    let (n, secs) = flow.run(cfg.warm, spec.dur).await?;
    let mut out = flow.finish().await?;
    out.rate = n as f64 / secs;
    Ok(out)
}
