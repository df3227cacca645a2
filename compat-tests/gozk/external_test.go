// ferrokeeper compat harness (compat-tests/gozk): run go-zookeeper's own
// tests against one external server.
//
// This file is ours, not go-zookeeper's. gozk_suite.py copies it into a
// writable copy of github.com/go-zookeeper/zk (package zk) under
// compat-tests/.cache/gozk-src/ and applies external.patch, which makes
// StartTestCluster and the server stop/start helpers in server_help_test.go
// call into it when GOZK_EXTERNAL_SERVER is set:
//
//   - StartTestCluster(t, 1, ...) returns a TestCluster whose one server is
//     the external one, after deleting every znode except /zookeeper (the
//     tests use fixed paths such as /gozk-test and /test), as super:test
//     where an ACL requires it;
//   - StartTestCluster(t, n>1, ...) skips the test: it needs an ensemble;
//   - Stop is a no-op (the harness owns the server);
//   - StopServer, StartServer, StopAllServers and StartAllServers skip the
//     test at that point: the harness does not restart its server.
//
// Standard library and package zk only; the module has Go 1.13 semantics.
package zk

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

const externalServerEnv = "GOZK_EXTERNAL_SERVER"

// externalServer marks a TestCluster that stands for the external server.
type externalServer struct {
	t    *testing.T
	addr string
}

func externalServerAddr() string {
	return os.Getenv(externalServerEnv)
}

func startExternalCluster(t *testing.T, size int, addr string) (*TestCluster, error) {
	t.Helper()
	if size > 1 {
		t.Skipf("compat: needs a %d-server ensemble; the harness runs one external server (%s)", size, addr)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("compat: bad %s=%q: %v", externalServerEnv, addr, err)
	}
	// TestCluster.Connect* dial "127.0.0.1:<port>", whatever the address.
	if host != "127.0.0.1" {
		return nil, fmt.Errorf("compat: %s must be 127.0.0.1:<port>, got %q", externalServerEnv, addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("compat: bad port in %s=%q", externalServerEnv, addr)
	}
	if err := wipeExternalTree(addr); err != nil {
		return nil, fmt.Errorf("compat: wiping the tree on %s before the test: %v", addr, err)
	}
	srv := ServerConfigServer{ID: 1, Host: host}
	return &TestCluster{
		Config:  ServerConfig{ClientPort: port, Servers: []ServerConfigServer{srv}},
		Servers: []TestServer{{Port: port, Config: srv}},
		ext:     &externalServer{t: t, addr: addr},
	}, nil
}

// skipRestart is called by the server stop/start helpers.
func (tc *TestCluster) skipRestart(what string) {
	tc.ext.t.Helper()
	caller := "?"
	if _, file, line, ok := runtime.Caller(2); ok { // the test that called tc.<what>
		caller = fmt.Sprintf("%s:%d", filepath.Base(file), line)
	}
	tc.ext.t.Skipf("compat: %s (%s) stops or starts servers; the harness does not restart its external server (%s)",
		what, caller, tc.ext.addr)
}

// wipeExternalTree deletes every znode except /zookeeper. Deleting a leaf
// needs only the parent's DELETE permission (the root's ACL is world:anyone
// all); only if the server answers NOAUTH (a node with a restrictive ACL and
// children) does it authenticate as super:test (the harness's superDigest)
// and try again. AddAuth has no deadline of its own in go-zookeeper, so it
// gets one here.
func wipeExternalTree(addr string) error {
	conn, events, err := Connect([]string{addr}, 15*time.Second, WithLogInfo(false))
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.After(15 * time.Second)
	for session := false; !session; {
		select {
		case ev := <-events:
			session = ev.State == StateHasSession
		case <-deadline:
			return fmt.Errorf("no session within 15s")
		}
	}
	authed := false
	// A few passes: a container may be removed by the server meanwhile, and
	// a client of an earlier test may still be creating nodes.
	var lastErr error
	for pass := 0; pass < 5; pass++ {
		children, _, err := conn.Children("/")
		if err != nil {
			return fmt.Errorf("getChildren /: %v", err)
		}
		lastErr = nil
		for _, c := range children {
			if c == "zookeeper" {
				continue
			}
			if err := deleteRecursive(conn, "/"+c); err != nil {
				lastErr = err
			}
		}
		if lastErr == nil {
			return nil
		}
		if errors.Is(lastErr, ErrNoAuth) && !authed {
			if err := addAuthWithin(conn, "digest", "super:test", 10*time.Second); err != nil {
				return fmt.Errorf("%v; then addauth digest super:test: %v", lastErr, err)
			}
			authed = true
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
	return lastErr
}

func addAuthWithin(conn *Conn, scheme, auth string, limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- conn.AddAuth(scheme, []byte(auth)) }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		return fmt.Errorf("no reply within %v", limit)
	}
}

// deleteRecursive deletes p and everything below it. It reads the children
// only when p has some: deleting a leaf needs the DELETE permission on its
// parent, reading a node's children needs READ on the node itself.
func deleteRecursive(conn *Conn, p string) error {
	err := conn.Delete(p, -1)
	if err == nil || err == ErrNoNode {
		return nil
	}
	if err != ErrNotEmpty {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	children, _, err := conn.Children(p)
	if err == ErrNoNode {
		return nil
	}
	if err != nil {
		return fmt.Errorf("getChildren %s: %w", p, err)
	}
	for _, c := range children {
		if err := deleteRecursive(conn, path.Join(p, c)); err != nil {
			return err
		}
	}
	if err := conn.Delete(p, -1); err != nil && err != ErrNoNode {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	return nil
}
