package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// The peer's control interface for tests, beside the transport's routes
// on the same h2c port (HTTP/1.1 works too):
//
//	GET  /debug/members        every node memberlist knows, dead and left included
//	GET  /debug/state          this node's user state and what it learned
//	POST /debug/set?k=v[&k=v]  sets user state and broadcasts each change
//	POST /debug/leave          memberlist's graceful Leave (?timeout=, default 5s)
//	POST /debug/shutdown       leaves nothing: stops memberlist and exits
type debugAPI struct {
	table    *memberTable
	delegate *peerDelegate
	leave    func(timeout time.Duration) error
	shutdown func()
}

func (a *debugAPI) register(mux *http.ServeMux) {
	mux.HandleFunc("/debug/members", only(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.table.snapshot())
	}))
	if a.delegate == nil {
		// ckit mode: no user state (see ckitAPI).
		a.registerMembership(mux)
		return
	}
	mux.HandleFunc("/debug/state", only(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.delegate.state())
	}))
	mux.HandleFunc("/debug/set", only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		query := r.URL.Query()
		if len(query) == 0 {
			writeJSON(w, http.StatusBadRequest, fields{"error": "give the user state to set as ?key=value"})
			return
		}
		for k, values := range query {
			a.delegate.set(k, values[len(values)-1])
		}
		writeJSON(w, http.StatusOK, a.delegate.state())
	}))
	a.registerMembership(mux)
}

// registerMembership adds the routes every mode has: leave and shutdown.
func (a *debugAPI) registerMembership(mux *http.ServeMux) {
	mux.HandleFunc("/debug/leave", only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		timeout := 5 * time.Second
		if s := r.URL.Query().Get("timeout"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, fields{"error": "timeout: " + err.Error()})
				return
			}
			timeout = d
		}
		if err := a.leave(timeout); err != nil {
			writeJSON(w, http.StatusInternalServerError, fields{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, fields{"left": true})
	}))
	mux.HandleFunc("/debug/shutdown", only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, fields{"shutdown": true})
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go a.shutdown()
	}))
}

func only(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeJSON(w, http.StatusMethodNotAllowed, fields{"error": "use " + method})
			return
		}
		h(w, r)
	}
}

// writeJSON answers with a Content-Length, so that a bare HTTP/1.1 client
// needs no chunked decoding.
func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
