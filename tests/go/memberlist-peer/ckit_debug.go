package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// ckit mode's control routes (see README.md):
//
//	GET  /debug/ckit                 own state and clock, peers with their state, every stored State, queued broadcasts
//	POST /debug/ckit/set?state=S     ckit's ChangeState (409 when ckit refuses the step)
//	POST /debug/ckit/send            {"to", "messages"}: crafted State messages in one packet, stored nowhere
//	POST /debug/ckit/drop-broadcasts empties the broadcast queue (so a test knows only push-pull can carry a state)
//	POST /debug/ckit/encode          {"states", "local_states"}: their bytes as this peer writes them
//	POST /debug/ckit/decode          {"states", "local_states"} as hex: what this peer reads from them
type ckitAPI struct {
	node *ckitNode
	send func(packet []byte, addr string) error
}

// The most a request body may hold: crafted messages and vectors are small.
const maxDebugBody = 1 << 20

func (a *ckitAPI) register(mux *http.ServeMux) {
	mux.HandleFunc("/debug/ckit", only(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.node.view())
	}))
	mux.HandleFunc("/debug/ckit/set", only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		to, err := parseCkitState(r.URL.Query().Get("state"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, fields{"error": "state: " + err.Error()})
			return
		}
		if _, err := a.node.changeState(to); err != nil {
			writeJSON(w, http.StatusConflict, fields{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, a.node.view())
	}))
	mux.HandleFunc("/debug/ckit/send", only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			To       string         `json:"to"`
			Messages []stateMessage `json:"messages"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		if req.To == "" || len(req.Messages) == 0 || len(req.Messages) > 255 {
			writeJSON(w, http.StatusBadRequest, fields{"error": `give {"to": "host:port", "messages": [1 to 255 States]}`})
			return
		}
		parts := make([][]byte, 0, len(req.Messages))
		for _, m := range req.Messages {
			b, err := encodeState(m)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, fields{"error": err.Error()})
				return
			}
			parts = append(parts, userMessage(b))
		}
		packet := parts[0]
		if len(parts) > 1 {
			packet = compoundMessage(parts)
		}
		if err := a.send(packet, req.To); err != nil {
			writeJSON(w, http.StatusBadGateway, fields{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, describeBytes(fields{}, packet))
	}))
	mux.HandleFunc("/debug/ckit/drop-broadcasts", only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		a.node.broadcasts.Reset()
		writeJSON(w, http.StatusOK, a.node.view())
	}))
	mux.HandleFunc("/debug/ckit/encode", only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			States      []stateMessage `json:"states"`
			LocalStates []localState   `json:"local_states"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		states, locals := make([]string, 0, len(req.States)), make([]string, 0, len(req.LocalStates))
		for _, m := range req.States {
			b, err := encodeState(m)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, fields{"error": err.Error()})
				return
			}
			states = append(states, hex.EncodeToString(b))
		}
		for _, ls := range req.LocalStates {
			b, err := encodeLocalState(ls)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, fields{"error": err.Error()})
				return
			}
			locals = append(locals, hex.EncodeToString(b))
		}
		writeJSON(w, http.StatusOK, fields{"states": states, "local_states": locals})
	}))
	mux.HandleFunc("/debug/ckit/decode", only(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			States      []string `json:"states"`
			LocalStates []string `json:"local_states"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		states, locals := make([]interface{}, 0, len(req.States)), make([]interface{}, 0, len(req.LocalStates))
		for _, h := range req.States {
			b, err := hex.DecodeString(h)
			if err != nil {
				states = append(states, fields{"error": err.Error()})
				continue
			}
			if m, err := decodeState(b); err != nil {
				states = append(states, fields{"error": err.Error()})
			} else {
				states = append(states, m)
			}
		}
		for _, h := range req.LocalStates {
			b, err := hex.DecodeString(h)
			if err != nil {
				locals = append(locals, fields{"error": err.Error()})
				continue
			}
			if ls, err := decodeLocalState(b); err != nil {
				locals = append(locals, fields{"error": err.Error()})
			} else {
				locals = append(locals, ls)
			}
		}
		writeJSON(w, http.StatusOK, fields{"states": states, "local_states": locals})
	}))
}

// readJSON decodes the request's body into v, or answers 400 and returns
// false.
func readJSON(w http.ResponseWriter, r *http.Request, v interface{}) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDebugBody+1))
	if err == nil && len(body) > maxDebugBody {
		err = errors.New("body over 1 MiB")
	}
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, fields{"error": "request body: " + err.Error()})
		return false
	}
	return true
}
