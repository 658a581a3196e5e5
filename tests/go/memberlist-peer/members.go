package main

import (
	"fmt"
	"net"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// memberlist 0.2.2 exposes neither a member's incarnation nor a dead or
// left member, and the Node it passes to event delegates carries a State
// that is never set (nodeState's own State field shadows it). Tests need
// all three, so the peer reads memberlist's private table. It mirrors
// nodeState's layout here and checks, before any use, that the layout
// of the memberlist it was built with is the same field for field.
type nodeStateMirror struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
	StateChange time.Time
}

// memberTable reads memberlist's private list of nodes under its lock.
type memberTable struct {
	lock  *sync.RWMutex
	nodes *[]*nodeStateMirror
}

// checkMemberlistLayout verifies that memberlist's private fields are the
// ones this peer reads; main calls it before creating a memberlist (whose
// creation already calls the event delegate).
func checkMemberlistLayout() error {
	t := reflect.TypeOf((*memberlist.Memberlist)(nil)).Elem()
	lock, ok := t.FieldByName("nodeLock")
	if !ok || lock.Type != reflect.TypeOf(sync.RWMutex{}) {
		return fmt.Errorf("memberlist.Memberlist has no nodeLock sync.RWMutex")
	}
	nodes, ok := t.FieldByName("nodes")
	if !ok || nodes.Type.Kind() != reflect.Slice || nodes.Type.Elem().Kind() != reflect.Ptr {
		return fmt.Errorf("memberlist.Memberlist has no nodes []*nodeState")
	}
	return sameLayout(nodes.Type.Elem().Elem(), reflect.TypeOf(nodeStateMirror{}))
}

func openMemberTable(ml *memberlist.Memberlist) *memberTable {
	v := reflect.ValueOf(ml).Elem()
	return &memberTable{
		lock:  (*sync.RWMutex)(unsafe.Pointer(v.FieldByName("nodeLock").UnsafeAddr())),
		nodes: (*[]*nodeStateMirror)(unsafe.Pointer(v.FieldByName("nodes").UnsafeAddr())),
	}
}

func sameLayout(theirs, ours reflect.Type) error {
	if theirs.Size() != ours.Size() || theirs.NumField() != ours.NumField() {
		return fmt.Errorf("memberlist's %s does not have the layout this peer reads (size %d, %d fields)", theirs, theirs.Size(), theirs.NumField())
	}
	for i := 0; i < ours.NumField(); i++ {
		a, b := theirs.Field(i), ours.Field(i)
		if a.Name != b.Name || a.Type != b.Type || a.Offset != b.Offset {
			return fmt.Errorf("memberlist's %s field %d is %s %s at %d; this peer expects %s %s at %d", theirs, i, a.Name, a.Type, a.Offset, b.Name, b.Type, b.Offset)
		}
	}
	return nil
}

// member is one row of GET /debug/members.
type member struct {
	Name        string `json:"name"`
	Addr        string `json:"addr"`
	Port        uint16 `json:"port"`
	State       string `json:"state"`
	Incarnation uint32 `json:"incarnation"`
	Meta        string `json:"meta"`
}

// snapshot lists every node memberlist knows, dead and left ones included
// (until memberlist forgets them, GossipToTheDeadTime after their death).
func (t *memberTable) snapshot() []member {
	t.lock.RLock()
	defer t.lock.RUnlock()
	out := make([]member, 0, len(*t.nodes))
	for _, n := range *t.nodes {
		out = append(out, describeNode(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func describeNode(n *nodeStateMirror) member {
	return member{
		Name:        n.Name,
		Addr:        n.Addr.String(),
		Port:        n.Port,
		State:       stateName(n.State),
		Incarnation: n.Incarnation,
		Meta:        string(n.Meta),
	}
}

// stateOf reads the full state behind a Node memberlist handed to an event
// delegate: always the Node embedded in a nodeState, and memberlist holds
// its lock while it calls the delegate.
func stateOf(n *memberlist.Node) *nodeStateMirror {
	return (*nodeStateMirror)(unsafe.Pointer(n))
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	default:
		return "unknown(" + strconv.Itoa(int(s)) + ")"
	}
}

func hostPort(ip net.IP, port uint16) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
}
