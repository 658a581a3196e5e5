//! The transport's hint that a peer is gone (`Engine::peer_unreachable`):
//! the member there is probed at once, at most once per quiet window, and
//! only that probe's failure accuses it.

use super::super::{Config, Engine, Output, Time};
use super::rules::{addr, decoded, drain, with_members, MS};
use crate::memberlist::message::{Ack, Message, Nack, NodeState};

/// The names `outputs` ping.
fn pinged(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Packet(p) => Some(decoded(p)),
            _ => None,
        })
        .flatten()
        .filter_map(|m| match m {
            Message::Ping(ping) => Some(ping.node),
            _ => None,
        })
        .collect()
}

/// Answers `outputs` as the members would if `gone` were: every ping to
/// another member acked, every indirect ping nacked (its helper is up but
/// cannot reach the target).
fn answer(e: &mut Engine, outputs: Vec<Output>, gone: &str, now: Time) {
    for o in outputs {
        let Output::Packet(p) = o else { continue };
        for m in decoded(&p) {
            match m {
                Message::Ping(ping) if ping.node != gone => {
                    let ack = Ack {
                        seq_no: ping.seq_no,
                        payload: None,
                    };
                    e.handle_message(p.to, Message::Ack(ack), now + MS(1));
                }
                Message::IndirectPing(ind) => {
                    let nack = Nack { seq_no: ind.seq_no };
                    e.handle_message(p.to, Message::Nack(nack), now + MS(1));
                }
                _ => {}
            }
        }
    }
}

/// Hints that "b" (at port 7002) is gone at time 0, runs every timer up to
/// `until` with `gone` silent, and returns b's state then.
fn hint_b_and_run(gone: &str, until: Time) -> NodeState {
    let mut e = with_members(Config::lan());
    e.peer_unreachable(addr(7002), Time::ZERO);
    let first = drain(&mut e);
    assert_eq!(pinged(&first), ["b"], "probed at once, by itself");
    answer(&mut e, first, gone, Time::ZERO);
    while let Some(t) = e.next_deadline().filter(|t| *t <= until) {
        e.tick(t);
        let out = drain(&mut e);
        answer(&mut e, out, gone, t);
    }
    e.member("b").expect("a row").state
}

#[test]
fn a_hinted_member_is_probed_at_once_and_only_its_failed_probe_accuses_it() {
    // The hinted probe decides at 1.25 s (`decide_after`); a round-robin
    // probe starts later than time 0, so it cannot have decided by then.
    let decided = Time::from_origin(MS(1250));
    assert_eq!(hint_b_and_run("b", decided), NodeState::Suspect);
    assert_eq!(hint_b_and_run("nobody", decided), NodeState::Alive);
}

#[test]
fn hints_are_ignored_for_unknown_addresses_ourselves_and_within_the_quiet_window() {
    let mut e = with_members(Config::lan());
    e.peer_unreachable(addr(9999), Time::ZERO);
    e.peer_unreachable(addr(7000), Time::ZERO);
    assert!(pinged(&drain(&mut e)).is_empty(), "no member there, or us");

    e.peer_unreachable(addr(7002), Time::ZERO);
    let out = drain(&mut e);
    assert_eq!(pinged(&out), ["b"]);
    e.peer_unreachable(addr(7002), Time::from_origin(MS(1)));
    assert!(pinged(&drain(&mut e)).is_empty(), "its probe is under way");
    answer(&mut e, out, "nobody", Time::ZERO);

    let quiet = Config::lan().probe_interval * 5;
    e.peer_unreachable(addr(7002), Time::from_origin(quiet - MS(1)));
    assert!(pinged(&drain(&mut e)).is_empty(), "probed on a hint lately");
    e.peer_unreachable(addr(7002), Time::from_origin(quiet));
    assert_eq!(pinged(&drain(&mut e)), ["b"], "the window is over");
}
