//! The recent membership transitions a node has seen (`GET /api/v1/events`):
//! joins, suspicions, deaths, leaves, returns and ckit state changes. The
//! publisher records them as it builds each membership table from the one
//! before (`view::Publisher`), so every change that lasts until a publish is
//! recorded; one undone in between (a suspicion refuted within the publish
//! interval) is not. The timeline keeps the last [`CAPACITY`] events.

use super::view::{MemberState, MemberView};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many events a node keeps (the oldest go first).
pub const CAPACITY: usize = 512;

/// What happened to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// It appeared in the table (in whatever state it was first learned).
    Joined,
    /// Alive again after being suspect, dead or left (`from` says which).
    Alive,
    /// Suspected: it missed a probe.
    Suspect,
    /// Declared dead.
    Dead,
    /// Left on purpose.
    Left,
    /// Its ckit state changed (`ckit_from` -> `ckit_state`).
    Ckit,
    /// It is no longer in the table.
    Removed,
}

/// One transition of one member, as this node saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberEvent {
    /// Grows by one per event, from 1: ask for `?after=SEQ` to get only
    /// newer events.
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch (this node's clock): the
    /// member's `state_since_ms` for a state change, otherwise when the
    /// change was seen.
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// The member's name.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// Its memberlist state after the event.
    pub state: MemberState,
    /// Its memberlist state before (none for `joined`).
    pub from: Option<MemberState>,
    /// Its ckit state after the event, if known.
    pub ckit_state: Option<&'static str>,
    /// Its ckit state before, for `ckit` events.
    pub ckit_from: Option<&'static str>,
    /// Its incarnation after the event.
    pub incarnation: u32,
}

#[derive(Debug, Default)]
struct Log {
    events: VecDeque<MemberEvent>,
    next_seq: u64,
}

/// A node's recent membership events, shared with its HTTP routes.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    log: Arc<Mutex<Log>>,
}

impl Timeline {
    /// The kept events with `seq > after`, oldest first.
    pub fn events_after(&self, after: u64) -> Vec<MemberEvent> {
        let log = self.log.lock().unwrap();
        log.events
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect()
    }

    /// The seq of the newest event, 0 before the first. Lower than a
    /// client's `after` when the node restarted (its numbering starts
    /// again).
    pub fn latest_seq(&self) -> u64 {
        self.log.lock().unwrap().next_seq
    }

    /// Appends `events` (their `seq` is assigned here), oldest first.
    pub(crate) fn record(&self, events: Vec<MemberEvent>) {
        if events.is_empty() {
            return;
        }
        let mut log = self.log.lock().unwrap();
        for mut event in events {
            log.next_seq += 1;
            event.seq = log.next_seq;
            if log.events.len() == CAPACITY {
                log.events.pop_front();
            }
            log.events.push_back(event);
        }
    }
}

fn event(kind: EventKind, m: &MemberView, at_ms: u64) -> MemberEvent {
    MemberEvent {
        seq: 0,
        at_ms,
        kind,
        name: m.name.clone(),
        addr: m.addr.clone(),
        state: m.state,
        from: None,
        ckit_state: m.ckit_state,
        ckit_from: None,
        incarnation: m.incarnation,
    }
}

/// The events that turn `old` (none: the member is new to the table) into
/// `m`, seen at `now_ms`, appended to `out` (`seq` left 0): a join, a state
/// change, a ckit state change.
pub(crate) fn changes(
    old: Option<&MemberView>,
    m: &MemberView,
    now_ms: u64,
    out: &mut Vec<MemberEvent>,
) {
    let Some(old) = old else {
        out.push(event(EventKind::Joined, m, m.state_since_ms));
        return;
    };
    if old.state != m.state {
        let kind = match m.state {
            MemberState::Alive => EventKind::Alive,
            MemberState::Suspect => EventKind::Suspect,
            MemberState::Dead => EventKind::Dead,
            MemberState::Left => EventKind::Left,
        };
        out.push(MemberEvent {
            from: Some(old.state),
            ..event(kind, m, m.state_since_ms)
        });
    }
    // A first ckit state (None -> Some) is news too: the member became
    // known to ckit's layer.
    if old.ckit_state != m.ckit_state && m.ckit_state.is_some() {
        out.push(MemberEvent {
            from: Some(old.state),
            ckit_from: old.ckit_state,
            ..event(EventKind::Ckit, m, now_ms)
        });
    }
}

/// The event of `old`'s row leaving the table, seen at `now_ms`.
pub(crate) fn removal(old: &MemberView, now_ms: u64) -> MemberEvent {
    MemberEvent {
        from: Some(old.state),
        ..event(EventKind::Removed, old, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(
        name: &str,
        state: MemberState,
        ckit: Option<&'static str>,
        since: u64,
    ) -> MemberView {
        MemberView {
            name: name.into(),
            addr: "127.0.0.1:1".into(),
            state,
            incarnation: 1,
            ckit_state: ckit,
            state_since_ms: since,
            local: false,
        }
    }

    fn kinds(events: &[MemberEvent]) -> Vec<(&str, EventKind)> {
        events.iter().map(|e| (e.name.as_str(), e.kind)).collect()
    }

    fn changed(old: Option<&MemberView>, m: &MemberView, now_ms: u64) -> Vec<MemberEvent> {
        let mut out = Vec::new();
        changes(old, m, now_ms, &mut out);
        out
    }

    #[test]
    fn joins_state_changes_ckit_changes_and_removals_are_events() {
        let a = member("a", MemberState::Alive, None, 10);
        let e = changed(None, &a, 5);
        assert_eq!(kinds(&e), [("a", EventKind::Joined)]);
        assert_eq!(
            e[0].at_ms, 10,
            "a join is dated by the member's state_since_ms"
        );

        let a_ckit = member("a", MemberState::Alive, Some("participant"), 10);
        let e = changed(Some(&a), &a_ckit, 25);
        assert_eq!(kinds(&e), [("a", EventKind::Ckit)]);
        assert_eq!(
            (e[0].ckit_from, e[0].ckit_state, e[0].at_ms),
            (None, Some("participant"), 25)
        );

        let a_suspect = member("a", MemberState::Suspect, Some("participant"), 30);
        let e = changed(Some(&a_ckit), &a_suspect, 35);
        assert_eq!(kinds(&e), [("a", EventKind::Suspect)]);
        assert_eq!((e[0].from, e[0].at_ms), (Some(MemberState::Alive), 30));

        // Both at once: the state change, then the ckit change.
        let a_dead = member("a", MemberState::Dead, Some("terminating"), 40);
        let e = changed(Some(&a_suspect), &a_dead, 45);
        assert_eq!(kinds(&e), [("a", EventKind::Dead), ("a", EventKind::Ckit)]);

        assert!(
            changed(Some(&a_dead), &a_dead, 50).is_empty(),
            "an unchanged row is no event"
        );
        let gone_ckit = member("a", MemberState::Dead, None, 40);
        assert!(
            changed(Some(&a_dead), &gone_ckit, 50).is_empty(),
            "a ckit state forgotten is no event"
        );

        let r = removal(&a_dead, 60);
        assert_eq!(
            (r.kind, r.from, r.at_ms),
            (EventKind::Removed, Some(MemberState::Dead), 60)
        );
    }

    #[test]
    fn the_log_keeps_the_last_events_numbered() {
        let timeline = Timeline::default();
        let mut previous: Option<MemberView> = None;
        for i in 0..(CAPACITY + 10) {
            let current = member(&format!("m{i}"), MemberState::Alive, None, i as u64);
            let mut events = Vec::new();
            changes(None, &current, 0, &mut events);
            events.extend(previous.as_ref().map(|old| removal(old, 0)));
            timeline.record(events);
            previous = Some(current);
        }
        // Each step is one join and one removal.
        let all = timeline.events_after(0);
        assert_eq!(all.len(), CAPACITY);
        let last = all.last().unwrap().seq;
        assert_eq!(last, 2 * (CAPACITY as u64 + 10) - 1);
        assert!(all.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        assert_eq!(timeline.events_after(last - 3).len(), 3);
        assert!(timeline.events_after(last).is_empty());
        assert_eq!(timeline.latest_seq(), last);
    }
}
