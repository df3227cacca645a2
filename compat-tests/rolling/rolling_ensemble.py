"""A local 3-member ensemble of one server kind, managed through lib/<kind>.sh.

Shared by both rolling suites: the harness side (rolling_suite.py and
rolling_curator.py, system python: `run_on_ensemble` starts, waits, stops),
and the kill schedule (rolling_schedule.py: kill, restart, wait between
tests), which runs in the pytest plugin (rolling_restarts.py, in kazoo's
venv) and in rolling_curator.py's controller. Standard library only.

Member N (1-based) of an ensemble whose first client port is P serves
clients on P + 3(N-1) and uses the two ports above it for quorum and
election, so each member follows lib/common.sh's "a server uses port,
port+1, port+2" rule; all three together use P .. P+8 on 127.0.0.1. The
members are ordinary harness servers named <prefix>-<N> (run dirs
.cache/run/<prefix>-<N>/), started with COMPAT_ZK_MEMBERS listing the three
client ports (lib/common.sh writes the server.N lines and myid).

"Serving", for a member: srvr answers and does not say "not currently serving
requests", and a client session can be created on it (a ConnectRequest is
answered with a session id; the session is closed right away). The whole
ensemble (its running members) serves when every running member does and
exactly one of them says "Mode: leader".
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
from fourlw import four_letter  # noqa: E402

SIZE = 3
PORTS_PER_MEMBER = 3
COMPAT_DIR = Path(__file__).resolve().parent.parent
REPO = COMPAT_DIR.parent
CACHE_DIR = Path(os.environ.get("COMPAT_CACHE_DIR", COMPAT_DIR / ".cache"))
RUN_ROOT = Path(os.environ.get("COMPAT_RUN_ROOT", CACHE_DIR / "run"))
NOT_SERVING = "not currently serving"
SESSION_TIMEOUT_MS = 4000  # the minimum with tickTime 2000: a probe session left behind expires soon


def client_ports(first_port, size=SIZE):
    return [first_port + PORTS_PER_MEMBER * i for i in range(size)]


def srvr_mode(port):
    """'leader', 'follower', ... from srvr; 'not serving'; or None (no answer)."""
    out = four_letter(port, "srvr")
    if not out:
        return None
    if NOT_SERVING in out:
        return "not serving"
    for line in out.splitlines():
        if line.startswith("Mode: "):
            return line[len("Mode: "):].strip()
    return "unknown"


def _recv_frame(s):
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = struct.unpack(">i", head)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return body


def session_ok(port, timeout=5.0):
    """True if a session can be created on the server at port (it is then closed)."""
    # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (16 zero bytes), readOnly
    req = struct.pack(">iqiqi16s?", 0, 0, SESSION_TIMEOUT_MS, 0, 16, b"\0" * 16, False)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(req)) + req)
            body = _recv_frame(s)
            if body is None or len(body) < 16:
                return False
            _proto, negotiated, session_id = struct.unpack(">iiq", body[:16])
            if negotiated <= 0 or session_id == 0:
                return False
            # closeSession (xid 1, opcode -11); its reply, or the server closing, ends it
            s.sendall(struct.pack(">iii", 8, 1, -11))
            _recv_frame(s)
            return True
    except OSError:
        return False


def utc_now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


class Ensemble:
    """Three members of one server kind; `script` is lib/apache-zk.sh or lib/ferrokeeper.sh."""

    def __init__(self, kind, script, prefix, first_port, size=SIZE, binary=None):
        self.kind = kind
        self.script = str(script)
        self.prefix = prefix
        self.first_port = first_port
        self.ports = client_ports(first_port, size)
        self.names = ["%s-%d" % (prefix, n) for n in range(1, size + 1)]
        self.binary = str(binary) if binary else None  # ferrokeeper: FERROKEEPER_BIN for every start

    # -- description, so the pytest plugin (another process) can manage the same members
    def spec(self):
        return {"kind": self.kind, "script": self.script, "prefix": self.prefix,
                "first_port": self.first_port, "size": len(self.ports), "binary": self.binary}

    @classmethod
    def from_spec(cls, spec):
        return cls(spec["kind"], spec["script"], spec["prefix"], spec["first_port"], spec["size"],
                   spec.get("binary"))

    @property
    def connect_string(self):
        return ",".join("127.0.0.1:%d" % p for p in self.ports)

    def run_dir(self, n):
        return RUN_ROOT / self.names[n - 1]

    def log_file(self, n):
        d = self.run_dir(n) / "log"
        return d / ("zookeeper.log" if self.kind == "apache" else "stdout.log")

    def pid(self, n):
        try:
            return int((self.run_dir(n) / "server.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self, n):
        pid = self.pid(n)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        try:  # a zombie nobody reaped yet is not running
            return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True

    def _script(self, *args, env=None):
        full = dict(os.environ, COMPAT_ZK_MEMBERS=",".join(str(p) for p in self.ports), COMPAT_START_NOWAIT="1")
        full.pop("COMPAT_ZK_EXTRA", None)
        if self.binary:
            full["FERROKEEPER_BIN"] = self.binary
        full.update(env or {})
        return subprocess.run(["bash", self.script] + [str(a) for a in args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=full)

    # -- lifecycle (every command by PID, through the server kind's script)
    def start(self):
        """Fresh run dirs, launch all members (without waiting). Returns None or an error text."""
        for n, (name, port) in enumerate(zip(self.names, self.ports), 1):
            p = self._script("start", name, port)
            if p.returncode != 0:
                self.stop()
                return "member %d (%s) failed to start (exit %d): %s" % (n, name, p.returncode, p.stdout.strip())
        return None

    def kill(self, n):
        p = self._script("kill", self.names[n - 1])
        if p.returncode != 0:
            raise RuntimeError("kill of member %d failed: %s" % (n, p.stdout.strip()))

    def restart(self, n):
        p = self._script("restart", self.names[n - 1], self.ports[n - 1])
        if p.returncode != 0:
            raise RuntimeError("restart of member %d failed: %s" % (n, p.stdout.strip()))

    def stop(self):
        out = []
        for name in self.names:
            if (RUN_ROOT / name / "server.pid").exists():
                p = self._script("stop", name)
                if p.returncode != 0:
                    out.append(p.stdout.strip())
        return "\n".join(out)

    # -- state
    def modes(self, members=None):
        """{member: srvr mode} of the given (default: all) members; None when down or silent."""
        return {n: (srvr_mode(self.ports[n - 1]) if self.running(n) else None)
                for n in (members or range(1, len(self.ports) + 1))}

    def wait_serving(self, members=None, timeout=120.0):
        """Wait until the given members (default: all) run and serve, with exactly one leader
        among them. Returns {member: mode}; raises TimeoutError with the last state."""
        members = list(members or range(1, len(self.ports) + 1))
        deadline = time.monotonic() + timeout
        state = {}
        while True:
            dead = [n for n in members if not self.running(n)]
            if dead:
                raise RuntimeError("member(s) %s exited; see %s" % (
                    ", ".join(map(str, dead)), ", ".join(str(self.log_file(n)) for n in dead)))
            state = self.modes(members)
            modes = list(state.values())
            if all(m in ("leader", "follower") for m in modes) and modes.count("leader") == 1:
                sessions = {n: session_ok(self.ports[n - 1]) for n in members}
                if all(sessions.values()):
                    return state
                state = {n: "%s%s" % (state[n], "" if sessions[n] else " (no session)") for n in members}
            if time.monotonic() > deadline:
                raise TimeoutError("members %s not serving with one leader within %gs: %s" % (
                    ",".join(map(str, members)), timeout, json.dumps(state)))
            time.sleep(0.2)


def snapshot_binary(kind, prefix):
    """ferrokeeper: a copy of the binary ($FERROKEEPER_BIN, else target/release/ferrokeeper)
    in <run root>/<prefix>-bin/, so that every start and restart of a run's members runs
    the same build even when the binary is rebuilt during the run. None for Apache, or
    when there is no binary (lib/ferrokeeper.sh then says so)."""
    if kind != "ferrokeeper":
        return None
    src = Path(os.environ.get("FERROKEEPER_BIN") or REPO / "target" / "release" / "ferrokeeper")
    if not src.is_file():
        return None
    d = RUN_ROOT / ("%s-bin" % prefix)
    d.mkdir(parents=True, exist_ok=True)
    dst = d / "ferrokeeper"
    tmp = d / "ferrokeeper.tmp"
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)
    return dst


def run_on_ensemble(kind, script, prefix, first_port, say, body, start_wait=120.0):
    """Start an ensemble of `kind` (members <prefix>-1..3 from first_port), wait until all
    three serve, call body(ensemble) and stop the members by PID, whatever happened.

    Both rolling suites run this way. Returns (body's result, None), or (None, error cell)
    when the ensemble did not start or serve."""
    binary = snapshot_binary(kind, prefix)
    ens = Ensemble(kind, script, prefix, first_port, binary=binary)
    say("  members on 127.0.0.1:%s (each also +1, +2)" % ",".join(str(p) for p in ens.ports))
    if binary:
        src = os.environ.get("FERROKEEPER_BIN") or REPO / "target" / "release" / "ferrokeeper"
        say("  binary: %s (copy of %s, built %s)" % (binary, src, time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(Path(binary).stat().st_mtime))))
    t = time.monotonic()
    err = ens.start()
    if err:
        say(err)
        return None, {"status": "error", "reason": "ensemble failed to start: %s" % err.splitlines()[-1]}
    try:
        try:
            modes = ens.wait_serving(timeout=start_wait)
        except (TimeoutError, RuntimeError) as e:
            say("  %s" % e)
            return None, {"status": "error", "reason": "ensemble did not serve: %s" % e}
        say("  ensemble serving after %.1fs: %s" % (time.monotonic() - t, json.dumps(modes)))
        return body(ens), None
    finally:
        msg = ens.stop()
        if msg:
            say(msg)


def harness_cell(res, keys):
    """The matrix cell of a rolling suite's result dict: the counts and figures in keys, the
    failed tests, and status "error" with the reason when the run had an error."""
    cell = {"status": "ran"}
    cell.update({k: res.get(k) for k in keys})
    cell["failed_tests"] = [f["id"] for f in res["failures"]]
    if "error" in res:
        cell["status"] = "error"
        cell["reason"] = res["error"]
    return cell


def cli_main(argv, doc, suite, setup, harness_cell):
    """The command line of a rolling suite: `setup`, or `run --server KIND --port P` (an
    ensemble of that kind on P, P+3, P+6), printing the matrix cell."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup")
    r = sub.add_parser("run")
    r.add_argument("--server", required=True, choices=("apache", "ferrokeeper"))
    r.add_argument("--port", type=int, required=True, help="client port of member 1 (members: P, P+3, P+6)")
    r.add_argument("--out-dir", default=str(Path(__file__).resolve().parent.parent / "results" / suite))
    args = ap.parse_args(argv)
    setup()
    if args.cmd == "setup":
        return 0
    lib = Path(__file__).resolve().parent.parent / "lib"
    script = lib / ("apache-zk.sh" if args.server == "apache" else "ferrokeeper.sh")
    cell = harness_cell(args.server, script, args.port, args.out_dir, lambda m: print(m, flush=True))
    print(json.dumps(cell, indent=2))
    return 0 if cell["status"] == "ran" and cell["failed"] == 0 else 1
