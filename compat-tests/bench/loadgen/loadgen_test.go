package main

import (
	"bytes"
	"io"
	"math"
	"net"
	"sync"
	"testing"
	"time"
)

func TestHistIndexIsMonotonicAndInverts(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<22; v += 1 + v/97 {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index not monotonic at %d: %d < %d", v, i, prev)
		}
		prev = i
		mid := histValue(i)
		if v >= 256 && math.Abs(mid-float64(v))/float64(v) > 0.008 {
			t.Fatalf("bucket midpoint %f too far from %d", mid, v)
		}
		if v < 256 && mid != float64(v) {
			t.Fatalf("small values are exact: %d -> %f", v, mid)
		}
	}
	if histIndex(math.MaxUint64) != histBuckets-1 {
		t.Fatal("huge values are clamped into the last bucket")
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 100000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 50000}, {0.99, 99000}, {0.999, 99900}} {
		got := h.quantile(c.q) / 1e3
		if math.Abs(got-c.want)/c.want > 0.01 {
			t.Errorf("q%.3f = %.0f µs, want %.0f", c.q, got, c.want)
		}
	}
	if s := h.summary(); s.Count != 100000 || s.MaxUs != 100000 {
		t.Errorf("summary %+v", s)
	}
	var m hist
	m.merge(&h)
	m.merge(&h)
	if m.n.Load() != 200000 || m.quantile(0.5) != h.quantile(0.5) {
		t.Error("merge")
	}
}

func TestNodeValueIsDeterministic(t *testing.T) {
	a, b := nodeValue(999999, 100), nodeValue(999999, 100)
	if !bytes.Equal(a, b) || bytes.Equal(a, nodeValue(999998, 100)) || len(a) != 100 {
		t.Fatal("nodeValue")
	}
}

// The coalescing socket delivers every write, in order, byte for byte.
func TestGenConnKeepsOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := genDialer(true)("tcp", ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				msg := []byte{byte(g), byte(i), byte(i >> 8), 0xEE}
				mu.Lock() // the send loop is one goroutine: writes are serialized
				want.Write(msg)
				if _, err := c.Write(msg); err != nil {
					t.Error(err)
				}
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	c.Close() // sends what is still pending
	select {
	case b := <-got:
		if !bytes.Equal(b, want.Bytes()) {
			t.Fatalf("received %d bytes, want %d (or different order)", len(b), want.Len())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received")
	}
}
