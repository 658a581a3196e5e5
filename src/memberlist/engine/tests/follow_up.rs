//! After a join: catch-up push-pulls with random members until one brings
//! nothing new, and a push-pull with the member the join went through, once
//! the table stops growing or 500 ms after the join, again while it brings
//! news.

use bytes::Bytes;

use super::super::{Config, Output, PushPullRequest, Time};
use super::rules::{addr, alive, drain, engine, ip, MS};
use crate::memberlist::message::{Message, NodeState, PushNodeState, PushPull};

fn state(names: &[(String, u16)]) -> PushPull {
    PushPull {
        join: false,
        nodes: names
            .iter()
            .map(|(name, port)| PushNodeState {
                name: name.clone(),
                addr: ip(),
                port: *port,
                meta: None,
                incarnation: 1,
                state: NodeState::Alive,
                vsn: Bytes::from_static(&[1, 5, 2, 0, 0, 0]),
            })
            .collect(),
        user_state: Bytes::new(),
    }
}

/// Joins through a seed whose view grows by one member on each of the
/// first `growing` exchanges; returns when each push-pull to the seed's
/// address without a member name (the join and its follow-ups) went out.
fn follow_ups(config: Config, growing: usize) -> Vec<Time> {
    exchanges(config, growing, |req| {
        req.to == addr(7100) && req.node.is_none()
    })
}

/// Joins through a seed, answering every push-pull with the seed's view,
/// which grows by one member on each of the first `growing` push-pulls
/// `counted` picks; returns when each of those went out.
fn exchanges(
    config: Config,
    growing: usize,
    counted: impl Fn(&PushPullRequest) -> bool,
) -> Vec<Time> {
    let seed = addr(7100);
    let mut view = vec![("seed".to_owned(), 7100), ("x".to_owned(), 7101)];
    let mut e = engine(config);
    e.join(&[seed], Time::ZERO);
    let mut sent = Vec::new();
    let mut now = Time::ZERO;
    let end = Time::from_origin(MS(10_000));
    loop {
        for o in drain(&mut e) {
            let Output::PushPull(req) = o else { continue };
            if counted(&req) {
                sent.push(now);
                if sent.len() <= growing {
                    view.push((format!("new-{}", sent.len()), 7200 + sent.len() as u16));
                }
            }
            let reply = state(&view);
            e.push_pull_result(req.id, Ok(reply), now + MS(1));
        }
        match e.next_deadline().filter(|t| *t <= end) {
            Some(t) => {
                now = t;
                e.tick(t);
            }
            None => break,
        }
    }
    sent
}

#[test]
fn a_join_is_followed_by_a_push_pull_with_its_target_once_the_table_is_quiet() {
    // The seed's view grows with the join only: one follow-up.
    let sent = follow_ups(Config::lan(), 1);
    assert_eq!(sent.len(), 2, "the join and one follow-up: {sent:?}");
    assert_eq!(sent[0], Time::ZERO);
    // 300 ms after the table last grew (at the join's reply, 1 ms after
    // the join went out).
    assert_eq!(sent[1], Time::ZERO + MS(301));
    // A seed still taking joins: each follow-up brings a member, and
    // another follows 300 ms after its reply, twice at most.
    let sent = follow_ups(Config::lan(), 100);
    assert_eq!(
        sent,
        [0, 301, 602, 903].map(|ms| Time::ZERO + MS(ms)).to_vec(),
        "the join, the follow-up and two more"
    );
    let once = Config {
        join_follow_up_repeats: 0,
        ..Config::lan()
    };
    assert_eq!(follow_ups(once, 100).len(), 2);
    // memberlist: the join alone.
    let off = Config {
        join_follow_up: std::time::Duration::ZERO,
        ..Config::lan()
    };
    assert_eq!(follow_ups(off, 100).len(), 1);
}

#[test]
fn a_table_that_keeps_growing_still_gets_its_follow_up_500_ms_after_the_join() {
    let seed = addr(7100);
    let follow_up_at = |config: Config| {
        let mut e = engine(config);
        e.join(&[seed], Time::ZERO);
        let mut now = Time::ZERO;
        let mut grown = 0u16;
        while now < Time::from_origin(MS(3000)) {
            for o in drain(&mut e) {
                let Output::PushPull(req) = o else { continue };
                if req.to == seed && req.node.is_none() && now > Time::ZERO {
                    return Some(now);
                }
                let view = vec![("seed".to_owned(), 7100)];
                e.push_pull_result(req.id, Ok(state(&view)), now + MS(1));
            }
            // Gossip brings a new member every 100 ms until 2 s: the table
            // is never quiet for 300 ms before then.
            if now.since_origin() < MS(2000) && now.since_origin() >= MS(100) * u32::from(grown + 1)
            {
                grown += 1;
                let news = alive(&format!("g{grown}"), 7300 + grown, 1);
                e.handle_message(addr(7001), Message::Alive(news), now);
            }
            let next = e
                .next_deadline()
                .map_or(now + MS(10), |t| t.min(now + MS(10)));
            now = next.max(now + MS(1));
            e.tick(now);
        }
        None
    };
    let at = follow_up_at(Config::lan()).expect("a follow-up");
    // The join's reply came at 1 ms.
    assert!(
        at.since_origin() >= MS(501) && at.since_origin() <= MS(511),
        "{at:?}"
    );
    // Without the deadline: once the table has been quiet for 300 ms,
    // after the last growth at 1.9 s.
    let quiet_only = Config {
        join_follow_up_within: std::time::Duration::ZERO,
        ..Config::lan()
    };
    let at = follow_up_at(quiet_only).expect("a follow-up");
    assert!(at.since_origin() >= MS(2200), "{at:?}");
}

/// Catch-ups alone: no periodic push-pull, no follow-up with the seed.
fn catch_ups_only() -> Config {
    Config {
        push_pull_interval: std::time::Duration::ZERO,
        join_follow_up: std::time::Duration::ZERO,
        reconnect_interval: std::time::Duration::ZERO,
        ..Config::lan()
    }
}

#[test]
fn catch_ups_stop_at_the_first_that_brings_no_new_member() {
    // Push-pulls with a random member (named), after the join's reply.
    let catch_up = |req: &PushPullRequest| req.node.is_some();
    let config = catch_ups_only();
    let all = config.catch_up_push_pulls as usize;
    // Each brings a member: all of them, 0.2, 0.6, 1.4, 3.0 and 6.2 s
    // after the join's reply.
    let sent = exchanges(config.clone(), 100, catch_up);
    let after_reply: Vec<u64> = [200, 600, 1400, 3000, 6200].map(|ms| ms + 1).into();
    assert_eq!(sent.len(), all, "{sent:?}");
    assert_eq!(
        sent,
        after_reply
            .iter()
            .map(|ms| Time::ZERO + MS(*ms))
            .collect::<Vec<_>>()
    );
    // The first two bring one each, the third nothing: no fourth.
    assert_eq!(exchanges(config.clone(), 2, catch_up).len(), 3);
    // Nothing new from the first: it is the only one.
    assert_eq!(exchanges(config.clone(), 0, catch_up).len(), 1);
    // memberlist has none.
    assert!(exchanges(config.as_memberlist(), 100, catch_up).is_empty());
}
