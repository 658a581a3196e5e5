package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frames of the transport contract (../shared/PROTOCOL.md): a magic byte,
// a big-endian length (u16 after 0xCC, u32 after 0xCD), then the payload.
const (
	magicShort      byte = 0xCC
	magicLong       byte = 0xCD
	maxShortPayload      = 0xFFFF
)

var (
	errBadMagic = errors.New("frame: bad magic byte (want 0xCC or 0xCD)")
	errTooLarge = errors.New("frame: payload over this peer's packet limit")
)

// appendFrame appends payload to dst as one frame, with the short header
// whenever the payload fits it (the contract requires that of writers).
func appendFrame(dst, payload []byte) []byte {
	if len(payload) <= maxShortPayload {
		dst = append(dst, magicShort, 0, 0)
		binary.BigEndian.PutUint16(dst[len(dst)-2:], uint16(len(payload)))
	} else {
		dst = append(dst, magicLong, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(len(payload)))
	}
	return append(dst, payload...)
}

// readFrameHeader reads one frame header and returns the payload length.
// io.EOF means the body ended cleanly between frames; a body that ends
// inside a header is io.ErrUnexpectedEOF.
func readFrameHeader(r io.Reader) (uint32, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return 0, err
	}
	switch hdr[0] {
	case magicShort:
		if _, err := io.ReadFull(r, hdr[1:3]); err != nil {
			return 0, truncated(err)
		}
		return uint32(binary.BigEndian.Uint16(hdr[1:3])), nil
	case magicLong:
		if _, err := io.ReadFull(r, hdr[1:5]); err != nil {
			return 0, truncated(err)
		}
		return binary.BigEndian.Uint32(hdr[1:5]), nil
	default:
		return 0, fmt.Errorf("%w: got 0x%02x", errBadMagic, hdr[0])
	}
}

// readPacketFrame reads one whole frame, refusing (before allocating) a
// payload longer than max.
func readPacketFrame(r io.Reader, max int) ([]byte, error) {
	n, err := readFrameHeader(r)
	if err != nil {
		return nil, err
	}
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, n, max)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, truncated(err)
	}
	return payload, nil
}

func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
