package main

// ckitNode is the peer's ckit mode (--ckit): memberlist's delegate and
// event delegate behaving as grafana/ckit's Node and nodeDelegate do,
// written from reading ckit's node.go. README.md says what it reproduces
// and what it leaves out.

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

type ckitPeer struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Self  bool   `json:"self"`
	State string `json:"state"`
}

type ckitNode struct {
	name string
	out  *emitter

	mu         sync.Mutex
	clock      uint64 // ckit's lamport clock
	local      ckitState
	peerStates map[string]stateMessage // every State learned, members or not
	peers      map[string]ckitPeer     // memberlist's members, with their state

	broadcasts *memberlist.TransmitLimitedQueue
	list       atomic.Pointer[memberlist.Memberlist]
}

var (
	_ memberlist.Delegate      = (*ckitNode)(nil)
	_ memberlist.EventDelegate = (*ckitNode)(nil)
)

func newCkitNode(name string, out *emitter, retransmitMult int) *ckitNode {
	n := &ckitNode{
		name:       name,
		out:        out,
		local:      stateViewer, // every ckit node starts a viewer
		peerStates: make(map[string]stateMessage),
		peers:      make(map[string]ckitPeer),
	}
	// As ckit: the retransmit limit counts ckit's peers, not memberlist's.
	n.broadcasts = &memberlist.TransmitLimitedQueue{
		NumNodes: func() int {
			n.mu.Lock()
			defer n.mu.Unlock()
			return len(n.peers)
		},
		RetransmitMult: retransmitMult,
	}
	return n
}

// Lamport clock (ckit's internal/lamport): Tick adds one and returns the
// new time (wrapping at 2^64 as Go's does); Observe moves past a time at or
// ahead of ours.
func (n *ckitNode) tick() uint64 { n.clock++; return n.clock }
func (n *ckitNode) observe(t uint64) {
	if t >= n.clock {
		n.clock = t + 1
	}
}

// queue gossips m as ckit does: a named broadcast, a newer message about a
// node replacing the queued one. Called without n.mu held (the queue asks
// NumNodes).
func (n *ckitNode) queue(m stateMessage) {
	b, err := encodeState(m)
	if err != nil {
		n.out.emit("ckit_error", fields{"error": "encoding " + err.Error()})
		return
	}
	n.broadcasts.QueueBroadcast(&ckitBroadcast{name: m.NodeName, msg: b})
}

// changeState is ckit's Node.ChangeState without its wait for the first
// transmission: refused unless ckit allows the step, then stamped with a
// tick, stored and broadcast.
func (n *ckitNode) changeState(to ckitState) (stateMessage, error) {
	n.mu.Lock()
	if !canChange(n.local, to) {
		from := n.local
		n.mu.Unlock()
		return stateMessage{}, fmt.Errorf("invalid transition from %s to %s", from, to)
	}
	n.local = to
	m := stateMessage{NodeName: n.name, NewState: to, Time: n.tick()}
	n.store(m)
	n.mu.Unlock()
	n.out.emit("ckit_change", messageFields(m))
	n.queue(m)
	return m, nil
}

// store is ckit's storePeerState; n.mu held.
func (n *ckitNode) store(m stateMessage) {
	n.peerStates[m.NodeName] = m
	if p, ok := n.peers[m.NodeName]; ok {
		p.State = m.NewState.String()
		n.peers[m.NodeName] = p
	}
}

// winner applies ckit's rule to a received message (n.mu held, its time
// already observed): ignored (false) when a stored message about the node
// has the same or a later time, unless it is about this node with the same
// time and another state; a message about this node that is not ignored
// is replaced by this node's state at a fresh tick.
func (n *ckitNode) winner(m stateMessage) (stateMessage, bool) {
	curr, exist := n.peerStates[m.NodeName]
	refute := m.NodeName == n.name && exist && m.Time == curr.Time && m.NewState != curr.NewState
	if exist && m.Time <= curr.Time && !refute {
		return curr, false
	}
	if m.NodeName == n.name {
		m = stateMessage{NodeName: n.name, NewState: n.local, Time: n.tick()}
	}
	return m, true
}

// NotifyMsg is ckit's: a State message is observed, applied, and gossiped
// on when it was news; anything else is logged and dropped.
func (n *ckitNode) NotifyMsg(raw []byte) {
	m, err := decodeState(raw)
	if err != nil {
		n.out.emit("ckit_error", describeBytes(fields{"error": err.Error()}, append([]byte(nil), raw...)))
		return
	}
	n.mu.Lock()
	n.observe(m.Time)
	final, news := n.winner(m)
	if news {
		n.store(final)
	}
	n.mu.Unlock()
	f := messageFields(m)
	f["news"] = news
	n.out.emit("ckit_msg", f)
	if news {
		n.queue(final)
	}
}

func (n *ckitNode) NodeMeta(limit int) []byte { return nil } // ckit sends no metadata

func (n *ckitNode) GetBroadcasts(overhead, limit int) [][]byte {
	return n.broadcasts.GetBroadcasts(overhead, limit)
}

// LocalState is ckit's: the clock and one entry per member (viewer at time
// 0 for a member no State was learned about).
func (n *ckitNode) LocalState(join bool) []byte {
	n.mu.Lock()
	ls := localState{CurrentTime: n.clock, NodeStates: make([]stateMessage, 0, len(n.peers))}
	for name := range n.peers {
		m, ok := n.peerStates[name]
		if !ok {
			m = stateMessage{NodeName: name, NewState: stateViewer}
		}
		ls.NodeStates = append(ls.NodeStates, m)
	}
	n.mu.Unlock()
	b, err := encodeLocalState(ls)
	if err != nil {
		n.out.emit("ckit_error", fields{"error": "encoding local state: " + err.Error()})
		return nil
	}
	return b
}

// MergeRemoteState is ckit's: the remote clock is observed; entries about
// names that are not members are skipped, the others merged by the same
// rule as NotifyMsg and gossiped when news.
func (n *ckitNode) MergeRemoteState(buf []byte, join bool) {
	rs, err := decodeLocalState(buf)
	if err != nil {
		n.out.emit("ckit_error", describeBytes(fields{"error": "remote state: " + err.Error(), "join": join}, append([]byte(nil), buf...)))
		return
	}
	var news []stateMessage
	n.mu.Lock()
	n.observe(rs.CurrentTime)
	for _, m := range rs.NodeStates {
		if _, member := n.peers[m.NodeName]; !member {
			continue
		}
		if final, isNews := n.winner(m); isNews {
			n.store(final)
			news = append(news, final)
		}
	}
	n.mu.Unlock()
	states := make([]fields, 0, len(rs.NodeStates))
	for _, m := range rs.NodeStates {
		states = append(states, messageFields(m))
	}
	n.out.emit("ckit_merge", fields{"join": join, "current_time": rs.CurrentTime, "states": states, "news": len(news)})
	for _, m := range news {
		n.queue(m)
	}
}

// NotifyJoin and NotifyUpdate: the member takes the state learned about
// its name, or viewer (Go's zero State).
func (n *ckitNode) NotifyJoin(node *memberlist.Node) {
	n.updatePeer(node)
	emitMember(n.out, "join", node)
}

func (n *ckitNode) NotifyUpdate(node *memberlist.Node) {
	n.updatePeer(node)
	emitMember(n.out, "update", node)
}

// NotifyLeave (dead or left): the member and the state stored about it are
// forgotten, its own name included, as ckit does.
func (n *ckitNode) NotifyLeave(node *memberlist.Node) {
	n.mu.Lock()
	delete(n.peers, node.Name)
	delete(n.peerStates, node.Name)
	n.mu.Unlock()
	emitMember(n.out, "leave", node)
}

func (n *ckitNode) updatePeer(node *memberlist.Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.peers[node.Name] = ckitPeer{
		Name:  node.Name,
		Addr:  node.Address(),
		Self:  node.Name == n.name,
		State: n.peerStates[node.Name].NewState.String(),
	}
}

// view is what /debug/ckit answers.
func (n *ckitNode) view() fields {
	// Before n.mu: the queue's lock is taken before n.mu when it counts
	// nodes, so never after.
	queued := n.broadcasts.NumQueued()
	n.mu.Lock()
	defer n.mu.Unlock()
	peers := make([]ckitPeer, 0, len(n.peers))
	for _, p := range n.peers {
		peers = append(peers, p)
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	states := make([]fields, 0, len(n.peerStates))
	for _, m := range n.peerStates {
		states = append(states, messageFields(m))
	}
	sort.Slice(states, func(i, j int) bool { return states[i]["name"].(string) < states[j]["name"].(string) })
	return fields{
		"name": n.name, "state": n.local.String(), "time": n.clock,
		"peers": peers, "peer_states": states, "queued": queued,
	}
}

func messageFields(m stateMessage) fields {
	return fields{"name": m.NodeName, "state": m.NewState.String(), "time": m.Time}
}

// ckitBroadcast is ckit's broadcastWrapper: named by the node the message
// is about, so a newer message replaces a queued one.
type ckitBroadcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*ckitBroadcast)(nil)

func (b *ckitBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*ckitBroadcast)
	return ok && o.name == b.name
}
func (b *ckitBroadcast) Message() []byte { return b.msg }
func (b *ckitBroadcast) Name() string    { return b.name }
func (b *ckitBroadcast) Finished()       {}
