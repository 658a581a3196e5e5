package main

import (
	"io"
	"net"
	"sync"
	"time"
)

// streamConn is one stream of the contract as a net.Conn: what the peer
// writes arrives as frames on body and is read as one byte stream; Write
// sends its bytes as frames through writeFrames. Deadlines are honoured on
// both sides, since memberlist bounds every stream exchange with them.
type streamConn struct {
	local, remote net.Addr

	chunks  chan []byte // payload pieces, filled by pumpFrames
	readErr error       // why chunks was closed; read only after it was
	pending []byte      // the rest of the chunk Read is handing out

	writeFrames func([]byte) error
	writeMu     sync.Mutex
	writeErr    error          // set once a write failed or timed out
	finished    bool           // no more writes may start (server side)
	inflight    sync.WaitGroup // writes still using writeFrames

	readDeadline, writeDeadline *deadline

	closed    chan struct{}
	closeOnce sync.Once
	onClose   func()
}

// pieceSize bounds what one chunk allocates, whatever a frame announces.
const pieceSize = 32 * 1024

func newStreamConn(local, remote net.Addr, body io.Reader, writeFrames func([]byte) error, onClose func()) *streamConn {
	c := &streamConn{
		local:         local,
		remote:        remote,
		chunks:        make(chan []byte, 4),
		writeFrames:   writeFrames,
		readDeadline:  newDeadline(),
		writeDeadline: newDeadline(),
		closed:        make(chan struct{}),
		onClose:       onClose,
	}
	go c.pumpFrames(body)
	return c
}

// pumpFrames turns the peer's frames into chunks until its body ends.
func (c *streamConn) pumpFrames(body io.Reader) {
	defer close(c.chunks)
	for {
		n, err := readFrameHeader(body)
		if err != nil {
			c.readErr = err
			return
		}
		for n > 0 {
			size := uint32(pieceSize)
			if n < size {
				size = n
			}
			piece := make([]byte, size)
			if _, err := io.ReadFull(body, piece); err != nil {
				c.readErr = truncated(err)
				return
			}
			n -= size
			select {
			case c.chunks <- piece:
			case <-c.closed:
				c.readErr = net.ErrClosed
				return
			}
		}
	}
}

func (c *streamConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		case <-c.readDeadline.passed():
			return 0, timeoutError{}
		default:
		}
		select {
		case chunk, ok := <-c.chunks:
			if !ok {
				return 0, c.readErr
			}
			c.pending = chunk
		case <-c.readDeadline.passed():
			return 0, timeoutError{}
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// Write frames p and waits until it was handed to HTTP/2, the deadline
// passes or the conn closes. After a failed or timed-out write the conn
// refuses further writes: part of p may have gone out.
func (c *streamConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	if c.finished {
		return 0, net.ErrClosed
	}
	var framed []byte
	for rest := p; len(rest) > 0; {
		n := len(rest)
		if n > maxShortPayload {
			n = maxShortPayload
		}
		framed = appendFrame(framed, rest[:n])
		rest = rest[n:]
	}
	if len(framed) == 0 {
		return 0, nil
	}
	done := make(chan error, 1)
	c.inflight.Add(1)
	go func() {
		defer c.inflight.Done()
		done <- c.writeFrames(framed)
	}()
	select {
	case err := <-done:
		if err != nil {
			c.writeErr = err
			return 0, err
		}
		return len(p), nil
	case <-c.writeDeadline.passed():
		c.writeErr = timeoutError{}
		// Both may be ready; the write's result wins.
		select {
		case err := <-done:
			if err == nil {
				c.writeErr = nil
				return len(p), nil
			}
		default:
		}
	case <-c.closed:
		// A peer that read our last bytes closes the stream at once, and
		// its reset can close the conn before writeFrames has returned
		// (seen: a push-pull reply read by the joiner, then refused here,
		// so memberlist skipped merging the joiner's state). Closing ends
		// a write promptly on both sides (HTTP/2's server ends a handler's
		// write on a reset stream, preferring the write's result as here;
		// a closed pipe ends the client's), so its result is waited for,
		// within the deadline.
		select {
		case err := <-done:
			if err == nil {
				return len(p), nil
			}
			c.writeErr = net.ErrClosed
		case <-c.writeDeadline.passed():
			c.writeErr = net.ErrClosed
		}
	}
	return 0, c.writeErr
}

func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		if c.onClose != nil {
			c.onClose()
		}
	})
	return nil
}

// finish waits, once the conn is closed, until no write uses writeFrames
// any more: a server handler must not return while one does.
func (c *streamConn) finish() {
	c.writeMu.Lock()
	c.finished = true
	c.writeMu.Unlock()
	c.inflight.Wait()
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) SetDeadline(t time.Time) error {
	c.readDeadline.set(t)
	c.writeDeadline.set(t)
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	c.readDeadline.set(t)
	return nil
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.set(t)
	return nil
}

// deadline is a settable point in time with a channel that is closed once
// it has passed.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{}
}

func newDeadline() *deadline { return &deadline{ch: make(chan struct{})} }

// set moves the deadline to t; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		// The timer fired: wait until its callback closed the channel.
		<-d.ch
	}
	d.timer = nil
	select {
	case <-d.ch:
		d.ch = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		close(d.ch)
		return
	}
	ch := d.ch
	d.timer = time.AfterFunc(wait, func() { close(ch) })
}

func (d *deadline) passed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

// timeoutError is what reads and writes past their deadline return, a
// net.Error whose Timeout() is true, as net.Conn's contract asks.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// stringAddr names a peer by the host:port it was dialled at.
type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }
