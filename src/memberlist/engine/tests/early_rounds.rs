//! Early gossip rounds for never-sent news: spaced by the table's size,
//! and none for a member behind on its own inputs.

use std::time::Duration;

use super::super::{Config, Engine, OutPacket, Output, Time};
use super::rules::{addr, alive, decoded, drain, engine, MS};
use crate::memberlist::message::Message;

/// An engine that knows `n` other members (no probes: only gossip is
/// counted).
fn knowing(n: u16) -> Engine {
    knowing_with(n, Config::lan())
}

/// An engine on `config` that knows `n` other members and never probes or
/// push-pulls on its own (those two intervals are overridden): what it
/// sends is gossip.
pub(super) fn knowing_with(n: u16, config: Config) -> Engine {
    let config = Config {
        probe_interval: Duration::from_secs(3600),
        push_pull_interval: Duration::ZERO,
        ..config
    };
    let mut e = engine(config);
    for i in 0..n {
        let name = format!("m{i}");
        e.handle_message(
            addr(7001),
            Message::Alive(alive(&name, 8000 + i, 1)),
            Time::ZERO,
        );
    }
    drain(&mut e);
    e
}

/// Gossip rounds in `window` while news arrives every 5 ms (a known
/// member's new metadata: never-sent news is always waiting, as in a join
/// wave, and the table keeps its size; a newer incarnation alone would be
/// a refutation, which has rounds of its own).
fn rounds_in(e: &mut Engine, n: u16, window: Duration) -> usize {
    gossip_rounds(e, n, Time::from_origin(Duration::from_secs(1)), window).len()
}

/// The gossip packets (those that open with an alive) of each round from
/// `start` over `window` while news arrives every 5 ms, as `rounds_in`
/// says; the rounds due before `start` (the table's own news) pass
/// unrecorded.
pub(super) fn gossip_rounds(
    e: &mut Engine,
    n: u16,
    start: Time,
    window: Duration,
) -> Vec<Vec<OutPacket>> {
    let end = start + window;
    while let Some(t) = e.next_deadline().filter(|t| *t < start) {
        e.tick(t);
        drain(e);
    }
    let mut rounds = Vec::new();
    let mut news = 0u16;
    let mut now = start;
    while now < end {
        let i = news % n;
        let incarnation = 2 + u32::from(news / n);
        let mut update = alive(&format!("m{i}"), 8000 + i, incarnation);
        update.meta = Some(bytes::Bytes::from(incarnation.to_string()));
        e.handle_message(addr(7001), Message::Alive(update), now);
        news += 1;
        let step = now + MS(5);
        // Timers on time: a deadline the news made due at once runs now,
        // which is not late.
        while let Some(t) = e.next_deadline().filter(|t| *t < step) {
            e.tick(t.max(now));
            let gossip: Vec<OutPacket> = drain(e)
                .into_iter()
                .filter_map(|o| match o {
                    Output::Packet(p) if matches!(decoded(&p)[0], Message::Alive(_)) => Some(p),
                    _ => None,
                })
                .collect();
            if !gossip.is_empty() {
                rounds.push(gossip);
            }
        }
        now = step;
    }
    rounds
}

#[test]
fn early_rounds_come_every_10_ms_in_a_small_table_and_stretch_with_its_size() {
    let window = Duration::from_secs(1);
    // 5 others: ceil(6 / 10) = 1, a round every 10 ms.
    let small = rounds_in(&mut knowing(5), 5, window);
    assert!((80..=101).contains(&small), "{small} rounds in 1 s among 6");
    // 45 others: ceil(46 / 10) = 5, a round every 50 ms.
    let middle = rounds_in(&mut knowing(45), 45, window);
    assert!(
        (18..=21).contains(&middle),
        "{middle} rounds in 1 s among 46"
    );
    // 95 others: ceil(96 / 10) = 10, every 100 ms.
    let large = rounds_in(&mut knowing(95), 95, window);
    assert!((9..=11).contains(&large), "{large} rounds in 1 s among 96");
    // 195 others: every 200 ms, the regular cadence (5 per second).
    let larger = rounds_in(&mut knowing(195), 195, window);
    assert!(
        (4..=6).contains(&larger),
        "{larger} rounds in 1 s among 196"
    );
}

#[test]
fn a_member_whose_inputs_wait_raises_its_health_score_and_gossips_less() {
    let mut e = knowing(5);
    let now = Time::from_origin(MS(500));
    // Handled 30 ms after it arrived: ordinary.
    e.note_input_delay(MS(30), now);
    assert_eq!(e.health_score(), 0);
    // 300 ms (past a fifth of the 500 ms probe timeout): we are the slow one.
    e.note_input_delay(MS(300), now);
    assert_eq!(e.health_score(), 1);
    // At most once per probe interval.
    e.note_input_delay(MS(300), now + MS(10));
    assert_eq!(e.health_score(), 1);
    // No early rounds, and the interval doubled (score 1): a round every
    // 400 ms rather than every 200.
    let rounds = rounds_in(&mut e, 5, Duration::from_secs(1));
    assert!(
        (2..=3).contains(&rounds),
        "{rounds} rounds in 1 s while unhealthy"
    );
}

/// [`knowing`] 5 others, with a health score of 1 from an input handled
/// 300 ms late.
fn unhealthy() -> Engine {
    let mut e = knowing(5);
    e.note_input_delay(MS(300), Time::from_origin(MS(500)));
    assert_eq!(e.health_score(), 1);
    e
}

#[test]
fn memberlist_gossips_at_its_interval_whatever_its_health() {
    let mut e = unhealthy();
    e.config = e.config.clone().as_memberlist();
    let rounds = rounds_in(&mut e, 5, Duration::from_secs(1));
    assert!((4..=6).contains(&rounds), "{rounds} rounds in 1 s");
}

#[test]
fn a_leaving_member_gossips_at_the_plain_interval() {
    let mut e = unhealthy();
    e.leave(Duration::from_secs(30), Time::from_origin(MS(600)));
    let rounds = rounds_in(&mut e, 5, Duration::from_secs(1));
    assert!(
        (4..=6).contains(&rounds),
        "{rounds} rounds in 1 s while leaving"
    );
}

#[test]
fn a_member_with_nothing_to_gossip_sleeps_and_sends_news_at_once() {
    let mut e = knowing(5);
    // Gossip the table's own news until none is left.
    let mut now = Time::ZERO;
    while e.queued_broadcasts() > 0 {
        let due = e.next_deadline().expect("a round is due while news waits");
        now = due.max(now);
        e.tick(now);
        drain(&mut e);
    }
    // memberlist's ticker would wake every 200 ms here for nothing; the
    // next timer is another one's (probes are off; the reconnect round).
    let quiet = e.next_deadline();
    assert!(
        quiet.is_none_or(|t| t.since(now) >= Duration::from_secs(5)),
        "woken {:?} after the queue emptied",
        quiet.map(|t| t.since(now))
    );
    // News after a quiet spell goes out at once.
    let later = now + Duration::from_secs(10);
    e.handle_message(addr(7001), Message::Alive(alive("m1", 8001, 5)), later);
    assert!(e.next_deadline().is_some_and(|t| t <= later));
    e.tick(later);
    let sent = drain(&mut e).iter().any(|o| {
        matches!(o, Output::Packet(p)
            if matches!(&decoded(p)[0], Message::Alive(a) if a.node == "m1" && a.incarnation == 5))
    });
    assert!(sent, "the news was not gossiped at once");
}

#[test]
fn ill_health_spaces_gossip_rounds_a_second_apart_at_most() {
    let mut e = knowing(5);
    assert_eq!(e.gossip_interval(), MS(200));
    e.awareness.apply(2);
    assert_eq!(e.gossip_interval(), MS(600));
    e.awareness.apply(7);
    assert_eq!(e.gossip_interval(), MS(1000), "1.6 s uncapped");
    let rounds = rounds_in(&mut e, 5, Duration::from_secs(3));
    assert!((2..=4).contains(&rounds), "{rounds} rounds in 3 s");
    // An interval set past the cap is the cadence whatever the health.
    e.config.gossip_interval = MS(2000);
    assert_eq!(e.gossip_interval(), MS(2000));
}
