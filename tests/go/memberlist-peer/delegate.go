package main

import (
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// The user state every peer keeps: a small key/value map. A change is
// broadcast as a user message (kvUpdate, JSON); the whole map travels in
// push-pull as the delegate's local state (kvState, JSON).
type kvUpdate struct {
	From  string `json:"from"`
	Key   string `json:"k"`
	Value string `json:"v"`
}

type kvState struct {
	From string            `json:"from"`
	KV   map[string]string `json:"kv"`
}

// peerDelegate is the memberlist delegate and event delegate: node meta,
// user state and messages, and membership events, each printed as a line.
type peerDelegate struct {
	name string
	meta []byte
	out  *emitter

	mu      sync.Mutex
	kv      map[string]string            // this node's user state
	learned map[string]map[string]string // other nodes' user state, by node

	broadcasts *memberlist.TransmitLimitedQueue
	list       atomic.Pointer[memberlist.Memberlist] // set once created
}

var (
	_ memberlist.Delegate      = (*peerDelegate)(nil)
	_ memberlist.EventDelegate = (*peerDelegate)(nil)
)

func newPeerDelegate(name string, meta []byte, out *emitter, retransmitMult int) *peerDelegate {
	d := &peerDelegate{
		name:    name,
		meta:    meta,
		out:     out,
		kv:      make(map[string]string),
		learned: make(map[string]map[string]string),
	}
	d.broadcasts = &memberlist.TransmitLimitedQueue{
		NumNodes: func() int {
			if ml := d.list.Load(); ml != nil {
				return ml.NumMembers()
			}
			return 1
		},
		RetransmitMult: retransmitMult,
	}
	return d
}

// set changes this node's user state and broadcasts the change.
func (d *peerDelegate) set(key, value string) {
	d.mu.Lock()
	d.kv[key] = value
	d.mu.Unlock()
	msg, _ := json.Marshal(kvUpdate{From: d.name, Key: key, Value: value})
	d.broadcasts.QueueBroadcast(&kvBroadcast{key: key, msg: msg})
}

// state is this node's user state and what it learned from others.
func (d *peerDelegate) state() fields {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fields{"kv": copyMap(d.kv), "learned": d.learnedCopy()}
}

func (d *peerDelegate) learnedCopy() map[string]map[string]string {
	out := make(map[string]map[string]string, len(d.learned))
	for node, kv := range d.learned {
		out[node] = copyMap(kv)
	}
	return out
}

func (d *peerDelegate) learn(from string, kv map[string]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.learned[from] == nil {
		d.learned[from] = make(map[string]string)
	}
	for k, v := range kv {
		d.learned[from][k] = v
	}
}

func (d *peerDelegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return d.meta[:limit]
	}
	return d.meta
}

// NotifyMsg prints every user message; a kvUpdate is also learned.
func (d *peerDelegate) NotifyMsg(b []byte) {
	msg := append([]byte(nil), b...)
	f := describeBytes(fields{}, msg)
	var update kvUpdate
	if json.Unmarshal(msg, &update) == nil && update.From != "" && update.Key != "" {
		d.learn(update.From, map[string]string{update.Key: update.Value})
		f["from"], f["k"], f["v"] = update.From, update.Key, update.Value
	}
	d.out.emit("user_msg", f)
}

func (d *peerDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.broadcasts.GetBroadcasts(overhead, limit)
}

func (d *peerDelegate) LocalState(join bool) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, _ := json.Marshal(kvState{From: d.name, KV: d.kv})
	return b
}

// MergeRemoteState prints the remote state of a push-pull; a kvState is
// also learned.
func (d *peerDelegate) MergeRemoteState(b []byte, join bool) {
	f := describeBytes(fields{"join": join}, b)
	var remote kvState
	if json.Unmarshal(b, &remote) == nil && remote.From != "" {
		d.learn(remote.From, remote.KV)
		f["from"], f["kv"] = remote.From, remote.KV
	}
	d.out.emit("merge_remote_state", f)
}

func (d *peerDelegate) NotifyJoin(n *memberlist.Node)   { emitMember(d.out, "join", n) }
func (d *peerDelegate) NotifyLeave(n *memberlist.Node)  { emitMember(d.out, "leave", n) }
func (d *peerDelegate) NotifyUpdate(n *memberlist.Node) { emitMember(d.out, "update", n) }

// emitMember prints a membership event about n.
func emitMember(out *emitter, event string, n *memberlist.Node) {
	m := describeNode(stateOf(n))
	out.emit(event, fields{
		"name": m.Name, "addr": m.Addr, "port": m.Port,
		"state": m.State, "incarnation": m.Incarnation, "meta": m.Meta,
	})
}

// kvBroadcast is one key's change; a newer change of the key replaces it.
type kvBroadcast struct {
	key string
	msg []byte
}

func (b *kvBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*kvBroadcast)
	return ok && o.key == b.key
}

func (b *kvBroadcast) Message() []byte { return b.msg }
func (b *kvBroadcast) Finished()       {}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
