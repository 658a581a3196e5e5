package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/net/http2"
)

// The transport contract's routes and content type (../shared/PROTOCOL.md).
const (
	messagePath = "/api/v1/ckit/transport/message"
	streamPath  = "/api/v1/ckit/transport/stream"
	contentType = "application/x.ckit"
)

type transportOptions struct {
	advertise     *net.TCPAddr
	label         string
	packetTimeout time.Duration // one packet's POST, connecting included
	streamTimeout time.Duration // reading a stream's label header
	maxPacket     int           // the largest frame /message accepts
	logger        *log.Logger
}

// httpTransport is a memberlist.Transport (0.2.2's plain interface) that
// speaks the gossiphttp contract over h2c: each packet is one POST to
// /message, each stream one full-duplex POST to /stream.
type httpTransport struct {
	opts    transportOptions
	client  *http.Client
	packets chan *memberlist.Packet
	streams chan net.Conn

	// Bounds the packets being sent at once; past it packets are dropped,
	// as a full UDP socket buffer would drop them.
	sendSlots chan struct{}

	shutdown     chan struct{}
	shutdownOnce sync.Once
	connsMu      sync.Mutex
	conns        map[*streamConn]struct{} // open streams, closed at shutdown
}

var _ memberlist.Transport = (*httpTransport)(nil)

func newHTTPTransport(opts transportOptions) (*httpTransport, error) {
	if err := validateLabel(opts.label); err != nil {
		return nil, err
	}
	dialTimeout := opts.packetTimeout
	h2 := &http2.Transport{
		// h2c with prior knowledge: "TLS" dials are plain TCP.
		AllowHTTP: true,
		DialTLS: func(network, addr string, _ *tls.Config) (net.Conn, error) {
			return net.DialTimeout(network, addr, dialTimeout)
		},
		// Notice a peer that vanished without closing its connection.
		ReadIdleTimeout: 10 * time.Second,
		PingTimeout:     5 * time.Second,
	}
	return &httpTransport{
		opts:      opts,
		client:    &http.Client{Transport: h2},
		packets:   make(chan *memberlist.Packet, 256),
		streams:   make(chan net.Conn, 16),
		sendSlots: make(chan struct{}, 256),
		shutdown:  make(chan struct{}),
		conns:     make(map[*streamConn]struct{}),
	}, nil
}

func (t *httpTransport) isShutdown() bool {
	select {
	case <-t.shutdown:
		return true
	default:
		return false
	}
}

// FinalAdvertiseAddr returns the address given with --advertise (or the
// bound one): memberlist's own choice would be the wildcard's interface.
func (t *httpTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.opts.advertise.IP, t.opts.advertise.Port, nil
}

// WriteTo queues b (labelled) for addr and returns at once, like a UDP
// send: a slow or dead peer holds only its own request.
func (t *httpTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	now := time.Now()
	if t.isShutdown() {
		return now, errors.New("transport is shut down")
	}
	body := appendFrame(nil, append(labelHeader(t.opts.label), b...))
	select {
	case t.sendSlots <- struct{}{}:
	default:
		return now, fmt.Errorf("packet to %s dropped: %d packets already in flight", addr, cap(t.sendSlots))
	}
	go func() {
		defer func() { <-t.sendSlots }()
		if err := t.postPacket(addr, body); err != nil {
			t.opts.logger.Printf("[WARN] transport: packet to %s: %v", addr, err)
		}
	}()
	return now, nil
}

func (t *httpTransport) postPacket(addr string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), t.opts.packetTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+messagePath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

func (t *httpTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout opens a stream: it returns once the peer answered the
// request's headers (the contract's peers answer at once), with the label
// header already written when there is a label.
func (t *httpTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.isShutdown() {
		return nil, errors.New("transport is shut down")
	}
	bodyReader, bodyWriter := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+streamPath, bodyReader)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)

	type answer struct {
		resp *http.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := t.client.Do(req)
		answered <- answer{resp, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var resp *http.Response
	select {
	case a := <-answered:
		if a.err != nil {
			cancel()
			bodyWriter.Close()
			return nil, a.err
		}
		resp = a.resp
	case <-timer.C:
		cancel()
		bodyWriter.Close()
		go func() {
			// An answer that raced the cancellation still holds a stream.
			if a := <-answered; a.resp != nil {
				a.resp.Body.Close()
			}
		}()
		return nil, fmt.Errorf("stream to %s: no answer within %v", addr, timeout)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		bodyWriter.Close()
		return nil, fmt.Errorf("stream to %s: answered %s", addr, resp.Status)
	}

	var conn *streamConn
	conn = newStreamConn(stringAddr(t.opts.advertise.String()), stringAddr(addr), resp.Body,
		func(b []byte) error {
			_, err := bodyWriter.Write(b)
			return err
		},
		func() {
			// Ending our body tells the peer we are done; cancelling
			// resets the stream if the peer is still writing.
			bodyWriter.Close()
			resp.Body.Close()
			cancel()
			t.forget(conn)
		})
	if !t.track(conn) {
		conn.Close()
		return nil, errors.New("transport is shut down")
	}
	if header := labelHeader(t.opts.label); header != nil {
		if _, err := conn.Write(header); err != nil {
			conn.Close()
			return nil, fmt.Errorf("stream to %s: writing the label header: %w", addr, err)
		}
	}
	return conn, nil
}

func (t *httpTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown refuses new requests (503) and closes every open stream.
func (t *httpTransport) Shutdown() error {
	t.shutdownOnce.Do(func() {
		close(t.shutdown)
		t.connsMu.Lock()
		open := make([]*streamConn, 0, len(t.conns))
		for c := range t.conns {
			open = append(open, c)
		}
		t.connsMu.Unlock()
		for _, c := range open {
			c.Close()
		}
	})
	return nil
}

func (t *httpTransport) track(c *streamConn) bool {
	t.connsMu.Lock()
	defer t.connsMu.Unlock()
	if t.isShutdown() {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *httpTransport) forget(c *streamConn) {
	t.connsMu.Lock()
	defer t.connsMu.Unlock()
	delete(t.conns, c)
}

// Register mounts the two routes of the contract on mux.
func (t *httpTransport) Register(mux *http.ServeMux) {
	mux.HandleFunc(messagePath, t.serveMessage)
	mux.HandleFunc(streamPath, t.serveStream)
}

// admit applies the contract's request rules, answering the refusals.
func (t *httpTransport) admit(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.ProtoMajor != 2:
		http.Error(w, "HTTP/2 required", http.StatusHTTPVersionNotSupported)
	case r.Header.Get("Content-Type") != contentType:
		http.Error(w, "Content-Type must be "+contentType, http.StatusBadRequest)
	case t.isShutdown():
		http.Error(w, "transport is shut down", http.StatusServiceUnavailable)
	default:
		return true
	}
	return false
}

func (t *httpTransport) serveMessage(w http.ResponseWriter, r *http.Request) {
	if !t.admit(w, r) {
		return
	}
	from := remoteAddr(r)
	for {
		payload, err := readPacketFrame(r.Body, t.opts.maxPacket)
		if err == io.EOF {
			break
		}
		if errors.Is(err, errTooLarge) {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		t.deliver(payload, from, time.Now())
	}
	w.WriteHeader(http.StatusOK)
}

// deliver hands a packet to memberlist once its label matches ours.
func (t *httpTransport) deliver(payload []byte, from net.Addr, at time.Time) {
	label, msg, err := splitPacketLabel(payload)
	if err != nil {
		t.opts.logger.Printf("[ERR] transport: discarding packet from %s: %v", from, err)
		return
	}
	if label != t.opts.label {
		t.opts.logger.Printf("[ERR] transport: discarding packet with unacceptable label %q from %s", label, from)
		return
	}
	if len(msg) == 0 {
		// memberlist 0.2.2 reads the type byte without checking the
		// length: an empty packet would crash it.
		t.opts.logger.Printf("[WARN] transport: discarding empty packet from %s", from)
		return
	}
	select {
	case t.packets <- &memberlist.Packet{Buf: msg, From: from, Timestamp: at}:
	case <-t.shutdown:
	}
}

func (t *httpTransport) serveStream(w http.ResponseWriter, r *http.Request) {
	if !t.admit(w, r) {
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	// Headers at once: a Go dialer returns only after they arrive, and
	// memberlist writes only after dialling.
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	conn := newStreamConn(stringAddr(t.opts.advertise.String()), remoteAddr(r), r.Body,
		func(b []byte) error {
			if _, err := w.Write(b); err != nil {
				return err
			}
			flusher.Flush()
			return nil
		}, nil)
	if !t.track(conn) {
		conn.Close()
		return
	}
	defer t.forget(conn)
	// The handler owns w: it returns only when the conn is closed and no
	// write uses w any more.
	defer conn.finish()
	go func() {
		select {
		case <-r.Context().Done():
			conn.Close()
		case <-conn.closed:
		}
	}()

	accepted, err := t.checkStreamLabel(conn)
	if err != nil {
		t.opts.logger.Printf("[ERR] transport: discarding stream from %s: %v", r.RemoteAddr, err)
		conn.Close()
		return
	}
	select {
	case t.streams <- accepted:
	case <-t.shutdown:
		conn.Close()
	case <-conn.closed:
	}
	<-conn.closed
}

// checkStreamLabel reads a stream's label header (as memberlist v0.5 does
// before anything else, within its stream timeout) and refuses a label
// other than ours.
func (t *httpTransport) checkStreamLabel(conn *streamConn) (net.Conn, error) {
	conn.SetReadDeadline(time.Now().Add(t.opts.streamTimeout))
	accepted, label, err := readStreamLabel(conn)
	if err != nil {
		return nil, err
	}
	conn.SetReadDeadline(time.Time{})
	if label != t.opts.label {
		return nil, fmt.Errorf("unacceptable label %q", label)
	}
	return accepted, nil
}

// remoteAddr is the request's TCP peer: the contract reports it as a
// packet's source, not an advertised address.
func remoteAddr(r *http.Request) net.Addr {
	host, port, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return stringAddr(r.RemoteAddr)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return stringAddr(r.RemoteAddr)
	}
	return &net.TCPAddr{IP: net.ParseIP(host), Port: p}
}
