"""pytest plugin: kill and restart the members of a 3-server ensemble between tests.

Loaded with ``-p rolling_restarts`` next to ``-p kazoo_external`` (which points
kazoo's tests at all three members). The schedule, counted in collected tests
in run order (skipped ones count too), with N = COMPAT_ROLLING_EVERY:

* tests 0 .. N-1 run with all three members up;
* before test k*N (k = 1, 2, ...): restart the member that is down, if any,
  and wait until it serves again; wait until all three serve (one leader);
  SIGKILL the next member in rotation (1, 2, 3, 1, ...; whoever is leader at
  the time goes too); wait until the two survivors serve with one leader;
  then the next N tests run on those two;
* after the last test: restart the member that is down and wait until all
  three serve.

Nothing is killed while a test runs: a request in flight on a killed server
fails with ConnectionLoss on any server, and kazoo's tests do not retry.

Every action is one JSON line in COMPAT_ROLLING_EVENTS (UTC timestamp,
seconds since the session started, member, pid, its mode before a kill, the
test it happened before, how long the wait took) and one line in pytest's
output. A wait that times out or a member that does not come back ends the
session (pytest exit status 3) with an "error" event.

Environment:
  COMPAT_ROLLING_SPEC    JSON file: the ensemble (rolling_ensemble.Ensemble.spec())
  COMPAT_ROLLING_EVENTS  where the JSON lines go
  COMPAT_ROLLING_EVERY   N (default 25)
  COMPAT_ROLLING_WAIT    seconds a wait may take (default 120)
"""

import json
import os
import time

import pytest

import rolling_ensemble

DEFAULT_EVERY = 25
EXIT_STATUS = 3


class Schedule:
    def __init__(self, config, ensemble, events_path, every, wait_s):
        self.config = config
        self.ensemble = ensemble
        self.events_path = events_path
        self.every = every
        self.wait_s = wait_s
        self.index = 0  # of the next test
        self.down = None  # the member that is down
        self.next_victim = 1
        self.t0 = time.monotonic()
        self.kills = 0
        self.failed = None

    def event(self, kind, **fields):
        rec = {"t": rolling_ensemble.utc_now(), "s": round(time.monotonic() - self.t0, 3), "event": kind}
        rec.update(fields)
        with open(self.events_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        text = "[rolling %s +%.1fs] %s %s" % (rec["t"], rec["s"], kind,
                                              " ".join("%s=%s" % (k, v) for k, v in fields.items()))
        if tr is not None:
            tr.write_line(text)

    def _timed_wait(self, members):
        t = time.monotonic()
        modes = self.ensemble.wait_serving(members, timeout=self.wait_s)
        return modes, round(time.monotonic() - t, 3)

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

    def rotate(self, item):
        before = item.nodeid
        self.restart_down(before)
        modes, waited = self._timed_wait(None)
        n = self.next_victim
        self.next_victim = n % len(self.ensemble.ports) + 1
        pid = self.ensemble.pid(n)
        mode = modes.get(n)
        t = time.monotonic()
        self.ensemble.kill(n)
        self.down = n
        self.kills += 1
        self.event("kill", member=n, pid=pid, mode_before=mode, kill_number=self.kills,
                   test_index=self.index, before_test=before, waited_for_all_s=waited)
        survivors = [m for m in range(1, len(self.ensemble.ports) + 1) if m != n]
        modes, _ = self._timed_wait(survivors)
        self.event("survivors_serving", member=n, after_s=round(time.monotonic() - t, 3), modes=modes)

    def fail(self, where, exc):
        self.failed = "%s: %s: %s" % (where, type(exc).__name__, exc)
        self.event("error", where=where, error="%s: %s" % (type(exc).__name__, exc),
                   modes=self.ensemble.modes())
        pytest.exit("rolling restarts: " + self.failed, returncode=EXIT_STATUS)


_SCHEDULE = None


def pytest_configure(config):
    global _SCHEDULE
    spec_path = os.environ.get("COMPAT_ROLLING_SPEC")
    events = os.environ.get("COMPAT_ROLLING_EVENTS")
    if not spec_path or not events:
        raise pytest.UsageError("rolling_restarts: set COMPAT_ROLLING_SPEC and COMPAT_ROLLING_EVENTS")
    with open(spec_path) as f:
        ensemble = rolling_ensemble.Ensemble.from_spec(json.load(f))
    every = int(os.environ.get("COMPAT_ROLLING_EVERY", DEFAULT_EVERY))
    if every < 1:
        raise pytest.UsageError("COMPAT_ROLLING_EVERY must be at least 1")
    _SCHEDULE = Schedule(config, ensemble, events, every, float(os.environ.get("COMPAT_ROLLING_WAIT", "120")))


def pytest_report_header(config):
    s = _SCHEDULE
    return "rolling_restarts: %s ensemble %s; SIGKILL one member every %d tests (rotation 1, 2, 3)" % (
        s.ensemble.kind, s.ensemble.connect_string, s.every)


def pytest_sessionstart(session):
    s = _SCHEDULE
    try:
        modes, waited = s._timed_wait(None)
    except Exception as e:  # noqa: BLE001 - reported as the suite's error
        s.fail("start", e)
    s.event("start", modes=modes, waited_s=waited, every=s.every,
            pids={n: s.ensemble.pid(n) for n in range(1, len(s.ensemble.ports) + 1)})


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    # Runs before the item's setup: the previous test, its teardown included, is done.
    s = _SCHEDULE
    if s.failed is None and s.index > 0 and s.index % s.every == 0:
        try:
            s.rotate(item)
        except Exception as e:  # noqa: BLE001
            s.fail("before %s" % item.nodeid, e)
    s.index += 1
    return None  # the default protocol runs the test


def pytest_sessionfinish(session, exitstatus):
    s = _SCHEDULE
    if s is None or s.failed is not None:
        return
    try:
        s.restart_down("(end of session)")
        modes, _ = s._timed_wait(None)
        s.event("finish", kills=s.kills, tests=s.index, modes=modes)
    except Exception as e:  # noqa: BLE001
        s.failed = "end of session: %s: %s" % (type(e).__name__, e)
        s.event("error", where="end of session", error="%s: %s" % (type(e).__name__, e),
                modes=s.ensemble.modes())
        session.exitstatus = EXIT_STATUS
