package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Op types reported separately. A "createdelete" action is a create of a
// sequential znode followed by the delete of the name it returned: two ops.
type opKind int

const (
	kGet opKind = iota
	kSet
	kExists
	kChildren
	kCreate
	kDelete
	kMulti
	nKinds
)

var kindNames = [nKinds]string{"getData", "setData", "exists", "getChildren", "create", "delete", "multi"}

// Actions of the mix (-mix name=weight,...).
type action int

const (
	aGet action = iota
	aSet
	aExists
	aChildren
	aCreateDelete
	aMulti
	nActions
)

var actionNames = [nActions]string{"get", "set", "exists", "children", "createdelete", "multi"}

type opStats struct {
	hist      hist // latency of successful ops completed in the measured window
	okWindow  atomic.Uint64
	errWindow atomic.Uint64
	issued    atomic.Uint64 // all phases
	answered  atomic.Uint64
	errTotal  atomic.Uint64
}

type runConfig struct {
	Servers      []string       `json:"servers"`
	Sessions     int            `json:"sessions"`
	Outstanding  int            `json:"outstanding_per_session"`
	Mix          map[string]int `json:"mix"`
	ValueSize    int            `json:"value_size"`
	DurationS    float64        `json:"duration_s"`
	WarmupS      float64        `json:"warmup_s"`
	Populate     int            `json:"populate"`
	Children     int            `json:"children"`
	Rate         float64        `json:"rate_per_s"` // 0: closed loop (as fast as answers come)
	Prefix       string         `json:"prefix"`
	ServerPID    int            `json:"server_pid"`
	MorePIDs     []int          `json:"more_server_pids,omitempty"`
	PinSessions  bool           `json:"pin_sessions,omitempty"`
	Seed         uint64         `json:"seed"`
	PlainSocket  bool           `json:"plain_socket"`
	Bottleneck   float64        `json:"bottleneck_threshold"`
	DrainTimeout float64        `json:"drain_timeout_s"`
	Label        string         `json:"label,omitempty"`
}

type runner struct {
	cfg     runConfig
	conns   []*zk.Conn
	weights []int // cumulative, per action
	total   int
	stats   [nKinds]opStats
	ws, we  time.Time // measured window [ws, we)

	pool []byte // random bytes; values are slices of it

	dataPaths []string
	setOK     []atomic.Int64 // per data node: successful setData (incl. multi)
	setAmb    []atomic.Int64 // per data node: setData with unknown outcome

	createOK, createAmb, deleteOK, deleteAmb atomic.Int64
	badData                                  atomic.Int64
	badDataMu                                sync.Mutex
	badDataEx                                []string

	errMu    sync.Mutex
	errKinds map[string]int64

	tokens chan time.Time // rate mode: intended start times
}

func parseMix(s string) (map[string]int, error) {
	m := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		if !ok {
			w = "1"
		}
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad weight in %q", part)
		}
		found := false
		for _, an := range actionNames {
			if an == name {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown op %q in -mix (known: %s)", name, strings.Join(actionNames[:], ", "))
		}
		m[name] += n
	}
	return m, nil
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	servers := fs.String("servers", "127.0.0.1:2181", "comma-separated host:port list")
	sessions := fs.Int("sessions", 32, "sessions (one TCP connection each)")
	outstanding := fs.Int("outstanding", 64, "requests in flight per session (goroutines per session)")
	mixS := fs.String("mix", "get=90,set=10", "op mix, name=weight: get, set, exists, children, createdelete, multi")
	valueSize := fs.Int("value-size", 100, "bytes per znode value (populate, setData, create)")
	duration := fs.Duration("duration", 30*time.Second, "measured window")
	warmup := fs.Duration("warmup", 10*time.Second, "load before the measured window (not measured)")
	populate := fs.Int("populate", 10000, "znodes under <prefix>/data for get/set/exists/multi")
	children := fs.Int("children", 16, "children of <prefix>/list (getChildren)")
	rate := fs.Float64("rate", 0, "target actions per second over all sessions (0: closed loop)")
	prefix := fs.String("prefix", "/bench", "root of the benchmark's znodes")
	serverPID := fs.Int("server-pid", 0, "server process: CPU time (/proc/PID/stat) over the window, VmRSS/VmHWM")
	morePIDs := fs.String("more-server-pids", "", "further server processes (comma-separated PIDs, an ensemble's other members): their CPU time is added to -server-pid's")
	pinSessions := fs.Bool("pin-sessions", false, "session i connects to server i mod len(-servers) only (default: go-zookeeper's shuffled list)")
	seed := fs.Uint64("seed", 1, "random seed")
	plain := fs.Bool("plain-socket", false, "give go-zookeeper a plain net.Conn (no buffered reads, no write coalescing)")
	bottleneck := fs.Float64("bottleneck", 0.9, "flag the run if the generator used more than this fraction of its cores")
	drainTimeout := fs.Duration("drain-timeout", 60*time.Second, "how long to wait for outstanding requests after the window")
	label := fs.String("label", "", "free text copied into the output")
	out := fs.String("out", "", "output file (default stdout)")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's CPU profile (pprof) to this file")
	fs.Parse(args)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	mix, err := parseMix(*mixS)
	if err != nil {
		return err
	}
	more, err := parsePIDs(*morePIDs)
	if err != nil {
		return err
	}
	cfg := runConfig{
		Servers: splitServers(*servers), Sessions: *sessions, Outstanding: *outstanding, Mix: mix,
		ValueSize: *valueSize, DurationS: duration.Seconds(), WarmupS: warmup.Seconds(),
		Populate: *populate, Children: *children, Rate: *rate, Prefix: strings.TrimRight(*prefix, "/"),
		ServerPID: *serverPID, MorePIDs: more, PinSessions: *pinSessions, Seed: *seed, PlainSocket: *plain, Bottleneck: *bottleneck,
		DrainTimeout: drainTimeout.Seconds(), Label: *label,
	}
	if cfg.Sessions < 1 || cfg.Outstanding < 1 {
		return fmt.Errorf("-sessions and -outstanding must be >= 1")
	}
	needData := mix["get"]+mix["set"]+mix["exists"] > 0 || mix["multi"] > 0
	if needData && cfg.Populate < 1 {
		return fmt.Errorf("-populate must be >= 1 for get/set/exists/multi")
	}
	if mix["multi"] > 0 && cfg.Populate < 2 {
		return fmt.Errorf("-populate must be >= 2 for multi")
	}
	r := &runner{cfg: cfg, errKinds: map[string]int64{}}
	for a := action(0); a < nActions; a++ {
		r.total += mix[actionNames[a]]
		r.weights = append(r.weights, r.total)
	}
	if r.total == 0 {
		return fmt.Errorf("empty -mix")
	}
	return r.run(*out, *duration, *warmup, *drainTimeout)
}

func (r *runner) noteErr(k opKind, err error) {
	r.errMu.Lock()
	r.errKinds[kindNames[k]+": "+err.Error()]++
	r.errMu.Unlock()
}

func (r *runner) noteBad(format string, args ...interface{}) {
	if r.badData.Add(1) <= 10 {
		r.badDataMu.Lock()
		r.badDataEx = append(r.badDataEx, fmt.Sprintf(format, args...))
		r.badDataMu.Unlock()
	}
}

func (r *runner) record(k opKind, start, end time.Time, err error) {
	st := &r.stats[k]
	st.answered.Add(1)
	inWin := !end.Before(r.ws) && end.Before(r.we)
	if err != nil {
		st.errTotal.Add(1)
		if inWin {
			st.errWindow.Add(1)
		}
		r.noteErr(k, err)
		return
	}
	if inWin {
		st.okWindow.Add(1)
		st.hist.add(end.Sub(start))
	}
}

func (r *runner) value(rng *rand.Rand) []byte {
	off := rng.IntN(len(r.pool) - r.cfg.ValueSize + 1)
	return r.pool[off : off+r.cfg.ValueSize]
}

func (r *runner) pick(rng *rand.Rand) action {
	x := rng.IntN(r.total)
	for a, w := range r.weights {
		if x < w {
			return action(a)
		}
	}
	return nActions - 1
}

// do executes one action; start is its intended start (rate mode) or now.
func (r *runner) do(c *zk.Conn, rng *rand.Rand, a action, start time.Time) {
	switch a {
	case aGet:
		i := rng.IntN(len(r.dataPaths))
		r.stats[kGet].issued.Add(1)
		data, _, err := c.Get(r.dataPaths[i])
		r.record(kGet, start, time.Now(), err)
		if err == nil && len(data) != r.cfg.ValueSize {
			r.noteBad("getData %s: %d bytes, want %d", r.dataPaths[i], len(data), r.cfg.ValueSize)
		}
	case aSet:
		i := rng.IntN(len(r.dataPaths))
		r.stats[kSet].issued.Add(1)
		_, err := c.Set(r.dataPaths[i], r.value(rng), -1)
		r.record(kSet, start, time.Now(), err)
		r.countSet(i, err)
	case aExists:
		i := rng.IntN(len(r.dataPaths))
		r.stats[kExists].issued.Add(1)
		ok, _, err := c.Exists(r.dataPaths[i])
		r.record(kExists, start, time.Now(), err)
		if err == nil && !ok {
			r.noteBad("exists %s: false", r.dataPaths[i])
		}
	case aChildren:
		p := r.cfg.Prefix + "/list"
		r.stats[kChildren].issued.Add(1)
		ch, _, err := c.Children(p)
		r.record(kChildren, start, time.Now(), err)
		if err == nil && len(ch) != r.cfg.Children {
			r.noteBad("getChildren %s: %d children, want %d", p, len(ch), r.cfg.Children)
		}
	case aCreateDelete:
		r.stats[kCreate].issued.Add(1)
		name, err := c.Create(r.cfg.Prefix+"/seq/s-", r.value(rng), zk.FlagSequence, zk.WorldACL(zk.PermAll))
		t := time.Now()
		r.record(kCreate, start, t, err)
		switch {
		case err == nil:
			r.createOK.Add(1)
		case !definite(err):
			r.createAmb.Add(1)
		}
		if err != nil {
			return
		}
		r.stats[kDelete].issued.Add(1)
		err = c.Delete(name, 0)
		r.record(kDelete, t, time.Now(), err)
		switch {
		case err == nil:
			r.deleteOK.Add(1)
		case !definite(err):
			r.deleteAmb.Add(1)
		}
	case aMulti:
		i := rng.IntN(len(r.dataPaths))
		j := rng.IntN(len(r.dataPaths) - 1)
		if j >= i {
			j++
		}
		r.stats[kMulti].issued.Add(1)
		res, err := c.Multi(
			&zk.SetDataRequest{Path: r.dataPaths[i], Data: r.value(rng), Version: -1},
			&zk.SetDataRequest{Path: r.dataPaths[j], Data: r.value(rng), Version: -1},
		)
		if err == nil {
			for _, op := range res {
				if op.Error != nil {
					err = op.Error
					break
				}
			}
		}
		r.record(kMulti, start, time.Now(), err)
		r.countSet(i, err)
		r.countSet(j, err)
	}
}

func (r *runner) countSet(i int, err error) {
	switch {
	case err == nil:
		r.setOK[i].Add(1)
	case !definite(err):
		r.setAmb[i].Add(1)
	}
}

// prepare creates the tree (idempotent).
func (r *runner) prepare() error {
	c := r.conns[0]
	p := r.cfg.Prefix
	for _, q := range []string{p, p + "/data", p + "/list", p + "/seq"} {
		if err := createIfMissing(c, q, nil); err != nil {
			return err
		}
	}
	r.dataPaths = make([]string, r.cfg.Populate)
	for i := range r.dataPaths {
		r.dataPaths[i] = fmt.Sprintf("%s/data/n-%07d", p, i)
	}
	workers := len(r.conns) * min(r.cfg.Outstanding, 64)
	err := parallel(r.conns, workers, int64(len(r.dataPaths)), func(c *zk.Conn, i int64) error {
		v := make([]byte, r.cfg.ValueSize)
		fillValue(v, uint64(i)+r.cfg.Seed<<32)
		return createIfMissing(c, r.dataPaths[i], v)
	})
	if err != nil {
		return err
	}
	return parallel(r.conns, workers, int64(r.cfg.Children), func(c *zk.Conn, i int64) error {
		return createIfMissing(c, fmt.Sprintf("%s/list/c-%03d", p, i), []byte("x"))
	})
}

// versions reads the data version of every data node.
func (r *runner) versions() ([]int32, error) {
	v := make([]int32, len(r.dataPaths))
	workers := len(r.conns) * min(r.cfg.Outstanding, 64)
	err := parallel(r.conns, workers, int64(len(r.dataPaths)), func(c *zk.Conn, i int64) error {
		ok, st, err := c.Exists(r.dataPaths[i])
		if err != nil {
			return fmt.Errorf("exists %s: %w", r.dataPaths[i], err)
		}
		if !ok {
			return fmt.Errorf("exists %s: missing", r.dataPaths[i])
		}
		v[i] = st.Version
		return nil
	})
	return v, err
}

type seqState struct {
	Cversion int32 `json:"cversion"`
	Children int   `json:"children"`
}

func (r *runner) seqState() (seqState, error) {
	ch, st, err := r.conns[0].Children(r.cfg.Prefix + "/seq")
	if err != nil {
		return seqState{}, err
	}
	return seqState{Cversion: st.Cversion, Children: len(ch)}, nil
}

func (r *runner) dispatch(start time.Time) {
	interval := float64(time.Second) / r.cfg.Rate
	var i int64
	for {
		next := start.Add(time.Duration(float64(i) * interval))
		if !next.Before(r.we) {
			close(r.tokens)
			return
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		for {
			next = start.Add(time.Duration(float64(i) * interval))
			if next.After(now) || !next.Before(r.we) {
				break
			}
			r.tokens <- next
			i++
		}
	}
}

func (r *runner) run(out string, duration, warmup, drainTimeout time.Duration) error {
	cfg := r.cfg
	pool := make([]byte, 1<<16+cfg.ValueSize)
	fillValue(pool, cfg.Seed*7919+1)
	r.pool = pool

	t0 := time.Now()
	conns, err := connectAll(cfg.Servers, cfg.Sessions, cfg.PlainSocket, cfg.PinSessions)
	if err != nil {
		return err
	}
	r.conns = conns
	if err := r.prepare(); err != nil {
		return fmt.Errorf("populate: %w", err)
	}
	populateS := time.Since(t0).Seconds()
	r.setOK = make([]atomic.Int64, len(r.dataPaths))
	r.setAmb = make([]atomic.Int64, len(r.dataPaths))
	useVersions := cfg.Mix["set"] > 0 || cfg.Mix["multi"] > 0
	var v0 []int32
	if useVersions {
		if v0, err = r.versions(); err != nil {
			return fmt.Errorf("reading initial versions: %w", err)
		}
	}
	seq0, err := r.seqState()
	if err != nil {
		return fmt.Errorf("reading %s/seq: %w", cfg.Prefix, err)
	}
	runtime.GC()

	start := time.Now()
	r.ws = start.Add(warmup)
	r.we = r.ws.Add(duration)
	if cfg.Rate > 0 {
		r.tokens = make(chan time.Time, 8192)
		go r.dispatch(start)
	}

	// CPU samples at the window's edges.
	var cpuA, cpuB cpuSample
	var cpuWG sync.WaitGroup
	cpuWG.Add(1)
	go func() {
		defer cpuWG.Done()
		time.Sleep(time.Until(r.ws))
		cpuA = sampleCPU(cfg.ServerPID, cfg.MorePIDs...)
		time.Sleep(time.Until(r.we))
		cpuB = sampleCPU(cfg.ServerPID, cfg.MorePIDs...)
	}()

	var wg sync.WaitGroup
	for s := 0; s < cfg.Sessions; s++ {
		for k := 0; k < cfg.Outstanding; k++ {
			wg.Add(1)
			go func(c *zk.Conn, id uint64) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(cfg.Seed, id))
				for {
					var st time.Time
					if r.tokens != nil {
						t, ok := <-r.tokens
						if !ok {
							return
						}
						st = t
					} else {
						st = time.Now()
						if !st.Before(r.we) {
							return
						}
					}
					r.do(c, rng, r.pick(rng), st)
				}
			}(conns[s], uint64(s*cfg.Outstanding+k+1))
		}
	}
	cpuWG.Wait()

	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	timedOut := false
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		timedOut = true
	}
	drainS := time.Since(r.we).Seconds()

	// Results.
	res := map[string]interface{}{"kind": "run", "config": cfg, "generator": generatorInfo()}
	var okTotal, errWin, unanswered uint64
	var all hist
	ops := map[string]interface{}{}
	for k := opKind(0); k < nKinds; k++ {
		st := &r.stats[k]
		iss := st.issued.Load()
		if iss == 0 {
			continue
		}
		ans := st.answered.Load()
		okTotal += st.okWindow.Load()
		errWin += st.errWindow.Load()
		unanswered += iss - ans
		all.merge(&st.hist)
		ops[kindNames[k]] = map[string]interface{}{
			"ok":            st.okWindow.Load(),
			"ops_per_s":     round3(float64(st.okWindow.Load()) / duration.Seconds()),
			"errors_window": st.errWindow.Load(),
			"errors_total":  st.errTotal.Load(),
			"issued":        iss,
			"answered":      ans,
			"latency":       st.hist.summary(),
		}
	}
	res["ops"] = ops
	res["total"] = map[string]interface{}{
		"ok": okTotal, "ops_per_s": round3(float64(okTotal) / duration.Seconds()),
		"errors_window": errWin, "latency": all.summary(),
	}
	cpu := compareCPU(cpuA, cpuB, cfg.ServerPID, runtime.NumCPU(), okTotal+errWin, cfg.Bottleneck)
	res["cpu"] = cpu
	if cfg.Rate > 0 {
		res["rate"] = map[string]interface{}{"target_per_s": cfg.Rate, "achieved_ops_per_s": round3(float64(okTotal+errWin) / duration.Seconds())}
	}
	r.errMu.Lock()
	res["errors"] = r.errKinds
	r.errMu.Unlock()
	res["session_events"] = map[string]int64{
		"disconnects": disconnects.Load(), "expirations": expirations.Load(), "client_log_lines": zkLogger.n.Load(),
	}

	// Self-checks.
	failures := []string{}
	checks := map[string]interface{}{"unanswered": unanswered, "drain_s": round3(drainS)}
	if timedOut || unanswered > 0 {
		failures = append(failures, fmt.Sprintf("%d requests unanswered %0.fs after the window", unanswered, drainTimeout.Seconds()))
	}
	if n := r.badData.Load(); n > 0 {
		failures = append(failures, fmt.Sprintf("%d replies with unexpected content, e.g. %v", n, r.badDataEx))
	}
	checks["bad_replies"] = r.badData.Load()
	tv := time.Now()
	if !timedOut {
		if useVersions {
			v1, err := r.versions()
			if err != nil {
				failures = append(failures, "reading final versions: "+err.Error())
			} else {
				var mism, okSum, ambSum int64
				var ex []string
				for i := range v1 {
					got := int64(v1[i] - v0[i])
					want, amb := r.setOK[i].Load(), r.setAmb[i].Load()
					okSum += want
					ambSum += amb
					if got < want || got > want+amb {
						mism++
						if len(ex) < 5 {
							ex = append(ex, fmt.Sprintf("%s: version %d -> %d, %d successful setData (+%d unknown)", r.dataPaths[i], v0[i], v1[i], want, amb))
						}
					}
				}
				checks["set_versions"] = map[string]interface{}{
					"nodes": len(v1), "successful_sets": okSum, "unknown_outcome_sets": ambSum, "mismatches": mism,
				}
				if mism > 0 {
					failures = append(failures, fmt.Sprintf("setData versions do not add up on %d nodes: %v", mism, ex))
				}
			}
		}
		if cfg.Mix["createdelete"] > 0 {
			seq1, err := r.seqState()
			if err != nil {
				failures = append(failures, "reading "+cfg.Prefix+"/seq: "+err.Error())
			} else {
				cOK, cAmb, dOK, dAmb := r.createOK.Load(), r.createAmb.Load(), r.deleteOK.Load(), r.deleteAmb.Load()
				dCv := int64(seq1.Cversion - seq0.Cversion)
				dCh := int64(seq1.Children - seq0.Children)
				checks["create_delete"] = map[string]interface{}{
					"creates": cOK, "deletes": dOK, "unknown_creates": cAmb, "unknown_deletes": dAmb,
					"parent_cversion_delta": dCv, "children_left": dCh,
				}
				if dCv < cOK+dOK || dCv > cOK+dOK+cAmb+dAmb {
					failures = append(failures, fmt.Sprintf("%s/seq cversion moved by %d, but %d creates + %d deletes succeeded (+%d unknown)", cfg.Prefix, dCv, cOK, dOK, cAmb+dAmb))
				}
				if dCh < cOK-dOK-dAmb || dCh > cOK+cAmb-dOK {
					failures = append(failures, fmt.Sprintf("%s/seq has %d children more than before, but %d creates and %d deletes succeeded", cfg.Prefix, dCh, cOK, dOK))
				}
			}
		}
	}
	checks["verify_s"] = round3(time.Since(tv).Seconds())
	sort.Strings(failures)
	checks["ok"] = len(failures) == 0
	checks["failures"] = failures
	res["checks"] = checks
	res["phases"] = map[string]float64{"connect_populate_s": round3(populateS), "drain_s": round3(drainS)}

	if err := writeJSON(out, res); err != nil {
		return err
	}
	if timedOut {
		// Goroutines are stuck in requests the server never answered.
		os.Exit(3)
	}
	closeAll(conns)
	return nil
}
