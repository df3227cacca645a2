package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clkTck is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is 100 on
// every Linux architecture Go supports (sysconf(_SC_CLK_TCK) without cgo).
const clkTck = 100

// procCPU returns utime+stime of process pid (all its threads, including
// exited ones) in seconds, from /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// comm (field 2) may contain spaces; fields after the last ')' are fixed.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime/stime in /proc/%d/stat", pid)
	}
	return float64(ut+st) / clkTck, nil
}

// procMem returns VmRSS and VmHWM (peak RSS) of pid in KiB.
func procMem(pid int) (rssKB, hwmKB int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rssKB
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwmKB
		default:
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 2 {
			*dst, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return rssKB, hwmKB, nil
}

// selfCPU is this process's user+system CPU time (getrusage RUSAGE_SELF).
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// cpuSample is one reading at one instant of the generator's and the
// server's CPU time.
type cpuSample struct {
	at       time.Time
	self     float64
	server   float64
	serverOK bool
}

// sampleCPU reads the generator's CPU time and the server's, summed over serverPID and
// more (an ensemble's other members); serverOK only if every one could be read.
func sampleCPU(serverPID int, more ...int) cpuSample {
	s := cpuSample{at: time.Now(), self: selfCPU()}
	if serverPID > 0 {
		s.serverOK = true
		for _, pid := range append([]int{serverPID}, more...) {
			v, err := procCPU(pid)
			s.server += v
			s.serverOK = s.serverOK && err == nil
		}
	}
	return s
}

// cpuReport compares two samples. ops is the number of operations completed
// in between (for CPU per op). bottleneckFrac: generator CPU above this
// fraction of the cores it may use flags the run.
type cpuReport struct {
	WallS               float64 `json:"wall_s"`
	GeneratorCPUS       float64 `json:"generator_cpu_s"`
	GeneratorCores      int     `json:"generator_cores"`
	GeneratorUtil       float64 `json:"generator_util"` // of the cores it may use, 0..1
	GeneratorBottleneck bool    `json:"generator_bottleneck"`
	GeneratorCPUUsPerOp float64 `json:"generator_cpu_us_per_op,omitempty"`
	ServerPID           int     `json:"server_pid,omitempty"`
	ServerCPUS          float64 `json:"server_cpu_s,omitempty"`
	ServerUtil          float64 `json:"server_util,omitempty"` // of one core
	ServerCPUUsPerOp    float64 `json:"server_cpu_us_per_op,omitempty"`
	ServerRSSKB         int64   `json:"server_vmrss_kb,omitempty"`
	ServerHWMKB         int64   `json:"server_vmhwm_kb,omitempty"`
	ServerCPUNote       string  `json:"server_cpu_note,omitempty"`
}

func compareCPU(a, b cpuSample, serverPID int, cores int, ops uint64, bottleneckFrac float64) cpuReport {
	wall := b.at.Sub(a.at).Seconds()
	r := cpuReport{WallS: round3(wall), GeneratorCores: cores}
	r.GeneratorCPUS = round3(b.self - a.self)
	if wall > 0 && cores > 0 {
		r.GeneratorUtil = round3((b.self - a.self) / wall / float64(cores))
		r.GeneratorBottleneck = r.GeneratorUtil > bottleneckFrac
	}
	if ops > 0 {
		r.GeneratorCPUUsPerOp = round3((b.self - a.self) / float64(ops) * 1e6)
	}
	if serverPID > 0 {
		r.ServerPID = serverPID
		if a.serverOK && b.serverOK {
			d := b.server - a.server
			r.ServerCPUS = round3(d)
			if wall > 0 {
				r.ServerUtil = round3(d / wall)
			}
			if ops > 0 {
				r.ServerCPUUsPerOp = round3(d / float64(ops) * 1e6)
			}
		} else {
			r.ServerCPUNote = "could not read /proc/PID/stat of the server"
		}
		if rss, hwm, err := procMem(serverPID); err == nil {
			r.ServerRSSKB, r.ServerHWMKB = rss, hwm
		}
	}
	return r
}
