#!/usr/bin/env python3
"""rolling suite: kazoo's own tests against a 3-server ensemble, one member killed at a time.

    rolling_suite.py setup                                   kazoo's venv (kazoo_suite.py setup)
    rolling_suite.py run --server KIND --port P [--out-dir DIR]   start, run, stop

The tests are the kazoo suite's (kazoo/kazoo_suite.py runs them, with the
kazoo_external plugin pointed at all three members), plus the
rolling_restarts plugin, which SIGKILLs one member every
COMPAT_ROLLING_EVERY tests and restarts it before killing the next
(rolling_schedule.py has the schedule, shared with rolling_curator.py). The ensemble: three members of one
server kind on 127.0.0.1, client ports P, P+3, P+6 (rolling_ensemble.py).

Settings (environment):
  COMPAT_ROLLING_EVERY        tests between kills (default 25)
  COMPAT_ROLLING_TESTS        "all" (default: kazoo's whole suite) or "subset"
                              (SUBSET below), or pytest paths/node ids separated by spaces
  COMPAT_ROLLING_RUN_TIMEOUT  seconds for the whole pytest run (default 1800)

Output in DIR (results/rolling/): KIND.json (counts, failures, skips, the
kills and restarts), KIND.junit.xml, KIND.log (pytest, with a line per kill
and restart), KIND.restarts.jsonl (one JSON line per event),
KIND.ensemble.json (the members). Deselected: kazoo/deselected.txt plus
rolling/deselected.txt. A run in which no member was killed is an error.
Standard library only.
"""

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPAT_DIR = HERE.parent
sys.path.insert(0, str(COMPAT_DIR / "kazoo"))
sys.path.insert(0, str(HERE))
import kazoo_suite  # noqa: E402
import rolling_ensemble  # noqa: E402
import rolling_schedule  # noqa: E402

DESELECTED = HERE / "deselected.txt"
PLUGIN = "rolling_restarts"
DEFAULT_EVERY = 25
# A shorter run for a tight time budget (COMPAT_ROLLING_TESTS=subset): the client, connection,
# auth and recipe tests with kazoo's default (threading) handler. Left out: the gevent and
# eventlet copies of the client and recipe tests, and the modules that test the handlers,
# selectors, retry, paths and host parsing without a server doing anything ensemble-specific.
SUBSET = [
    "kazoo/tests/test_client.py", "kazoo/tests/test_connection.py", "kazoo/tests/test_sasl.py",
    "kazoo/tests/test_lock.py", "kazoo/tests/test_cache.py", "kazoo/tests/test_watchers.py",
    "kazoo/tests/test_election.py", "kazoo/tests/test_party.py", "kazoo/tests/test_queue.py",
    "kazoo/tests/test_barrier.py", "kazoo/tests/test_counter.py", "kazoo/tests/test_lease.py",
    "kazoo/tests/test_partitioner.py",
]
START_WAIT = 120


def log(msg):
    print("[rolling] %s" % msg, file=sys.stderr, flush=True)


def setup():
    kazoo_suite.setup()


def every():
    n = int(os.environ.get("COMPAT_ROLLING_EVERY", DEFAULT_EVERY))
    if n < 1:
        raise ValueError("COMPAT_ROLLING_EVERY must be at least 1")
    return n


def tests_selected():
    sel = os.environ.get("COMPAT_ROLLING_TESTS", "all").strip() or "all"
    if sel == "all":
        return "all", ["kazoo/tests"]
    if sel == "subset":
        return "subset", list(SUBSET)
    return "custom", sel.split()


def run(ensemble, server, out_dir):
    """Run kazoo's tests against the running ensemble; returns the result dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = out_dir / ("%s.ensemble.json" % server)
    events = out_dir / ("%s.restarts.jsonl" % server)
    spec.write_text(json.dumps(ensemble.spec(), indent=2) + "\n")
    if events.exists():
        events.unlink()
    selection, tests = tests_selected()
    n = every()

    def add_events(result):
        rolling_schedule.add_results(result, events, n, selection, ensemble)

    env = {"COMPAT_ROLLING_SPEC": str(spec), "COMPAT_ROLLING_EVENTS": str(events),
           "COMPAT_ROLLING_EVERY": str(n)}
    log("%s ensemble %s, one SIGKILL every %d tests, tests: %s" % (server, ensemble.connect_string, n, selection))
    res = kazoo_suite.run(ensemble.connect_string, server, out_dir,
                          [ensemble.log_file(m) for m in range(1, len(ensemble.ports) + 1)],
                          suite="rolling", plugins=[PLUGIN], plugin_dirs=[HERE], env_extra=env,
                          deselect_files=(kazoo_suite.DESELECTED, DESELECTED), tests=tests,
                          run_timeout=int(os.environ.get("COMPAT_ROLLING_RUN_TIMEOUT", "1800")),
                          extra_results=add_events)
    log("%s: %d kills (%d of a leader), %d restarts" % (server, res["kills"], res["leader_kills"], res["restarts"]))
    return res


CELL_KEYS = ("passed", "failed", "skipped", "deselected", "errors", "pytest_exit_code", "kills", "leader_kills",
             "restarts", "kills_per_member", "kill_every", "tests_selection", "restart_serving_s_max",
             "survivors_serving_s_max")


def harness_cell(server, script, first_port, out_dir, say):
    """compat.py's entry point: start the ensemble, run, stop; returns the matrix cell."""
    res, failed = rolling_ensemble.run_on_ensemble(server, script, "%s-rolling" % server, first_port, say,
                                                   lambda ens: run(ens, server, out_dir), start_wait=START_WAIT)
    return failed or rolling_ensemble.harness_cell(res, CELL_KEYS)


def main(argv=None):
    return rolling_ensemble.cli_main(argv, __doc__, "rolling", setup, harness_cell)


if __name__ == "__main__":
    sys.exit(main())
