package main

import (
	"bytes"
	"flag"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Big tree layout: <prefix>/d-XXXX (one parent per `fanout` nodes) and
// <prefix>/d-XXXX/n-NNNNNNN, node i's value = nodeValue(i, value-size).
func bigParent(prefix string, i int64, fanout int64) string {
	return fmt.Sprintf("%s/d-%04d", prefix, i/fanout)
}

func bigNode(prefix string, i int64, fanout int64) string {
	return fmt.Sprintf("%s/d-%04d/n-%07d", prefix, i/fanout, i)
}

func cmdPopulate(args []string) error {
	fs := flag.NewFlagSet("populate", flag.ExitOnError)
	servers := fs.String("servers", "127.0.0.1:2181", "comma-separated host:port list")
	sessions := fs.Int("sessions", 32, "sessions")
	outstanding := fs.Int("outstanding", 64, "requests in flight per session")
	count := fs.Int64("count", 1000000, "znodes to create")
	fanout := fs.Int64("fanout", 1000, "children per parent znode")
	valueSize := fs.Int("value-size", 100, "bytes per znode")
	prefix := fs.String("prefix", "/bigtree", "root of the tree")
	serverPID := fs.Int("server-pid", 0, "server process (CPU time, VmRSS/VmHWM)")
	plain := fs.Bool("plain-socket", false, "give go-zookeeper a plain net.Conn (no buffered reads, no write coalescing)")
	bottleneck := fs.Float64("bottleneck", 0.9, "flag if the generator used more than this fraction of its cores")
	out := fs.String("out", "", "output file (default stdout)")
	fs.Parse(args)
	if *count < 1 || *fanout < 1 {
		return fmt.Errorf("-count and -fanout must be >= 1")
	}

	conns, err := connectAll(splitServers(*servers), *sessions, *plain, false)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	workers := *sessions * *outstanding
	parents := (*count + *fanout - 1) / *fanout

	cpu0 := sampleCPU(*serverPID)
	t0 := time.Now()
	if err := createIfMissing(conns[0], *prefix, nil); err != nil {
		return err
	}
	err = parallel(conns, workers, parents, func(c *zk.Conn, i int64) error {
		return createIfMissing(c, bigParent(*prefix, i**fanout, *fanout), nil)
	})
	if err != nil {
		return err
	}
	var created, existed atomic.Int64
	err = parallel(conns, workers, *count, func(c *zk.Conn, i int64) error {
		p := bigNode(*prefix, i, *fanout)
		_, err := c.Create(p, nodeValue(i, *valueSize), 0, zk.WorldACL(zk.PermAll))
		switch err {
		case nil:
			created.Add(1)
			return nil
		case zk.ErrNodeExists:
			existed.Add(1)
			return nil
		}
		return fmt.Errorf("create %s: %w", p, err)
	})
	elapsed := time.Since(t0)
	cpu1 := sampleCPU(*serverPID)
	if err != nil {
		return err
	}
	cpu := compareCPU(cpu0, cpu1, *serverPID, runtime.NumCPU(), uint64(*count+parents+1), *bottleneck)

	// Checks: every parent has its children, the last node has its value.
	failures := []string{}
	tv := time.Now()
	var total atomic.Int64
	err = parallel(conns, min(workers, 512), parents, func(c *zk.Conn, i int64) error {
		ok, st, err := c.Exists(bigParent(*prefix, i**fanout, *fanout))
		if err != nil || !ok {
			return fmt.Errorf("exists parent %d: %v", i, err)
		}
		total.Add(int64(st.NumChildren))
		return nil
	})
	if err != nil {
		failures = append(failures, err.Error())
	} else if total.Load() != *count {
		failures = append(failures, fmt.Sprintf("parents have %d children, want %d", total.Load(), *count))
	}
	last := *count - 1
	data, _, err := conns[0].Get(bigNode(*prefix, last, *fanout))
	if err != nil {
		failures = append(failures, fmt.Sprintf("getData %s: %v", bigNode(*prefix, last, *fanout), err))
	} else if !bytes.Equal(data, nodeValue(last, *valueSize)) {
		failures = append(failures, fmt.Sprintf("getData %s: wrong value", bigNode(*prefix, last, *fanout)))
	}
	res := map[string]interface{}{
		"kind": "populate",
		"config": map[string]interface{}{
			"servers": splitServers(*servers), "sessions": *sessions, "outstanding_per_session": *outstanding,
			"count": *count, "fanout": *fanout, "value_size": *valueSize, "prefix": *prefix, "server_pid": *serverPID,
		},
		"created":       created.Load(),
		"existed":       existed.Load(),
		"parents":       parents,
		"elapsed_s":     round3(elapsed.Seconds()),
		"creates_per_s": round3(float64(*count+parents) / elapsed.Seconds()),
		"cpu":           cpu,
		"last_node":     bigNode(*prefix, last, *fanout),
		"checks":        map[string]interface{}{"ok": len(failures) == 0, "failures": failures, "verify_s": round3(time.Since(tv).Seconds())},
		"generator":     generatorInfo(),
		"session_events": map[string]int64{
			"disconnects": disconnects.Load(), "expirations": expirations.Load(), "client_log_lines": zkLogger.n.Load(),
		},
	}
	return writeJSON(*out, res)
}
