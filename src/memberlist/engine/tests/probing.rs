//! Probing rules, one at a time: acks, the round-robin probe with its
//! indirect helpers and nacks, and the indirect pings we serve.

use super::super::{Config, Event, MemberChange, Output, Time};
use super::rules::{addr, decoded, drain, engine, ip, packets, with_members, MS};
use crate::memberlist::message::{Ack, IndirectPing, Message, Nack, Ping};

#[test]
fn a_ping_is_acked_at_its_source_address_and_a_ping_for_another_name_is_not() {
    let mut e = engine(Config::lan());
    let ping = Ping {
        seq_no: 9,
        node: "me".into(),
        source_addr: ip(),
        source_port: 7100,
        source_node: "x".into(),
    };
    e.handle_message(addr(55555), Message::Ping(ping), Time::ZERO);
    let out = packets(&drain(&mut e));
    assert_eq!(
        out[0].0,
        addr(7100),
        "to SourceAddr:SourcePort, not the packet's source"
    );
    assert_eq!(
        out[0].1[0],
        Message::Ack(Ack {
            seq_no: 9,
            payload: None
        })
    );
    let plain = Ping {
        seq_no: 10,
        node: String::new(),
        ..Default::default()
    };
    e.handle_message(addr(55555), Message::Ping(plain), Time::ZERO);
    assert_eq!(
        packets(&drain(&mut e))[0].0,
        addr(55555),
        "no source fields: the packet's source"
    );
    let stranger = Ping {
        seq_no: 11,
        node: "someone-else".into(),
        ..Default::default()
    };
    e.handle_message(addr(55555), Message::Ping(stranger.clone()), Time::ZERO);
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.handle_stream_ping(&stranger), None);
}

/// Runs the round-robin probe of one member with every helper answering
/// with `helper_reply`; returns whether the target was suspected.
fn probe_with_helpers(helper_reply: Option<fn(u32) -> Message>, config: Config) -> (bool, u32) {
    let mut e = with_members(config);
    let mut target = None;
    let mut suspected = false;
    // Until the first probe (started in the first probe interval) has
    // decided.
    let mut end = Time::from_origin(MS(2000));
    while let Some(t) = e.next_deadline().filter(|t| *t <= end) {
        e.tick(t);
        for o in drain(&mut e) {
            match o {
                Output::Packet(p) => {
                    for m in decoded(&p) {
                        match m {
                            Message::Ping(ping) if target.is_none() => {
                                target = Some(ping.node.clone());
                                // Past the decision's wait for silent helpers.
                                end = t + MS(1800);
                            }
                            // The first probe's (the next starts at 1 s).
                            Message::IndirectPing(ind) if Some(&ind.node) == target.as_ref() => {
                                assert!(
                                    ind.nack,
                                    "members speaking protocol 5 are asked for nacks"
                                );
                                if let Some(reply) = helper_reply {
                                    e.handle_message(p.to, reply(ind.seq_no), t + MS(1));
                                }
                            }
                            _ => {}
                        }
                    }
                }
                Output::Event(Event::Member {
                    change: MemberChange::Suspect,
                    member,
                }) => {
                    assert_eq!(Some(&member.name), target.as_ref());
                    suspected = true;
                }
                _ => {}
            }
        }
        if target.is_some() && suspected {
            break;
        }
    }
    (suspected, e.health_score())
}

#[test]
fn a_probe_that_only_helpers_hear_fails_with_nacks_and_suspects_the_target() {
    let config = Config {
        disable_tcp_pings: true,
        ..Config::lan()
    };
    let (suspected, health) =
        probe_with_helpers(Some(|seq| Message::Nack(Nack { seq_no: seq })), config);
    assert!(suspected);
    assert_eq!(health, 0, "every helper nacked: nothing wrong with us");
}

#[test]
fn a_probe_answered_through_a_helper_succeeds() {
    let config = Config {
        disable_tcp_pings: true,
        ..Config::lan()
    };
    let (suspected, _) = probe_with_helpers(
        Some(|seq| {
            Message::Ack(Ack {
                seq_no: seq,
                payload: None,
            })
        }),
        config,
    );
    assert!(!suspected);
}

#[test]
fn a_probe_nobody_answers_raises_our_health_score_and_accuses_nobody() {
    let config = Config {
        disable_tcp_pings: true,
        ..Config::lan()
    };
    let (suspected, health) = probe_with_helpers(None, config.clone());
    assert!(!suspected, "silence from every helper is our problem");
    assert!(health >= 3, "one point per missing nack: {health}");
    // memberlist accuses the target anyway.
    let (suspected, _) = probe_with_helpers(None, config.as_memberlist());
    assert!(suspected);
}

#[test]
fn an_indirect_ping_is_relayed_and_nacked_when_the_target_is_silent() {
    let mut e = with_members(Config::lan());
    let ind = IndirectPing {
        seq_no: 77,
        target: ip(),
        port: 7002,
        node: "b".into(),
        nack: true,
        source_addr: ip(),
        source_port: 7001,
        source_node: "a".into(),
    };
    e.handle_message(addr(40000), Message::IndirectPing(ind.clone()), Time::ZERO);
    let out = packets(&drain(&mut e));
    let Message::Ping(ping) = &out[0].1[0] else {
        panic!("{out:?}")
    };
    assert_eq!((out[0].0, ping.node.as_str()), (addr(7002), "b"));
    // b answers: the ack goes to a with a's sequence number.
    e.handle_message(
        addr(7002),
        Message::Ack(Ack {
            seq_no: ping.seq_no,
            payload: None,
        }),
        Time::ZERO + MS(1),
    );
    let out = packets(&drain(&mut e));
    assert_eq!(out[0].0, addr(7001));
    assert_eq!(
        out[0].1[0],
        Message::Ack(Ack {
            seq_no: 77,
            payload: None
        })
    );
    // Again, and b stays silent: a nack after the probe timeout.
    e.handle_message(addr(40000), Message::IndirectPing(ind), Time::ZERO + MS(2));
    drain(&mut e);
    e.tick(Time::ZERO + MS(2) + Config::lan().probe_timeout);
    let out = packets(&drain(&mut e));
    assert!(out
        .iter()
        .any(|(to, m)| *to == addr(7001) && m[0] == Message::Nack(Nack { seq_no: 77 })));
}

/// The first round-robin probe, with one helper nacking at once and the
/// others silent, and the target's ack arriving `ack_after` after its
/// ping; returns whether the target was suspected.
fn probe_with_a_late_ack(config: Config, ack_after: std::time::Duration) -> bool {
    let mut e = with_members(Config {
        disable_tcp_pings: true,
        ..config
    });
    let mut first: Option<(String, u32, Time, std::net::SocketAddr)> = None;
    let mut nacked = false;
    let mut acked = false;
    let mut suspected = false;
    // Time in 10 ms steps (timers a little late, as a runtime runs them).
    for step in 0..400 {
        let now = Time::from_origin(MS(step * 10));
        if let Some((_, seq, at, to)) = &first {
            if !acked && now >= *at + ack_after {
                let ack = Message::Ack(Ack {
                    seq_no: *seq,
                    payload: None,
                });
                e.handle_message(*to, ack, now);
                acked = true;
            }
        }
        if e.next_deadline().is_some_and(|t| t <= now) {
            e.tick(now);
        }
        for o in drain(&mut e) {
            match o {
                Output::Packet(p) => {
                    for m in decoded(&p) {
                        match m {
                            Message::Ping(ping) if first.is_none() => {
                                first = Some((ping.node.clone(), ping.seq_no, now, p.to));
                            }
                            Message::IndirectPing(ind)
                                if !nacked && first.as_ref().is_some_and(|f| f.1 == ind.seq_no) =>
                            {
                                e.handle_message(
                                    p.to,
                                    Message::Nack(Nack { seq_no: ind.seq_no }),
                                    now,
                                );
                                nacked = true;
                            }
                            _ => {}
                        }
                    }
                }
                Output::Event(Event::Member {
                    change: MemberChange::Suspect,
                    member,
                }) if first.as_ref().is_some_and(|f| f.0 == member.name) => suspected = true,
                _ => {}
            }
        }
    }
    assert!(nacked && acked, "the probe ran to its end");
    suspected
}

#[test]
fn a_probe_waits_once_for_helpers_that_have_not_answered() {
    // The decision is due 1.25 s after the ping (2.5 probe timeouts); two
    // helpers have not answered then, so it waits one probe timeout more,
    // and the ack 300 ms past the first deadline counts.
    assert!(!probe_with_a_late_ack(Config::lan(), MS(1550)));
    // Not past the wait: suspected.
    assert!(probe_with_a_late_ack(Config::lan(), MS(1900)));
    // memberlist decides at once.
    assert!(probe_with_a_late_ack(
        Config::lan().as_memberlist(),
        MS(1550)
    ));
}
