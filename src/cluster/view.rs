//! The membership table as the node publishes it: one row per member, and
//! the `cluster_members{state}` gauges.

use super::timeline::{self, Timeline};
use crate::memberlist::engine::{Member, Time};
use crate::memberlist::message::NodeState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use std::cmp::Ordering;
use std::iter::Peekable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// A member's state as this node sees it (memberlist's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; dead unless it refutes in time.
    Suspect,
    /// Declared down without saying goodbye.
    Dead,
    /// Left the cluster on purpose.
    Left,
}

impl MemberState {
    /// Every state, for gauges.
    pub const ALL: [MemberState; 4] = [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ];

    /// `"alive"`, `"suspect"`, `"dead"` or `"left"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
}

impl From<NodeState> for MemberState {
    fn from(state: NodeState) -> Self {
        match state {
            NodeState::Alive => MemberState::Alive,
            NodeState::Suspect => MemberState::Suspect,
            NodeState::Dead => MemberState::Dead,
            NodeState::Left => MemberState::Left,
        }
    }
}

/// One row of the membership table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    /// The member's name.
    pub name: String,
    /// Its advertised address (`ip:port`).
    pub addr: String,
    /// Its memberlist state.
    pub state: MemberState,
    /// Its memberlist incarnation (grows as it refutes suspicions and
    /// changes its state).
    pub incarnation: u32,
    /// Its ckit node state (`viewer`, `participant`, `terminating`), once
    /// its gossip has reached this node; for a dead or left member, the
    /// last one heard.
    pub ckit_state: Option<&'static str>,
    /// When it entered `state`, in milliseconds since the Unix epoch (as
    /// this node's clock saw it).
    pub state_since_ms: u64,
    /// True for the node's own row.
    pub local: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabel {
    pub state: &'static str,
}

pub(crate) type MemberGauges = Family<StateLabel, Gauge>;

/// What a published row was built from: when none of it changed, the row
/// is reused as it was.
#[derive(Clone, Copy, PartialEq)]
struct RowSource {
    addr: SocketAddr,
    state: NodeState,
    incarnation: u32,
    state_change: Time,
    ckit_state: Option<&'static str>,
}

/// A table of `n` rows is rebuilt at most once per `n` x this, up to
/// [`MAX_PUBLISH_INTERVAL`]. With many members in one process every
/// member's table changes with every join: rebuilt on each change, the
/// tables of 500 members took about 5% of the process's CPU in a profile
/// of a join wave, work that grows as n^3; once per n x 100 µs, publishing
/// and the timeline's comparisons still took 11% (benches/RESULTS.md).
const PUBLISH_INTERVAL_PER_ROW: Duration = Duration::from_micros(200);

/// The longest a change waits to be published.
const MAX_PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Publishes the node's membership table (the `watch` behind
/// [`Node::members`](super::Node::members)), the `cluster_members{state}`
/// gauges and the [`Timeline`]'s events, throttled (see `due`).
pub(crate) struct Publisher {
    tx: watch::Sender<Arc<Vec<MemberView>>>,
    gauges: MemberGauges,
    timeline: Timeline,
    /// The published rows' sources, in the same order.
    sources: Vec<RowSource>,
    published_at: Option<Instant>,
    /// The wall clock at the engine's time origin.
    origin_wall: SystemTime,
}

impl Publisher {
    pub(crate) fn new(
        tx: watch::Sender<Arc<Vec<MemberView>>>,
        gauges: MemberGauges,
        timeline: Timeline,
        origin_wall: SystemTime,
    ) -> Self {
        Publisher {
            tx,
            gauges,
            timeline,
            sources: Vec::new(),
            published_at: None,
            origin_wall,
        }
    }

    /// When the table may next be published: at once for a table that was
    /// quiet for its interval, else that long after the last publish.
    pub(crate) fn due(&self, rows: usize) -> Instant {
        let interval = (PUBLISH_INTERVAL_PER_ROW * rows as u32).min(MAX_PUBLISH_INTERVAL);
        match self.published_at {
            Some(at) => at + interval,
            None => Instant::now(),
        }
    }

    /// Publishes `members` (sorted by name, as the engine keeps them) and
    /// records what changed since the last table in the timeline.
    ///
    /// The new table is built from the last one in place: its rows are
    /// moved, and only the rows whose sources changed are built again.
    /// When a reader still holds the last table (a snapshot it took), that
    /// one is copied first and the reader keeps it as it was. The timeline's
    /// events come from the same walk (it used to walk both tables again in
    /// a task of its own). What a publish costs is visiting every row.
    ///
    /// `ckit_states` are the ckit states known, by name, sorted by name as
    /// `members` are: the walk takes each row's from it in step. A lookup
    /// per row (about nine string comparisons in a 500-member map) made
    /// the walk cost 2-3 times as much: with 500 members in one process,
    /// publishing then took about 3% of its CPU during a join wave and
    /// string comparisons 6.4% (of which publishing had a share), now 1.3%
    /// and 4.3% (benches/RESULTS.md).
    pub(crate) fn publish<'a, 'c>(
        &mut self,
        members: impl Iterator<Item = &'a Member>,
        local: &str,
        ckit_states: impl Iterator<Item = (&'c str, &'static str)>,
    ) {
        self.published_at = Some(Instant::now());
        let now_ms = epoch_ms(SystemTime::now());
        let mut events = Vec::new();
        let mut removed = Vec::new();
        let mut counts = [0i64; 4];
        let old_sources = std::mem::take(&mut self.sources);
        let mut sources = Vec::with_capacity(old_sources.len() + 1);
        let origin_wall = self.origin_wall;
        self.tx.send_modify(|table| {
            let table = Arc::make_mut(table);
            let previous = std::mem::take(table);
            table.reserve(previous.len() + 1);
            let mut old = previous.into_iter().zip(old_sources).peekable();
            let mut ckit_states = ckit_states.peekable();
            for m in members {
                let mut source = RowSource {
                    addr: m.addr,
                    state: m.state,
                    incarnation: m.incarnation,
                    state_change: m.state_change,
                    ckit_state: in_step(&mut ckit_states, &m.name, |c| c.0, drop)
                        .map(|(_, state)| state),
                };
                // All three are sorted by name: the rows before this one
                // are of members gone.
                let before = in_step(
                    &mut old,
                    &m.name,
                    |(row, _)| &row.name,
                    |(row, _)| removed.push(timeline::removal(&row, now_ms)),
                );
                // ckit forgets a member that died or left; its row keeps
                // the last state heard.
                if let Some((row, _)) = &before {
                    if m.is_gone() && source.ckit_state.is_none() {
                        source.ckit_state = row.ckit_state;
                    }
                }
                let row = match before {
                    Some((row, was)) if was == source => row,
                    before => {
                        let row = build_row(m, &source, local, origin_wall);
                        let old_row = before.as_ref().map(|(row, _)| row);
                        timeline::changes(old_row, &row, now_ms, &mut events);
                        row
                    }
                };
                counts[row.state as usize] += 1;
                table.push(row);
                sources.push(source);
            }
            removed.extend(old.map(|(row, _)| timeline::removal(&row, now_ms)));
        });
        self.sources = sources;
        for (state, n) in MemberState::ALL.into_iter().zip(counts) {
            self.gauges
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(n);
        }
        events.append(&mut removed);
        self.timeline.record(events);
    }
}

/// Advances `items` (sorted by `name`) to the one named `wanted` and takes
/// it; the items before it go to `skipped`. One comparison per item.
fn in_step<I: Iterator>(
    items: &mut Peekable<I>,
    wanted: &str,
    name: impl Fn(&I::Item) -> &str,
    mut skipped: impl FnMut(I::Item),
) -> Option<I::Item> {
    loop {
        match name(items.peek()?).cmp(wanted) {
            Ordering::Less => skipped(items.next()?),
            Ordering::Equal => return items.next(),
            Ordering::Greater => return None,
        }
    }
}

fn build_row(m: &Member, source: &RowSource, local: &str, origin_wall: SystemTime) -> MemberView {
    MemberView {
        name: m.name.clone(),
        addr: m.addr.to_string(),
        state: MemberState::from(m.state),
        incarnation: m.incarnation,
        ckit_state: source.ckit_state,
        state_since_ms: epoch_ms(origin_wall + m.state_change.since_origin()),
        local: m.name == local,
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::timeline::EventKind as K;
    use super::*;

    fn member(name: &str, port: u16, state: NodeState, incarnation: u32) -> Member {
        Member {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            meta: None,
            incarnation,
            state,
            state_change: Time::from_origin(Duration::from_secs(2)),
            vsn: [0; 6],
        }
    }

    #[test]
    fn rows_follow_the_table_and_changed_rows_are_rebuilt() {
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        let gauges = MemberGauges::default();
        let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let timeline = Timeline::default();
        let mut p = Publisher::new(tx, gauges.clone(), timeline.clone(), origin);
        let a = member("a", 1, NodeState::Alive, 1);
        let b = member("b", 2, NodeState::Alive, 1);
        p.publish([&a, &b].into_iter(), "a", std::iter::empty());
        // A snapshot held across publishes stays as it was.
        let first = rx.borrow().clone();
        assert_eq!(first.len(), 2);
        assert!(first[0].local && !first[1].local);
        assert_eq!(first[1].addr, "127.0.0.1:2");
        assert_eq!(first[1].state_since_ms, 1_002_000);
        // b suspected, a's ckit state heard, c joined: every change shows.
        let b = member("b", 2, NodeState::Suspect, 1);
        let c = member("c", 3, NodeState::Alive, 4);
        // ckit's states walk in step with the rows: names that are not
        // rows ("0", "bb") are passed over.
        let ckit = [("0", "viewer"), ("a", "participant"), ("bb", "viewer")];
        p.publish([&a, &b, &c].into_iter(), "a", ckit.into_iter());
        let second = rx.borrow().clone();
        let got: Vec<_> = second
            .iter()
            .map(|r| (r.name.as_str(), r.state, r.incarnation, r.ckit_state))
            .collect();
        assert_eq!(
            got,
            [
                ("a", MemberState::Alive, 1, Some("participant")),
                ("b", MemberState::Suspect, 1, None),
                ("c", MemberState::Alive, 4, None),
            ]
        );
        assert_eq!(first.len(), 2, "the snapshot taken before is unchanged");
        assert_eq!(first[1].state, MemberState::Alive);
        // Nobody holds a table now: the next ones are built in place.
        drop((first, second));
        // a dead: ckit forgot it, its row keeps the last state heard.
        let a_dead = member("a", 1, NodeState::Dead, 1);
        p.publish([&a_dead, &b, &c].into_iter(), "a", std::iter::empty());
        assert_eq!(rx.borrow()[0].ckit_state, Some("participant"));
        // b gone.
        p.publish([&a, &c].into_iter(), "a", std::iter::empty());
        let names: Vec<_> = rx.borrow().iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, ["a", "c"]);
        // The timeline saw every published change, in order.
        let events: Vec<_> = timeline
            .events_after(0)
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect();
        let expect = [
            ("a", K::Joined),
            ("b", K::Joined),
            ("a", K::Ckit),
            ("b", K::Suspect),
            ("c", K::Joined),
            ("a", K::Dead),
            ("a", K::Alive),
            ("b", K::Removed),
        ];
        let expect: Vec<_> = expect.iter().map(|(n, k)| (n.to_string(), *k)).collect();
        assert_eq!(events, expect);
        let alive = gauges.get_or_create(&StateLabel { state: "alive" }).get();
        let suspect = gauges.get_or_create(&StateLabel { state: "suspect" }).get();
        assert_eq!((alive, suspect), (2, 0));
    }

    #[test]
    fn a_large_table_is_published_at_most_once_per_its_interval() {
        let (tx, _rx) = watch::channel(Arc::new(Vec::new()));
        let mut p = Publisher::new(
            tx,
            MemberGauges::default(),
            Timeline::default(),
            SystemTime::now(),
        );
        let before = Instant::now();
        assert!(
            p.due(500) <= Instant::now(),
            "the first publish is not held"
        );
        p.publish(std::iter::empty(), "a", std::iter::empty());
        let at = p.published_at.expect("published");
        assert!(at >= before);
        assert_eq!(p.due(5), at + Duration::from_millis(1));
        assert_eq!(p.due(250), at + Duration::from_millis(50));
        assert_eq!(p.due(500), at + MAX_PUBLISH_INTERVAL);
        assert_eq!(p.due(5_000), at + MAX_PUBLISH_INTERVAL);
    }
}
