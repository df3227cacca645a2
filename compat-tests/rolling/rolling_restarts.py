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

The schedule itself is rolling_schedule.Rotation (victim order "rotation"),
shared with the rolling-curator suite. Every action is one JSON line in
COMPAT_ROLLING_EVENTS (UTC timestamp, seconds since the session started,
member, pid, its mode before a kill, the test it happened before, how long
the wait took) and one line in pytest's output. A wait that times out or a member that does not come back ends the
session (pytest exit status 3) with an "error" event.

Environment:
  COMPAT_ROLLING_SPEC    JSON file: the ensemble (rolling_ensemble.Ensemble.spec())
  COMPAT_ROLLING_EVENTS  where the JSON lines go
  COMPAT_ROLLING_EVERY   N (default 25)
  COMPAT_ROLLING_WAIT    seconds a wait may take (default 120)
"""

import json
import os

import pytest

import rolling_ensemble
import rolling_schedule

DEFAULT_EVERY = 25
EXIT_STATUS = 3

_SCHEDULE = None


def _fail(where, exc):
    msg = _SCHEDULE.fail(where, exc)
    pytest.exit("rolling restarts: " + msg, returncode=EXIT_STATUS)


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

    def say(text):
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(text)

    _SCHEDULE = rolling_schedule.Rotation(ensemble, events, every, float(os.environ.get("COMPAT_ROLLING_WAIT", "120")),
                                          order="rotation", say=say)


def pytest_report_header(config):
    s = _SCHEDULE
    return "rolling_restarts: %s ensemble %s; SIGKILL one member every %d tests (rotation 1, 2, 3)" % (
        s.ensemble.kind, s.ensemble.connect_string, s.every)


def pytest_sessionstart(session):
    try:
        _SCHEDULE.start()
    except Exception as e:  # noqa: BLE001 - reported as the suite's error
        _fail("start", e)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    # Runs before the item's setup: the previous test, its teardown included, is done.
    try:
        _SCHEDULE.before_test(item.nodeid)
    except Exception as e:  # noqa: BLE001
        _fail("before %s" % item.nodeid, e)
    return None  # the default protocol runs the test


def pytest_sessionfinish(session, exitstatus):
    s = _SCHEDULE
    if s is None or s.failed is not None:
        return
    try:
        s.finish()
    except Exception as e:  # noqa: BLE001
        s.fail("end of session", e)
        session.exitstatus = EXIT_STATUS
