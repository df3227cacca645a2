package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// genConn is the socket under go-zookeeper, made cheaper for the generator
// without changing what goes over the wire:
//
//   - reads are buffered: go-zookeeper reads each reply with two io.ReadFull
//     calls (length, body), two read syscalls per reply on a plain net.Conn;
//   - writes are coalesced: go-zookeeper's send loop writes every request
//     with its own write syscall, which was half of the generator's CPU time.
//     Write copies the request into a pending buffer and wakes a flusher
//     goroutine, which yields once (runtime.Gosched: the goroutines that are
//     runnable at that moment, e.g. workers about to send their next
//     request, run first) and then sends everything pending with one write.
//     With nothing else runnable (one session, one request in flight) that
//     costs a goroutine switch; under load, the requests issued together go
//     out together.
//
// Requests are byte-for-byte what go-zookeeper produced, in its order.
type genConn struct {
	net.Conn
	r *bufio.Reader

	coalesce bool
	wmu      sync.Mutex // held while writing to the socket (flusher, Close)
	mu       sync.Mutex // guards pending, spare, err
	cond     *sync.Cond
	pending  []byte
	spare    []byte
	err      error
	kick     chan struct{}
	done     chan struct{}
	once     sync.Once
}

const maxPending = 4 << 20

// Socket statistics over all sessions: requests handed over by go-zookeeper
// and write syscalls that carried them.
var sockRequests, sockWrites atomic.Int64

func (c *genConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *genConn) Write(p []byte) (int, error) {
	sockRequests.Add(1)
	if !c.coalesce {
		sockWrites.Add(1)
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	for len(c.pending) > maxPending && c.err == nil {
		c.cond.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.pending = append(c.pending, p...)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *genConn) flusher() {
	for {
		select {
		case <-c.kick:
		case <-c.done:
			return
		}
		// Let the goroutines that are ready now (workers with a new request,
		// the send loop) run first, so their requests join this write.
		runtime.Gosched()
		c.wmu.Lock()
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.mu.Unlock()
			c.wmu.Unlock()
			continue
		}
		// Swap buffers: b is ours until it is written, then it becomes the
		// spare; Write appends to the other one meanwhile.
		b := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.mu.Unlock()
		sockWrites.Add(1)
		_, err := c.Conn.Write(b)
		c.wmu.Unlock()
		c.mu.Lock()
		c.spare = b[:0]
		if err != nil && c.err == nil {
			c.err = err
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if err != nil {
			c.Conn.Close() // go-zookeeper's receive loop sees it and reconnects
			return
		}
	}
}

// Close sends what is still pending (e.g. go-zookeeper's closeSession),
// then closes the socket.
func (c *genConn) Close() error {
	c.once.Do(func() { close(c.done) })
	c.wmu.Lock()
	c.mu.Lock()
	b := c.pending
	c.pending = nil
	failed := c.err != nil
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	if len(b) > 0 && !failed {
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.Conn.Write(b)
	}
	c.wmu.Unlock()
	return c.Conn.Close()
}

func genDialer(coalesce bool) func(network, address string, timeout time.Duration) (net.Conn, error) {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		g := &genConn{Conn: c, r: bufio.NewReaderSize(c, 256<<10), coalesce: coalesce,
			kick: make(chan struct{}, 1), done: make(chan struct{})}
		g.cond = sync.NewCond(&g.mu)
		if coalesce {
			go g.flusher()
		}
		return g, nil
	}
}

// zkLog counts go-zookeeper's log lines and prints the first ones to stderr.
type zkLog struct {
	n atomic.Int64
}

func (l *zkLog) Printf(format string, args ...interface{}) {
	if l.n.Add(1) <= 20 {
		fmt.Fprintf(os.Stderr, "go-zookeeper: "+format+"\n", args...)
	}
}

var (
	zkLogger     = &zkLog{}
	disconnects  atomic.Int64 // StateDisconnected events after a session was established
	expirations  atomic.Int64 // StateExpired events
	sessionTimeo = 30 * time.Second
)

// connect opens one session and waits until it is established.
func connect(servers []string, plain bool, wait time.Duration) (*zk.Conn, error) {
	var (
		conn *zk.Conn
		ev   <-chan zk.Event
		err  error
	)
	if plain {
		conn, ev, err = zk.Connect(servers, sessionTimeo, zk.WithLogInfo(false), zk.WithLogger(zkLogger))
	} else {
		conn, ev, err = zk.Connect(servers, sessionTimeo, zk.WithLogInfo(false), zk.WithLogger(zkLogger),
			zk.WithDialer(genDialer(true)))
	}
	if err != nil {
		return nil, err
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case e, ok := <-ev:
			if !ok {
				return nil, errors.New("session closed while connecting")
			}
			if e.State == zk.StateHasSession {
				go drainEvents(ev)
				return conn, nil
			}
			if e.State == zk.StateExpired || e.State == zk.StateAuthFailed {
				conn.Close()
				return nil, fmt.Errorf("session state %v while connecting", e.State)
			}
		case <-deadline.C:
			conn.Close()
			return nil, fmt.Errorf("no session within %v", wait)
		}
	}
}

func drainEvents(ev <-chan zk.Event) {
	for e := range ev {
		if e.Type != zk.EventSession {
			continue
		}
		switch e.State {
		case zk.StateDisconnected:
			disconnects.Add(1)
		case zk.StateExpired:
			expirations.Add(1)
		}
	}
}

// connectAll opens n sessions in parallel; with pin, session i uses only server i mod
// len(servers) (spread evenly over an ensemble, no failover).
func connectAll(servers []string, n int, plain, pin bool) ([]*zk.Conn, error) {
	conns := make([]*zk.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			use := servers
			if pin {
				use = servers[i%len(servers) : i%len(servers)+1]
			}
			conns[i], errs[i] = connect(use, plain, 30*time.Second)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
			return nil, fmt.Errorf("session %d: %w", i, err)
		}
	}
	return conns, nil
}

func closeAll(conns []*zk.Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *zk.Conn) { defer wg.Done(); c.Close() }(c)
	}
	wg.Wait()
}

// definite reports whether err is a server's answer that the operation was
// not applied (so it is not counted), as opposed to an unknown outcome
// (connection lost, session expired, timeout: it may or may not have been
// applied).
func definite(err error) bool {
	switch err {
	case zk.ErrNoNode, zk.ErrNodeExists, zk.ErrBadVersion, zk.ErrNotEmpty,
		zk.ErrNoChildrenForEphemerals, zk.ErrBadArguments, zk.ErrInvalidACL,
		zk.ErrNoAuth, zk.ErrInvalidPath:
		return true
	}
	return false
}

// parallel runs f(i) for i in [0, n) on `workers` goroutines, each bound to
// conns[w % len(conns)]; returns the first error (and stops early).
func parallel(conns []*zk.Conn, workers int, n int64, f func(c *zk.Conn, i int64) error) error {
	var next atomic.Int64
	var failed atomic.Bool
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(c *zk.Conn) {
			defer wg.Done()
			for {
				if failed.Load() {
					return
				}
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				if err := f(c, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					failed.Store(true)
					return
				}
			}
		}(conns[w%len(conns)])
	}
	wg.Wait()
	return firstErr
}

// createIfMissing creates path (persistent), NodeExists is fine.
func createIfMissing(c *zk.Conn, path string, data []byte) error {
	_, err := c.Create(path, data, 0, zk.WorldACL(zk.PermAll))
	if err != nil && err != zk.ErrNodeExists {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}
