//! The recent membership transitions a node has seen (`GET /api/v1/events`):
//! joins, suspicions, deaths, leaves, returns and ckit state changes, derived
//! by comparing each membership table the node publishes with the one
//! before it.
//!
//! The table is a `watch` channel, so a change undone before the timeline
//! looked (a suspicion refuted within microseconds) can be missed; every
//! change that lasts long enough to be published is recorded. The timeline
//! keeps the last [`CAPACITY`] events.

use super::view::{MemberState, MemberView};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::watch;

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
    /// Starts recording the transitions of `view` in a task that ends when
    /// the table's sender (the node's actor) is gone.
    pub(crate) fn spawn(mut view: watch::Receiver<Arc<Vec<MemberView>>>) -> Timeline {
        let timeline = Timeline::default();
        let recorder = timeline.clone();
        tokio::spawn(async move {
            let mut previous: Arc<Vec<MemberView>> = Arc::new(Vec::new());
            loop {
                let current = view.borrow_and_update().clone();
                recorder.record(&previous, &current, now_ms());
                previous = current;
                if view.changed().await.is_err() {
                    break;
                }
            }
        });
        timeline
    }

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

    /// Appends the transitions from `previous` to `current` (seen at
    /// `now_ms`).
    fn record(&self, previous: &[MemberView], current: &[MemberView], now_ms: u64) {
        let changes = diff(previous, current, now_ms);
        if changes.is_empty() {
            return;
        }
        let mut log = self.log.lock().unwrap();
        for mut event in changes {
            log.next_seq += 1;
            event.seq = log.next_seq;
            if log.events.len() == CAPACITY {
                log.events.pop_front();
            }
            log.events.push_back(event);
        }
    }
}

/// The events that turn table `previous` into `current` (`seq` left 0):
/// the changes in `current`'s order, then the removals. Both tables are
/// sorted by name, as they are published, so one walk pairs their rows
/// (with 500 members in a process, building maps of both tables for every
/// publish was 5% of its CPU).
fn diff(previous: &[MemberView], current: &[MemberView], now_ms: u64) -> Vec<MemberEvent> {
    let mut events = Vec::new();
    let mut removed = Vec::new();
    let event = |kind, m: &MemberView, at_ms| MemberEvent {
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
    };
    let removal = |old: &MemberView| MemberEvent {
        from: Some(old.state),
        ..event(EventKind::Removed, old, now_ms)
    };
    let mut before = previous.iter().peekable();
    for m in current {
        while let Some(old) = before.next_if(|old| old.name < m.name) {
            removed.push(removal(old));
        }
        let Some(old) = before.next_if(|old| old.name == m.name) else {
            events.push(event(EventKind::Joined, m, m.state_since_ms));
            continue;
        };
        if old.state != m.state {
            let kind = match m.state {
                MemberState::Alive => EventKind::Alive,
                MemberState::Suspect => EventKind::Suspect,
                MemberState::Dead => EventKind::Dead,
                MemberState::Left => EventKind::Left,
            };
            events.push(MemberEvent {
                from: Some(old.state),
                ..event(kind, m, m.state_since_ms)
            });
        }
        // A first ckit state (None -> Some) is news too: the member became
        // known to ckit's layer.
        if old.ckit_state != m.ckit_state && m.ckit_state.is_some() {
            events.push(MemberEvent {
                from: Some(old.state),
                ckit_from: old.ckit_state,
                ..event(EventKind::Ckit, m, now_ms)
            });
        }
    }
    removed.extend(before.map(removal));
    events.append(&mut removed);
    events
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

    #[test]
    fn joins_state_changes_ckit_changes_and_removals_are_events() {
        let t0 = vec![member("a", MemberState::Alive, None, 10)];
        let t1 = vec![
            member("a", MemberState::Alive, Some("participant"), 10),
            member("b", MemberState::Alive, None, 20),
        ];
        let t2 = vec![
            member("a", MemberState::Suspect, Some("participant"), 30),
            member("b", MemberState::Alive, None, 20),
        ];
        let t3 = vec![member("a", MemberState::Dead, Some("participant"), 40)];

        assert_eq!(kinds(&diff(&[], &t0, 5)), [("a", EventKind::Joined)]);
        let e = diff(&t0, &t1, 25);
        assert_eq!(
            kinds(&e),
            [("a", EventKind::Ckit), ("b", EventKind::Joined)]
        );
        assert_eq!(
            (e[0].ckit_from, e[0].ckit_state, e[0].at_ms),
            (None, Some("participant"), 25)
        );
        assert_eq!(
            e[1].at_ms, 20,
            "a join is dated by the member's state_since_ms"
        );
        let e = diff(&t1, &t2, 35);
        assert_eq!(kinds(&e), [("a", EventKind::Suspect)]);
        assert_eq!((e[0].from, e[0].at_ms), (Some(MemberState::Alive), 30));
        let e = diff(&t2, &t3, 45);
        assert_eq!(
            kinds(&e),
            [("a", EventKind::Dead), ("b", EventKind::Removed)]
        );
        assert!(
            diff(&t3, &t3, 50).is_empty(),
            "an unchanged table is no event"
        );
        // Rows gone before, between and after the remaining ones.
        let wide: Vec<_> = ["a", "c", "d", "f", "g"]
            .map(|n| member(n, MemberState::Alive, None, 1))
            .into();
        let narrow: Vec<_> = ["b", "d", "e"]
            .map(|n| member(n, MemberState::Alive, None, 1))
            .into();
        assert_eq!(
            kinds(&diff(&wide, &narrow, 60)),
            [
                ("b", EventKind::Joined),
                ("e", EventKind::Joined),
                ("a", EventKind::Removed),
                ("c", EventKind::Removed),
                ("f", EventKind::Removed),
                ("g", EventKind::Removed),
            ]
        );
    }

    #[test]
    fn the_log_keeps_the_last_events_numbered() {
        let timeline = Timeline::default();
        let mut previous = Vec::new();
        for i in 0..(CAPACITY + 10) {
            let current = vec![member(&format!("m{i}"), MemberState::Alive, None, i as u64)];
            timeline.record(&previous, &current, 0);
            previous = current;
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
