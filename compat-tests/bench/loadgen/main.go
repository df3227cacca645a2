// Command loadgen is the benchmark load generator of compat-tests/bench: one
// client library (go-zookeeper, written for neither server under test), the
// same binary and the same flags against Apache ZooKeeper and ferrokeeper.
//
//	loadgen run      mixed workload on pipelined sessions, JSON per op type
//	loadgen populate create a large tree (count znodes), JSON with timings
//	loadgen probe    raw-protocol getData of one znode until it is served
//	loadgen fsync    write 4 KiB + fdatasync in a loop (the disk's floor)
//	loadgen echo     TCP echo server for `ping`
//	loadgen ping     TCP ping-pong round trips on loopback (the network floor)
//
// Pipelining: go-zookeeper's *zk.Conn has one send loop and one receive loop
// per connection and keeps pending requests in a map keyed by xid, so G
// goroutines calling methods on one *zk.Conn keep up to G requests
// outstanding on that session. `run` starts `-outstanding` goroutines per
// session. Every subcommand writes one JSON document to stdout (or -out).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(args)
	case "populate":
		err = cmdPopulate(args)
	case "probe":
		err = cmdProbe(args)
	case "fsync":
		err = cmdFsync(args)
	case "echo":
		err = cmdEcho(args)
	case "ping":
		err = cmdPing(args)
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "loadgen: unknown subcommand %q\n", cmd)
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen run|populate|probe|fsync|echo|ping [flags]  (loadgen <cmd> -h for flags)")
	os.Exit(2)
}

// writeJSON writes v to path ("" or "-": stdout), indented.
func writeJSON(path string, v interface{}) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	b := buf.Bytes()
	var err error
	if path == "" || path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// generatorInfo describes this process: where it may run and how Go sees it.
func generatorInfo() map[string]interface{} {
	return map[string]interface{}{
		"go_version": runtime.Version(),
		"num_cpu":    runtime.NumCPU(), // CPUs in this process's affinity mask at start
		"gomaxprocs": runtime.GOMAXPROCS(0),
		"pid":        os.Getpid(),
		// go-zookeeper's socket writes (requests, pings) and the write
		// syscalls that carried them (fewer with write coalescing)
		"socket_writes_requested": sockRequests.Load(),
		"socket_write_syscalls":   sockWrites.Load(),
	}
}

// splitmix64 is a tiny deterministic generator for znode values, so a value
// can be recomputed from its index (probe) and does not compress trivially.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// fillValue fills b with bytes derived from seed.
func fillValue(b []byte, seed uint64) {
	s := seed
	for i := 0; i < len(b); i += 8 {
		s = splitmix64(s)
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(s >> (8 * j))
		}
	}
}

// nodeValue is the value of big-tree znode i (populate / probe).
func nodeValue(i int64, size int) []byte {
	b := make([]byte, size)
	fillValue(b, uint64(i)*0x100000001b3+17)
	return b
}

func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// parsePIDs parses a comma-separated list of process ids ("" is none).
func parsePIDs(s string) ([]int, error) {
	var out []int
	for _, p := range splitServers(s) {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("bad PID %q", p)
		}
		out = append(out, pid)
	}
	return out, nil
}

func splitServers(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
