#!/usr/bin/env python3
"""ferrokeeper vs Apache ZooKeeper 3.9.5: one benchmark run, same machine,
same load generator, alternating A/B, reported as ratios.

    compat-tests/bench/bench.sh [--quick] [options]     (see --help, README.md)

What it does:
  1. builds the load generator (compat-tests/bench/loadgen, Go, go-zookeeper
     v1.0.4 from the Go module proxy) and, unless FERROKEEPER_BIN is set,
     ferrokeeper (`cargo build --release -p ferrokeeper`); the binary is copied
     so a concurrent rebuild cannot change it mid-run;
  2. measures the physical floors: 4 KiB write + fdatasync on the data disk,
     TCP ping-pong on 127.0.0.1;
  3. for each repetition, for each scenario, runs Apache ZooKeeper and
     ferrokeeper one after the other (the order alternates per repetition),
     each on a fresh server started by compat-tests/lib/{apache-zk,ferrokeeper}.sh
     pinned to one core (taskset), the generator pinned to the other;
  4. writes results/<kind>-<time>-<commit>/report.md, report.json and raw/.

Standard library only.
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPAT = HERE.parent
REPO = COMPAT.parent
LIB = COMPAT / "lib"
CACHE = Path(os.environ.get("COMPAT_CACHE_DIR", COMPAT / ".cache")).resolve()
BENCH_CACHE = CACHE / "bench"
GO_DIR = CACHE / "go"
LOADGEN_SRC = HERE / "loadgen"
LOADGEN = BENCH_CACHE / "loadgen"
ZK_VERSION = "3.9.5"

KINDS = {
    "apache": {"script": LIB / "apache-zk.sh", "title": "Apache ZooKeeper %s" % ZK_VERSION, "port_off": 0},
    "ferrokeeper": {"script": LIB / "ferrokeeper.sh", "title": "ferrokeeper", "port_off": 10},
}

# name -> (description, kind, loadgen settings)
#   kind "throughput": closed loop, many sessions; "latency": 1 session x 1
#   outstanding; "half": rate-limited at half of Apache's "mix" throughput of
#   the same repetition; "bigtree": create N znodes, kill -9, restart, read.
SCENARIOS = {
    "get": ("getData", "throughput", {"mix": "get=100"}),
    "set": ("setData", "throughput", {"mix": "set=100"}),
    "createdelete": ("create + delete (sequential)", "throughput", {"mix": "createdelete=100"}),
    "mix": ("90/10 getData/setData", "throughput", {"mix": "get=90,set=10"}),
    "allops": ("all ops: get 40, exists 15, getChildren 10, set 15, create+delete 10, multi(2 setData) 10",
               "throughput", {"mix": "get=40,exists=15,children=10,set=15,createdelete=10,multi=10"}),
    "lat-get": ("getData, 1 session x 1 outstanding", "latency", {"mix": "get=100"}),
    "lat-set": ("setData, 1 session x 1 outstanding", "latency", {"mix": "set=100"}),
    "half-mix": ("90/10 mix at half of Apache ZooKeeper's maximum", "half", {"mix": "get=90,set=10"}),
    "bigtree": ("N znodes: creation, RSS, restart after kill -9", "bigtree", {}),
}
DEFAULT_SCENARIOS = list(SCENARIOS)

STARTED = {}  # server name -> kind, for cleanup
ECHO_PROCS = []


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- helpers

def run(cmd, env=None, timeout=None, check=True, capture=True, cwd=None):
    p = subprocess.run([str(c) for c in cmd], env=env, timeout=timeout, cwd=cwd,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.PIPE if capture else None, text=True)
    if check and p.returncode != 0:
        raise BenchError("%s failed (exit %d):\n%s%s" % (" ".join(map(str, cmd)), p.returncode,
                                                         (p.stdout or "")[-3000:], (p.stderr or "")[-3000:]))
    return p


def go_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    for k in ("GOPROXY", "GONOPROXY", "GOPRIVATE", "GONOSUMDB", "GOSUMDB", "GOINSECURE"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update({
        "GOPATH": str(GO_DIR), "GOMODCACHE": str(GO_DIR / "mod"), "GOCACHE": str(GO_DIR / "build"),
        "GOFLAGS": "-modcacherw -mod=readonly", "GOTOOLCHAIN": "local", "GO111MODULE": "on",
        "GOWORK": "off", "GOENV": "off", "CGO_ENABLED": "0",
    })
    return env


def build_loadgen():
    if not shutil.which("go"):
        raise BenchError("`go` is not on PATH (the load generator is a Go program)")
    BENCH_CACHE.mkdir(parents=True, exist_ok=True)
    log("building the load generator (go build, go-zookeeper from the Go module proxy)")
    run(["go", "build", "-trimpath", "-o", LOADGEN, "."], env=go_env(), cwd=LOADGEN_SRC, timeout=900)
    return run(["go", "version"], env=go_env()).stdout.strip()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def git(*args):
    p = run(["git", "-C", REPO] + list(args), check=False)
    return p.stdout.strip() if p.returncode == 0 else ""


def prepare_ferrokeeper(no_build):
    """Build (unless FERROKEEPER_BIN is set or --no-build) and snapshot the binary."""
    given = os.environ.get("FERROKEEPER_BIN")
    info = {}
    if given:
        src = Path(given)
        info["source"] = "FERROKEEPER_BIN=%s (not built by this run)" % given
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        src = target / "release" / "ferrokeeper"
        if no_build:
            info["source"] = "%s (--no-build)" % src
        else:
            log("cargo build --release -p ferrokeeper (CARGO_TARGET_DIR=%s)" % target)
            t = time.monotonic()
            run(["cargo", "build", "--release", "-p", "ferrokeeper"], cwd=REPO, timeout=7200, capture=False)
            info["source"] = "cargo build --release -p ferrokeeper (%s), %.0f s" % (src, time.monotonic() - t)
            info["built_from_commit"] = git("rev-parse", "HEAD")
            info["built_from_dirty_tree"] = bool(git("status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock"))
    if not src.is_file() or not os.access(src, os.X_OK):
        raise BenchError("ferrokeeper binary not found at %s" % src)
    BENCH_CACHE.mkdir(parents=True, exist_ok=True)
    dst = BENCH_CACHE / "ferrokeeper"
    shutil.copy2(src, dst)
    info.update({"binary": str(dst), "sha256": sha256(dst),
                 "mtime": dt.datetime.fromtimestamp(src.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")})
    return info


def machine_info(data_dir):
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    disk = run(["findmnt", "-no", "SOURCE,FSTYPE", "-T", data_dir], check=False).stdout.strip()
    rot = ""
    m = re.match(r"/dev/([a-z]+)", disk)
    if m:
        try:
            rot = Path("/sys/block/%s/queue/rotational" % m.group(1)).read_text().strip()
        except OSError:
            pass
    return {
        "cpu_model": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "memory_gib": round(mem_kb / 1048576, 1), "hostname": platform.node(),
        "data_dir": str(data_dir), "data_disk": disk, "data_disk_rotational_flag": rot,
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
    }


def java_version():
    p = run([os.environ.get("JAVA", "java"), "-version"], check=False)
    return (p.stderr or p.stdout).strip().splitlines()[0] if (p.stderr or p.stdout) else "?"


def median_min_max(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v), "values": v}


# ---------------------------------------------------------------- servers

class Server:
    def __init__(self, kind, args):
        self.kind = kind
        self.name = "bench-%s" % kind
        self.port = args.base_port + KINDS[kind]["port_off"]
        self.script = KINDS[kind]["script"]
        self.args = args
        self.dir = args.run_root / self.name
        self.pid = None

    def env(self, nowait=False):
        e = dict(os.environ)
        e.update({
            "COMPAT_RUN_ROOT": str(self.args.run_root),
            "COMPAT_SERVER_CPUS": self.args.server_cpu,
            "COMPAT_ZK_HEAP_OPTS": self.args.zk_jvm_opts,
            "FERROKEEPER_BIN": str(self.args.fk_bin),
            "COMPAT_START_TIMEOUT": "120",
        })
        if self.args.zk_standalone:
            e["COMPAT_ZK_STANDALONE"] = "1"
        else:
            e.pop("COMPAT_ZK_STANDALONE", None)
        e.pop("COMPAT_ZK_EXTRA", None)
        if nowait:
            e["COMPAT_START_NOWAIT"] = "1"
        else:
            e.pop("COMPAT_START_NOWAIT", None)
        return e

    def start(self, restart=False, nowait=False):
        STARTED[self.name] = self
        run([self.script, "restart" if restart else "start", self.name, self.port],
            env=self.env(nowait), timeout=300)
        self.pid = int((self.dir / "server.pid").read_text())
        cfg = (self.dir / "zoo.cfg").read_text()
        if re.search(r"^\s*forceSync\s*=\s*no", cfg, re.M):
            raise BenchError("zoo.cfg turns forceSync off")
        return self.pid

    def launch_time_ns(self):
        # Written by the launching subshell, which may not have run yet when the start script
        # returns without waiting (a busy machine right after a kill -9): wait for it, bounded.
        deadline = time.monotonic() + 10
        while True:
            try:
                s = (self.dir / "launch.time").read_text().strip()
            except FileNotFoundError:
                s = ""
            if s or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        sec, _, frac = s.replace(",", ".").partition(".")
        return int(sec) * 10**9 + int((frac + "000000000")[:9])

    def alive(self):
        """The server process exists and is not a zombie."""
        try:
            stat = Path("/proc/%d/stat" % self.pid).read_text()
        except (OSError, TypeError):
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def is_ours(self, pid):
        try:
            args = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self.dir / "zoo.cfg").encode() in args

    def kill9(self):
        """SIGKILL the server, wait until it has exited and its port is closed."""
        pid = self.pid
        if not self.is_ours(pid):
            raise BenchError("pid %d is not %s's server" % (pid, self.name))
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        # /proc/PID/cmdline empties when the memory is released, before the
        # files (sockets) are closed; the process is done once it is gone or
        # a zombie.
        while time.monotonic() < deadline:
            try:
                state = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                break
            if state in ("Z", "X"):
                break
            time.sleep(0.02)
        while time.monotonic() < deadline and port_open(self.port):
            time.sleep(0.05)
        (self.dir / "server.pid").unlink(missing_ok=True)

    def stop(self):
        run([self.script, "stop", self.name], env=self.env(), timeout=120, check=False)
        STARTED.pop(self.name, None)

    def log_tail(self, n=30):
        f = self.dir / "log" / ("zookeeper.log" if self.kind == "apache" else "stdout.log")
        try:
            return "\n".join(f.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def mem(self):
        out = {}
        try:
            for line in Path("/proc/%d/status" % self.pid).read_text().splitlines():
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        except OSError:
            pass
        return out


def port_open(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def cleanup():
    for p in ECHO_PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()
    for name, srv in list(STARTED.items()):
        log("cleanup: stopping %s" % name)
        srv.stop()


def on_signal(signum, frame):
    log("signal %d: stopping the servers and exiting" % signum)
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------- measurements

def gen_cmd(args):
    return ["taskset", "-c", args.gen_cpu, LOADGEN]


def floors(args, raw):
    log("physical floors: fsync on %s, loopback ping-pong" % args.run_root)
    args.run_root.mkdir(parents=True, exist_ok=True)
    fs = json.loads(run(["taskset", "-c", args.server_cpu, LOADGEN, "fsync", "-dir", args.run_root,
                         "-count", args.fsync_count, "-out", "-"], timeout=1800).stdout)
    (raw / "floor-fsync.json").write_text(json.dumps(fs, indent=1))
    addr = "127.0.0.1:%d" % (args.base_port + 20)
    echo = subprocess.Popen(["taskset", "-c", args.server_cpu, str(LOADGEN), "echo", "-listen", addr],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ECHO_PROCS.append(echo)
    try:
        if not echo.stdout.readline().strip():
            raise BenchError("echo server did not start on %s: %s" % (addr, echo.stderr.read()[-500:]))
        pp = json.loads(run(gen_cmd(args) + ["ping", "-server", addr, "-count", args.ping_count], timeout=600).stdout)
    finally:
        echo.kill()
        echo.wait()
    (raw / "floor-ping.json").write_text(json.dumps(pp, indent=1))
    return {"fsync_append": fs["append"], "fsync_overwrite": fs["overwrite"], "loopback_rtt": pp["rtt"],
            "fsync_size": fs["size"], "ping_size": pp["size"]}


def summarize_run(d):
    """The numbers a report needs from one loadgen `run` output."""
    cpu = d.get("cpu", {})
    s = {
        "ops_per_s": d["total"]["ops_per_s"],
        "p50_us": d["total"]["latency"]["p50_us"], "p99_us": d["total"]["latency"]["p99_us"],
        "p999_us": d["total"]["latency"]["p999_us"], "max_us": d["total"]["latency"]["max_us"],
        "server_cpu_us_per_op": cpu.get("server_cpu_us_per_op"), "server_util": cpu.get("server_util"),
        "server_vmhwm_kb": cpu.get("server_vmhwm_kb"), "server_vmrss_kb": cpu.get("server_vmrss_kb"),
        "generator_util": cpu.get("generator_util"), "generator_bottleneck": cpu.get("generator_bottleneck"),
        "generator_cpu_us_per_op": cpu.get("generator_cpu_us_per_op"),
        "errors": sum(v.get("errors_total", 0) for v in d["ops"].values()),
        "checks_ok": d["checks"]["ok"], "check_failures": d["checks"].get("failures") or [],
        "disconnects": d["session_events"]["disconnects"],
        "per_op": {k: {"ops_per_s": v["ops_per_s"], "p50_us": v["latency"]["p50_us"],
                       "p99_us": v["latency"]["p99_us"], "p999_us": v["latency"]["p999_us"],
                       "errors": v["errors_total"]} for k, v in d["ops"].items()},
    }
    if "rate" in d:
        s["target_per_s"] = d["rate"]["target_per_s"]
        s["achieved_per_s"] = d["rate"]["achieved_ops_per_s"]
    if d.get("errors"):
        s["error_kinds"] = d["errors"]
    return s


def run_load(args, srv, scen, rep, raw, rate=None):
    desc, kind, opts = SCENARIOS[scen]
    sessions, outstanding = (1, 1) if kind == "latency" else (args.sessions, args.outstanding)
    out = raw / ("%s-%s-rep%d.json" % (scen, srv.kind, rep))
    res = {"scenario": scen, "server": srv.kind, "rep": rep, "raw": str(out.relative_to(raw.parent)),
           "sessions": sessions, "outstanding": outstanding}
    try:
        srv.start()
    except BenchError as e:
        res["failed"] = "server did not start: %s" % e
        res["server_log_tail"] = srv.log_tail()
        srv.stop()
        return res
    cmd = gen_cmd(args) + ["run", "-servers", "127.0.0.1:%d" % srv.port, "-sessions", sessions,
                           "-outstanding", outstanding, "-mix", opts["mix"], "-value-size", args.value_size,
                           "-duration", "%gs" % args.duration, "-warmup", "%gs" % args.warmup,
                           "-populate", args.populate, "-server-pid", srv.pid, "-seed", rep + 1,
                           "-label", "%s/%s/rep%d" % (scen, srv.kind, rep), "-out", out]
    if rate:
        cmd += ["-rate", "%.3f" % rate]
    try:
        p = run(cmd, timeout=args.warmup + args.duration + 900, check=False)
        if p.stderr.strip():
            (raw / ("%s-%s-rep%d.stderr.txt" % (scen, srv.kind, rep))).write_text(p.stderr)
        if not out.exists():
            raise BenchError("loadgen run failed (exit %d): %s" % (p.returncode, p.stderr[-2000:]))
        res.update(summarize_run(json.loads(out.read_text())))
        if p.returncode != 0:
            res["check_failures"] = res.get("check_failures", []) + ["loadgen exit %d" % p.returncode]
            res["checks_ok"] = False
        if not srv.alive():
            res["server_died"] = True
            res["server_log_tail"] = srv.log_tail()
    except (BenchError, subprocess.TimeoutExpired) as e:
        res["failed"] = str(e)[-3000:]
        res["server_log_tail"] = srv.log_tail()
    finally:
        srv.stop()
    return res


def du_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def run_bigtree(args, srv, rep, raw):
    out = raw / ("bigtree-%s-rep%d.json" % (srv.kind, rep))
    pout = raw / ("bigtree-%s-rep%d.probe.json" % (srv.kind, rep))
    res = {"scenario": "bigtree", "server": srv.kind, "rep": rep, "raw": str(out.relative_to(raw.parent)),
           "count": args.bigtree_count}
    try:
        srv.start()
        p = run(gen_cmd(args) + ["populate", "-servers", "127.0.0.1:%d" % srv.port, "-count", args.bigtree_count,
                                 "-value-size", args.bigtree_value_size, "-sessions", args.sessions,
                                 "-outstanding", args.outstanding, "-server-pid", srv.pid, "-out", out],
                timeout=7200, check=False)
        if not out.exists():
            raise BenchError("loadgen populate failed (exit %d): %s" % (p.returncode, p.stderr[-2000:]))
        d = json.loads(out.read_text())
        res.update({
            "create_s": d["elapsed_s"], "creates_per_s": d["creates_per_s"],
            "server_cpu_us_per_op": d["cpu"].get("server_cpu_us_per_op"),
            "generator_util": d["cpu"].get("generator_util"),
            "generator_bottleneck": d["cpu"].get("generator_bottleneck"),
            "checks_ok": d["checks"]["ok"], "check_failures": d["checks"]["failures"] or [],
            "errors": 0,
        })
        time.sleep(1)
        m = srv.mem()
        res["rss_after_create_kb"] = m.get("VmRSS")
        res["hwm_after_create_kb"] = m.get("VmHWM")
        res["data_bytes"] = du_bytes(srv.dir / "data")
        last = d["last_node"]
        # kill -9, restart on the same data, time until a getData is served
        srv.kill9()
        # The first start's launch time must not be read for this one.
        (srv.dir / "launch.time").unlink(missing_ok=True)
        srv.start(restart=True, nowait=True)
        since = srv.launch_time_ns()
        p = run(gen_cmd(args) + ["probe", "-server", "127.0.0.1:%d" % srv.port, "-path", last,
                                 "-expect-index", args.bigtree_count - 1, "-value-size", args.bigtree_value_size,
                                 "-since", since, "-timeout", "%ds" % args.restart_timeout, "-out", pout],
                timeout=args.restart_timeout + 120, check=False)
        pr = json.loads(pout.read_text()) if pout.exists() else {}
        if not pr.get("ok"):
            raise BenchError("restart: %s not served: %s" % (last, pr.get("last_error") or p.stderr[-1000:]))
        res["restart_s"] = pr["since_start_s"]
        if pr.get("first_wrong_answer"):
            res["check_failures"].append("after restart, a read was answered wrongly first: %s" % pr["first_wrong_answer"])
            res["checks_ok"] = False
        time.sleep(1)
        m = srv.mem()
        res["rss_after_restart_kb"] = m.get("VmRSS")
        res["hwm_after_restart_kb"] = m.get("VmHWM")
        if not srv.alive():
            res["server_died"] = True
    except (BenchError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        res["failed"] = str(e)[-3000:]
        res["server_log_tail"] = srv.log_tail()
    finally:
        srv.stop()
    return res


# ---------------------------------------------------------------- report

def fmt_num(x, digits=0):
    if x is None:
        return "–"
    if digits == 0:
        return "{:,.0f}".format(x).replace(",", "\u202f")
    return "{:.{}f}".format(x, digits)


def fmt_us(x):
    if x is None:
        return "–"
    if x < 1000:
        return "%.0f µs" % x
    if x < 100000:
        return "%.2f ms" % (x / 1000)
    return "%.0f ms" % (x / 1000)


def fmt_mib(kb):
    return "–" if kb is None else "%.0f MiB" % (kb / 1024)


def fmt_s(x):
    return "–" if x is None else "%.2f s" % x


def cell(stat, f):
    if not stat:
        return "–"
    if stat["n"] == 1:
        return f(stat["median"])
    return "%s (%s–%s)" % (f(stat["median"]), f(stat["min"]), f(stat["max"]))


def ratio(a, b):
    if not a or not b or b["median"] in (0, None) or a["median"] is None:
        return None
    return a["median"] / b["median"]


def fmt_ratio(r):
    return "–" if r is None else "%.2f" % r


def aggregate(results, servers):
    """summary[scenario][server][metric] = median/min/max over repetitions."""
    metrics = ["ops_per_s", "p50_us", "p99_us", "p999_us", "server_cpu_us_per_op", "server_util",
               "server_vmhwm_kb", "generator_util", "generator_cpu_us_per_op", "target_per_s", "achieved_per_s",
               "create_s", "creates_per_s", "rss_after_create_kb", "hwm_after_create_kb", "data_bytes",
               "restart_s", "rss_after_restart_kb", "hwm_after_restart_kb"]
    summary = {}
    for scen in dict.fromkeys(r["scenario"] for r in results):
        summary[scen] = {}
        for srv in servers:
            rs = [r for r in results if r["scenario"] == scen and r["server"] == srv and "failed" not in r]
            agg = {}
            for m in metrics:
                st = median_min_max([r.get(m) for r in rs])
                if st:
                    agg[m] = st
            ops = {}
            for r in rs:
                for op, v in r.get("per_op", {}).items():
                    ops.setdefault(op, {}).setdefault("ops_per_s", []).append(v["ops_per_s"])
                    ops[op].setdefault("p50_us", []).append(v["p50_us"])
                    ops[op].setdefault("p99_us", []).append(v["p99_us"])
                    ops[op].setdefault("p999_us", []).append(v["p999_us"])
            agg["per_op"] = {op: {k: median_min_max(v) for k, v in d.items()} for op, d in ops.items()}
            agg["runs"] = len(rs)
            summary[scen][srv] = agg
        if "apache" in summary[scen] and "ferrokeeper" in summary[scen]:
            a, f = summary[scen]["apache"], summary[scen]["ferrokeeper"]
            summary[scen]["ratio_ferrokeeper_over_apache"] = {
                m: ratio(f.get(m), a.get(m)) for m in metrics if f.get(m) and a.get(m)}
    return summary


def write_report(path_md, meta, floors_, summary, results, servers):
    A, F = "apache", "ferrokeeper"
    both = A in servers and F in servers
    L = []
    w = L.append
    w("# ferrokeeper vs Apache ZooKeeper %s: benchmark" % ZK_VERSION)
    w("")
    if meta["settings"]["quick"]:
        w("> **DEVELOPMENT RUN (`--quick`)**: short windows, one repetition, a smaller tree, "
          "possibly on a busy machine. These numbers only show that the harness works; "
          "do not quote them.")
        w("")
    if meta["machine"].get("loadavg_at_start"):
        w("Load average at start: %s (a quiet 2-core machine reads well below 1)." %
          " ".join(meta["machine"]["loadavg_at_start"]))
        w("")
    w("* Date: %s; commit %s%s" % (meta["date"], meta["commit"][:12] or "?",
                                   " (working tree has changes)" if meta.get("dirty") else ""))
    fk = meta["ferrokeeper"]
    w("* ferrokeeper: %s; sha256 %s…" % (fk["source"], fk["sha256"][:16]))
    w("* Apache ZooKeeper %s (Maven Central jars), %s, JVM options `%s`; %s" % (
        ZK_VERSION, meta["java"], meta["settings"]["zk_jvm_opts"],
        "standalone" if meta["settings"]["zk_standalone"] else "one-member ensemble (standaloneEnabled=false)"))
    m = meta["machine"]
    w("* Machine: %s, %s cores, %s GiB, Linux %s; data dirs of both servers on %s (%s)" % (
        m["cpu_model"], m["cores"], m["memory_gib"], m["kernel"], m["data_disk"], m["data_dir"]))
    s = meta["settings"]
    w("* Server pinned to CPU %s, load generator (%s, go-zookeeper v1.0.4) to CPU %s. "
      "Every acknowledged write is fsynced by both (ZooKeeper forceSync=yes, its default; "
      "ferrokeeper always)." % (s["server_cpu"], meta["go"], s["gen_cpu"]))
    w("* %d repetition(s), A/B order alternating; window %gs after %gs warm-up; %d sessions × %d outstanding; "
      "values %d bytes; %d pre-populated znodes. Cells: median (min–max) over repetitions." % (
          s["reps"], s["duration"], s["warmup"], s["sessions"], s["outstanding"], s["value_size"], s["populate"]))
    w("")

    w("## Physical floors (same machine, same disk)")
    w("")
    w("| | p50 | p99 | p99.9 |")
    w("| --- | --- | --- | --- |")
    for key, label in (("fsync_append", "write %d B + fdatasync, appending (data disk)" % floors_["fsync_size"]),
                       ("fsync_overwrite", "write %d B + fdatasync, in place" % floors_["fsync_size"]),
                       ("loopback_rtt", "TCP round trip on 127.0.0.1 (%d B)" % floors_["ping_size"])):
        f = floors_[key]
        w("| %s | %s | %s | %s |" % (label, fmt_us(f["p50_us"]), fmt_us(f["p99_us"]), fmt_us(f["p999_us"])))
    w("")

    def srv_cols():
        return [KINDS[k]["title"] for k in servers] + (["ferrokeeper / Apache"] if both else [])

    def row(label, scen, metric, f):
        d = summary.get(scen)
        if not d:
            return
        cells = [cell(d.get(k, {}).get(metric), f) for k in servers]
        if both:
            cells.append(fmt_ratio(d.get("ratio_ferrokeeper_over_apache", {}).get(metric)))
        w("| %s | %s |" % (label, " | ".join(cells)))

    tp = [sc for sc in summary if SCENARIOS[sc][1] == "throughput"]
    if tp:
        w("## Throughput at %d sessions × %d outstanding" % (s["sessions"], s["outstanding"]))
        w("")
        for title, metric, f in (("ops/s (higher is better)", "ops_per_s", fmt_num),
                                 ("server CPU time per op (utime+stime / ops)", "server_cpu_us_per_op",
                                  lambda x: "%.1f µs" % x),
                                 ("p99 latency", "p99_us", fmt_us),
                                 ("peak RSS of the server (VmHWM)", "server_vmhwm_kb", fmt_mib)):
            w("**%s**" % title)
            w("")
            w("| scenario | %s |" % " | ".join(srv_cols()))
            w("|" + " --- |" * (1 + len(srv_cols())))
            for sc in tp:
                row(SCENARIOS[sc][0], sc, metric, f)
            w("")
        w("Latency detail (per op type; p50 / p99 / p99.9):")
        w("")
        w("| scenario | op | %s |" % " | ".join(KINDS[k]["title"] for k in servers))
        w("|" + " --- |" * (2 + len(servers)))
        for sc in tp:
            ops = sorted({op for k in servers for op in summary[sc].get(k, {}).get("per_op", {})})
            for op in ops:
                cells = []
                for k in servers:
                    po = summary[sc].get(k, {}).get("per_op", {}).get(op)
                    if not po:
                        cells.append("–")
                        continue
                    cells.append("%s ops/s; %s / %s / %s" % (
                        fmt_num(po["ops_per_s"]["median"]), fmt_us(po["p50_us"]["median"]),
                        fmt_us(po["p99_us"]["median"]), fmt_us(po["p999_us"]["median"])))
                w("| %s | %s | %s |" % (sc, op, " | ".join(cells)))
        w("")
        w("CPU use during the window: server (of its one core) / generator (of its core), and the "
          "generator's CPU time per op (its ceiling is about 1 s / that on one core). A server near "
          "100% is CPU-bound; well below 100% with the generator well below 90%, it waits (fsync, "
          "batching) rather than computes.")
        w("")
        w("| scenario | %s |" % " | ".join("%s: server / generator (µs/op)" % KINDS[k]["title"] for k in servers))
        w("|" + " --- |" * (1 + len(servers)))
        for sc in tp + [x for x in summary if SCENARIOS[x][1] in ("latency", "half")]:
            cells = []
            for k in servers:
                d = summary[sc].get(k, {})
                su, gu, gp = d.get("server_util"), d.get("generator_util"), d.get("generator_cpu_us_per_op")
                cells.append("%s / %s (%s)" % ("–" if not su else "%.0f%%" % (100 * su["median"]),
                                               "–" if not gu else "%.0f%%" % (100 * gu["median"]),
                                               "–" if not gp else "%.1f" % gp["median"]))
            w("| %s | %s |" % (sc, " | ".join(cells)))
        w("")

    lat = [sc for sc in summary if SCENARIOS[sc][1] == "latency"]
    if lat:
        rtt = floors_["loopback_rtt"]
        fsy = floors_["fsync_append"]
        w("## Single-op latency (1 session, 1 outstanding)")
        w("")
        w("Floor: getData = one loopback round trip; setData = one round trip + one "
          "fdatasync (append). \"× floor\" = latency / floor (p50 with p50, p99 with the sum of the p99s).")
        w("")
        w("| op | server | p50 | p99 | p99.9 | p50 × floor | p99 × floor |")
        w("| --- | --- | --- | --- | --- | --- | --- |")
        for sc in lat:
            if sc == "lat-set":
                f50, f99 = rtt["p50_us"] + fsy["p50_us"], rtt["p99_us"] + fsy["p99_us"]
            else:
                f50, f99 = rtt["p50_us"], rtt["p99_us"]
            for k in servers:
                d = summary[sc].get(k, {})
                p50, p99 = d.get("p50_us"), d.get("p99_us")
                w("| %s | %s | %s | %s | %s | %s | %s |" % (
                    SCENARIOS[sc][0].split(",")[0], KINDS[k]["title"], cell(p50, fmt_us), cell(p99, fmt_us),
                    cell(d.get("p999_us"), fmt_us),
                    "–" if not p50 else "%.1f×" % (p50["median"] / f50),
                    "–" if not p99 else "%.1f×" % (p99["median"] / f99)))
            if both:
                r = summary[sc].get("ratio_ferrokeeper_over_apache", {})
                w("| %s | ferrokeeper / Apache | %s | %s | %s | | |" % (
                    SCENARIOS[sc][0].split(",")[0], fmt_ratio(r.get("p50_us")), fmt_ratio(r.get("p99_us")),
                    fmt_ratio(r.get("p999_us"))))
        w("")

    if "half-mix" in summary:
        w("## p99 at half of Apache ZooKeeper's maximum throughput (90/10 mix)")
        w("")
        w("Rate-limited generator (open loop: latency counted from each request's scheduled start), "
          "target = half of Apache ZooKeeper's `mix` throughput in the same repetition, %d × %d." % (
              s["sessions"], s["outstanding"]))
        w("")
        w("| | %s |" % " | ".join(srv_cols()))
        w("|" + " --- |" * (1 + len(srv_cols())))
        row("target ops/s", "half-mix", "target_per_s", fmt_num)
        row("achieved ops/s", "half-mix", "achieved_per_s", fmt_num)
        row("p50", "half-mix", "p50_us", fmt_us)
        row("p99", "half-mix", "p99_us", fmt_us)
        row("p99.9", "half-mix", "p999_us", fmt_us)
        row("server CPU per op", "half-mix", "server_cpu_us_per_op", lambda x: "%.1f µs" % x)
        f50 = floors_["loopback_rtt"]["p50_us"] + floors_["fsync_append"]["p50_us"]
        f99 = floors_["loopback_rtt"]["p99_us"] + floors_["fsync_append"]["p99_us"]
        cells = []
        for k in servers:
            d = summary["half-mix"].get(k, {})
            cells.append("%s / %s" % ("–" if not d.get("p50_us") else "%.1f×" % (d["p50_us"]["median"] / f50),
                                      "–" if not d.get("p99_us") else "%.1f×" % (d["p99_us"]["median"] / f99)))
        w("| p50 / p99 × floor | %s |%s" % (" | ".join(cells), " |" if both else ""))
        w("")
        w("Floor: one round trip + one fdatasync: p50 %s, p99 %s (sum of the p99s). Reads need no "
          "fdatasync, so a p50 below 1× is possible." % (fmt_us(f50), fmt_us(f99)))
        w("")

    if "bigtree" in summary:
        w("## %s znodes of %d bytes" % (fmt_num(s["bigtree_count"]), s["bigtree_value_size"]))
        w("")
        w("Created by %d sessions × %d outstanding (plus one parent per 1000 znodes); then the server is "
          "killed with SIGKILL and started again on the same data; restart = from the exec of the "
          "server process until a getData of the last-created znode returns its value (a fresh "
          "connection every 10 ms)." % (s["sessions"], s["outstanding"]))
        w("")
        w("| | %s |" % " | ".join(srv_cols()))
        w("|" + " --- |" * (1 + len(srv_cols())))
        row("creation time", "bigtree", "create_s", fmt_s)
        row("creates/s", "bigtree", "creates_per_s", fmt_num)
        row("server CPU per create", "bigtree", "server_cpu_us_per_op", lambda x: "%.1f µs" % x)
        row("RSS after creation (VmRSS)", "bigtree", "rss_after_create_kb", fmt_mib)
        row("peak RSS (VmHWM)", "bigtree", "hwm_after_create_kb", fmt_mib)
        row("data dir on disk", "bigtree", "data_bytes", lambda x: "%.0f MiB" % (x / 1048576))
        row("restart after kill -9 until a read is served", "bigtree", "restart_s", fmt_s)
        row("RSS after restart", "bigtree", "rss_after_restart_kb", fmt_mib)
        w("")

    w("## Flags")
    w("")
    flags = []
    for r in results:
        tag = "%s / %s / rep %d" % (r["scenario"], r["server"], r["rep"])
        if r.get("failed"):
            flags.append("%s: **failed**: %s" % (tag, r["failed"].splitlines()[0][:300]))
        if r.get("server_died"):
            flags.append("%s: **server process died**" % tag)
        if r.get("generator_bottleneck"):
            flags.append("%s: generator CPU %.0f%% of its core: the generator may have been the bottleneck"
                         % (tag, 100 * (r.get("generator_util") or 0)))
        if r.get("errors"):
            flags.append("%s: %d errors: %s" % (tag, r["errors"], json.dumps(r.get("error_kinds", {}))[:400]))
        if r.get("check_failures"):
            flags.append("%s: **self-check failed**: %s" % (tag, "; ".join(r["check_failures"])[:600]))
        if r.get("disconnects"):
            flags.append("%s: %d client disconnects" % (tag, r["disconnects"]))
    for f in meta.get("notes", []):
        flags.append(f)
    if flags:
        for f in flags:
            w("* " + f)
    else:
        w("None: every request was answered, no errors, the self-checks (setData versions, "
          "create/delete counts, reply contents, restart read) passed, and no run was generator-bound.")
    w("")
    w("Raw per-run JSON: `raw/` next to this file; settings and every number: `report.json`.")
    w("")
    path_md.write_text("\n".join(L))


# ---------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="validation run: 1 repetition, 2 s warm-up + 5 s window, 100 000-znode tree")
    ap.add_argument("--reps", type=int, help="repetitions (default 3; --quick 1)")
    ap.add_argument("--duration", type=float, help="measured window in s (default 30; --quick 5)")
    ap.add_argument("--warmup", type=float, help="warm-up in s (default 10; --quick 2)")
    ap.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                    help="comma-separated, from: %s" % ", ".join(SCENARIOS))
    ap.add_argument("--servers", default="apache,ferrokeeper")
    ap.add_argument("--sessions", type=int, default=32)
    ap.add_argument("--outstanding", type=int, default=64)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--populate", type=int, default=10000, help="pre-populated znodes for get/set (default 10000)")
    ap.add_argument("--bigtree-count", type=int, help="znodes of the big tree (default 1000000; --quick 100000)")
    ap.add_argument("--bigtree-value-size", type=int, default=100)
    ap.add_argument("--restart-timeout", type=int, default=900, help="s to wait for the first read after restart")
    ap.add_argument("--half-rate", type=float, help="target ops/s of half-mix (default: half of Apache's mix result)")
    ap.add_argument("--base-port", type=int, default=42181,
                    help="Apache on N..N+2, ferrokeeper on N+10..N+12, echo on N+20 (default 42181)")
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--gen-cpu", default="1")
    ap.add_argument("--zk-jvm-opts", default="-Xmx4g -XX:+UseSerialGC",
                    help="heap/GC flags for Apache ZooKeeper's JVM (default: -Xmx4g -XX:+UseSerialGC, which is "
                         "also what the JVM picks by itself when it sees one CPU)")
    ap.add_argument("--zk-standalone", action="store_true",
                    help="Apache ZooKeeper in standalone mode (default: one-member ensemble, as in compat-tests)")
    ap.add_argument("--fsync-count", type=int, help="fdatasync probes per mode (default 2000; --quick 300)")
    ap.add_argument("--ping-count", type=int, help="loopback round trips (default 50000; --quick 5000)")
    ap.add_argument("--no-build", action="store_true",
                    help="do not run cargo build (use FERROKEEPER_BIN or $CARGO_TARGET_DIR/release/ferrokeeper)")
    ap.add_argument("--out", help="output directory (default results/<full|quick>-<UTC time>-<commit>)")
    ap.add_argument("--keep-data", action="store_true", help="keep the servers' data dirs after the run")
    a = ap.parse_args()
    q = a.quick
    a.reps = a.reps or (1 if q else 3)
    a.duration = a.duration or (5.0 if q else 30.0)
    a.warmup = a.warmup if a.warmup is not None else (2.0 if q else 10.0)
    a.bigtree_count = a.bigtree_count or (100000 if q else 1000000)
    a.fsync_count = a.fsync_count or (300 if q else 2000)
    a.ping_count = a.ping_count or (5000 if q else 50000)
    a.scenarios = [x.strip() for x in a.scenarios.split(",") if x.strip()]
    for sc in a.scenarios:
        if sc not in SCENARIOS:
            ap.error("unknown scenario %r" % sc)
    a.scenarios = [sc for sc in SCENARIOS if sc in a.scenarios]  # fixed order: mix before half-mix
    a.servers = [x.strip() for x in a.servers.split(",") if x.strip()]
    for k in a.servers:
        if k not in KINDS:
            ap.error("unknown server %r" % k)
    return a


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (background job)
    signal.signal(signal.SIGHUP, on_signal)
    if not shutil.which("taskset"):
        raise BenchError("taskset (util-linux) is required")
    ncpu = os.cpu_count() or 1
    if max(int(args.server_cpu), int(args.gen_cpu)) >= ncpu:
        raise BenchError("CPUs %s/%s do not exist (%d CPUs)" % (args.server_cpu, args.gen_cpu, ncpu))
    args.run_root = BENCH_CACHE / "run"
    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock"))
    stamp = dt.datetime.now(dt.timezone.utc)
    out = Path(args.out) if args.out else HERE / "results" / ("%s-%s-%s" % (
        "quick" if args.quick else "full", stamp.strftime("%Y%m%dT%H%M%SZ"), commit[:10] or "nocommit"))
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()

    go_version = build_loadgen()
    fk = prepare_ferrokeeper(args.no_build) if "ferrokeeper" in args.servers else {"source": "not run", "sha256": ""}
    args.fk_bin = fk.get("binary", "")
    if "apache" in args.servers:
        run([LIB / "apache-zk.sh", "fetch"], timeout=1800)
    meta = {
        "date": stamp.isoformat(timespec="seconds"), "commit": commit, "dirty": dirty,
        "ferrokeeper": fk, "java": java_version(), "go": go_version,
        "machine": machine_info(args.run_root if args.run_root.exists() else BENCH_CACHE),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "notes": [],
    }
    meta["settings"]["quick"] = args.quick
    log("results -> %s" % out)

    results = []
    try:
        fl = floors(args, raw)
        meta["machine"] = machine_info(args.run_root)
        servers = {k: Server(k, args) for k in args.servers}
        for rep in range(args.reps):
            order = list(args.servers) if rep % 2 == 0 else list(reversed(args.servers))
            for sc in args.scenarios:
                kind = SCENARIOS[sc][1]
                rate = None
                if kind == "half":
                    rate = args.half_rate
                    if rate is None:
                        ap = [r for r in results if r["scenario"] == "mix" and r["server"] == "apache"
                              and r["rep"] == rep and r.get("ops_per_s")]
                        if not ap:
                            meta["notes"].append("half-mix skipped in rep %d: no Apache ZooKeeper `mix` result "
                                                 "(run `mix` with apache, or give --half-rate)" % rep)
                            continue
                        rate = ap[0]["ops_per_s"] / 2
                for k in order:
                    log("rep %d/%d  %-12s %s%s" % (rep + 1, args.reps, sc, k,
                                                    " at %.0f ops/s" % rate if rate else ""))
                    if kind == "bigtree":
                        r = run_bigtree(args, servers[k], rep, raw)
                    else:
                        r = run_load(args, servers[k], sc, rep, raw, rate)
                    results.append(r)
                    brief = {x: r.get(x) for x in ("ops_per_s", "p99_us", "server_cpu_us_per_op", "create_s",
                                                   "restart_s", "errors", "checks_ok", "failed") if x in r}
                    log("    %s" % json.dumps(brief)[:400])
                    (out / "report.json").write_text(json.dumps({"meta": meta, "floors": fl, "runs": results}, indent=1))
        summary = aggregate(results, args.servers)
        meta["elapsed_s"] = round(time.monotonic() - t_start)
        meta["machine"]["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
        (out / "report.json").write_text(json.dumps(
            {"meta": meta, "floors": fl, "summary": summary, "runs": results}, indent=1))
        write_report(out / "report.md", meta, fl, summary, results, args.servers)
    finally:
        cleanup()
        if not args.keep_data:
            for k in args.servers:
                shutil.rmtree(args.run_root / ("bench-%s" % k) / "data", ignore_errors=True)
    print((out / "report.md").read_text())
    log("done in %.0f s; report: %s" % (time.monotonic() - t_start, out / "report.md"))
    bad = [r for r in results if r.get("failed") or r.get("server_died") or not r.get("checks_ok", True)]
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        cleanup()
        log("error: %s" % e)
        sys.exit(2)
    except KeyboardInterrupt:
        cleanup()
        sys.exit(130)
