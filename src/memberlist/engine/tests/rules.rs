//! memberlist's rules, one at a time, on a single engine fed by hand.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use super::super::{Config, Engine, Event, Identity, MemberChange, OutPacket, Output, Time};
use crate::memberlist::message::{
    Ack, Alive, Dead, Message, NodeState, PushNodeState, PushPull, Suspect,
};

pub(super) const MS: fn(u64) -> Duration = Duration::from_millis;

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(super) fn ip() -> Bytes {
    Bytes::from_static(&[127, 0, 0, 1])
}

pub(super) fn engine(config: Config) -> Engine {
    let me = Identity {
        name: "me".into(),
        addr: addr(7000),
        meta: None,
    };
    let mut e = Engine::new(config, me, 7, Time::ZERO).unwrap();
    drain(&mut e);
    e
}

pub(super) fn drain(e: &mut Engine) -> Vec<Output> {
    std::iter::from_fn(|| e.poll_output()).collect()
}

/// A packet's messages, decoded.
pub(super) fn decoded(p: &OutPacket) -> Vec<Message> {
    p.decode_messages().expect("the engine's messages decode")
}

pub(super) fn packets(outputs: &[Output]) -> Vec<(SocketAddr, Vec<Message>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Packet(p) => Some((p.to, decoded(p))),
            _ => None,
        })
        .collect()
}

pub(super) fn changes(outputs: &[Output]) -> Vec<(String, MemberChange)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::Member { member, change }) => Some((member.name.clone(), *change)),
            _ => None,
        })
        .collect()
}

pub(super) fn alive(node: &str, port: u16, incarnation: u32) -> Alive {
    Alive {
        incarnation,
        node: node.into(),
        addr: ip(),
        port,
        meta: None,
        vsn: Bytes::from_static(&[1, 5, 2, 0, 0, 0]),
    }
}

/// A push-pull row at incarnation 1, announcing the versions ours does.
pub(super) fn row(name: &str, port: u16, state: NodeState) -> PushNodeState {
    PushNodeState {
        name: name.into(),
        addr: ip(),
        port,
        meta: None,
        incarnation: 1,
        state,
        vsn: Bytes::from_static(&[1, 5, 2, 0, 0, 0]),
    }
}

/// An engine that knows members a, b, c, d (ports 7001..7004), alive at 1.
pub(super) fn with_members(config: Config) -> Engine {
    let mut e = engine(config);
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        e.handle_message(
            addr(7001),
            Message::Alive(alive(name, 7001 + i as u16, 1)),
            Time::ZERO,
        );
    }
    drain(&mut e);
    e
}

pub(super) fn run_until(e: &mut Engine, end: Time) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(t) = e.next_deadline().filter(|t| *t <= end) {
        e.tick(t);
        out.extend(drain(e));
    }
    out
}

#[test]
fn news_about_a_member_counts_only_when_newer() {
    let mut e = engine(Config::lan());
    e.handle_message(addr(7001), Message::Alive(alive("a", 7001, 5)), Time::ZERO);
    assert_eq!(
        changes(&drain(&mut e)),
        [("a".into(), MemberChange::Joined)]
    );
    e.handle_message(addr(7001), Message::Alive(alive("a", 7001, 5)), Time::ZERO);
    let old = Suspect {
        incarnation: 4,
        node: "a".into(),
        from: "b".into(),
    };
    e.handle_message(addr(7001), Message::Suspect(old), Time::ZERO);
    let old = Dead {
        incarnation: 4,
        node: "a".into(),
        from: "b".into(),
    };
    e.handle_message(addr(7001), Message::Dead(old), Time::ZERO);
    assert!(changes(&drain(&mut e)).is_empty());
    assert_eq!(e.member("a").unwrap().state, NodeState::Alive);
    // Bad versions and bad addresses are ignored.
    let mut bad = alive("z", 7009, 1);
    bad.vsn = Bytes::from_static(&[3, 2, 2, 0, 0, 0]);
    e.handle_message(addr(7001), Message::Alive(bad), Time::ZERO);
    let mut bad = alive("y", 7009, 1);
    bad.addr = Bytes::from_static(&[1, 2, 3]);
    e.handle_message(addr(7001), Message::Alive(bad), Time::ZERO);
    assert!(e.member("z").is_none() && e.member("y").is_none());
}

#[test]
fn suspicion_or_death_of_ourselves_is_refuted_past_the_accusation() {
    let mut e = with_members(Config::lan());
    let s = Suspect {
        incarnation: 7,
        node: "me".into(),
        from: "a".into(),
    };
    e.handle_message(addr(7001), Message::Suspect(s), Time::ZERO);
    assert_eq!(e.local_member().incarnation, 8);
    assert_eq!(e.local_member().state, NodeState::Alive);
    assert_eq!(e.health_score(), 1, "refuting costs health");
    let d = Dead {
        incarnation: 8,
        node: "me".into(),
        from: "a".into(),
    };
    e.handle_message(addr(7001), Message::Dead(d), Time::ZERO);
    assert_eq!(e.local_member().incarnation, 9);
    // The refutation is gossiped.
    let out = run_until(&mut e, Time::from_origin(MS(400)));
    let refuted = packets(&out)
        .into_iter()
        .flat_map(|(_, m)| m)
        .any(|m| matches!(m, Message::Alive(a) if a.node == "me" && a.incarnation == 9));
    assert!(refuted);
}

#[test]
fn a_suspect_dies_after_the_suspicion_timeout_unless_it_refutes() {
    let config = Config::lan();
    let mut e = with_members(config.clone());
    let s = Suspect {
        incarnation: 1,
        node: "a".into(),
        from: "b".into(),
    };
    e.handle_message(addr(7002), Message::Suspect(s), Time::ZERO);
    assert_eq!(
        changes(&drain(&mut e)),
        [("a".into(), MemberChange::Suspect)]
    );
    // 5 members: k = 2 confirmations wanted, so the timeout starts at max.
    let min = config.suspicion_min(5);
    let max = config.suspicion_max(5);
    assert_eq!(min, Duration::from_secs(4));
    // Two independent confirmations bring it down to min.
    for from in ["c", "d"] {
        let s = Suspect {
            incarnation: 1,
            node: "a".into(),
            from: from.into(),
        };
        e.handle_message(addr(7003), Message::Suspect(s), Time::ZERO + MS(10));
    }
    // Ignore the probes' own verdicts for this test.
    let mut died = None;
    let mut t = Time::ZERO;
    while t < Time::from_origin(max) {
        t = e.next_deadline().unwrap();
        e.tick(t);
        for o in drain(&mut e) {
            if let Output::Event(Event::Member {
                member,
                change: MemberChange::Dead,
            }) = &o
            {
                if member.name == "a" {
                    died.get_or_insert(t);
                }
            }
            if let Output::Packet(p) = o {
                // Answer every probe so only the suspicion decides.
                for m in decoded(&p) {
                    if let Message::Ping(ping) = m {
                        if ping.node != "a" {
                            e.handle_message(
                                p.to,
                                Message::Ack(Ack {
                                    seq_no: ping.seq_no,
                                    payload: None,
                                }),
                                t,
                            );
                        }
                    }
                }
            }
        }
    }
    assert_eq!(
        died,
        Some(Time::from_origin(min)),
        "dead at min once confirmed"
    );
    assert_eq!(e.member("a").unwrap().state, NodeState::Dead);
}

#[test]
fn a_refutation_ends_a_suspicion_after_the_member_answers() {
    let mut e = with_members(Config::lan());
    let s = Suspect {
        incarnation: 1,
        node: "a".into(),
        from: "b".into(),
    };
    e.handle_message(addr(7002), Message::Suspect(s), Time::ZERO);
    drain(&mut e);
    e.handle_message(addr(7001), Message::Alive(alive("a", 7001, 2)), Time::ZERO);
    // Not believed yet: a ping goes to a first.
    assert_eq!(e.member("a").unwrap().state, NodeState::Suspect);
    let out = packets(&drain(&mut e));
    let seq = out
        .iter()
        .find_map(|(to, m)| match &m[0] {
            Message::Ping(p) if *to == addr(7001) && p.node == "a" => Some(p.seq_no),
            _ => None,
        })
        .expect("a ping to a");
    e.handle_message(
        addr(7001),
        Message::Ack(Ack {
            seq_no: seq,
            payload: None,
        }),
        Time::ZERO + MS(1),
    );
    assert_eq!(changes(&drain(&mut e)), [("a".into(), MemberChange::Alive)]);
    assert_eq!(e.member("a").unwrap().incarnation, 2);
}

#[test]
fn memberlist_s_rules_apply_a_refutation_at_once() {
    let mut e = with_members(Config::lan().as_memberlist());
    let s = Suspect {
        incarnation: 1,
        node: "a".into(),
        from: "b".into(),
    };
    e.handle_message(addr(7002), Message::Suspect(s), Time::ZERO);
    e.handle_message(addr(7001), Message::Alive(alive("a", 7001, 2)), Time::ZERO);
    assert_eq!(e.member("a").unwrap().state, NodeState::Alive);
}

#[test]
fn a_push_pull_merges_left_as_left_and_dead_as_suspect() {
    let mut e = with_members(Config::lan());
    let remote = PushPull {
        join: false,
        nodes: vec![
            row("a", 7001, NodeState::Left),
            row("b", 7002, NodeState::Dead),
            row("new", 7010, NodeState::Alive),
        ],
        user_state: Bytes::new(),
    };
    let ours = e.handle_push_pull(remote, Time::ZERO);
    assert_eq!(ours.nodes.len(), 5, "our view before the merge");
    assert!(!ours.join);
    assert_eq!(e.member("a").unwrap().state, NodeState::Left);
    assert_eq!(e.member("b").unwrap().state, NodeState::Suspect);
    assert_eq!(e.member("new").unwrap().state, NodeState::Alive);
    assert!(
        !drain(&mut e)
            .iter()
            .any(|o| matches!(o, Output::Event(Event::RemoteState { .. }))),
        "no user state, no event"
    );
}

#[test]
fn a_join_is_a_push_pull_with_the_join_flag_and_failures_are_reported() {
    let mut e = engine(Config::lan());
    e.join(&[addr(7001), addr(7002)], Time::ZERO);
    let reqs: Vec<_> = drain(&mut e)
        .into_iter()
        .filter_map(|o| match o {
            Output::PushPull(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(reqs.len(), 2);
    assert!(reqs
        .iter()
        .all(|r| r.state.join && r.state.nodes.len() == 1));
    let failed = super::super::PushPullFailed {
        reason: "refused".into(),
    };
    e.push_pull_result(reqs[0].id, Err(failed), Time::ZERO + MS(1));
    let reply = PushPull {
        join: false,
        nodes: vec![],
        user_state: Bytes::from_static(b"u"),
    };
    e.push_pull_result(reqs[1].id, Ok(reply), Time::ZERO + MS(1));
    let out = drain(&mut e);
    assert!(out.contains(&Output::Event(Event::JoinResult {
        addr: addr(7001),
        ok: false
    })));
    assert!(out.contains(&Output::Event(Event::JoinResult {
        addr: addr(7002),
        ok: true
    })));
    assert!(out.contains(&Output::Event(Event::RemoteState {
        state: Bytes::from_static(b"u"),
        join: true
    })));
    // A result for an unknown id is ignored.
    e.push_pull_result(999, Ok(PushPull::default()), Time::ZERO + MS(2));
    assert!(drain(&mut e).is_empty());
}

#[test]
fn leaving_sends_a_dead_message_about_ourselves_from_ourselves() {
    let mut e = with_members(Config::lan());
    e.leave(Duration::from_secs(5), Time::ZERO);
    assert_eq!(e.local_member().state, NodeState::Left);
    let out = run_until(&mut e, Time::from_origin(MS(2000)));
    let leave = packets(&out)
        .into_iter()
        .flat_map(|(_, m)| m)
        .find_map(|m| match m {
            Message::Dead(d) => Some(d),
            _ => None,
        });
    assert_eq!(
        leave,
        Some(Dead {
            incarnation: 1,
            node: "me".into(),
            from: "me".into()
        })
    );
    assert!(out.contains(&Output::Event(Event::LeaveFinished { timed_out: false })));
    // No probes after a leave.
    assert!(!packets(&out)
        .iter()
        .any(|(_, m)| matches!(m[0], Message::Ping(_))));
    // Our own old news does not bring us back.
    e.handle_message(
        addr(7001),
        Message::Alive(alive("me", 7000, 5)),
        Time::from_origin(MS(2001)),
    );
    assert_eq!(e.local_member().state, NodeState::Left);
}

#[test]
fn a_leave_no_one_hears_times_out() {
    let mut e = with_members(Config {
        gossip_nodes: 0,
        ..Config::lan()
    });
    e.leave(MS(300), Time::ZERO);
    let out = run_until(&mut e, Time::from_origin(MS(400)));
    assert!(out.contains(&Output::Event(Event::LeaveFinished { timed_out: true })));
}

#[test]
fn gossip_fits_the_packet_budget_and_carries_a_crc_to_known_members() {
    let mut e = with_members(Config::lan());
    for i in 0..100 {
        e.handle_message(
            addr(7001),
            Message::Alive(alive(&format!("m{i}"), 8000 + i, 1)),
            Time::ZERO,
        );
    }
    drain(&mut e);
    let out = run_until(&mut e, Time::from_origin(MS(250)));
    let gossip: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Packet(p) if matches!(decoded(p)[0], Message::Alive(_)) => Some(p),
            _ => None,
        })
        .collect();
    assert!(!gossip.is_empty());
    for p in gossip {
        assert!(
            p.crc,
            "gossip to a member speaking protocol 5 carries a CRC"
        );
        let size: usize = p.messages.iter().map(|m| m.len() + 2).sum();
        assert!(size + 2 <= 1400, "{size}");
    }
}

#[test]
fn a_member_alone_wakes_up_only_for_its_regular_timers() {
    // Its own alive waits in the queue with no one to send it to: that
    // must not turn the fresh-news gossip into a busy loop.
    let mut e = engine(Config::lan());
    let mut ticks = 0;
    let end = Time::from_origin(Duration::from_secs(10));
    while let Some(t) = e.next_deadline().filter(|t| *t <= end) {
        e.tick(t);
        drain(&mut e);
        ticks += 1;
    }
    // 50 gossip rounds and 10 probe rounds in 10 s, and the push-pull timer.
    assert!(ticks <= 62, "{ticks} wake-ups in 10 s");
}

#[test]
fn news_of_us_at_another_address_is_refuted_but_not_in_a_loop() {
    let mut e = with_members(Config::lan());
    // Our previous life, at another port, with a higher incarnation.
    e.handle_message(addr(7001), Message::Alive(alive("me", 7999, 4)), Time::ZERO);
    assert_eq!(e.local_member().incarnation, 5);
    assert_eq!(e.local_member().addr, addr(7000));
    // Another live process with our name answers at once: we do not fight
    // it at gossip speed.
    e.handle_message(
        addr(7001),
        Message::Alive(alive("me", 7999, 6)),
        Time::ZERO + MS(300),
    );
    assert_eq!(e.local_member().incarnation, 5);
    // Later we do refute again.
    e.handle_message(
        addr(7001),
        Message::Alive(alive("me", 7999, 6)),
        Time::from_origin(Duration::from_secs(11)),
    );
    assert_eq!(e.local_member().incarnation, 7);
    // memberlist only logs a conflict.
    let mut m = with_members(Config::lan().as_memberlist());
    m.handle_message(addr(7001), Message::Alive(alive("me", 7999, 4)), Time::ZERO);
    assert_eq!(m.local_member().incarnation, 1);
}

#[test]
fn an_identity_without_a_name_or_with_long_meta_is_refused() {
    use super::super::IdentityError;
    let nameless = Identity {
        name: String::new(),
        addr: addr(1),
        meta: None,
    };
    let err = Engine::new(Config::lan(), nameless, 1, Time::ZERO).unwrap_err();
    assert_eq!(err, IdentityError::EmptyName);
    let meta = Some(Bytes::from(vec![0u8; 513]));
    let chatty = Identity {
        name: "x".into(),
        addr: addr(1),
        meta,
    };
    let err = Engine::new(Config::lan(), chatty, 1, Time::ZERO).unwrap_err();
    assert_eq!(err, IdentityError::MetaTooLong { len: 513 });
    assert!(err.to_string().contains("shorten"));
}

#[test]
fn a_dead_member_gets_gossip_for_gossip_to_the_dead_time_then_none() {
    // GossipNodes 4 of 4 members: every member gossip may go to is a
    // target of every round; no probes or push-pulls, so what goes out is
    // gossip.
    let config = Config {
        gossip_nodes: 4,
        warm_gossip_nodes: 0,
        probe_interval: Duration::from_secs(3600),
        push_pull_interval: Duration::ZERO,
        ..Config::lan()
    };
    let dead_time = config.gossip_to_the_dead_time;
    let mut e = with_members(config);
    let died = Time::from_origin(Duration::from_secs(1));
    let d = Dead {
        incarnation: 1,
        node: "d".into(),
        from: "b".into(),
    };
    e.handle_message(addr(7002), Message::Dead(d), died);
    drain(&mut e);
    assert_eq!(e.member("d").unwrap().state, NodeState::Dead);
    // News every 100 ms (a's metadata changes), and where rounds went.
    let mut news = 0u32;
    let mut targets_until = |e: &mut Engine, end: Time, now: &mut Time| {
        let mut to = std::collections::BTreeSet::new();
        while *now < end {
            news += 1;
            let mut update = alive("a", 7001, 1 + news);
            update.meta = Some(Bytes::from(news.to_string()));
            e.handle_message(addr(7001), Message::Alive(update), *now);
            let step = *now + MS(100);
            // Timers on time: a deadline the news made due at once runs now.
            while let Some(t) = e.next_deadline().filter(|t| *t < step) {
                e.tick(t.max(*now));
                for (port, _) in packets(&drain(e)) {
                    to.insert(port.port());
                }
            }
            *now = step;
        }
        to
    };
    let mut now = died;
    targets_until(&mut e, died + dead_time - Duration::from_secs(5), &mut now);
    let last_5_s = targets_until(&mut e, died + dead_time - MS(100), &mut now);
    assert_eq!(last_5_s, [7001, 7002, 7003, 7004].into(), "d included");
    now = died + dead_time + MS(100);
    let after = targets_until(&mut e, now + Duration::from_secs(5), &mut now);
    assert_eq!(after, [7001, 7002, 7003].into(), "d no longer");
}
