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
    // decided, before the second sends indirect pings.
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
                                end = t + MS(1300);
                            }
                            Message::IndirectPing(ind) => {
                                assert!(
                                    ind.nack,
                                    "members speaking protocol 5 are asked for nacks"
                                );
                                assert_eq!(Some(&ind.node), target.as_ref());
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
