//! memberlist's `verifyProtocol` on push-pulls, both ways.

use bytes::Bytes;

use super::super::{
    Config, Engine, Event, IncompatibleVersion, Output, PushPullRequest, Time, VersionKind,
};
use super::rules::{self, addr, drain, engine};
use crate::memberlist::message::{NodeState, PushNodeState, PushPull};

fn row(name: &str, port: u16, state: NodeState, vsn: &'static [u8]) -> PushNodeState {
    PushNodeState {
        vsn: Bytes::from_static(vsn),
        ..rules::row(name, port, state)
    }
}

/// Joins through 7100 and returns the join's push-pull.
fn join(e: &mut Engine) -> PushPullRequest {
    e.join(&[addr(7100)], Time::ZERO);
    drain(e)
        .into_iter()
        .find_map(|o| match o {
            Output::PushPull(req) => Some(req),
            _ => None,
        })
        .expect("the join opens a push-pull")
}

fn view(nodes: Vec<PushNodeState>) -> PushPull {
    PushPull {
        join: false,
        nodes,
        user_state: Bytes::from_static(b"theirs"),
    }
}

fn refusals(outputs: &[Output]) -> Vec<(Option<std::net::SocketAddr>, IncompatibleVersion)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::VersionsRefused { peer, error }) => Some((*peer, error.clone())),
            _ => None,
        })
        .collect()
}

fn remote_state_arrived(outputs: &[Output]) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::Event(Event::RemoteState { .. })))
}

/// Our engine announces protocol [1, 5] at 2 and delegate [0, 0] at 0.
#[test]
fn a_remote_view_with_a_version_outside_every_range_is_refused_whole() {
    let mut e = engine(Config::lan());
    let req = join(&mut e);
    // "b" speaks delegate version 3: ours understands 0 only.
    let theirs = view(vec![
        row("a", 7101, NodeState::Alive, &[1, 5, 2, 0, 3, 0]),
        row("b", 7102, NodeState::Alive, &[1, 5, 2, 3, 3, 3]),
    ]);
    e.push_pull_result(req.id, Ok(theirs), Time::ZERO);
    let out = drain(&mut e);
    let expected = IncompatibleVersion {
        node: "a".into(),
        kind: VersionKind::Delegate,
        current: 0,
        min: 3,
        max: 0,
    };
    assert_eq!(refusals(&out), [(Some(addr(7100)), expected.clone())]);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Event(Event::JoinResult { ok: false, .. }))),
        "{out:?}"
    );
    assert!(!remote_state_arrived(&out));
    assert!(e.member("a").is_none() && e.member("b").is_none());
    let message = expected.to_string();
    for part in [
        "'a'",
        "delegate protocol version 0",
        "[3, 0]",
        "give every member",
    ] {
        assert!(message.contains(part), "{message}");
    }

    // The same view without "b" is merged.
    let req = join(&mut e);
    let theirs = view(vec![row("a", 7101, NodeState::Alive, &[1, 5, 2, 0, 3, 0])]);
    e.push_pull_result(req.id, Ok(theirs), Time::ZERO);
    let out = drain(&mut e);
    assert!(refusals(&out).is_empty(), "{out:?}");
    assert!(remote_state_arrived(&out));
    assert_eq!(e.member("a").unwrap().state, NodeState::Alive);
}

#[test]
fn an_inbound_view_is_refused_but_answered() {
    let mut e = engine(Config::lan());
    // A protocol version above every maximum, on a dead row: ranges come
    // from alive rows, but every row's current version must be in them.
    let theirs = view(vec![
        row("a", 7101, NodeState::Alive, &[1, 5, 2, 0, 0, 0]),
        row("z", 7109, NodeState::Dead, &[1, 9, 7, 0, 0, 0]),
    ]);
    let reply = e.handle_push_pull(theirs, Time::ZERO);
    assert_eq!(reply.nodes.len(), 1, "our view goes back: {reply:?}");
    let out = drain(&mut e);
    let refused = refusals(&out);
    assert_eq!(refused.len(), 1, "{out:?}");
    assert_eq!(refused[0].0, None);
    assert_eq!(
        (
            refused[0].1.node.as_str(),
            refused[0].1.kind,
            refused[0].1.current
        ),
        ("z", VersionKind::Protocol, 7)
    );
    assert_eq!((refused[0].1.min, refused[0].1.max), (1, 5));
    assert!(!remote_state_arrived(&out));
    assert!(e.member("a").is_none());
}

#[test]
fn rows_without_versions_narrow_nothing_and_speak_version_zero() {
    let mut e = engine(Config::lan());
    // Short Vsn (hostile or pre-versioning) is no panic: a row with none
    // speaks protocol 0, which our minimum of 1 refuses, as memberlist does.
    for vsn in [&[][..], &[1, 5][..], &[1, 5, 2, 0, 0][..]] {
        let theirs = view(vec![PushNodeState {
            vsn: Bytes::copy_from_slice(vsn),
            ..row("a", 7101, NodeState::Alive, &[])
        }]);
        e.handle_push_pull(theirs, Time::ZERO);
        let refused = refusals(&drain(&mut e));
        assert_eq!(refused.len(), 1, "{vsn:?}");
        assert_eq!((refused[0].1.current, refused[0].1.min), (0, 1), "{vsn:?}");
    }
    assert!(e.member("a").is_none());
}
