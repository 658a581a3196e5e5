//! A starved member (its timers and inputs handled late): it blames
//! itself, not the members it probes.

use super::super::{Config, Event, MemberChange, Output, Time};
use super::load::{as_on_main, run, STARVED};
use super::rules::{decoded, drain, with_members, MS};
use crate::memberlist::message::{Ack, Message, Nack};

/// What one probe of a member did: pings and indirect pings, with the
/// time they went out, and suspicions.
#[derive(Debug, Default)]
struct Seen {
    ping: Option<(Time, u32)>,
    /// The member that ping probes.
    target: Option<String>,
    indirect: Vec<(Time, u32)>,
    /// That member was suspected.
    suspected: bool,
}

fn look(outputs: Vec<Output>, now: Time, seen: &mut Seen) {
    for o in outputs {
        match o {
            Output::Packet(p) => {
                for m in decoded(&p) {
                    match m {
                        Message::Ping(ping) if seen.ping.is_none() => {
                            seen.ping = Some((now, ping.seq_no));
                            seen.target = Some(ping.node);
                        }
                        Message::IndirectPing(ind) => seen.indirect.push((now, ind.seq_no)),
                        _ => {}
                    }
                }
            }
            Output::Event(Event::Member {
                change: MemberChange::Suspect,
                member,
            }) if seen.target.as_ref() == Some(&member.name) => seen.suspected = true,
            _ => {}
        }
    }
}

/// Ticks on time until the first probe's ping went out.
fn until_first_ping(e: &mut super::super::Engine) -> (Seen, Time) {
    let mut seen = Seen::default();
    while seen.ping.is_none() {
        let t = e.next_deadline().expect("timers run");
        e.tick(t);
        look(drain(e), t, &mut seen);
    }
    let at = seen.ping.expect("looped until").0;
    (seen, at)
}

fn config(notice: bool) -> Config {
    let c = Config {
        disable_tcp_pings: true,
        ..Config::lan()
    };
    if notice {
        c
    } else {
        as_on_main(c)
    }
}

#[test]
fn a_probe_handled_late_still_asks_its_helpers_before_accusing() {
    for notice in [true, false] {
        let mut e = with_members(config(notice));
        let (mut seen, sent) = until_first_ping(&mut e);
        // Not run again until 3 s later, past the probe's decision (1.25 s).
        let late = sent + MS(3000);
        e.tick(late);
        look(drain(&mut e), late, &mut seen);
        if !notice {
            assert!(
                seen.suspected && seen.indirect.is_empty(),
                "memberlist's clock: accused without asking a helper: {seen:?}"
            );
            continue;
        }
        assert!(!seen.suspected, "{seen:?}");
        assert_eq!(seen.indirect.len(), 3, "the helpers are asked now");
        // A helper's relayed ack, a little later, clears the target.
        let seq = seen.indirect[0].1;
        let ack = Message::Ack(Ack {
            seq_no: seq,
            payload: None,
        });
        e.handle_message(super::rules::addr(7001), ack, late + MS(900));
        let mut now = late + MS(900);
        while now < late + MS(5000) {
            now = e.next_deadline().expect("timers run");
            e.tick(now);
            look(drain(&mut e), now, &mut seen);
        }
        assert!(!seen.suspected, "{seen:?}");
    }
}

#[test]
fn an_ack_read_after_a_late_decision_timer_still_counts() {
    for notice in [true, false] {
        let mut e = with_members(config(notice));
        let (mut seen, sent) = until_first_ping(&mut e);
        let (_, seq) = seen.ping.expect("sent");
        let t = sent + MS(500);
        e.tick(t);
        look(drain(&mut e), t, &mut seen);
        assert_eq!(seen.indirect.len(), 3);
        // Every helper nacks at 1 s: the decision is due at once, but we
        // run only at 1.4 s, and the target's ack waits behind the timer.
        for (i, _) in seen.indirect.clone().iter().enumerate() {
            let nack = Message::Nack(Nack { seq_no: seq });
            e.handle_message(super::rules::addr(7001 + i as u16), nack, sent + MS(1000));
        }
        let late = sent + MS(1400);
        e.tick(late);
        look(drain(&mut e), late, &mut seen);
        let ack = Message::Ack(Ack {
            seq_no: seq,
            payload: None,
        });
        e.handle_message(super::rules::addr(7001), ack, late + MS(1));
        let end = late + MS(3000);
        let mut now = late;
        while now < end {
            now = e.next_deadline().expect("timers run");
            e.tick(now);
            look(drain(&mut e), now, &mut seen);
        }
        assert_eq!(seen.suspected, !notice, "{seen:?}");
    }
}

#[test]
fn a_starved_member_raises_its_health_score_and_waits_longer_for_acks() {
    for scale in [true, false] {
        let mut e = with_members(Config {
            scale_probe_timeout: scale,
            ..config(true)
        });
        let (seen, sent) = until_first_ping(&mut e);
        let (_, seq) = seen.ping.expect("sent");
        let ack = Message::Ack(Ack {
            seq_no: seq,
            payload: None,
        });
        e.handle_message(super::rules::addr(7001), ack, sent + MS(1));
        assert_eq!(e.health_score(), 0);
        // The next timer is handled 1 s late: we are starved.
        let late = e.next_deadline().expect("timers run") + MS(1000);
        e.tick(late);
        assert_eq!(e.health_score(), 1);
        let mut seen = Seen::default();
        look(drain(&mut e), late, &mut seen);
        // The next probe, on time from now on, waits twice the probe
        // timeout for its ack before asking helpers (when scaled).
        while seen.indirect.is_empty() {
            let now = e.next_deadline().expect("timers run");
            e.tick(now);
            look(drain(&mut e), now, &mut seen);
        }
        let (ping_at, seq) = seen.ping.expect("a probe before its indirect pings");
        assert_eq!(seen.indirect[0].1, seq);
        let waited = seen.indirect[0].0.since(ping_at);
        let expected = if scale { MS(1000) } else { MS(500) };
        assert_eq!(waited, expected, "scale {scale}");
    }
}

#[test]
fn a_starved_cluster_of_100_accuses_nobody() {
    let heavy = super::sim::Starvation {
        cost: std::time::Duration::from_micros(200),
        ..STARVED
    };
    let (_, r) = run(
        100,
        Config::lan(),
        Some(heavy),
        3,
        std::time::Duration::from_secs(20),
    );
    assert_eq!((r.false_suspects, r.false_deaths), (0, 0), "{r:?}");
    assert!(r.converged.is_some(), "{r:?}");
    // The same load on the engine without these rules: the model does
    // starve it.
    let (_, r) = run(
        100,
        as_on_main(Config::lan()),
        Some(heavy),
        3,
        std::time::Duration::from_secs(20),
    );
    assert!(r.false_suspects > 0, "{r:?}");
}

#[test]
fn lateness_alone_takes_the_health_score_to_half_its_ceiling() {
    let mut e = super::rules::engine(Config::lan());
    for _ in 0..20 {
        let late = e.next_deadline().expect("timers run") + MS(1500);
        e.tick(late);
        drain(&mut e);
    }
    assert_eq!(e.health_score(), 4, "half of AwarenessMaxMultiplier (8)");
    let mut e = super::rules::engine(as_on_main(Config::lan()));
    for _ in 0..20 {
        let late = e.next_deadline().expect("timers run") + MS(1500);
        e.tick(late);
        drain(&mut e);
    }
    assert_eq!(e.health_score(), 0, "memberlist does not notice");
}
