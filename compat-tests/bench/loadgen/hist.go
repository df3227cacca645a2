package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency histogram: log-linear buckets over nanoseconds, 128 sub-buckets
// per power of two (relative error < 0.8 %), lock-free (atomic counters), so
// thousands of goroutines can share one per op type.
const (
	histSubBits = 7
	histSub     = 1 << histSubBits // 128
	histMaxExp  = 30               // values up to ~2^37 ns (137 s); larger ones are clamped
	histBuckets = (histMaxExp+2)*histSub + histSub
)

type hist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // ns
	max    atomic.Uint64 // ns
}

func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	e := bits.Len64(v) - (histSubBits + 1) // >= 1
	if e > histMaxExp {
		return histBuckets - 1
	}
	m := v >> uint(e) // in [128, 256)
	return e*histSub + int(m)
}

// histValue is the midpoint of bucket i, in ns.
func histValue(i int) float64 {
	if i < 2*histSub {
		return float64(i)
	}
	e := i/histSub - 1
	m := uint64(i - e*histSub)
	lo := m << uint(e)
	return float64(lo) + float64(uint64(1)<<uint(e))/2
}

func (h *hist) add(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[histIndex(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// quantile q in [0,1], in ns (0 if empty).
func (h *hist) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var c uint64
	for i := range h.counts {
		c += h.counts[i].Load()
		if c >= rank {
			v := histValue(i)
			if mx := float64(h.max.Load()); v > mx {
				v = mx
			}
			return v
		}
	}
	return float64(h.max.Load())
}

type latencySummary struct {
	Count  uint64  `json:"count"`
	MeanUs float64 `json:"mean_us"`
	P50Us  float64 `json:"p50_us"`
	P90Us  float64 `json:"p90_us"`
	P99Us  float64 `json:"p99_us"`
	P999Us float64 `json:"p999_us"`
	MaxUs  float64 `json:"max_us"`
}

func (h *hist) summary() latencySummary {
	n := h.n.Load()
	s := latencySummary{Count: n}
	if n == 0 {
		return s
	}
	s.MeanUs = round3(float64(h.sum.Load()) / float64(n) / 1e3)
	s.P50Us = round3(h.quantile(0.50) / 1e3)
	s.P90Us = round3(h.quantile(0.90) / 1e3)
	s.P99Us = round3(h.quantile(0.99) / 1e3)
	s.P999Us = round3(h.quantile(0.999) / 1e3)
	s.MaxUs = round3(float64(h.max.Load()) / 1e3)
	return s
}

// merge adds o's counts into h.
func (h *hist) merge(o *hist) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	for {
		m, v := h.max.Load(), o.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
