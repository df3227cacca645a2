package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// The physical floors both servers share on this machine: one fdatasync of
// a small write on the data disk (every acknowledged write waits for at
// least one) and one TCP round trip on loopback (every request needs one).

type durStats struct {
	Count  int     `json:"count"`
	MeanUs float64 `json:"mean_us"`
	P50Us  float64 `json:"p50_us"`
	P90Us  float64 `json:"p90_us"`
	P99Us  float64 `json:"p99_us"`
	P999Us float64 `json:"p999_us"`
	MinUs  float64 `json:"min_us"`
	MaxUs  float64 `json:"max_us"`
}

func summarize(d []time.Duration) durStats {
	if len(d) == 0 {
		return durStats{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) float64 {
		i := int(p*float64(len(d))+0.999999) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(d) {
			i = len(d) - 1
		}
		return round3(float64(d[i]) / 1e3)
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return durStats{
		Count: len(d), MeanUs: round3(float64(sum) / float64(len(d)) / 1e3),
		P50Us: q(0.5), P90Us: q(0.9), P99Us: q(0.99), P999Us: q(0.999),
		MinUs: round3(float64(d[0]) / 1e3), MaxUs: round3(float64(d[len(d)-1]) / 1e3),
	}
}

func cmdFsync(args []string) error {
	fs := flag.NewFlagSet("fsync", flag.ExitOnError)
	dir := fs.String("dir", ".", "directory on the disk to measure (a temporary file is created there)")
	count := fs.Int("count", 2000, "writes per mode")
	size := fs.Int("size", 4096, "bytes per write")
	out := fs.String("out", "", "output file (default stdout)")
	fs.Parse(args)

	buf := make([]byte, *size)
	fillValue(buf, 42)
	res := map[string]interface{}{"kind": "fsync", "dir": *dir, "size": *size}
	// append: write at the end of a growing file, then fdatasync (a log
	// append: data and the file size reach the disk).
	// overwrite: write in place into blocks written and synced before
	// (only the data has to reach the disk).
	for _, mode := range []string{"append", "overwrite"} {
		path := filepath.Join(*dir, fmt.Sprintf(".fsync-probe-%d-%s", os.Getpid(), mode))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		fd := int(f.Fd())
		if mode == "overwrite" {
			for i := 0; i < *count; i++ {
				if _, err := f.Write(buf); err != nil {
					f.Close()
					os.Remove(path)
					return err
				}
			}
			if err := syscall.Fsync(fd); err != nil {
				return err
			}
		}
		warm := 50
		d := make([]time.Duration, 0, *count)
		for i := 0; i < *count+warm; i++ {
			t := time.Now()
			var err error
			if mode == "overwrite" {
				_, err = f.WriteAt(buf, int64((i%*count)**size))
			} else {
				_, err = f.Write(buf)
			}
			if err == nil {
				err = syscall.Fdatasync(fd)
			}
			el := time.Since(t)
			if err != nil {
				f.Close()
				os.Remove(path)
				return err
			}
			if i >= warm {
				d = append(d, el)
			}
		}
		f.Close()
		os.Remove(path)
		res[mode] = summarize(d)
	}
	return writeJSON(*out, res)
}

func cmdEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	size := fs.Int("size", 64, "message size")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func(c net.Conn) {
			defer c.Close()
			b := make([]byte, *size)
			for {
				if _, err := io.ReadFull(c, b); err != nil {
					return
				}
				if _, err := c.Write(b); err != nil {
					return
				}
			}
		}(c)
	}
}

func cmdPing(args []string) error {
	fs := flag.NewFlagSet("ping", flag.ExitOnError)
	addr := fs.String("server", "127.0.0.1:7", "echo server")
	count := fs.Int("count", 20000, "round trips (after 1000 warm-up ones)")
	size := fs.Int("size", 64, "message size (same as the echo server's)")
	out := fs.String("out", "", "output file (default stdout)")
	fs.Parse(args)
	var c net.Conn
	var err error
	for i := 0; i < 100; i++ {
		if c, err = net.Dial("tcp", *addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	b := make([]byte, *size)
	d := make([]time.Duration, 0, *count)
	for i := 0; i < *count+1000; i++ {
		t := time.Now()
		if _, err := c.Write(b); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		if i >= 1000 {
			d = append(d, time.Since(t))
		}
	}
	return writeJSON(*out, map[string]interface{}{"kind": "ping", "server": *addr, "size": *size, "rtt": summarize(d)})
}
