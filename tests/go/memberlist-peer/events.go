package main

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"sync"
	"unicode/utf8"
)

// emitter prints one JSON object per line, the peer's interface for tests.
// Every line has "event"; the other fields depend on it (see README.md).
type emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newEmitter(w io.Writer) *emitter { return &emitter{enc: json.NewEncoder(w)} }

type fields map[string]interface{}

func (e *emitter) emit(event string, f fields) {
	line := fields{"event": event}
	for k, v := range f {
		line[k] = v
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// A failed write means stdout is gone; nothing is left to tell.
	_ = e.enc.Encode(line)
}

// describeBytes puts raw bytes into an event: always as hex, and as text
// too when they are UTF-8.
func describeBytes(f fields, b []byte) fields {
	f["hex"] = hex.EncodeToString(b)
	if utf8.Valid(b) {
		f["data"] = string(b)
	}
	return f
}
