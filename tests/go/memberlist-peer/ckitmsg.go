package main

// ckit's messages on the wire (grafana/ckit's internal/messages and the
// push-pull localState of its node.go), written from reading ckit: a State
// message is the magic 0x1201 (big-endian), the type byte 1, then the
// msgpack of {NodeName, NewState, Time}; the push-pull user state is the
// plain msgpack of {CurrentTime, NodeStates}. ckit encodes both with
// go-msgpack's codec.MsgpackHandle defaults (v2 in ckit; Debian's 0.5.5
// here, which writes the same bytes for these types: struct fields as a map
// sorted by name, old-spec raw strings, the smallest unsigned int forms).

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/hashicorp/go-msgpack/codec"
)

// ckitState is ckit's peer.State, a uint on the wire.
type ckitState uint

const (
	stateViewer ckitState = iota
	stateParticipant
	stateTerminating
)

func (s ckitState) String() string {
	switch s {
	case stateViewer:
		return "viewer"
	case stateParticipant:
		return "participant"
	case stateTerminating:
		return "terminating"
	}
	return fmt.Sprintf("<unknown state %d>", uint(s))
}

func parseCkitState(name string) (ckitState, error) {
	for _, s := range []ckitState{stateViewer, stateParticipant, stateTerminating} {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown state %q: use viewer, participant or terminating", name)
}

// canChange is ckit's validStateTransitions: viewer -> participant ->
// terminating, one step at a time.
func canChange(from, to ckitState) bool {
	return (from == stateViewer && to == stateParticipant) ||
		(from == stateParticipant && to == stateTerminating)
}

// stateMessage is ckit's messages.State. The field names are the msgpack
// keys; the JSON tags are the same names so that tests speak the vectors'
// vocabulary.
type stateMessage struct {
	NodeName string    `json:"NodeName"`
	NewState ckitState `json:"NewState"`
	Time     uint64    `json:"Time"`
}

// localState is ckit's push-pull user state.
type localState struct {
	CurrentTime uint64         `json:"CurrentTime"`
	NodeStates  []stateMessage `json:"NodeStates"`
}

const (
	ckitMagicHi, ckitMagicLo = 0x12, 0x01
	ckitTypeState            = 1
)

func msgpackEncode(v interface{}) ([]byte, error) {
	var buf bytes.Buffer
	var handle codec.MsgpackHandle
	err := codec.NewEncoder(&buf, &handle).Encode(v)
	return buf.Bytes(), err
}

func msgpackDecode(b []byte, v interface{}) error {
	var handle codec.MsgpackHandle
	return codec.NewDecoder(bytes.NewReader(b), &handle).Decode(v)
}

// encodeState writes a State message as ckit's messages.Encode does.
func encodeState(m stateMessage) ([]byte, error) {
	body, err := msgpackEncode(&m)
	if err != nil {
		return nil, err
	}
	return append([]byte{ckitMagicHi, ckitMagicLo, ckitTypeState}, body...), nil
}

// decodeState reads what messages.Parse and Decode accept: at least 3
// bytes, the magic, type 1 (0 and unknown types are refused), msgpack.
func decodeState(raw []byte) (stateMessage, error) {
	var m stateMessage
	if len(raw) < 3 {
		return m, errors.New("payload too small for message")
	}
	if raw[0] != ckitMagicHi || raw[1] != ckitMagicLo {
		return m, fmt.Errorf("invalid magic header %02x%02x", raw[0], raw[1])
	}
	if raw[2] != ckitTypeState {
		return m, fmt.Errorf("invalid message type %d", raw[2])
	}
	err := msgpackDecode(raw[3:], &m)
	return m, err
}

func encodeLocalState(ls localState) ([]byte, error) { return msgpackEncode(&ls) }

func decodeLocalState(b []byte) (localState, error) {
	var ls localState
	err := msgpackDecode(b, &ls)
	return ls, err
}

// compoundMessage packs memberlist messages into one packet as memberlist
// does: type 7, a count byte, a big-endian uint16 length per part, then
// the parts.
func compoundMessage(parts [][]byte) []byte {
	out := []byte{7, byte(len(parts))}
	for _, p := range parts {
		out = append(out, byte(len(p)>>8), byte(len(p)))
	}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// userMessage is a memberlist user message (type 8) carrying b.
func userMessage(b []byte) []byte { return append([]byte{8}, b...) }
