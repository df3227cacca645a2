"""The kill schedule of the rolling suites, independent of the test framework.

Both rolling suites use it: the pytest plugin rolling_restarts.py (kazoo's
tests, in kazoo's venv) and the controller in rolling_curator.py (Curator's
JUnit tests, which ask it over a socket before each test). The framework
side calls `start()` once the ensemble runs, `before_test(test_id)` before
each test (after the previous one, its teardown included, is done, before
the next one's setup) and `finish()` after the last test. Counted in tests
in run order, with N = `every`:

* tests 0 .. N-1 run with all three members up;
* before test k*N (k = 1, 2, ...): restart the member that is down, if any,
  and wait until it serves again; wait until all three serve (one leader),
  so a quorum remains after the kill; SIGKILL the next victim; wait until
  the two survivors serve with one leader; the next N tests run on those two;
* `finish()`: restart the member that is down and wait until all three serve.

Victims (`order`):

* "rotation": members 1, 2, 3, 1, ... whoever leads at the time (kazoo's
  rolling suite);
* "rounds": rounds of three kills, each member once per round; a round
  starts with the member that leads when it starts, then the other two in
  member order. So every round kills every member once and the leader at
  least once, whatever the election does (the rolling-curator suite, whose
  run has few kills).

Every action is one JSON line in `events_path` (UTC timestamp, seconds since
the schedule was made, the member, its PID, its mode before a kill, the test
it came before, how long the waits took) and one text line through `say`. A
wait that runs out or a member that exits raises; the caller reports it with
`fail()` (an "error" event) and ends the run. Standard library only.
"""

import json
import time
from pathlib import Path

import rolling_ensemble

ORDERS = ("rotation", "rounds")


class Rotation:
    def __init__(self, ensemble, events_path, every, wait_s=120.0, order="rotation", say=None):
        if every < 1:
            raise ValueError("kill every %r tests: must be at least 1" % every)
        if order not in ORDERS:
            raise ValueError("victim order %r: one of %s" % (order, ", ".join(ORDERS)))
        self.ensemble = ensemble
        self.events_path = str(events_path)
        self.every = every
        self.wait_s = wait_s
        self.order = order
        self.say = say
        self.size = len(ensemble.ports)
        self.index = 0  # of the next test
        self.down = None  # the member that is down
        self.next_victim = 1  # "rotation"
        self.round = []  # "rounds": victims left in this round
        self.t0 = time.monotonic()
        self.kills = 0
        self.failed = None

    def event(self, kind, **fields):
        rec = {"t": rolling_ensemble.utc_now(), "s": round(time.monotonic() - self.t0, 3), "event": kind}
        rec.update(fields)
        with open(self.events_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.say is not None:
            self.say("[rolling %s +%.1fs] %s %s" % (rec["t"], rec["s"], kind,
                                                   " ".join("%s=%s" % (k, v) for k, v in fields.items())))
        return rec

    def _timed_wait(self, members):
        t = time.monotonic()
        modes = self.ensemble.wait_serving(members, timeout=self.wait_s)
        return modes, round(time.monotonic() - t, 3)

    def start(self):
        modes, waited = self._timed_wait(None)
        self.event("start", modes=modes, waited_s=waited, every=self.every, order=self.order,
                   pids={n: self.ensemble.pid(n) for n in range(1, self.size + 1)})

    def _victim(self, modes):
        if self.order == "rotation":
            n = self.next_victim
            self.next_victim = n % self.size + 1
            return n
        if not self.round:
            leader = [m for m, mode in modes.items() if mode == "leader"][0]
            self.round = [leader] + [m for m in range(1, self.size + 1) if m != leader]
        return self.round.pop(0)

    def restart_down(self, before):
        n = self.down
        if n is None:
            return
        t = time.monotonic()
        self.ensemble.restart(n)
        pid = self.ensemble.pid(n)
        modes, _ = self._timed_wait(None)
        self.down = None
        self.event("restart", member=n, pid=pid, serving_after_s=round(time.monotonic() - t, 3),
                   modes=modes, before_test=before)

    def rotate(self, before):
        self.restart_down(before)
        modes, waited = self._timed_wait(None)  # all three serve: a quorum remains after the kill
        n = self._victim(modes)
        pid = self.ensemble.pid(n)
        mode = modes.get(n)
        t = time.monotonic()
        self.ensemble.kill(n)
        self.down = n
        self.kills += 1
        self.event("kill", member=n, pid=pid, mode_before=mode, kill_number=self.kills,
                   test_index=self.index, before_test=before, waited_for_all_s=waited)
        survivors = [m for m in range(1, self.size + 1) if m != n]
        modes, _ = self._timed_wait(survivors)
        self.event("survivors_serving", member=n, after_s=round(time.monotonic() - t, 3), modes=modes)

    def due(self):
        return self.failed is None and self.index > 0 and self.index % self.every == 0

    def before_test(self, test_id):
        """Call before each test; does the kill/restart step when one is due. Raises on failure."""
        try:
            if self.due():
                self.rotate(test_id)
        finally:
            self.index += 1

    def finish(self):
        """After the last test: restart the member that is down, all three must serve. Raises."""
        self.restart_down("(end of run)")
        modes, _ = self._timed_wait(None)
        self.event("finish", kills=self.kills, tests=self.index, modes=modes)

    def fail(self, where, exc):
        self.failed = "%s: %s: %s" % (where, type(exc).__name__, exc)
        self.event("error", where=where, error="%s: %s" % (type(exc).__name__, exc),
                   modes=self.ensemble.modes())
        return self.failed


def read_events(path):
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def summarize(events):
    """The figures a report needs from the schedule's events."""
    kills = [e for e in events if e["event"] == "kill"]
    restarts = [e for e in events if e["event"] == "restart"]
    errors = [e for e in events if e["event"] == "error"]
    back = [e["serving_after_s"] for e in restarts]
    takeover = [e["after_s"] for e in events if e["event"] == "survivors_serving"]
    per_member = {}
    for e in kills:
        per_member[str(e["member"])] = per_member.get(str(e["member"]), 0) + 1
    return {
        "kills": len(kills),
        "leader_kills": sum(1 for e in kills if e.get("mode_before") == "leader"),
        "restarts": len(restarts),
        "killed_members": [e["member"] for e in kills],
        "kills_per_member": per_member,
        "restart_serving_s_max": max(back) if back else None,
        "survivors_serving_s_max": max(takeover) if takeover else None,
        "finished": any(e["event"] == "finish" for e in events),
        "rolling_errors": [e["error"] for e in errors],
    }


def add_results(result, events_path, every, selection, ensemble):
    """Adds the schedule's figures and events to a suite's result dict; a run with a rolling
    error, or without a single kill, gets an "error"."""
    evs = read_events(events_path)
    result.update(summarize(evs))
    result.update({"kill_every": every, "tests_selection": selection, "members": ensemble.connect_string,
                   "events_file": str(events_path), "events": evs})
    if result["rolling_errors"] and "error" not in result:
        result["error"] = "rolling restarts: %s" % result["rolling_errors"][0]
    elif result["rolling_errors"]:
        result["error"] += "; rolling restarts: %s" % result["rolling_errors"][0]
    if result["kills"] == 0 and "error" not in result:
        result["error"] = "no member was killed (%d tests, one kill every %d)" % (
            result["passed"] + result["failed"] + result["skipped"], every)
    return result
