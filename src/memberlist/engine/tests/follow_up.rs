//! After a join: a push-pull with the member the join went through, once
//! the table stops growing.

use bytes::Bytes;

use super::super::{Config, Output, Time};
use super::rules::{addr, drain, engine, ip, MS};
use crate::memberlist::message::{NodeState, PushNodeState, PushPull};

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
    let seed = addr(7100);
    let mut view = vec![("seed".to_owned(), 7100), ("x".to_owned(), 7101)];
    let mut e = engine(config);
    e.join(&[seed], Time::ZERO);
    let mut sent = Vec::new();
    let mut now = Time::ZERO;
    let end = Time::from_origin(MS(5000));
    loop {
        for o in drain(&mut e) {
            let Output::PushPull(req) = o else { continue };
            let to_seed = req.to == seed && req.node.is_none();
            if to_seed {
                sent.push(now);
                if sent.len() <= growing {
                    view.push((format!("new-{}", sent.len()), 7200 + sent.len() as u16));
                }
            }
            let reply = if to_seed { state(&view) } else { state(&[]) };
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
    let sent = follow_ups(Config::lan(), 100);
    assert_eq!(sent.len(), 2, "the join and one follow-up: {sent:?}");
    assert_eq!(sent[0], Time::ZERO);
    // 300 ms after the table last grew (at the join's reply, 1 ms after
    // the join went out).
    assert_eq!(sent[1], Time::ZERO + MS(301));
    // memberlist: the join alone.
    let off = Config {
        join_follow_up: std::time::Duration::ZERO,
        ..Config::lan()
    };
    assert_eq!(follow_ups(off, 100).len(), 1);
}
