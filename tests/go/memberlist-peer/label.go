package main

import (
	"errors"
	"fmt"
	"io"
	"net"
)

// memberlist v0.5's label header (its Config.Label, Alloy's cluster.name),
// which memberlist 0.2.2 lacks, so this transport adds and checks it:
//
//	0xF4 (hasLabelMsg) | label length (u8, 1..=255) | label bytes
//
// It is prepended to every packet and written once at a stream's start.
// A receiver refuses packets and streams whose label differs from its
// own, a missing label counting as the empty one, as v0.5 does.
const (
	labelMsg    byte = 0xF4
	maxLabelLen      = 255
)

func validateLabel(label string) error {
	if len(label) > maxLabelLen {
		return fmt.Errorf("label %q is %d bytes long; memberlist allows at most %d", label, len(label), maxLabelLen)
	}
	return nil
}

// labelHeader is the header announcing label, empty for no label.
func labelHeader(label string) []byte {
	if label == "" {
		return nil
	}
	return append([]byte{labelMsg, byte(len(label))}, label...)
}

// splitPacketLabel separates a packet's label header, if any, from the
// memberlist message behind it.
func splitPacketLabel(packet []byte) (label string, rest []byte, err error) {
	if len(packet) == 0 || packet[0] != labelMsg {
		return "", packet, nil
	}
	if len(packet) < 3 {
		return "", nil, errors.New("label header truncated")
	}
	size := int(packet[1])
	if size == 0 {
		return "", nil, errors.New("label header present but empty")
	}
	if len(packet) < 2+size {
		return "", nil, errors.New("label header truncated")
	}
	return string(packet[2 : 2+size]), packet[2+size:], nil
}

// readStreamLabel reads the label header at the start of conn, if there is
// one, and returns a conn that yields the bytes after it.
func readStreamLabel(conn net.Conn) (net.Conn, string, error) {
	var first [1]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		if err == io.EOF {
			return conn, "", nil
		}
		return nil, "", err
	}
	if first[0] != labelMsg {
		return &replayConn{Conn: conn, pending: first[:]}, "", nil
	}
	var size [1]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, "", fmt.Errorf("label header truncated: %w", err)
	}
	if size[0] == 0 {
		return nil, "", errors.New("label header present but empty")
	}
	label := make([]byte, size[0])
	if _, err := io.ReadFull(conn, label); err != nil {
		return nil, "", fmt.Errorf("label header truncated: %w", err)
	}
	return conn, string(label), nil
}

// replayConn yields pending before reading on from Conn.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
