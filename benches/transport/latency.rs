//! The latency rows: packets paced at 1000 per second through the
//! transport, and UDP datagrams alike as the baseline.

use crate::harness::{close, served};
use crate::report::{Baselines, Row};
use crate::{Cfg, Res};
use bytes::Bytes;
use gossiphttp::{Options, Transport};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::time::sleep;

#[derive(Clone, Copy)]
pub struct Lat {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Lat {
    pub fn from_nanos(mut v: Vec<u64>) -> Res<Lat> {
        if v.is_empty() {
            return Err("no samples".into());
        }
        v.sort_unstable();
        let at =
            |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1e3;
        Ok(Lat {
            n: v.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: *v.last().unwrap() as f64 / 1e3,
        })
    }

    pub fn show(&self) -> String {
        format!(
            "p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
            self.p50, self.p99, self.max
        )
    }
}

pub fn stamp(base: Instant, size: usize) -> Bytes {
    let mut v = vec![0u8; size];
    v[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
    Bytes::from(v)
}

pub fn age(base: Instant, payload: &[u8]) -> Option<u64> {
    let sent = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    Some((base.elapsed().as_nanos() as u64).saturating_sub(sent))
}

pub fn ticker() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

async fn packet_latency(cfg: &Cfg) -> Res<Lat> {
    let (rx, _reg, server, addr) = served(Options::default()).await?;
    let (tx, _) = Transport::new(Options::default())?;
    let base = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::with_capacity(
        cfg.lat_packets as usize + 200,
    )));
    let s = samples.clone();
    let mut packets = rx.packets();
    let consumer = tokio::spawn(async move {
        while let Some(p) = packets.recv().await {
            if let Some(a) = age(base, &p.payload) {
                s.lock().unwrap().push(a);
            }
        }
    });
    let mut tick = ticker();
    // Warm up: the connection and the peer's task exist before measuring.
    for _ in 0..100 {
        tick.tick().await;
        tx.write_to(stamp(base, 64), &addr)?;
    }
    sleep(Duration::from_millis(50)).await;
    samples.lock().unwrap().clear();
    for _ in 0..cfg.lat_packets {
        tick.tick().await;
        tx.write_to(stamp(base, 64), &addr)?;
    }
    sleep(Duration::from_millis(100)).await;
    let v = std::mem::take(&mut *samples.lock().unwrap());
    close(&[&tx, &rx], vec![server]).await;
    consumer.abort();
    Lat::from_nanos(v)
}

async fn udp_latency(cfg: &Cfg) -> Res<Lat> {
    let rx = UdpSocket::bind("127.0.0.1:0").await?;
    let tx = UdpSocket::bind("127.0.0.1:0").await?;
    tx.connect(rx.local_addr()?).await?;
    let base = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::with_capacity(
        cfg.lat_packets as usize + 200,
    )));
    let s = samples.clone();
    let consumer = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx.recv(&mut buf).await {
            if let Some(a) = age(base, &buf[..n]) {
                s.lock().unwrap().push(a);
            }
        }
    });
    let mut tick = ticker();
    for _ in 0..100 {
        tick.tick().await;
        tx.send(&stamp(base, 64)).await?;
    }
    sleep(Duration::from_millis(50)).await;
    samples.lock().unwrap().clear();
    for _ in 0..cfg.lat_packets {
        tick.tick().await;
        tx.send(&stamp(base, 64)).await?;
    }
    sleep(Duration::from_millis(100)).await;
    consumer.abort();
    let v = std::mem::take(&mut *samples.lock().unwrap());
    Lat::from_nanos(v)
}

/// The UDP latency baseline's row, and its numbers for the transport's.
pub async fn udp_row(cfg: &Cfg) -> Res<(Row, Lat)> {
    let lat = udp_latency(cfg).await?;
    let row = Row {
        name: "baseline: UDP latency at 1000 pkt/s",
        result: lat.show(),
        drops: "-".into(),
        vs: "-".into(),
        notes: format!("{} 64 B datagrams, same pacing and clock", lat.n),
    };
    Ok((row, lat))
}

pub async fn packet_row(cfg: &Cfg, base: &Baselines) -> Res<Row> {
    let lat = packet_latency(cfg).await?;
    Ok(Row {
        name: "latency at 1000 pkt/s",
        result: lat.show(),
        drops: "-".into(),
        vs: base.udp_lat.map_or("-".into(), |u| {
            format!(
                "{:.1}× UDP p50, {:.1}× UDP p99",
                lat.p50 / u.p50,
                lat.p99 / u.p99
            )
        }),
        notes: format!(
            "{} packets of 64 B, write_to paced by a 1 ms tokio interval, measured on receipt",
            lat.n
        ),
    })
}
