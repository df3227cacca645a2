#!/usr/bin/env python3
"""rolling-curator suite: the curator suite's tests against a 3-server ensemble, one member killed at a time.

    rolling_curator.py setup                                    mvn test-compile (curator_suite.py setup)
    rolling_curator.py run --server KIND --port P [--out-dir DIR]   start, run, stop

The tests are the curator suite's (curator/curator_suite.py runs them: the
same Maven project, our JUnit 5 tests plus curator/upstream-tests.txt), with
-Dzk.connect listing all three members. Before every test the test JVM's
RollingRestartListener (curator/src/test/java/.../RollingRestartListener.java,
active only with -Dcompat.rolling.control=127.0.0.1:PORT) asks the
controller here, over a socket on 127.0.0.1 (a port the kernel picks), and
waits for its answer; the controller runs rolling_schedule.Rotation (victim
order "rounds"), which SIGKILLs one member every COMPAT_ROLLING_CURATOR_EVERY
tests and restarts it before killing the next. The ensemble: three members
of one server kind on 127.0.0.1, client ports P, P+3, P+6
(rolling_ensemble.py). Surefire runs the classes in alphabetical order
(-Dsurefire.runOrder=alphabetical), so the schedule is the same every run.

Settings (environment):
  COMPAT_ROLLING_CURATOR_EVERY        tests between kills (default 6; 4 with "subset")
  COMPAT_ROLLING_CURATOR_TESTS        "all" (default), "subset" (SUBSET below), or
                                      Surefire class patterns separated by spaces
  COMPAT_ROLLING_CURATOR_RUN_TIMEOUT  seconds for the whole Maven run (default 1500)
  COMPAT_ROLLING_WAIT                 seconds one wait of the schedule may take (default 120)

Output in DIR (results/rolling-curator/): KIND.json (the curator suite's
counts, failures and skips, plus the kills and restarts), KIND.log (Maven),
KIND.client.log, KIND-reports/, KIND.restarts.jsonl (one JSON line per
event), KIND.rolling.log (one text line per event), KIND.ensemble.json (the
members). Deselected: curator/deselected.txt plus
rolling/curator-deselected.txt. A run in which no member was killed is an
error. Standard library only.
"""

import json
import os
import socket
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPAT_DIR = HERE.parent
sys.path.insert(0, str(COMPAT_DIR / "curator"))
sys.path.insert(0, str(HERE))
import curator_suite  # noqa: E402
import rolling_ensemble  # noqa: E402
import rolling_schedule  # noqa: E402

SUITE = "rolling-curator"
DESELECTED = HERE / "curator-deselected.txt"
DEFAULT_EVERY = 6
SUBSET_EVERY = 4
# A shorter run (COMPAT_ROLLING_CURATOR_TESTS=subset): our own recipe tests only (29 with
# the deselection), without Curator's; with one kill every 4 tests that is 7 kills, two
# rounds and more: every member killed at least twice, the leader at least twice.
SUBSET = [curator_suite.OUR_TESTS]
START_WAIT = 120
ORDER = "rounds"


def log(msg):
    print("[rolling-curator] %s" % msg, file=sys.stderr, flush=True)


def setup():
    curator_suite.setup()


def tests_selected():
    sel = os.environ.get("COMPAT_ROLLING_CURATOR_TESTS", "all").strip() or "all"
    if sel == "all":
        return "all", None
    if sel == "subset":
        return "subset", list(SUBSET)
    return "custom", sel.split()


def every(selection):
    default = SUBSET_EVERY if selection == "subset" else DEFAULT_EVERY
    n = int(os.environ.get("COMPAT_ROLLING_CURATOR_EVERY", default))
    if n < 1:
        raise ValueError("COMPAT_ROLLING_CURATOR_EVERY must be at least 1")
    return n


class Controller:
    """Answers the test JVM's "before <test>" lines: runs the schedule's step, then "ok"
    (or "fail <reason>" once the schedule failed). One thread per connection; one step
    at a time."""

    def __init__(self, rotation):
        self.rotation = rotation
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.asked = 0
        self.connections = 0
        self.protocol_errors = []
        self._stop = threading.Event()
        self._threads = []
        self._accepter = threading.Thread(target=self._accept, name="rolling-controller", daemon=True)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self._accepter.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), name="rolling-conn", daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn):
        with conn, conn.makefile("rwb", buffering=0) as f:
            for raw in f:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                cmd, _, arg = line.partition(" ")
                if cmd == "before" and arg:
                    reply = self.before(arg)
                else:
                    self.protocol_errors.append(line[:200])
                    reply = "fail unknown request %r" % line[:200]
                try:
                    f.write((reply.replace("\n", " ") + "\n").encode())
                except OSError:
                    return

    def before(self, test_id):
        with self.lock:
            self.asked += 1
            r = self.rotation
            if r.failed is not None:
                return "fail " + r.failed
            try:
                r.before_test(test_id)
                return "ok"
            except Exception as e:  # noqa: BLE001 - reported as the suite's error
                return "fail " + r.fail("before %s" % test_id, e)

    def stop(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        self._accepter.join(timeout=5)


def run(ensemble, server, out_dir):
    """Run the curator suite's tests against the running ensemble; returns the result dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = out_dir / ("%s.ensemble.json" % server)
    events = out_dir / ("%s.restarts.jsonl" % server)
    text_log = out_dir / ("%s.rolling.log" % server)
    spec.write_text(json.dumps(ensemble.spec(), indent=2) + "\n")
    for f in (events, text_log):
        if f.exists():
            f.unlink()
    selection, classes = tests_selected()
    n = every(selection)
    run_timeout = int(os.environ.get("COMPAT_ROLLING_CURATOR_RUN_TIMEOUT", "1500"))

    def say(text):
        with open(text_log, "a") as f:
            f.write(text + "\n")
        print("  " + text, flush=True)

    rotation = rolling_schedule.Rotation(ensemble, events, n, float(os.environ.get("COMPAT_ROLLING_WAIT", "120")),
                                         order=ORDER, say=say)
    log("%s ensemble %s, one SIGKILL every %d tests (victims in %s), tests: %s"
        % (server, ensemble.connect_string, n, ORDER, selection))
    try:
        rotation.start()
    except Exception as e:  # noqa: BLE001 - reported as the suite's error; Maven is not started
        rotation.fail("start", e)
        res = {"suite": SUITE, "server": server, "host": ensemble.connect_string, "passed": 0, "failed": 0,
               "errors": 0, "skipped": 0, "deselected": 0, "failures": [], "skips": [], "tests": []}
        rolling_schedule.add_results(res, events, n, selection, ensemble)
        (out_dir / ("%s.json" % server)).write_text(json.dumps(res, indent=2) + "\n")
        return res
    ctl = Controller(rotation)
    ctl.start()
    log("controller on %s" % ctl.address)

    def add_events(result):
        ctl.stop()
        if rotation.failed is None:
            try:
                rotation.finish()
            except Exception as e:  # noqa: BLE001
                rotation.fail("end of run", e)
        result.update({"order": ORDER, "controller": ctl.address, "tests_asked": ctl.asked,
                       "controller_connections": ctl.connections, "rolling_log": str(text_log)})
        rolling_schedule.add_results(result, events, n, selection, ensemble)
        if ctl.protocol_errors and "error" not in result:
            result["error"] = "controller: unknown requests %s" % ctl.protocol_errors[:3]

    props = {
        "compat.rolling.control": ctl.address,
        "surefire.runOrder": "alphabetical",
        "compat.fork.timeout": str(max(60, run_timeout - 60)),
    }
    try:
        res = curator_suite.run(ensemble.connect_string, server, out_dir,
                                [ensemble.log_file(m) for m in range(1, len(ensemble.ports) + 1)],
                                suite=SUITE, deselect_files=(curator_suite.DESELECTED, DESELECTED),
                                classes=classes, system_props=props, run_timeout=run_timeout,
                                extra_results=add_events)
    finally:
        ctl.stop()
    if "kills" not in res:  # the run stopped before Maven (setup error): no schedule figures yet
        rolling_schedule.add_results(res, events, n, selection, ensemble)
        (out_dir / ("%s.json" % server)).write_text(json.dumps(res, indent=2) + "\n")
    log("%s: %d kills (%d of a leader), %d restarts, %d tests asked"
        % (server, res["kills"], res["leader_kills"], res["restarts"], ctl.asked))
    return res


CELL_KEYS = ("passed", "failed", "skipped", "deselected", "errors", "mvn_exit_code", "duration_s", "kills",
             "leader_kills", "restarts", "kills_per_member", "kill_every", "tests_selection",
             "restart_serving_s_max", "survivors_serving_s_max")


def harness_cell(server, script, first_port, out_dir, say):
    """compat.py's entry point: start the ensemble, run, stop; returns the matrix cell."""
    res, failed = rolling_ensemble.run_on_ensemble(server, script, "%s-%s" % (server, SUITE), first_port, say,
                                                   lambda ens: run(ens, server, out_dir), start_wait=START_WAIT)
    return failed or rolling_ensemble.harness_cell(res, CELL_KEYS)


def main(argv=None):
    return rolling_ensemble.cli_main(argv, __doc__, SUITE, setup, harness_cell)


if __name__ == "__main__":
    sys.exit(main())
