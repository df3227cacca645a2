package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// probe: how soon after a (re)start does the server serve a read? It speaks
// the wire protocol itself (no client library back-off): every attempt is a
// fresh TCP connection, a ConnectRequest and a getData of one znode whose
// value is known; it stops at the first reply with that value. `ruok` is no
// use here: Apache ZooKeeper answers it before its data is loaded.

var addrRE = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

func putString(b *bytes.Buffer, s string) {
	binary.Write(b, binary.BigEndian, int32(len(s)))
	b.WriteString(s)
}

func frame(body []byte) []byte {
	out := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(out, uint32(len(body)))
	copy(out[4:], body)
	return out
}

func readFrame(c net.Conn) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 64<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return b, err
}

// errServed: the server answered the getData, but not with the value.
type errServed struct{ msg string }

func (e errServed) Error() string { return e.msg }

func probeOnce(addr, path string, want []byte, deadline time.Time) error {
	c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, int32(0))     // protocolVersion
	binary.Write(&b, binary.BigEndian, int64(0))     // lastZxidSeen
	binary.Write(&b, binary.BigEndian, int32(30000)) // timeOut
	binary.Write(&b, binary.BigEndian, int64(0))     // sessionId
	binary.Write(&b, binary.BigEndian, int32(16))    // passwd
	b.Write(make([]byte, 16))
	b.WriteByte(0) // readOnly
	if _, err := c.Write(frame(b.Bytes())); err != nil {
		return err
	}
	resp, err := readFrame(c)
	if err != nil {
		return fmt.Errorf("connect response: %w", err)
	}
	if len(resp) < 16 {
		return fmt.Errorf("short connect response (%d bytes)", len(resp))
	}
	if to := int32(binary.BigEndian.Uint32(resp[4:8])); to <= 0 {
		return errors.New("session refused (timeout 0)")
	}
	b.Reset()
	binary.Write(&b, binary.BigEndian, int32(1)) // xid
	binary.Write(&b, binary.BigEndian, int32(4)) // getData
	putString(&b, path)
	b.WriteByte(0) // watch
	if _, err := c.Write(frame(b.Bytes())); err != nil {
		return err
	}
	for {
		r, err := readFrame(c)
		if err != nil {
			return fmt.Errorf("getData reply: %w", err)
		}
		if len(r) < 16 {
			return fmt.Errorf("short reply (%d bytes)", len(r))
		}
		xid := int32(binary.BigEndian.Uint32(r[0:4]))
		if xid != 1 {
			continue // notification or ping
		}
		if code := int32(binary.BigEndian.Uint32(r[12:16])); code != 0 {
			return errServed{fmt.Sprintf("getData %s: error %d", path, code)}
		}
		if len(r) < 20 {
			return errServed{"getData reply without data"}
		}
		n := int32(binary.BigEndian.Uint32(r[16:20]))
		if n < 0 || int(n) > len(r)-20 {
			return errServed{fmt.Sprintf("getData reply: bad data length %d", n)}
		}
		if !bytes.Equal(r[20:20+n], want) {
			return errServed{fmt.Sprintf("getData %s: %d bytes, not the expected value", path, n)}
		}
		// Close the session politely (xid 2, closeSession -11).
		b.Reset()
		binary.Write(&b, binary.BigEndian, int32(2))
		binary.Write(&b, binary.BigEndian, int32(-11))
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write(frame(b.Bytes()))
		readFrame(c)
		return nil
	}
}

func cmdProbe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	addr := fs.String("server", "127.0.0.1:2181", "host:port")
	path := fs.String("path", "", "znode to read")
	expectIndex := fs.Int64("expect-index", -1, "the znode's value is populate's value of node N")
	expectSize := fs.Int("value-size", 100, "value size for -expect-index")
	expect := fs.String("expect", "", "the znode's value (if not -expect-index)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	interval := fs.Duration("interval", 10*time.Millisecond, "pause between attempts")
	since := fs.String("since", "", "unix time in ns (or s.frac) of the process start; reported as elapsed")
	out := fs.String("out", "", "output file (default stdout)")
	fs.Parse(args)
	if *path == "" {
		return errors.New("-path is required")
	}
	want := []byte(*expect)
	if *expectIndex >= 0 {
		want = nodeValue(*expectIndex, *expectSize)
	}
	start := time.Now()
	deadline := start.Add(*timeout)
	attempts := 0
	errs := map[string]int64{}
	var firstServedErr string
	var lastErr error
	ok := false
	for time.Now().Before(deadline) {
		attempts++
		err := probeOnce(*addr, *path, want, deadline)
		if err == nil {
			ok = true
			break
		}
		lastErr = err
		var se errServed
		if errors.As(err, &se) && firstServedErr == "" {
			firstServedErr = se.msg
		}
		k := addrRE.ReplaceAllString(err.Error(), "<addr>") // one key per kind, not per port
		if len(errs) < 50 {
			errs[k]++
		}
		time.Sleep(*interval)
	}
	done := time.Now()
	res := map[string]interface{}{
		"kind": "probe", "server": *addr, "path": *path, "ok": ok, "attempts": attempts,
		"probe_s":         round3(done.Sub(start).Seconds()),
		"success_unix_ns": done.UnixNano(),
		"errors":          errs,
	}
	if firstServedErr != "" {
		res["first_wrong_answer"] = firstServedErr
	}
	if *since != "" {
		if t, err := parseUnix(*since); err == nil {
			res["since_start_s"] = round3(float64(done.UnixNano()-t) / 1e9)
		}
	}
	if !ok && lastErr != nil {
		res["last_error"] = lastErr.Error()
	}
	if err := writeJSON(*out, res); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s not served within %v", *path, *timeout)
	}
	return nil
}

// parseUnix parses ns since the epoch, or seconds with a fraction (bash's
// $EPOCHREALTIME), into ns.
func parseUnix(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, ".,") {
		sec, frac, _ := strings.Cut(strings.ReplaceAll(s, ",", "."), ".")
		for len(frac) < 9 {
			frac += "0"
		}
		a, err1 := strconv.ParseInt(sec, 10, 64)
		b, err2 := strconv.ParseInt(frac[:9], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("bad time %q", s)
		}
		return a*1e9 + b, nil
	}
	return strconv.ParseInt(s, 10, 64)
}
