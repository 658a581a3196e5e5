// memberlist-peer runs HashiCorp memberlist (Debian's 0.2.2) over the
// gossiphttp transport contract, for interop tests with the Rust crate.
// See README.md for its flags, its event lines and its /debug routes.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

type options struct {
	name, bind, advertise, join, label, preset, meta string
	probeInterval, probeTimeout, pushPullInterval    time.Duration
	gossipInterval, packetTimeout                    time.Duration
	debugLogs, ckit                                  bool
	delegateVersion                                  uint
}

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("memberlist-peer", flag.ContinueOnError)
	fs.StringVar(&o.name, "name", "", "node name, unique in the cluster (required)")
	fs.StringVar(&o.bind, "bind", "127.0.0.1:0", "host:port to serve the transport and /debug on (port 0: any free one)")
	fs.StringVar(&o.advertise, "advertise", "", "host:port other nodes reach this one at, an IP (default: the bound address)")
	fs.StringVar(&o.join, "join", "", "comma-separated host:port list to join")
	fs.StringVar(&o.label, "label", "", "cluster label (memberlist v0.5's Config.Label): sent on every packet and stream, required on incoming ones")
	fs.StringVar(&o.preset, "preset", "lan", "timings: lan (memberlist.DefaultLANConfig) or ckit (ckit's overrides of it)")
	fs.StringVar(&o.meta, "meta", "", "node meta (at most 512 bytes)")
	fs.DurationVar(&o.probeInterval, "probe-interval", 0, "override the preset's probe interval")
	fs.DurationVar(&o.probeTimeout, "probe-timeout", 0, "override the preset's probe timeout (default: the preset's, capped at half the probe interval)")
	fs.DurationVar(&o.pushPullInterval, "push-pull-interval", 0, "override the preset's push-pull interval")
	fs.DurationVar(&o.gossipInterval, "gossip-interval", 0, "override the preset's gossip interval")
	fs.DurationVar(&o.packetTimeout, "packet-timeout", 5*time.Second, "how long one packet's POST may take")
	fs.UintVar(&o.delegateVersion, "delegate-version", 0, "the delegate protocol version announced, as min, max and current (memberlist's default: 0)")
	fs.BoolVar(&o.debugLogs, "debug", false, "also print memberlist's [DEBUG] lines on stderr")
	fs.BoolVar(&o.ckit, "ckit", false, "behave as a grafana/ckit node: its node states in gossip and push-pull, /debug/ckit routes (no user state, no meta)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.name == "" {
		return o, errors.New("--name is required")
	}
	if len(o.meta) > memberlist.MetaMaxSize {
		return o, fmt.Errorf("--meta is %d bytes; memberlist allows %d", len(o.meta), memberlist.MetaMaxSize)
	}
	if o.ckit && o.meta != "" {
		return o, errors.New("--meta with --ckit: a ckit node sends no metadata")
	}
	if o.delegateVersion > 255 {
		return o, fmt.Errorf("--delegate-version %d: at most 255", o.delegateVersion)
	}
	return o, validateLabel(o.label)
}

// memberlistConfig is the preset with the overrides applied.
func memberlistConfig(o options) (*memberlist.Config, error) {
	c := memberlist.DefaultLANConfig()
	switch o.preset {
	case "lan":
	case "ckit":
		// What grafana/ckit's NewNode changes in DefaultLANConfig.
		c.ProbeInterval = 5 * time.Second
		c.ProbeTimeout = 2 * time.Second
		c.DisableTcpPings = true
		c.UDPBufferSize = 10 * 1024 * 1024
		c.TCPTimeout = 2 * time.Second
	default:
		return nil, fmt.Errorf("--preset %q: want lan or ckit", o.preset)
	}
	if o.probeInterval > 0 {
		c.ProbeInterval = o.probeInterval
	}
	if o.probeTimeout > 0 {
		c.ProbeTimeout = o.probeTimeout
	} else if c.ProbeTimeout > c.ProbeInterval/2 {
		// A probe must be answered before the next one starts.
		c.ProbeTimeout = c.ProbeInterval / 2
	}
	if o.pushPullInterval > 0 {
		c.PushPullInterval = o.pushPullInterval
	}
	if o.gossipInterval > 0 {
		c.GossipInterval = o.gossipInterval
	}
	c.DelegateProtocolMin = uint8(o.delegateVersion)
	c.DelegateProtocolMax = uint8(o.delegateVersion)
	c.DelegateProtocolVersion = uint8(o.delegateVersion)
	c.Name = o.name
	return c, nil
}

func main() {
	o, err := parseOptions(os.Args[1:])
	if err == flag.ErrHelp {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "memberlist-peer:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "memberlist-peer:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if err := checkMemberlistLayout(); err != nil {
		return err
	}
	config, err := memberlistConfig(o)
	if err != nil {
		return err
	}
	logger := log.New(&logFilter{out: os.Stderr, debug: o.debugLogs}, o.name+" ", log.LstdFlags|log.Lmicroseconds)
	config.Logger = logger
	out := newEmitter(os.Stdout)

	listener, err := listenAgain(o.bind)
	if err != nil {
		return fmt.Errorf("--bind %s: %w", o.bind, err)
	}
	advertise, err := advertiseAddr(o.advertise, listener.Addr().(*net.TCPAddr))
	if err != nil {
		return err
	}
	transport, err := newHTTPTransport(transportOptions{
		advertise:     advertise,
		label:         o.label,
		packetTimeout: o.packetTimeout,
		streamTimeout: config.TCPTimeout,
		maxPacket:     maxPacketSize(config.UDPBufferSize),
		logger:        logger,
	})
	if err != nil {
		return err
	}
	config.Transport = transport
	config.AdvertiseAddr = advertise.IP.String()
	config.AdvertisePort = advertise.Port
	var delegate *peerDelegate
	var ckit *ckitNode
	if o.ckit {
		ckit = newCkitNode(o.name, out, config.RetransmitMult)
		config.Delegate = ckit
		config.Events = ckit
	} else {
		delegate = newPeerDelegate(o.name, []byte(o.meta), out, config.RetransmitMult)
		config.Delegate = delegate
		config.Events = delegate
	}

	mux := http.NewServeMux()
	transport.Register(mux)
	server := &http.Server{Handler: h2c.NewHandler(mux, &http2.Server{}), ErrorLog: logger}
	go func() {
		if err := server.Serve(listener); err != nil && err != http.ErrServerClosed {
			logger.Printf("[ERR] serving: %v", err)
		}
	}()

	list, err := memberlist.Create(config)
	if err != nil {
		return fmt.Errorf("creating memberlist: %w", err)
	}
	if ckit != nil {
		ckit.list.Store(list)
		api := &ckitAPI{node: ckit, send: func(packet []byte, addr string) error {
			_, err := transport.WriteTo(packet, addr)
			return err
		}}
		api.register(mux)
	} else {
		delegate.list.Store(list)
	}

	stop := make(chan struct{})
	var stopOnce sync.Once
	var leaveOnce sync.Once
	leave := func(timeout time.Duration) error {
		err := errors.New("already left")
		leaveOnce.Do(func() {
			err = list.Leave(timeout)
			out.emit("left", fields{"error": errString(err)})
		})
		return err
	}
	api := &debugAPI{
		table:    openMemberTable(list),
		delegate: delegate,
		leave:    leave,
		shutdown: func() { stopOnce.Do(func() { close(stop) }) },
	}
	api.register(mux)

	out.emit("ready", fields{
		"name": o.name, "addr": advertise.IP.String(), "port": advertise.Port,
		"bind": listener.Addr().String(), "label": o.label, "preset": o.preset, "ckit": o.ckit,
	})
	if o.join != "" {
		go joinCluster(list, strings.Split(o.join, ","), out)
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-stop:
	case <-signals:
		_ = leave(5 * time.Second)
	}
	_ = list.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
	out.emit("shutdown", fields{"name": o.name})
	return nil
}

// maxPacketSize is the largest frame /message takes: what memberlist's own
// UDP transport reads (64 KiB, whatever UDPBufferSize it writes with), or
// UDPBufferSize if larger (ckit's 10 MiB), plus a label header.
func maxPacketSize(udpBufferSize int) int {
	size := 64 * 1024
	if udpBufferSize > size {
		size = udpBufferSize
	}
	return size + 2 + maxLabelLen
}

func joinCluster(list *memberlist.Memberlist, addrs []string, out *emitter) {
	contacted, err := list.Join(addrs)
	if err != nil {
		out.emit("join_error", fields{"contacted": contacted, "error": err.Error()})
		return
	}
	out.emit("joined", fields{"contacted": contacted})
}

// advertiseAddr parses --advertise (an IP and a port, as memberlist
// advertises them), or takes the bound address.
func advertiseAddr(flagValue string, bound *net.TCPAddr) (*net.TCPAddr, error) {
	if flagValue == "" {
		if bound.IP.IsUnspecified() {
			return nil, errors.New("--advertise is required when --bind is a wildcard address")
		}
		return bound, nil
	}
	host, port, err := net.SplitHostPort(flagValue)
	if err != nil {
		return nil, fmt.Errorf("--advertise %q: %w", flagValue, err)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("--advertise %q: the host must be an IP address", flagValue)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return nil, fmt.Errorf("--advertise %q: bad port", flagValue)
	}
	return &net.TCPAddr{IP: ip, Port: p}, nil
}

func errString(err error) interface{} {
	if err == nil {
		return nil
	}
	return err.Error()
}

// logFilter drops memberlist's [DEBUG] lines unless asked for them.
type logFilter struct {
	out   io.Writer
	debug bool
}

func (f *logFilter) Write(p []byte) (int, error) {
	if !f.debug && bytes.Contains(p, []byte("[DEBUG]")) {
		return len(p), nil
	}
	return f.out.Write(p)
}

// listenAgain listens on bind, waiting up to 15 s while the port is still
// held: a peer restarted on its killed life's port may find it not yet
// free (the tests' rebind waits the same way).
func listenAgain(bind string) (net.Listener, error) {
	started := time.Now()
	for {
		listener, err := net.Listen("tcp", bind)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Since(started) > 15*time.Second {
			return listener, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
