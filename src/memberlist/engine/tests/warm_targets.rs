//! Gossip targets among the members sent to lately (`warm_gossip_nodes`):
//! a round adds at most one member to those this one has connections to.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::super::{Config, Engine, Output, Time};
use super::early_rounds::{gossip_rounds, knowing_with};
use super::rules::{addr, drain, ip, MS};
use crate::memberlist::message::{Message, Ping};

/// An engine that knows `n` others and sends only gossip (see
/// `knowing_with`).
fn knowing(n: u16, warm_gossip_nodes: usize) -> Engine {
    let config = Config {
        warm_gossip_nodes,
        ..Config::lan()
    };
    knowing_with(n, config)
}

/// The targets of each gossip round over `window` from the start, news
/// arriving every 5 ms as in a join wave (see `gossip_rounds`).
fn rounds(e: &mut Engine, n: u16, window: Duration) -> Vec<HashSet<SocketAddr>> {
    gossip_rounds(e, n, Time::ZERO, window)
        .iter()
        .map(|packets| packets.iter().map(|p| p.to).collect())
        .collect()
}

/// How many members each round sent to for the first time.
fn first_contacts(rounds: &[HashSet<SocketAddr>]) -> Vec<usize> {
    let mut known = HashSet::new();
    rounds
        .iter()
        .map(|targets| targets.iter().filter(|t| known.insert(**t)).count())
        .collect()
}

#[test]
fn each_round_goes_to_three_members_and_at_most_one_of_them_new() {
    let mut e = knowing(59, 2);
    let rounds = rounds(&mut e, 59, Duration::from_secs(3));
    assert!(rounds.len() >= 25, "{} rounds", rounds.len());
    assert!(rounds.iter().all(|r| r.len() == 3), "{rounds:?}");
    let new = first_contacts(&rounds);
    assert_eq!(new[0], 3, "nobody is warm at first");
    assert!(new[1..].iter().all(|&n| n <= 1), "{new:?}");
    // And the one picked at random is often new: news still reaches a
    // random member every round.
    let reached: usize = new.iter().sum();
    assert!(
        reached >= 15,
        "{reached} members reached in {} rounds",
        rounds.len()
    );
}

#[test]
fn with_all_targets_random_a_round_reaches_new_members_three_at_a_time() {
    let mut warm = knowing(59, 2);
    let mut random = knowing(59, 0);
    let warm_rounds = rounds(&mut warm, 59, Duration::from_secs(1));
    let random_rounds = rounds(&mut random, 59, Duration::from_secs(1));
    let reached = |r: &[HashSet<SocketAddr>]| first_contacts(r).iter().sum::<usize>();
    // About 10 rounds: memberlist's way reaches 3 a round (less repeats),
    // ours 3 then 1 a round.
    assert!(
        reached(&random_rounds) > reached(&warm_rounds) + 8,
        "random {} against warm {}",
        reached(&random_rounds),
        reached(&warm_rounds)
    );
    assert!(reached(&warm_rounds) <= 3 + warm_rounds.len());
}

#[test]
fn an_answer_does_not_make_its_target_warm_and_gossip_and_push_pulls_do() {
    let mut e = knowing(5, 2);
    assert_eq!(e.warm.len(), 0);
    let ping = Ping {
        seq_no: 9,
        node: "me".into(),
        source_addr: ip(),
        source_port: 8001,
        source_node: "m1".into(),
    };
    e.handle_message(addr(8001), Message::Ping(ping), Time::from_origin(MS(1)));
    let out = drain(&mut e);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Packet(p) if p.is_answer())),
        "{out:?}"
    );
    assert_eq!(e.warm.len(), 0, "the ack rides the ping's response");
    // The first gossip round (the table's news) goes to 3 members.
    let first = e.next_deadline().expect("a gossip round is due");
    e.tick(first);
    drain(&mut e);
    assert_eq!(e.warm.len(), 3);
    // A routine push-pull's target (the push-pull interval is 30 s).
    let mut target = None;
    while target.is_none() {
        let t = e.next_deadline().expect("a deadline");
        e.tick(t);
        target = drain(&mut e).into_iter().find_map(|o| match o {
            Output::PushPull(req) => req.node,
            _ => None,
        });
    }
    assert!(e.warm.contains(&target.unwrap()));
}
