//! Where this engine ends a false suspicion sooner than memberlist: the
//! accused hears it from its accuser at once (`tell_the_accused`), and a
//! refutation goes out before other news (`refutations_first`).

use std::time::Duration;

use bytes::Bytes;

use super::super::{Config, Engine, Output, Time};
use super::rules::{addr, alive, drain, packets, row, run_until, with_members, MS};
use crate::memberlist::message::{Alive, Message, NodeState, PushPull, Suspect};

/// The packets sent to `port` holding nothing but a suspicion.
fn suspicions_sent_to(outputs: &[Output], port: u16) -> Vec<Suspect> {
    packets(outputs)
        .into_iter()
        .filter(|(to, _)| *to == addr(port))
        .filter_map(|(_, messages)| match messages.as_slice() {
            [Message::Suspect(s)] => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// A push-pull from a member that holds `b` dead: we start a suspicion.
fn hear_b_is_dead(e: &mut Engine) -> Vec<Output> {
    let remote = PushPull {
        join: false,
        nodes: vec![row("b", 7002, NodeState::Dead)],
        user_state: Bytes::new(),
    };
    e.handle_push_pull(remote, Time::ZERO);
    drain(e)
}

#[test]
fn a_suspicion_we_start_is_sent_to_the_accused() {
    let mut e = with_members(Config::lan());
    let out = hear_b_is_dead(&mut e);
    assert_eq!(e.member("b").unwrap().state, NodeState::Suspect);
    assert_eq!(
        suspicions_sent_to(&out, 7002),
        vec![Suspect {
            incarnation: 1,
            node: "b".into(),
            from: "me".into(),
        }],
        "b refutes as soon as it reads this, not when gossip reaches it"
    );
    // A suspicion heard from another member was sent to the accused by
    // the member that started it.
    let heard = Suspect {
        incarnation: 1,
        node: "a".into(),
        from: "c".into(),
    };
    e.handle_message(addr(7003), Message::Suspect(heard), Time::ZERO);
    assert_eq!(e.member("a").unwrap().state, NodeState::Suspect);
    assert!(suspicions_sent_to(&drain(&mut e), 7001).is_empty());
    // memberlist leaves it to gossip.
    let mut m = with_members(Config::lan().as_memberlist());
    assert!(suspicions_sent_to(&hear_b_is_dead(&mut m), 7002).is_empty());
}

/// With news of 100 joins queued (names longer than the four members',
/// so that memberlist's largest-first order puts them ahead of news about
/// those), `news` from a (built from the engine) arrives: the first alive
/// the engine then sends in 250 ms (a gossip round, or a probe's
/// piggyback).
fn first_alive_sent_after(config: Config, news: impl FnOnce(&Engine) -> Message) -> Alive {
    let mut e = with_members(config);
    for i in 0..100u16 {
        let name = format!("a-member-who-joined-just-now-{i}");
        e.handle_message(
            addr(7100 + i),
            Message::Alive(alive(&name, 7100 + i, 1)),
            Time::ZERO,
        );
    }
    let news = news(&e);
    e.handle_message(addr(7001), news, Time::ZERO);
    drain(&mut e);
    packets(&run_until(&mut e, Time::ZERO + MS(250)))
        .into_iter()
        .flat_map(|(_, messages)| messages)
        .find_map(|m| match m {
            Message::Alive(a) => Some(a),
            _ => None,
        })
        .expect("gossip within 250 ms")
}

/// Ours, and memberlist's, which queues refutations with the rest.
fn both_rules() -> [(Config, bool); 2] {
    [
        (Config::lan(), true),
        (Config::lan().as_memberlist(), false),
    ]
}

#[test]
fn a_refutation_we_relay_goes_out_before_news_of_joins() {
    for (config, first) in both_rules() {
        // a's incarnation goes up with nothing else new: a refuted a
        // suspicion somewhere.
        let sent = first_alive_sent_after(config, |_| Message::Alive(alive("a", 7001, 2)));
        assert_eq!(sent == alive("a", 7001, 2), first, "first sent: {sent:?}");
    }
}

#[test]
fn our_own_refutation_goes_out_before_news_of_joins() {
    for (config, first) in both_rules() {
        let sent = first_alive_sent_after(config, |e| {
            Message::Suspect(Suspect {
                incarnation: e.local_member().incarnation,
                node: "me".into(),
                from: "a".into(),
            })
        });
        assert_eq!(sent.node == "me", first, "first sent: {sent:?}");
    }
}

#[test]
fn a_refutation_has_a_gossip_round_at_once_whatever_our_health() {
    for (refutations_first, at_once) in [(true, true), (false, false)] {
        // Rounds 10 s apart and no probes: only a round of its own sends
        // the refutation within 10 ms.
        let config = Config {
            gossip_interval: Duration::from_secs(10),
            probe_interval: Duration::from_secs(3600),
            push_pull_interval: Duration::ZERO,
            refutations_first,
            ..Config::lan()
        };
        let mut e = with_members(config);
        let now = Time::from_origin(Duration::from_secs(20));
        run_until(&mut e, now);
        // Behind on our inputs: no early rounds for other news.
        e.note_input_delay(MS(300), now);
        assert_eq!(e.health_score(), 1);
        // A join after a quiet spell goes out at once, and sets the
        // cadence: the next regular round is 10 s away.
        e.handle_message(addr(7005), Message::Alive(alive("e", 7005, 1)), now);
        e.tick(now);
        drain(&mut e);
        let now = now + MS(1);
        e.handle_message(addr(7001), Message::Alive(alive("a", 7001, 2)), now);
        drain(&mut e);
        // Timers on time: a deadline the news made due at once runs now.
        let mut sent = Vec::new();
        while let Some(t) = e.next_deadline().filter(|t| *t <= now + MS(10)) {
            e.tick(t.max(now));
            sent.extend(packets(&drain(&mut e)));
        }
        let carried = sent
            .iter()
            .filter(|(_, m)| m.contains(&Message::Alive(alive("a", 7001, 2))))
            .count();
        let expected = if at_once { 3 } else { 0 };
        assert_eq!(carried, expected, "refutations_first: {refutations_first}");
    }
}
