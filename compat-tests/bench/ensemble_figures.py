#!/usr/bin/env python3
"""Ensemble failure benchmark: a 3-server ferrokeeper ensemble and a 3-server
Apache ZooKeeper 3.9.5 ensemble, one after the other on the same machine, with
ZooKeeper's default settings (tickTime=2000, initLimit=10, syncLimit=5,
forceSync on).

    compat-tests/bench/ensemble_figures.py [--quick] [options]    (see --help)
    compat-tests/bench/bench.sh ensemble [--quick] [options]      (the same)

Figures (details in compat-tests/bench/README.md, "Ensemble failures"):
  election   kill -9 of the leader: time until a survivor answers `srvr` with
             Mode: leader, and until a create through a survivor is
             acknowledged; then the killed server is restarted and the
             ensemble must serve with all three again (that time is recorded too)
  reconnect  a kazoo session on the server that gets killed (a follower, then
             the leader): time until the same session id is re-established on
             another server and a create on it succeeds
  snapshot   one follower SIGKILLed, N znodes of 100 bytes created through the
             leader (loadgen populate), the follower restarted: time until it
             answers srvr as follower and, after `sync`, reads the last znode;
             the size of what it received (ferrokeeper: its log lines;
             Apache: its new snapshot file) and how it synced (snapshot / SNAP
             or not) from the servers' logs

  writes     write throughput of the ensemble: `loadgen run` with 32 sessions
             x 64 outstanding spread evenly over the three servers (setData,
             then create+delete), the three servers pinned to CPU 0 and the
             generator to CPU 1 as in bench.py's single-server runs; ops/s,
             p50/p99 and the CPU time of all three servers per op

Every sample is checked (same session id, the ephemeral of the session still
owned by it, the follower's tree complete, ...). A sample that fails a check
is reported as failed, never as a number; the exit status is then 1.

Runs under kazoo's venv (compat-tests/.cache/venv, set up by
compat-tests/kazoo/kazoo_suite.py setup); started with another interpreter it
re-executes itself there. Standard library + kazoo.
"""

import argparse
import collections
import datetime as dt
import json
import logging
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPAT = HERE.parent
REPO = COMPAT.parent
LIB = COMPAT / "lib"
CACHE = Path(os.environ.get("COMPAT_CACHE_DIR", COMPAT / ".cache")).resolve()
VENV_PY = CACHE / "venv" / "bin" / "python"
RUN_ROOT = CACHE / "bench" / "ensemble-run"
ZK_VERSION = "3.9.5"


def _ensure_kazoo():
    """Re-exec under kazoo's venv if kazoo is not importable here."""
    try:
        import kazoo  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("ENSEMBLE_FIGURES_REEXEC"):
        sys.exit("ensemble_figures.py: kazoo is not importable in %s either" % sys.executable)
    if not VENV_PY.exists():
        print("[ensemble] setting up kazoo's venv (compat-tests/kazoo/kazoo_suite.py setup)", file=sys.stderr)
        subprocess.run([sys.executable, str(COMPAT / "kazoo" / "kazoo_suite.py"), "setup"], check=True)
    os.environ["ENSEMBLE_FIGURES_REEXEC"] = "1"
    os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve())] + sys.argv[1:])


if __name__ == "__main__":
    _ensure_kazoo()

from kazoo.client import KazooClient, KazooState  # noqa: E402
from kazoo.exceptions import ConnectionLoss, KazooException, SessionExpiredError  # noqa: E402
from kazoo.handlers.threading import KazooTimeoutError  # noqa: E402
from kazoo.retry import KazooRetry  # noqa: E402
import kazoo  # noqa: E402

sys.path.insert(0, str(HERE))
import bench as benchlib  # noqa: E402  (build_loadgen, machine_info, git, sha256, run)
sys.path.insert(0, str(COMPAT / "lib"))
from fourlw import four_letter  # noqa: E402

TITLES = {"apache": "Apache ZooKeeper %s" % ZK_VERSION, "ferrokeeper": "ferrokeeper"}
PORT_OFFSET = {"apache": 0, "ferrokeeper": 100}  # client base+off+N, quorum +10, election +20
SCENARIOS = ["election", "reconnect", "snapshot", "writes"]
WRITE_MIXES = [("set", "setData", "set=1"), ("createdelete", "create + delete (sequential)", "createdelete=1")]
BASE = "/ensemble-bench"
ALL_PROCS = []  # every Member, for cleanup


def log(msg):
    print("[ensemble %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


class HarnessError(Exception):
    """The harness could not do what it had to (exit 2)."""


class SampleFailed(Exception):
    """This sample was not measured or failed its checks."""


def failure_text(e):
    return str(e) if isinstance(e, SampleFailed) else "%s: %s" % (type(e).__name__, e)


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def mono():
    return time.monotonic()


def utc_ms():
    """Wall-clock time, UTC, to the millisecond (to find the moment in the servers' logs)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ------------------------------------------------------------ raw protocol

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SID = re.compile(r"sid=0x([0-9a-fA-F]+)")
OK, NONODE, NODEEXISTS = 0, -101, -110


class ZkError(Exception):
    def __init__(self, msg, code=None):
        super().__init__(msg)
        self.code = code


SAMPLE_ERRORS = (SampleFailed, ZkError, OSError, KazooException, KazooTimeoutError, subprocess.TimeoutExpired)


def _s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack(">i", len(b)) + b


class ZkRaw:
    """One session in the wire protocol, no client library: a fresh TCP
    connection, ConnectRequest, requests one at a time, closeSession."""

    def __init__(self, port, timeout=2.0, session_timeout_ms=4000):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.xid = 0
        try:
            self._send(struct.pack(">iqiqi16s?", 0, 0, session_timeout_ms, 0, 16, b"\0" * 16, False))
            body = self._recv()
            if body is None or len(body) < 16:
                raise ZkError("no connect response")
            _proto, negotiated, sid = struct.unpack(">iiq", body[:16])
            if negotiated <= 0 or sid == 0:
                raise ZkError("session refused")
            self.session_id = sid
        except BaseException:
            self.sock.close()
            raise

    def _send(self, body):
        self.sock.sendall(struct.pack(">i", len(body)) + body)

    def _recv(self):
        head = self._read(4)
        if head is None:
            return None
        (n,) = struct.unpack(">i", head)
        if n < 0 or n > 64 << 20:
            raise ZkError("bad frame length %d" % n)
        return self._read(n)

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def call(self, op, payload):
        self.xid += 1
        self._send(struct.pack(">ii", self.xid, op) + payload)
        while True:
            r = self._recv()
            if r is None:
                raise ZkError("connection closed by the server")
            xid, _zxid, err = struct.unpack(">iqi", r[:16])
            if xid != self.xid:
                continue  # a watch event (-1) or a ping reply (-2)
            return err, r[16:]

    def create(self, path, data=b"", flags=0):
        acl = struct.pack(">ii", 1, 31) + _s("world") + _s("anyone")
        err, body = self.call(1, _s(path) + _s(data) + acl + struct.pack(">i", flags))
        if err != OK:
            raise ZkError("create %s: error %d" % (path, err), err)
        (n,) = struct.unpack(">i", body[:4])
        return body[4:4 + n].decode()

    def sync(self, path):
        err, _ = self.call(9, _s(path))
        if err != OK:
            raise ZkError("sync %s: error %d" % (path, err), err)

    def exists(self, path):
        """The Stat as a dict, or None."""
        err, body = self.call(3, _s(path) + b"\0")
        if err == NONODE:
            return None
        if err != OK:
            raise ZkError("exists %s: error %d" % (path, err), err)
        return _stat(body)

    def get(self, path):
        err, body = self.call(4, _s(path) + b"\0")
        if err != OK:
            raise ZkError("getData %s: error %d" % (path, err), err)
        (n,) = struct.unpack(">i", body[:4])
        return body[4:4 + max(n, 0)]

    def close(self):
        try:
            self.sock.settimeout(1.0)
            self._send(struct.pack(">ii", self.xid + 1, -11))
            self._recv()
        except (OSError, ZkError):
            pass
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stat(b):
    f = struct.unpack(">qqqqiiiqiiq", b[:68])
    return {"czxid": f[0], "mzxid": f[1], "version": f[4], "ephemeralOwner": f[7], "dataLength": f[8],
            "numChildren": f[9]}


def srvr_mode(port, timeout=0.5):
    """'leader', 'follower', 'not serving', 'unknown', or None (no answer)."""
    out = four_letter(port, "srvr", timeout)
    if not out:
        return None
    if "not currently serving" in out:
        return "not serving"
    m = re.search(r"^Mode: (\S+)", out, re.M)
    return m.group(1) if m else "unknown"


def node_count(port):
    out = four_letter(port, "srvr", 2.0) or ""
    m = re.search(r"^Node count: (\d+)", out, re.M)
    return int(m.group(1)) if m else None


def leader_zxid(port):
    out = four_letter(port, "srvr", 2.0) or ""
    m = re.search(r"^Zxid: 0x([0-9a-fA-F]+)", out, re.M)
    return int(m.group(1), 16) if m else None


def cons_sids(port):
    return {int(x, 16) for x in SID.findall(four_letter(port, "cons", 2.0) or "")}


def session_ok(port):
    try:
        with ZkRaw(port, timeout=3.0):
            return True
    except (OSError, ZkError):
        return False


# loadgen's big-tree values (populate.go / main.go), to check what a follower serves
M64 = (1 << 64) - 1


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def node_value(i, size):
    s = (i * 0x100000001B3 + 17) & M64
    out = bytearray(size)
    for k in range(0, size, 8):
        s = _splitmix64(s)
        for j in range(min(8, size - k)):
            out[k + j] = (s >> (8 * j)) & 0xFF
    return bytes(out)


# ------------------------------------------------------------ ensembles

class Member:
    def __init__(self, ens, n):
        self.ens, self.n = ens, n
        off = ens.base + PORT_OFFSET[ens.kind]
        self.client_port = off + n
        self.quorum_port = off + 10 + n
        self.election_port = off + 20 + n
        self.dir = ens.dir / ("s%d" % n)
        self.proc = None
        self.launched_at = None
        self.killed_wall = None

    @property
    def log_file(self):
        return self.dir / ("log/zookeeper.log" if self.ens.kind == "apache" else "stdout.log")

    def log_size(self):
        try:
            return self.log_file.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset):
        try:
            with open(self.log_file, "rb") as f:
                f.seek(offset)
                return ANSI.sub("", f.read().decode(errors="replace"))
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log_since(max(0, self.log_size() - 200000)).splitlines()[-n:])

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def launch(self):
        if self.running():
            raise HarnessError("s%d of %s is running" % (self.n, self.ens.kind))
        self.dir.joinpath("log").mkdir(parents=True, exist_ok=True)
        out = open(self.dir / "stdout.log", "ab")
        cmd = self.ens.command(self)
        self.launched_at = mono()
        env = dict(os.environ)
        if self.ens.kind == "ferrokeeper" and self.ens.args.fk_rust_log:
            env["RUST_LOG"] = self.ens.args.fk_rust_log
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.dir, start_new_session=True, env=env)
        out.close()
        return self.launched_at

    def kill9(self):
        """SIGKILL; returns the monotonic time just before the signal. Waits until it is gone."""
        if not self.running():
            raise HarnessError("s%d of %s is not running" % (self.n, self.ens.kind))
        t = mono()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.killed_wall = utc_ms()
        self.proc.wait()
        return t

    def stop(self):
        if not self.running():
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            log("s%d of %s ignored SIGTERM; SIGKILL" % (self.n, self.ens.kind))
            self.proc.kill()
            self.proc.wait()

    def mem_kb(self):
        try:
            for line in Path("/proc/%d/status" % self.proc.pid).read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, AttributeError):
            pass
        return None


class Ensemble:
    def __init__(self, kind, args, fk_bin=None, classpath=None):
        self.kind, self.args = kind, args
        self.base = args.base_port
        self.dir = RUN_ROOT / kind
        self.fk_bin, self.classpath = fk_bin, classpath
        self.members = {n: Member(self, n) for n in (1, 2, 3)}
        ALL_PROCS.extend(self.members.values())

    def m(self, n):
        return self.members[n]

    def command(self, m):
        cfg = str(m.dir / "zoo.cfg")
        if self.kind == "ferrokeeper":
            return [self.fk_bin, "--config", cfg]
        return (["java"] + self.args.zk_jvm_opts.split() +
                ["-Dzookeeper.log.dir=%s" % (m.dir / "log"),
                 "-Dlogback.configurationFile=%s" % (LIB / "logback-server.xml"),
                 "-Djava.awt.headless=true", "-cp", self.classpath,
                 "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg])

    def write_configs(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        lines = "".join("server.%d=127.0.0.1:%d:%d:participant;127.0.0.1:%d\n" % (
            m.n, m.quorum_port, m.election_port, m.client_port) for m in self.members.values())
        for m in self.members.values():
            (m.dir / "data").mkdir(parents=True)
            (m.dir / "log").mkdir()
            (m.dir / "data" / "myid").write_text("%d\n" % m.n)
            cfg = ("# written by compat-tests/bench/ensemble_figures.py: ZooKeeper's defaults otherwise\n"
                   "tickTime=2000\ninitLimit=10\nsyncLimit=5\n"
                   "dataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                   "4lw.commands.whitelist=*\nadmin.enableServer=false\n%s" % (
                       m.dir / "data", m.client_port, lines))
            if re.search(r"^\s*forceSync\s*=\s*no", cfg, re.M):
                raise HarnessError("forceSync must stay on")
            (m.dir / "zoo.cfg").write_text(cfg)
            (m.dir / "zoo.cfg.written").write_text(cfg)  # Apache rewrites zoo.cfg (dynamic config)

    def start(self):
        for p in self.ports():
            try:
                socket.create_connection(("127.0.0.1", p), timeout=0.5).close()
                raise HarnessError("port %d on 127.0.0.1 is in use" % p)
            except OSError:
                pass
        self.write_configs()
        for m in self.members.values():
            m.launch()
        return self.wait_serving(timeout=180)

    def ports(self):
        return [p for m in self.members.values() for p in (m.client_port, m.quorum_port, m.election_port)]

    def modes(self, members):
        return {n: (srvr_mode(self.m(n).client_port, 1.0) if self.m(n).running() else "down") for n in members}

    def wait_serving(self, members=(1, 2, 3), timeout=120.0):
        """Until every given member serves (srvr leader/follower, a session can be created) and
        exactly one is the leader. Returns {n: mode}."""
        deadline = mono() + timeout
        state = {}
        while True:
            dead = [n for n in members if not self.m(n).running()]
            if dead:
                raise SampleFailed("%s s%s exited; log tail:\n%s" % (
                    self.kind, dead, "\n".join(self.m(n).log_tail() for n in dead)))
            state = self.modes(members)
            vals = list(state.values())
            if all(v in ("leader", "follower") for v in vals) and vals.count("leader") == 1:
                if all(session_ok(self.m(n).client_port) for n in members):
                    return state
            if mono() > deadline:
                raise SampleFailed("%s members %s not serving with one leader within %.0f s: %s" % (
                    self.kind, list(members), timeout, state))
            time.sleep(0.1)

    def leader(self, state):
        return [n for n, v in state.items() if v == "leader"][0]

    def stop(self):
        for m in self.members.values():
            m.stop()


def cleanup():
    for m in ALL_PROCS:
        try:
            m.stop()
        except Exception as e:  # noqa: BLE001
            log("cleanup: %s" % e)


def on_signal(signum, frame):
    log("signal %d: stopping the servers" % signum)
    raise SystemExit(128 + signum)


# ------------------------------------------------------------ election

class EnsembleBroken(Exception):
    """The killed server could not be brought back: the remaining samples of this kind are skipped."""


def close_wait(ens):
    """{member: TCP connections on its client port the server has not closed although the client
    has (CLOSE-WAIT)}: connections the server leaked; they count against maxClientCnxns."""
    for attempt in range(4):  # a connection closed a moment ago may not be reaped yet: look again
        out = {}
        for m in ens.members.values():
            if not m.running():
                continue
            p = subprocess.run(["ss", "-tnH", "state", "close-wait", "( sport = :%d )" % m.client_port],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if p.returncode == 0:
                out["s%d" % m.n] = len([x for x in p.stdout.splitlines() if x.strip()])
        if not any(out.values()):
            break
        time.sleep(0.5)
    return out


def kazoo_client(ens, members, args, kz_logger, events):
    """A kazoo session on members[0] (the others are further hosts, in order), connected."""
    hosts = ",".join("127.0.0.1:%d" % ens.m(n).client_port for n in members)
    retry = KazooRetry(max_tries=-1, delay=args.kazoo_retry_ms / 1000.0, backoff=1, max_jitter=0.0,
                       max_delay=args.kazoo_retry_ms / 1000.0)
    zk = KazooClient(hosts=hosts, timeout=args.session_timeout, randomize_hosts=False,
                     connection_retry=retry, logger=kz_logger)
    zk.add_listener(lambda st: events.append((mono(), str(st))))
    zk.start(timeout=15)
    port = ens.m(members[0]).client_port
    peer = zk._connection._socket.getpeername()[1]
    if peer != port:
        zk.stop()
        zk.close()
        raise SampleFailed("kazoo connected to %d, not to s%d (%d)" % (peer, members[0], port))
    sid = zk.client_id[0]
    if sid not in cons_sids(port):
        zk.stop()
        zk.close()
        raise SampleFailed("cons of s%d does not list session 0x%x" % (members[0], sid))
    return zk, sid


def create_until_ok(zk, path, deadline):
    """Create path (sequential) until it succeeds: (monotonic time of the reply, path, attempts).
    A ConnectionLoss is retried after 10 ms; kazoo holds a request made while it reconnects."""
    attempts = 0
    while True:
        if mono() > deadline:
            raise SampleFailed("no create succeeded before the deadline")
        attempts += 1
        try:
            written = zk.create_async(path, b"", sequence=True).get(timeout=max(0.1, deadline - mono()))
            return mono(), written, attempts
        except ConnectionLoss:
            time.sleep(0.01)
        except KazooTimeoutError:
            continue
        except SessionExpiredError:
            raise SampleFailed("the session expired (kazoo: SessionExpiredError)")


def restart_killed(ens, n, sample):
    try:
        t = ens.m(n).launch()
        ens.wait_serving(timeout=180)
        sample["rejoin_s"] = round(mono() - t, 3)
    except SampleFailed as e:
        sample.setdefault("failed", "the killed server did not rejoin: %s" % e)
        raise EnsembleBroken(str(e))


def run_election(ens, rep, args, kz_logger, sample):
    """kill -9 of the leader; fills sample."""
    state = ens.wait_serving()
    leader = ens.leader(state)
    survivors = [n for n in (1, 2, 3) if n != leader]
    sample.update({"rep": rep, "killed": leader, "survivors": survivors})
    found = {}
    lock = threading.Lock()
    stop = threading.Event()
    go = threading.Event()
    timeline = []
    errors = []
    t0 = [0.0]
    interval = args.poll_ms / 1000.0
    clients = {}
    killed = False

    def poller(n):
        go.wait()
        last = state[n]
        port = ens.m(n).client_port
        while not stop.is_set():
            t = mono()
            mode = srvr_mode(port, 0.5)
            now = mono()
            if mode != last:
                with lock:
                    timeline.append([round(now - t0[0], 4), "s%d" % n, "srvr: %s" % mode])
                last = mode
            if mode == "leader":
                with lock:
                    found.setdefault("leader", (now - t0[0], n))
                return
            time.sleep(max(0.0, interval - (mono() - t)))

    def writer(n):
        go.wait()
        try:
            t, path, attempts = create_until_ok(clients[n][0], BASE + "/w-", t0[0] + args.election_timeout)
            with lock:
                found.setdefault("write", (t - t0[0], n, path))
                timeline.append([round(t - t0[0], 4), "s%d" % n, "create acknowledged (after %d tries)" % attempts])
        except Exception as e:  # noqa: BLE001  (reported through errors)
            with lock:
                errors.append("s%d: %s" % (n, failure_text(e)))

    try:
        events = {n: [] for n in survivors}
        for n in survivors:
            clients[n] = kazoo_client(ens, [n], args, kz_logger, events[n])
        sample["sessions"] = {"s%d" % n: "0x%x" % clients[n][1] for n in survivors}
        threads = [threading.Thread(target=poller, args=(n,), daemon=True) for n in survivors]
        threads += [threading.Thread(target=writer, args=(n,), daemon=True) for n in survivors]
        for t in threads:
            t.start()
        t0[0] = ens.m(leader).kill9()
        killed = True
        sample["killed_at_utc"] = ens.m(leader).killed_wall
        go.set()
        deadline = t0[0] + args.election_timeout
        while mono() < deadline and not ("leader" in found and "write" in found):
            time.sleep(0.01)
        stop.set()
        for t in threads[:len(survivors)]:
            t.join(5)
        sample["timeline"] = sorted(timeline)
        sample["kazoo_events"] = {"s%d" % n: [[round(t - t0[0], 4), s] for t, s in events[n] if t >= t0[0]]
                                  for n in survivors}
        if "leader" not in found or "write" not in found:
            raise SampleFailed("within %.0f s after the SIGKILL: %s%s" % (
                args.election_timeout, "no survivor said Mode: leader" if "leader" not in found
                else "no create was acknowledged", ("; " + "; ".join(errors)) if errors else ""))
        sample["leader_s"], sample["new_leader"] = round(found["leader"][0], 4), found["leader"][1]
        sample["write_s"], sample["write_via"] = round(found["write"][0], 4), found["write"][1]
        sample["written"] = found["write"][2]
        after = ens.wait_serving(survivors, timeout=60)
        if ens.leader(after) != sample["new_leader"]:
            raise SampleFailed("s%d said leader first, but s%d leads the survivors" % (
                sample["new_leader"], ens.leader(after)))
        zk, sid = clients[sample["write_via"]]
        if zk.client_id[0] != sid:
            raise SampleFailed("the session on s%d changed: 0x%x -> 0x%x" % (sample["write_via"], sid,
                                                                           zk.client_id[0]))
        other = [n for n in survivors if n != sample["write_via"]][0]
        with ZkRaw(ens.m(other).client_port) as z:
            z.sync(sample["written"])
            if z.exists(sample["written"]) is None:
                raise SampleFailed("the acknowledged create %s is not on s%d" % (sample["written"], other))
        sample["checks"] = ["the killed server was the leader", "one leader among the survivors, the one "
                            "that said so first", "the writing session kept its id",
                            "the acknowledged znode is on the other survivor after sync"]
    finally:
        stop.set()
        for zk, _ in clients.values():
            try:
                zk.stop()
                zk.close()
            except Exception:  # noqa: BLE001
                pass
        if killed:
            sample["close_wait_after"] = close_wait(ens)
            restart_killed(ens, leader, sample)
    return sample


def run_reconnect(ens, role, rep, args, kz_logger, sample):
    """A kazoo session on the server that gets killed (a follower or the leader); fills sample."""
    state = ens.wait_serving()
    leader = ens.leader(state)
    followers = [n for n in (1, 2, 3) if n != leader]
    target = leader if role == "leader" else followers[rep % 2]
    others = [n for n in (1, 2, 3) if n != target]
    events = []
    sample.update({"rep": rep, "role": role, "killed": target})
    killed = False
    zk = None
    try:
        zk, sid = kazoo_client(ens, [target] + others, args, kz_logger, events)
        sample["hosts"], sample["session_id"] = zk.hosts, "0x%x" % sid
        zk.ensure_path(BASE)
        eph = zk.create("%s/eph-%s-%s-%d-" % (BASE, ens.kind, role, rep), b"", ephemeral=True, sequence=True)
        zk.create(BASE + "/r-", b"", sequence=True)
        t0 = ens.m(target).kill9()
        killed = True
        sample["killed_at_utc"] = ens.m(target).killed_wall
        t_ok, written, attempts = create_until_ok(zk, BASE + "/r-", t0 + args.reconnect_timeout)
        sample["request_s"] = round(t_ok - t0, 4)
        after = [(t - t0, s) for t, s in events if t >= t0]
        sample["events"] = [[round(t, 4), s] for t, s in after]
        connected = [t for t, s in after if s == KazooState.CONNECTED and t <= t_ok - t0]
        # the session re-established for good: the last CONNECTED before the request succeeded
        # (a server may accept the session and drop the connection again, several times)
        sample["connected_s"] = round(connected[-1], 4) if connected else None
        sample["connects_before_success"] = len(connected)
        sample["attempts"], sample["written"] = attempts, written
        if any(s == KazooState.LOST for _, s in after):
            raise SampleFailed("kazoo reported the session LOST (expired)")
        if zk.client_id[0] != sid:
            raise SampleFailed("session id changed: 0x%x -> 0x%x" % (sid, zk.client_id[0]))
        peer = zk._connection._socket.getpeername()[1]
        new = [n for n in others if ens.m(n).client_port == peer]
        if not new:
            raise SampleFailed("kazoo is connected to port %d, not to a survivor" % peer)
        sample["reconnected_to"] = new[0]
        sample["reconnected_to_mode"] = srvr_mode(peer, 1.0)
        if sid not in cons_sids(peer):
            raise SampleFailed("cons of s%d does not list session 0x%x" % (new[0], sid))
        st = zk.exists(eph)
        if st is None or st.ephemeralOwner != sid:
            raise SampleFailed("the session's ephemeral %s is %s" % (
                eph, "gone" if st is None else "owned by 0x%x" % st.ephemeralOwner))
        sample["checks"] = ["kazoo connected to the target first (socket peer, cons)", "same session id after",
                            "no LOST/expiry event", "cons of the new server lists the session",
                            "the session's ephemeral is still there and owned by it"]
    finally:
        if zk is not None:
            try:
                zk.stop()
                zk.close()
            except Exception:  # noqa: BLE001
                pass
        if killed:
            sample["close_wait_after"] = close_wait(ens)
            restart_killed(ens, target, sample)
    return sample


# ------------------------------------------------------------ snapshot transfer

FK_RECEIVED = re.compile(r"snapshot received.*?\bbytes=(\d+).*?\breceived_ms=(\d+)")
FK_SENT = re.compile(r"snapshot sent and installed.*")
FK_FIELD = lambda name: re.compile(r"\b%s=(\S+)" % name)  # noqa: E731
ZK_TS = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d{3})")
ZK_SYNC = [("SNAP", "Getting a snapshot from leader"), ("DIFF", "Getting a diff from the leader"),
           ("TRUNC", "Truncating log to get in sync with the leader")]


def zk_log_time(line):
    m = ZK_TS.match(line)
    if not m:
        return None
    return dt.datetime.strptime(m.group(1).replace("T", " ").replace(",", "."), "%Y-%m-%d %H:%M:%S.%f").timestamp()


def run_snapshot(ens, args, raw, loadgen, res):
    """Fills res (kept, with what was measured, when a check fails)."""
    state = ens.wait_serving()
    leader = ens.leader(state)
    fol = [n for n in (1, 2, 3) if n != leader][0]
    F, L = ens.m(fol), ens.m(leader)
    res.update({"count": args.tree, "value_size": 100, "leader": leader, "follower": fol})
    F.kill9()
    ens.wait_serving([n for n in (1, 2, 3) if n != fol], timeout=60)
    leader_log0 = L.log_size()
    log("  %s: s%d killed; populating %d znodes through the leader s%d" % (ens.kind, fol, args.tree, leader))
    out = raw / ("populate-%s.json" % ens.kind)
    p = benchlib.run([loadgen, "populate", "-servers", "127.0.0.1:%d" % L.client_port, "-count", args.tree,
                      "-value-size", 100, "-sessions", 32, "-outstanding", 64, "-server-pid", L.proc.pid,
                      "-out", out], timeout=7200, check=False)
    if not out.exists():
        raise SampleFailed("loadgen populate failed (exit %d): %s" % (p.returncode, p.stderr[-2000:]))
    pop = json.loads(out.read_text())
    res["populate_s"], res["creates_per_s"] = pop["elapsed_s"], pop["creates_per_s"]
    if not pop["checks"]["ok"]:
        raise SampleFailed("populate's checks failed: %s" % pop["checks"]["failures"])
    last, parents = pop["last_node"], pop["parents"]
    res["last_node"], res["parents"] = last, parents
    res["leader_node_count"] = node_count(L.client_port)
    res["leader_rss_kb"] = L.mem_kb()
    if ens.kind == "ferrokeeper" and args.tree >= 100000:
        # let the leader finish the snapshots it builds every snapCount (100 000) entries, so that
        # the follower finds the log purged behind the last one (at most 2 minutes)
        # (openraft snapshots once 100 000 entries were applied since the last snapshot)
        t = mono()
        while True:
            built = [x for x in L.log_since(leader_log0).splitlines() if "snapshot built" in x]
            idx = [int(m.group(1)) for m in (re.search(r"snapshots/(\d+)-\d+", x) for x in built) if m]
            zxid = leader_zxid(L.client_port)
            if zxid is None or (idx and zxid - max(idx) < 100000) or mono() - t > 120:
                break
            time.sleep(0.5)
        res["leader_zxid"], res["leader_last_snapshot_index"] = zxid, max(idx) if idx else None
        # openraft purges the log behind a new snapshot only while no replication has those
        # entries in flight; the one to the stopped follower retries about every second, and
        # the purge is tried again after each failure: give it a few seconds
        time.sleep(3)
        res["leader_snapshots_built"] = len(built)
        res["leader_snapshot_built_lines"] = built[-2:]
    vdir = F.dir / "data" / "version-2"
    snaps_before = set(os.listdir(vdir)) if vdir.is_dir() else set()
    f_log0, leader_log1 = F.log_size(), L.log_size()
    want = node_value(args.tree - 1, 100)
    time.sleep(1)
    log("  %s: restarting s%d" % (ens.kind, fol))
    t0 = F.launch()
    wall0 = time.time()
    t_follower = t_answer = None
    probe_errors = collections.Counter()
    deadline = t0 + args.snapshot_timeout
    while True:
        if not F.running():
            raise SampleFailed("the restarted follower exited; log tail:\n%s" % F.log_tail())
        if mono() > deadline:
            raise SampleFailed("s%d did not serve %s within %.0f s (srvr said follower: %s); errors %s; "
                               "log tail:\n%s" % (fol, last, args.snapshot_timeout, t_follower is not None,
                                                  dict(probe_errors), F.log_tail()))
        t = mono()
        mode = srvr_mode(F.client_port, 1.0)
        if mode is not None and t_answer is None:
            t_answer = mono()
        if mode == "follower" and t_follower is None:
            t_follower = mono()
        if t_follower is not None:
            try:
                with ZkRaw(F.client_port, timeout=5.0) as z:
                    z.sync(last)
                    got = z.get(last)
                if got == want:
                    t_read = mono()
                    break
                probe_errors["wrong value (%d bytes)" % len(got)] += 1
            except (OSError, ZkError) as e:
                probe_errors[re.sub(r"\d+", "N", str(e))[:80]] += 1
        time.sleep(max(0.0, 0.02 - (mono() - t)))
    res["first_answer_s"] = round(t_answer - t0, 3)
    res["follower_srvr_s"] = round(t_follower - t0, 3)
    res["serve_s"] = round(t_read - t0, 3)
    res["probe_errors"] = dict(probe_errors)
    res["follower_rss_kb"] = F.mem_kb()
    # checks: the whole tree is on the follower
    total = 0
    with ZkRaw(F.client_port, timeout=10.0) as z:
        z.sync("/bigtree")
        for i in range(parents):
            st = z.exists("/bigtree/d-%04d" % i)
            if st is None:
                raise SampleFailed("the follower has no /bigtree/d-%04d" % i)
            total += st["numChildren"]
    if total != args.tree:
        raise SampleFailed("the follower's parents have %d children, want %d" % (total, args.tree))
    res["follower_node_count"], res["leader_node_count_after"] = node_count(F.client_port), node_count(L.client_port)
    if res["follower_node_count"] != res["leader_node_count_after"]:
        raise SampleFailed("srvr Node count: follower %s, leader %s" % (
            res["follower_node_count"], res["leader_node_count_after"]))
    res["znodes"] = args.tree + parents + 1  # the tree: znodes, parents, /bigtree
    time.sleep(0.5)
    flog, llog = F.log_since(f_log0), L.log_since(leader_log1)
    if ens.kind == "ferrokeeper":
        rec = [FK_RECEIVED.search(x) for x in flog.splitlines() if "snapshot received" in x]
        sent = [x for x in llog.splitlines() if "snapshot sent and installed" in x]
        res["follower_log"] = [x for x in flog.splitlines() if "snapshot" in x][-5:]
        res["leader_log"] = sent[-3:]
        if not rec or not rec[-1]:
            res["sync_mode"] = "log replication (no snapshot)"
            raise SampleFailed("the follower caught up without a snapshot: no `snapshot received` line in its "
                               "log (leader's snapshot lines: %s)" % res.get("leader_snapshot_built_lines"))
        res["sync_mode"] = "snapshot"
        res["bytes"] = int(rec[-1].group(1))
        line = [x for x in flog.splitlines() if "snapshot received" in x][-1]
        m = re.search(r"last_log:\d+\.(\d+)", line)
        res["follower_zxid"] = leader_zxid(F.client_port)
        if m and res["follower_zxid"] is not None:
            # the leader sends its last snapshot, up to snapCount entries old: the rest comes from its log
            res["snapshot_index"] = int(m.group(1))
            res["entries_after_snapshot"] = res["follower_zxid"] - res["snapshot_index"]
        res["follower_received_ms"] = int(rec[-1].group(2))
        mine = [x for x in sent if re.search(r"\btarget_node=%d\b" % fol, x)]
        if mine:
            x = mine[-1]
            res["leader_sent_bytes"] = int(FK_FIELD("bytes").search(x).group(1))
            res["leader_elapsed_ms"] = int(FK_FIELD("elapsed_ms").search(x).group(1))
            res["leader_mib_per_s"] = float(FK_FIELD("mib_per_s").search(x).group(1).strip('"'))
            if res["leader_sent_bytes"] != res["bytes"]:
                raise SampleFailed("leader sent %d bytes, follower received %d" % (res["leader_sent_bytes"],
                                                                                   res["bytes"]))
        else:
            res["note"] = "no `snapshot sent and installed` line for target_node=%d in the leader's log" % fol
    else:
        modes = [(k, x) for x in flog.splitlines() for k, needle in ZK_SYNC if needle in x]
        res["follower_log"] = [x for _, x in modes][-3:] + [
            x for x in flog.splitlines() if "Learner received" in x][-3:]
        res["leader_log"] = [x for x in llog.splitlines() if "Synchronizing with Learner" in x or
                             "Sending snapshot" in x or "Sending DIFF" in x or "Sending SNAP" in x][-4:]
        if not modes:
            raise SampleFailed("no SNAP/DIFF/TRUNC line in the follower's log")
        res["sync_mode"] = modes[-1][0]
        new = sorted((f for f in set(os.listdir(vdir)) - snaps_before if f.startswith("snapshot.")),
                     key=lambda f: int(f.split(".")[1], 16))
        res["new_snapshot_files"] = {f: (vdir / f).stat().st_size for f in new}
        if res["sync_mode"] != "SNAP":
            raise SampleFailed("the follower synced with %s, not SNAP: %s" % (res["sync_mode"], modes[-1][1]))
        if not new:
            raise SampleFailed("no new snapshot file in the follower's %s" % vdir)
        m = re.search(r"leader 0x([0-9a-f]+)", modes[-1][1])
        pick = [f for f in new if m and int(f.split(".")[1], 16) == int(m.group(1), 16)] or new[:1]
        res["snapshot_file"] = pick[0]
        res["bytes"] = (vdir / pick[0]).stat().st_size
        t_snap = zk_log_time(modes[-1][1])
        for key, needle in (("follower_log_newleader_ms", "Learner received NEWLEADER"),
                            ("follower_log_uptodate_ms", "Learner received UPTODATE")):
            ends = [zk_log_time(x) for x in flog.splitlines() if needle in x]
            if t_snap and ends and ends[0]:
                res[key] = round((ends[0] - t_snap) * 1000)
        res["launch_wall"] = wall0
    res["mib"] = round(res["bytes"] / 1048576, 2)
    res["znodes_per_s"] = round(res["znodes"] / res["serve_s"])
    res["mib_per_s"] = round(res["mib"] / res["serve_s"], 2)
    res["checks"] = ["populate's own checks", "the follower said Mode: follower",
                     "after sync it returned the last znode's value",
                     "its parents have %d children in all" % args.tree,
                     "srvr Node count equal on follower and leader",
                     "its log says how it synced: snapshot (ferrokeeper) / SNAP (Apache)"]
    return res


# ------------------------------------------------------------ write throughput

def pin(pids, cpus):
    """Moves every thread of each process onto `cpus` (taskset -a): threads started later
    inherit it."""
    for pid in pids:
        benchlib.run(["taskset", "-a", "-cp", cpus, pid], timeout=30)


def run_writes(ens, args, raw, loadgen, rep, res):
    """One repetition of each write mix on the running ensemble; fills res[mix name]."""
    state = ens.wait_serving()
    leader = ens.leader(state)
    members = [ens.m(n) for n in (1, 2, 3)]
    servers = ",".join("127.0.0.1:%d" % m.client_port for m in members)
    pids = [m.proc.pid for m in members]
    res.update({"rep": rep, "leader": leader})
    pin(pids, args.server_cpu)
    try:
        L = ens.m(leader)
        for name, _, mix in WRITE_MIXES:
            out = raw / ("writes-%s-%s-rep%d.json" % (ens.kind, name, rep))
            cmd = ["taskset", "-c", args.gen_cpu, loadgen, "run", "-servers", servers, "-pin-sessions",
                   "-sessions", 32, "-outstanding", 64, "-mix", mix, "-value-size", 100,
                   "-duration", "%ss" % args.write_duration, "-warmup", "%ss" % args.write_warmup,
                   "-prefix", "%s/writes-%s-%d" % (BASE, name, rep),
                   "-server-pid", L.proc.pid,
                   "-more-server-pids", ",".join(str(m.proc.pid) for m in members if m.n != leader),
                   "-label", "ensemble %s %s rep %d" % (ens.kind, name, rep), "-out", out]
            p = benchlib.run(cmd, timeout=args.write_duration + args.write_warmup + 600, check=False)
            if not out.exists():
                raise SampleFailed("loadgen run (%s) failed (exit %d): %s" % (name, p.returncode, p.stderr[-2000:]))
            r = json.loads(out.read_text())
            checks, cpu, tot = r["checks"], r["cpu"], r["total"]
            x = {"ops_per_s": tot["ops_per_s"], "p50_ms": tot["latency"]["p50_us"] / 1000,
                 "p99_ms": tot["latency"]["p99_us"] / 1000, "errors": tot["errors_window"],
                 "servers_cpu_us_per_op": cpu.get("server_cpu_us_per_op"),
                 "servers_util": cpu.get("server_util"), "generator_util": cpu["generator_util"],
                 "generator_bottleneck": cpu["generator_bottleneck"], "leader_rss_kb": cpu.get("server_vmrss_kb")}
            res[name] = x
            log("  %s writes rep %d %s: %.0f ops/s, p99 %.1f ms, %.1f us CPU/op (3 servers)" % (
                ens.kind, rep, name, x["ops_per_s"], x["p99_ms"], x["servers_cpu_us_per_op"] or -1))
            if not checks["ok"] or tot["errors_window"]:
                raise SampleFailed("loadgen's checks failed (%s): %s; errors %s" % (
                    name, checks.get("failures"), r.get("errors")))
            if cpu.get("server_cpu_note"):
                raise SampleFailed("server CPU not measured (%s): %s" % (name, cpu["server_cpu_note"]))
            if ens.wait_serving() != state:
                raise SampleFailed("the ensemble changed leader during the %s run" % name)
        res["checks"] = ["loadgen's own checks (every request answered, versions and create/delete counts add up)",
                         "no error in the window", "the same leader before and after"]
    finally:
        pin(pids, "0-%d" % (os.cpu_count() - 1))


# ------------------------------------------------------------ report

def stat(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def summarize(results):
    s = {}
    for kind, r in results.items():
        d = {}
        el = [x for x in r.get("election", []) if "failed" not in x]
        if r.get("election"):
            d["election_leader_s"] = stat([x["leader_s"] for x in el])
            d["election_write_s"] = stat([x["write_s"] for x in el])
            d["election_rejoin_s"] = stat([x.get("rejoin_s") for x in el])
        for role in ("follower", "leader"):
            rc = [x for x in r.get("reconnect_" + role, []) if "failed" not in x]
            if r.get("reconnect_" + role):
                d["reconnect_%s_request_s" % role] = stat([x["request_s"] for x in rc])
                d["reconnect_%s_connected_s" % role] = stat([x["connected_s"] for x in rc])
        wr = [x for x in r.get("writes", []) if "failed" not in x]
        for name, _, _ in WRITE_MIXES:
            for key in ("ops_per_s", "p99_ms", "servers_cpu_us_per_op"):
                if r.get("writes"):
                    d["writes_%s_%s" % (name, key)] = stat([x.get(name, {}).get(key) for x in wr])
        sn = r.get("snapshot")
        if sn and "failed" not in sn:
            d["snapshot"] = {k: sn.get(k) for k in ("serve_s", "follower_srvr_s", "znodes_per_s", "mib", "mib_per_s",
                                                   "sync_mode")}
        s[kind] = d
    return s


def fmt_stat(st, f):
    """A stat cell: f(median), with (f(min)–f(max)) when there are several values."""
    if not st:
        return "–"
    if st["n"] == 1:
        return f(st["median"])
    return "%s (%s–%s)" % (f(st["median"]), f(st["min"]), f(st["max"]))


def fmt_ms(st):
    return fmt_stat(st, lambda x: ("%.0f ms" % (x * 1000)) if x < 10 else ("%.1f s" % x))


def ratio(a, b):
    if not a or not b or not b["median"]:
        return "–"
    return "%.2f" % (a["median"] / b["median"])


def write_report(path, meta, results, summary, kinds):
    L = []
    w = L.append
    both = "apache" in kinds and "ferrokeeper" in kinds
    cols = [TITLES[k] for k in kinds] + (["ferrokeeper / Apache"] if both else [])
    w("# Ensemble failures: ferrokeeper vs Apache ZooKeeper %s (3 servers each)" % ZK_VERSION)
    w("")
    if meta["settings"]["quick"]:
        w("> **DEVELOPMENT RUN (`--quick`)**: few repetitions, a %s-znode tree, possibly on a busy "
          "machine. These numbers only show that the harness works; do not quote them." %
          "{:,}".format(meta["settings"]["tree"]).replace(",", "\u202f"))
        w("")
    fk = meta.get("ferrokeeper", {})
    if fk.get("profile") == "debug":
        w("> **ferrokeeper is a debug build** (%s): its figures are not representative." % fk.get("source"))
        w("")
    m = meta["machine"]
    w("* Date %s; commit %s%s" % (meta["date"], meta["commit"][:12] or "?",
                                  " (crates/ has uncommitted changes)" if meta["dirty"] else ""))
    if fk:
        w("* ferrokeeper: %s (%s build), sha256 %s…" % (fk.get("source"), fk.get("profile"), fk.get("sha256", "")[:16]))
    w("* Apache ZooKeeper %s (Maven Central jars), %s, JVM options `%s`" % (
        ZK_VERSION, meta["java"], meta["settings"]["zk_jvm_opts"]))
    w("* Machine: %s, nproc %s, %s GiB, Linux %s; data on %s. Load average at start %s, at end %s; "
      "per phase in report.json. Nothing pinned, except in the write runs." % (
          m["cpu_model"], m["nproc"], m["memory_gib"], m["kernel"], m["data_disk"],
          " ".join(m["loadavg_at_start"]), " ".join(m.get("loadavg_at_end", ["?"]))))
    w("* Each ensemble: 3 servers on 127.0.0.1, one zoo.cfg each with ZooKeeper's defaults: tickTime=2000, "
      "initLimit=10, syncLimit=5, forceSync on (not written: the default), snapCount 100 000 (default). "
      "One server kind at a time.")
    w("* Cells: median (min–max) over the repetitions; times from the SIGKILL (taken just before "
      "`kill(2)`) on a monotonic clock.")
    w("")
    s = meta["settings"]

    def row(label, key, fmt=fmt_ms):
        cells = [fmt(summary.get(k, {}).get(key)) for k in kinds]
        if both:
            cells.append(ratio(summary["ferrokeeper"].get(key), summary["apache"].get(key)))
        w("| %s | %s |" % (label, " | ".join(cells)))

    if "election" in s["scenarios"]:
        w("## Leader election after kill -9 of the leader (%d repetitions)" % s["reps"])
        w("")
        w("Per survivor: `srvr` on a fresh connection every %d ms, and a kazoo session connected to it "
          "before the SIGKILL (hosts = that survivor only, same retry policy as below) that issues a "
          "create (PERSISTENT_SEQUENTIAL) until one succeeds, retrying 10 ms after a ConnectionLoss. "
          "After each repetition the killed server is started again and the next one waits until all "
          "three serve (srvr leader/follower, one leader, a session can be opened on each)." % s["poll_ms"])
        w("")
        w("| | %s |" % " | ".join(cols))
        w("|" + " --- |" * (1 + len(cols)))
        row("SIGKILL → a survivor says Mode: leader", "election_leader_s")
        row("SIGKILL → first create acknowledged through a survivor", "election_write_s")
        row("restart of the killed server → all three serve", "election_rejoin_s")
        w("")
    if "reconnect" in s["scenarios"]:
        w("## Client reconnect after kill -9 of its server (%d repetitions each)" % s["reconnect_reps"])
        w("")
        w("kazoo %s, session timeout %g s, hosts = the killed server first then the other two, in order "
          "(randomize_hosts=False), connection retry every %d ms without back-off or jitter (kazoo's default "
          "back-off would add its own delays). After the SIGKILL the client issues a create until one succeeds "
          "(kazoo queues it until the session is re-established); checked: same session id, no expiry, "
          "`cons` of the new server lists the session, the session's ephemeral still exists and is owned by it." %
          (kazoo.__version__ if hasattr(kazoo, "__version__") else meta.get("kazoo"), s["session_timeout"],
           s["kazoo_retry_ms"]))
        w("")
        w("| | %s |" % " | ".join(cols))
        w("|" + " --- |" * (1 + len(cols)))
        row("follower killed: SIGKILL → create succeeds on the same session", "reconnect_follower_request_s")
        row("follower killed: SIGKILL → kazoo CONNECTED (the last time before the create succeeded)",
            "reconnect_follower_connected_s")
        row("leader killed: SIGKILL → create succeeds on the same session", "reconnect_leader_request_s")
        row("leader killed: SIGKILL → kazoo CONNECTED (the last time before the create succeeded)",
            "reconnect_leader_connected_s")
        w("")
    if "snapshot" in s["scenarios"]:
        w("## Snapshot transfer to a restarted follower: %s znodes of 100 bytes" %
          "{:,}".format(s["tree"]).replace(",", "\u202f"))
        w("")
        w("One follower SIGKILLed; `loadgen populate` creates the tree through the leader (32 sessions × 64 "
          "outstanding, 1000 children per parent); the follower is started again; time from its launch "
          "until it answers `srvr` as follower and a fresh session on it, after `sync`, reads the "
          "last-created znode's value (polled every 20 ms). Data received: ferrokeeper, `bytes=` of its "
          "`snapshot received` log line (a RocksDB checkpoint); Apache, the size of the follower's new "
          "snapshot file in dataDir/version-2 (written after the SNAP). MiB/s and znodes/s over the whole "
          "launch → served time. Apache's leader serializes its tree as it is when the follower connects; "
          "ferrokeeper's sends its last snapshot (built every snapCount = 100 000 entries, so up to that "
          "many entries old), then the log entries after it.")
        w("")
        w("| | %s |" % " | ".join(TITLES[k] for k in kinds))
        w("|" + " --- |" * (1 + len(kinds)))

        def srow(label, f):
            cells = []
            for k in kinds:
                sn = results.get(k, {}).get("snapshot") or {}
                cells.append("**failed**" if "failed" in sn else f(sn))
            w("| %s | %s |" % (label, " | ".join(cells)))

        g = lambda key, fmt: (lambda sn: fmt % sn[key] if sn.get(key) is not None else "–")  # noqa: E731
        srow("how the follower synced (its log)", g("sync_mode", "%s"))
        srow("populate through the leader (2 of 3 up)", lambda sn: "%.1f s (%s creates/s)" % (
            sn["populate_s"], "{:,.0f}".format(sn["creates_per_s"]).replace(",", "\u202f"))
            if sn.get("populate_s") else "–")
        srow("data received by the follower", g("mib", "%.1f MiB"))
        srow("launch → first `srvr` answer (process up)", g("first_answer_s", "%.2f s"))
        srow("launch → srvr says follower", g("follower_srvr_s", "%.2f s"))
        srow("**launch → serves the full tree** (read after sync)", g("serve_s", "**%.2f s**"))
        srow("znodes/s (tree znodes / that time)", lambda sn: "{:,.0f}".format(sn["znodes_per_s"]).replace(
            ",", "\u202f") if sn.get("znodes_per_s") else "–")
        srow("MiB/s (data received / that time)", g("mib_per_s", "%.1f"))
        srow("transfer alone, from the logs", lambda sn: (
            "leader: %.2f s, %.1f MiB/s (`snapshot sent and installed`); follower received in %.2f s" % (
                sn["leader_elapsed_ms"] / 1000, sn["leader_mib_per_s"], sn["follower_received_ms"] / 1000)
            if sn.get("leader_elapsed_ms") is not None else
            ("follower log: `Getting a snapshot` → `received NEWLEADER` %.2f s, → `received UPTODATE` %.2f s" % (
                sn["follower_log_newleader_ms"] / 1000, sn.get("follower_log_uptodate_ms", 0) / 1000)
             if sn.get("follower_log_newleader_ms") is not None else "–")))
        srow("log entries replicated after the snapshot", lambda sn: "{:,}".format(
            sn["entries_after_snapshot"]).replace(",", "\u202f") if sn.get("entries_after_snapshot") is not None
            else ("0 (SNAP at the leader's zxid)" if sn.get("sync_mode") == "SNAP" else "–"))
        srow("RSS of the follower after it served", lambda sn: "%.0f MiB" % (sn["follower_rss_kb"] / 1024)
             if sn.get("follower_rss_kb") else "–")
        w("")
    if "writes" in s["scenarios"]:
        w("## Write throughput of a 3-server ensemble (%d repetitions)" % s["write_reps"])
        w("")
        w("`loadgen run` (go-zookeeper, pipelined): 32 sessions × 64 outstanding, session i on server i mod 3 "
          "(11/11/10 sessions: writes from the followers' clients are forwarded to the leader), values of 100 "
          "bytes, %g s warm-up then a %g s window; setData on 10 000 pre-populated znodes, create+delete of "
          "PERSISTENT_SEQUENTIAL znodes (both ops count). The three servers of the ensemble are pinned to CPU %s "
          "together (`taskset -a`, for the runs only), the generator to CPU %s, as the single-server benchmark "
          "pins one server; CPU per op is the user+system time of all three server processes over the window "
          "divided by the ops completed in it. Every write is fsynced on a quorum before it is acknowledged "
          "(both)." % (s["write_warmup"], s["write_duration"], s["server_cpu"], s["gen_cpu"]))
        w("")
        w("| | %s |" % " | ".join(cols))
        w("|" + " --- |" * (1 + len(cols)))
        for name, title, _ in WRITE_MIXES:
            for key, label, fmt in (("ops_per_s", "ops/s", "%.0f"), ("p99_ms", "p99 latency, ms", "%.1f"),
                                    ("servers_cpu_us_per_op", "CPU of the 3 servers per op, µs", "%.1f")):
                row("%s: %s" % (title, label), "writes_%s_%s" % (name, key),
                    lambda st, fmt=fmt: fmt_stat(st, lambda x: fmt % x))
        w("")
    w("## Every sample")
    w("")
    for k in kinds:
        r = results.get(k, {})
        w("**%s**" % TITLES[k])
        w("")
        for name, key in (("election: → Mode: leader", "leader_s"), ("election: → create acknowledged", "write_s"),
                          ("election: rejoin", "rejoin_s")):
            xs = r.get("election", [])
            if xs:
                w("* %s: %s" % (name, ", ".join("**failed**" if "failed" in x else "%.0f ms" % (x[key] * 1000)
                                                for x in xs)))
        for role in ("follower", "leader"):
            xs = r.get("reconnect_" + role, [])
            if xs:
                w("* reconnect, %s killed (create ok / CONNECTED, ms; new server): %s" % (role, ", ".join(
                    "**failed**" if "failed" in x else "%.0f / %s (s%d)" % (
                        x["request_s"] * 1000, "–" if x["connected_s"] is None else "%.0f" % (x["connected_s"] * 1000),
                        x["reconnected_to"]) for x in xs)))
        w("")
    w("## Failures and flags")
    w("")
    fails = []
    for k in kinds:
        r = results.get(k, {})
        for scen, xs in r.items():
            xs = xs if isinstance(xs, list) else [xs]
            for x in xs:
                if x and "failed" in x:
                    fails.append("%s / %s%s: %s" % (TITLES[k], scen, " rep %d" % x["rep"] if "rep" in x else "",
                                                     x["failed"].splitlines()[0][:400]))
    for n in meta.get("notes", []):
        fails.append(n)
    for k in kinds:
        r = results.get(k, {})
        leaks = []
        for scen, xs in r.items():
            for x in (xs if isinstance(xs, list) else [xs]):
                cw = (x or {}).get("close_wait_after") or {}
                if any(cw.values()):
                    leaks.append("%s%s: %s" % (scen, " rep %d" % x["rep"] if "rep" in x else "",
                                               ", ".join("%s %d" % kv for kv in sorted(cw.items()) if kv[1])))
        if leaks or any((r.get("close_wait_at_end") or {}).values()):
            fails.append("%s: client connections the servers did not close after the client had (CLOSE-WAIT on "
                         "the client ports; they count against maxClientCnxns=60 per address): after %s; at the "
                         "end %s" % (TITLES[k], "; ".join(leaks) or "–", r.get("close_wait_at_end")))
    if fails:
        for f in fails:
            w("* " + f)
    else:
        w("None: every sample was measured and passed its checks.")
    w("")
    w("Settings, machine, per-phase load averages and every sample (with event timelines): `report.json`.")
    w("")
    path.write_text("\n".join(L))


# ------------------------------------------------------------ main

def pick_ferrokeeper():
    given = os.environ.get("FERROKEEPER_BIN")
    rel = Path("/var/cache/ferrokeeper/target/release/ferrokeeper")
    dbg = Path("/var/cache/ferrokeeper/target/debug/ferrokeeper")
    if given:
        src, source = Path(given), "FERROKEEPER_BIN=%s" % given
        profile = "debug" if "/debug/" in given else ("release" if "/release/" in given else "unknown")
    elif rel.is_file():
        src, source, profile = rel, str(rel), "release"
    elif dbg.is_file():
        src, source, profile = dbg, str(dbg), "debug"
    else:
        raise HarnessError("no ferrokeeper binary: set FERROKEEPER_BIN or build %s" % rel)
    if not os.access(src, os.X_OK):
        raise HarnessError("%s is not executable" % src)
    dst = CACHE / "bench" / "ensemble-ferrokeeper"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)  # a concurrent rebuild cannot swap it mid-run
    return {"source": source, "profile": profile, "binary": str(dst), "sha256": benchlib.sha256(dst),
            "mtime": dt.datetime.fromtimestamp(src.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 repetitions, a 100 000-znode tree")
    ap.add_argument("--servers", default="apache,ferrokeeper")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="from: %s" % ", ".join(SCENARIOS))
    ap.add_argument("--reps", type=int, help="election repetitions (default 10; --quick 3)")
    ap.add_argument("--reconnect-reps", type=int, help="per killed role (default 10; --quick 3)")
    ap.add_argument("--tree", type=int, help="znodes of the snapshot test (default 1000000; --quick 100000)")
    ap.add_argument("--poll-ms", type=int, default=10, help="srvr / create polling period (default 10)")
    ap.add_argument("--session-timeout", type=float, default=10.0, help="kazoo session timeout, s (default 10)")
    ap.add_argument("--kazoo-retry-ms", type=int, default=10,
                    help="kazoo's connection retry delay after a round of hosts failed (default 10, no back-off)")
    ap.add_argument("--election-timeout", type=float, default=60.0)
    ap.add_argument("--reconnect-timeout", type=float, default=60.0)
    ap.add_argument("--snapshot-timeout", type=float, default=900.0)
    ap.add_argument("--base-port", type=int, default=26000,
                    help="Apache: client base+1..3, quorum +11..13, election +21..23; ferrokeeper the same +100 "
                         "(default 26000)")
    ap.add_argument("--zk-jvm-opts", default="-Xmx2g", help="Apache ZooKeeper's heap/GC flags (default -Xmx2g)")
    ap.add_argument("--fk-rust-log", help="RUST_LOG for ferrokeeper (default: unset, its own default "
                                          "info,openraft=warn)")
    ap.add_argument("--out", help="output dir (default results/ensemble-<UTC>-<commit>, "
                                  "results/quick-ensemble-... with --quick)")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--write-reps", type=int, help="write throughput repetitions (default 3; --quick 1)")
    ap.add_argument("--write-duration", type=int, help="write window, s (default 30; --quick 5)")
    ap.add_argument("--write-warmup", type=int, help="write warm-up, s (default 10; --quick 2)")
    ap.add_argument("--server-cpu", default="0", help="CPU the servers are pinned to in the write runs (default 0)")
    ap.add_argument("--gen-cpu", default="1", help="CPU of the load generator in the write runs (default 1)")
    a = ap.parse_args()
    a.write_reps = a.write_reps or (1 if a.quick else 3)
    a.write_duration = a.write_duration or (5 if a.quick else 30)
    a.write_warmup = a.write_warmup or (2 if a.quick else 10)
    a.reps = a.reps or (3 if a.quick else 10)
    a.reconnect_reps = a.reconnect_reps or (3 if a.quick else 10)
    a.tree = a.tree or (100000 if a.quick else 1000000)
    a.servers = [x.strip() for x in a.servers.split(",") if x.strip()]
    a.scenarios = [x.strip() for x in a.scenarios.split(",") if x.strip()]
    for k in a.servers:
        if k not in TITLES:
            ap.error("unknown server %r" % k)
    for sc in a.scenarios:
        if sc not in SCENARIOS:
            ap.error("unknown scenario %r" % sc)
    if a.base_port < 1025 or a.base_port + 123 > 65535:
        ap.error("bad --base-port")
    return a


def run_kind(kind, args, ens_args, raw, meta, kz_logger, loadgen):
    res = {}
    ens = Ensemble(kind, args, **ens_args)
    meta["phases"].append({"phase": "%s start" % kind, "loadavg": loadavg()})
    try:
        try:
            ens.start()
        except SampleFailed as e:
            raise HarnessError("the %s ensemble did not start: %s" % (kind, e))
        with ZkRaw(ens.m(1).client_port) as z:
            z.create(BASE)
        broken = None

        def one(name, fn, *fargs):
            nonlocal broken
            x = {}
            if broken:
                x["failed"] = "not run: the ensemble broke earlier (%s)" % broken
                return x
            try:
                fn(*fargs, x)
                log("  %s %s: %s" % (kind, name, ", ".join("%s %s" % (k, x[k]) for k in (
                    "leader_s", "write_s", "request_s", "connected_s", "reconnected_to", "rejoin_s",
                    "sync_mode", "mib", "serve_s") if k in x)))
            except EnsembleBroken as e:
                broken = str(e).splitlines()[0][:200]
                log("  %s %s: the killed server did not rejoin; skipping the rest: %s" % (kind, name, e))
            except SAMPLE_ERRORS as e:
                x["failed"] = failure_text(e)
                log("  %s %s FAILED: %s" % (kind, name, e))
            if x.get("close_wait_after") and any(x["close_wait_after"].values()):
                log("  %s %s: connections left in CLOSE-WAIT by the servers: %s" % (kind, name,
                                                                                   x["close_wait_after"]))
            return x

        if "election" in args.scenarios:
            res["election"] = [one("election rep %d" % rep, run_election, ens, rep, args, kz_logger)
                               for rep in range(args.reps)]
            meta["phases"].append({"phase": "%s election done" % kind, "loadavg": loadavg()})
        if "reconnect" in args.scenarios:
            for role in ("follower", "leader"):
                res["reconnect_" + role] = [
                    one("reconnect (%s killed) rep %d" % (role, rep), run_reconnect, ens, role, rep, args, kz_logger)
                    for rep in range(args.reconnect_reps)]
            meta["phases"].append({"phase": "%s reconnect done" % kind, "loadavg": loadavg()})
        if "writes" in args.scenarios:
            res["writes"] = [one("writes rep %d" % rep, run_writes, ens, args, raw, loadgen, rep)
                             for rep in range(args.write_reps)]
            meta["phases"].append({"phase": "%s writes done" % kind, "loadavg": loadavg()})
        if "snapshot" in args.scenarios:
            res["snapshot"] = one("snapshot", run_snapshot, ens, args, raw, loadgen)
            meta["phases"].append({"phase": "%s snapshot done" % kind, "loadavg": loadavg()})
        res["close_wait_at_end"] = close_wait(ens)
    finally:
        ens.stop()
        if not args.keep_data:
            for m in ens.members.values():
                shutil.rmtree(m.dir / "data", ignore_errors=True)
    return res


def main():
    args = parse_args()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    commit = benchlib.git("rev-parse", "HEAD")
    dirty = bool(benchlib.git("status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock"))
    stamp = dt.datetime.now(dt.timezone.utc)
    out = Path(args.out) if args.out else HERE / "results" / ("%sensemble-%s-%s" % (
        "quick-" if args.quick else "", stamp.strftime("%Y%m%dT%H%M%SZ"), commit[:10] or "nocommit"))
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    t_start = mono()
    ens_args = {}
    meta = {"date": stamp.isoformat(timespec="seconds"), "commit": commit, "dirty": dirty, "phases": [],
            "notes": [], "kazoo": getattr(kazoo, "__version__", "2.11.0"), "python": sys.version.split()[0]}
    machine = benchlib.machine_info(CACHE)
    machine["nproc"] = subprocess.run(["nproc"], stdout=subprocess.PIPE, text=True).stdout.strip()
    machine["loadavg_at_start"] = loadavg()
    meta["machine"] = machine
    log("load average %s, nproc %s" % (" ".join(machine["loadavg_at_start"]), machine["nproc"]))
    loadgen = None
    if "snapshot" in args.scenarios or "writes" in args.scenarios:
        benchlib.build_loadgen()
        loadgen = benchlib.LOADGEN
    if "ferrokeeper" in args.servers:
        fk = pick_ferrokeeper()
        meta["ferrokeeper"] = fk
        log("ferrokeeper: %s (%s)" % (fk["source"], fk["profile"]))
    if "apache" in args.servers:
        cp = benchlib.run([LIB / "apache-zk.sh", "classpath"], timeout=1800).stdout.strip().splitlines()[-1]
        ens_args["apache"] = {"classpath": cp}
    meta["java"] = benchlib.java_version()
    meta["settings"] = {k: v for k, v in vars(args).items()}
    meta["settings"]["zoo_cfg"] = "tickTime=2000 initLimit=10 syncLimit=5 (forceSync, snapCount: defaults)"
    kz_logger = logging.getLogger("ensemble.kazoo")
    kz_logger.propagate = False
    kz_logger.setLevel(logging.INFO)
    h = logging.FileHandler(raw / "kazoo.log")
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    kz_logger.addHandler(h)
    results = {}
    log("results -> %s" % out)
    try:
        for kind in args.servers:
            log("%s: 3-server ensemble on 127.0.0.1:%d-%d" % (kind, args.base_port + PORT_OFFSET[kind] + 1,
                                                               args.base_port + PORT_OFFSET[kind] + 3))
            kw = ens_args.get(kind, {})
            if kind == "ferrokeeper":
                kw = {"fk_bin": meta["ferrokeeper"]["binary"]}
            results[kind] = run_kind(kind, args, kw, raw, meta, kz_logger, loadgen)
            (out / "report.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    finally:
        cleanup()
    meta["machine"]["loadavg_at_end"] = loadavg()
    meta["elapsed_s"] = round(mono() - t_start)
    summary = summarize(results)
    (out / "report.json").write_text(json.dumps({"meta": meta, "summary": summary, "results": results}, indent=1))
    write_report(out / "report.md", meta, results, summary, args.servers)
    print((out / "report.md").read_text())
    log("done in %.0f s; report: %s" % (mono() - t_start, out / "report.md"))
    bad = [1 for r in results.values() for xs in r.values()
           for x in (xs if isinstance(xs, list) else [xs]) if x and "failed" in x]
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (HarnessError, benchlib.BenchError) as e:
        cleanup()
        log("error: %s" % e)
        sys.exit(2)
    except KeyboardInterrupt:
        cleanup()
        sys.exit(130)
