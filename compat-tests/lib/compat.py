#!/usr/bin/env python3
"""Run the compatibility suites against each server kind; print the matrix.

Invoked by scripts/compat.sh (see compat-tests/README.md). For every server
kind and suite it starts a fresh server (own run dir, own ports), runs the
suite, stops the server, then compares and writes
compat-tests/results/matrix.json.

Exit status: 1 if a suite failed on Apache ZooKeeper (the harness is broken)
or if ferrokeeper ran and did worse than Apache ZooKeeper on some suite;
ferrokeeper "not run" because its binary is not built does not fail the run.
Standard library only.
"""

import argparse
import difflib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

LIB = Path(__file__).resolve().parent
COMPAT_DIR = LIB.parent
REPO = COMPAT_DIR.parent
RESULTS = COMPAT_DIR / "results"
CACHE_DIR = Path(os.environ.get("COMPAT_CACHE_DIR", COMPAT_DIR / ".cache"))
sys.path.insert(0, str(COMPAT_DIR / "zkcli"))
sys.path.insert(0, str(COMPAT_DIR / "kazoo"))
sys.path.insert(0, str(COMPAT_DIR / "rawframes"))
sys.path.insert(0, str(COMPAT_DIR / "gozk"))
sys.path.insert(0, str(COMPAT_DIR / "differential"))
import zkcli_suite  # noqa: E402
import kazoo_suite  # noqa: E402
import rawframes_suite  # noqa: E402
import gozk_suite  # noqa: E402
import differential  # noqa: E402
sys.path.insert(0, str(COMPAT_DIR / "curator"))
import curator_suite  # noqa: E402
sys.path.insert(0, str(COMPAT_DIR / "kafka"))
import kafka_suite  # noqa: E402
sys.path.insert(0, str(COMPAT_DIR / "rolling"))
import rolling_suite  # noqa: E402
import rolling_curator  # noqa: E402

ZK_VERSION = "3.9.5"
SERVERS = {
    "apache": {"title": "Apache ZooKeeper %s" % ZK_VERSION, "script": LIB / "apache-zk.sh", "offset": 0},
    "ferrokeeper": {"title": "ferrokeeper", "script": LIB / "ferrokeeper.sh", "offset": 100},
}
SUITES = {"zkcli": 0, "kazoo": 10, "rawframes": 20, "gozk": 30}
SUITES["rawauth"] = 70  # rawframes' enforce_auth cases, servers with enforce.auth.enabled
SUITES["differential"] = 50  # runs both servers at once (differential/differential.py)
SUITES["curator"] = 40  # Apache Curator recipes, Maven + JUnit 5 (curator/curator_suite.py)
SUITES["kafka"] = 60  # two Kafka 3.9 brokers in ZooKeeper mode (kafka/kafka_suite.py)
SUITES["rolling"] = 80  # kazoo's tests on a 3-member ensemble, rolling kills (rolling/rolling_suite.py)
SUITES["rolling-curator"] = 90  # the curator suite's tests likewise (rolling/rolling_curator.py)
# The suites that start and stop a 3-member ensemble of their own (their harness_cell).
ENSEMBLE_SUITES = {"rolling": rolling_suite, "rolling-curator": rolling_curator}
EXIT_NOT_BUILT = 3


def say(msg=""):
    print(msg, flush=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt()


def port_for(server, suite, base):
    # A server uses port, port+1, port+2 (client, quorum, election). The rolling suites'
    # three members use port .. port+8 (rolling/rolling_ensemble.py), below the next offset.
    return base + SERVERS[server]["offset"] + SUITES[suite]


class ServerDown(Exception):
    pass


def server_cmd(server, *args):
    return subprocess.run(["bash", str(SERVERS[server]["script"])] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# zoo.cfg keys (COMPAT_ZK_EXTRA, lib/common.sh) for the suites that need their own settings.
SUITE_SERVER_CONFIG = {"rawauth": rawframes_suite.SPECIAL_GROUPS["enforce_auth"]}
RAWFRAMES_SUITES = {"rawframes": (None, rawframes_suite.EXPECTED),
                    "rawauth": (["enforce_auth"], rawframes_suite.EXPECTED_AUTH)}


def start_server(server, name, port, extra_config=""):
    """Returns None when started, else (status, reason)."""
    env = dict(os.environ, COMPAT_ZK_EXTRA=extra_config)
    p = subprocess.run(["bash", str(SERVERS[server]["script"]), "start", name, str(port)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = p.stdout.strip()
    if p.returncode == 0:
        say("  " + (out.splitlines()[-1] if out else "started %s on %d" % (name, port)))
        return None
    if p.returncode == EXIT_NOT_BUILT:
        return ("not run", "ferrokeeper binary not built")
    say(out)
    return ("error", "server failed to start (exit %d); see %s" % (p.returncode, CACHE_DIR / "run" / name / "log"))


def stop_server(server, name):
    p = server_cmd(server, "stop", name)
    if p.returncode != 0:
        say(p.stdout)


def server_log(server, name):
    d = CACHE_DIR / "run" / name / "log"
    return d / ("zookeeper.log" if server == "apache" else "stdout.log")


# ----------------------------------------------------------------- suites ---

def clear_results(server, suite):
    """Remove this cell's files from an earlier run so none is mistaken for new."""
    d = RESULTS / suite
    if not d.is_dir():
        return
    for f in d.glob("%s.*" % server):
        f.unlink()
    if suite in ("zkcli",) + tuple(RAWFRAMES_SUITES):
        for f in d.glob("*-vs-*.diff"):
            f.unlink()


def run_zkcli(server, port, zk_lib):
    out_dir = RESULTS / "zkcli"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / ("%s.raw.txt" % server)
    masked = out_dir / ("%s.txt" % server)
    rc = zkcli_suite.run(port, str(raw), zk_lib)
    masked.write_text(zkcli_suite.mask(raw.read_text(errors="replace")))
    return {"zkcli_exit_code": rc, "transcript": str(masked)}


def finish_zkcli(cells, servers):
    """Compare transcripts once every server has run (ferrokeeper vs Apache)."""
    out_dir = RESULTS / "zkcli"
    apache_ran = cells.get(("apache", "zkcli"), {}).get("status") == "ran"
    for server in servers:
        cell = cells.get((server, "zkcli"))
        if not cell or cell["status"] != "ran":
            continue
        actual = (out_dir / ("%s.txt" % server)).read_text()
        if server == "apache" or not apache_ran:
            ref_name, ref_path = "checked-in expected transcript", zkcli_suite.EXPECTED
        else:
            ref_name, ref_path = "Apache ZooKeeper's transcript from this run", out_dir / "apache.txt"
        if not ref_path.exists():
            cell["status"] = "error"
            cell["reason"] = "%s missing (generate it with --update-zkcli-expected)" % ref_path
            continue
        res = zkcli_suite.compare(ref_path.read_text(), actual)
        res["reference"] = ref_name
        (out_dir / ("%s.json" % server)).write_text(json.dumps(res, indent=2) + "\n")
        cell.update(res["totals"])
        cell["reference"] = ref_name
        cell["blocks"] = res["blocks"]
        cell["failed_cases"] = ["#%d %s" % (c["n"], c["command"]) for c in res["cases"] if c["status"] == "failed"]
        say("zkcli on %s vs %s:" % (SERVERS[server]["title"], ref_name))
        say(zkcli_suite.format_blocks(res))
    if apache_ran and cells.get(("ferrokeeper", "zkcli"), {}).get("status") == "ran":
        a = (out_dir / "apache.txt").read_text().splitlines(keepends=True)
        f = (out_dir / "ferrokeeper.txt").read_text().splitlines(keepends=True)
        diff = "".join(difflib.unified_diff(a, f, "apache.txt", "ferrokeeper.txt"))
        (out_dir / "apache-vs-ferrokeeper.diff").write_text(diff)
        say("  transcript diff: %s (%s)" % (out_dir / "apache-vs-ferrokeeper.diff",
                                          "identical" if not diff else "%d lines" % len(diff.splitlines())))


def run_rawframes(server, port, suite):
    out_dir = RESULTS / suite
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = out_dir / ("%s.outcomes.json" % server)
    res = rawframes_suite.run(port, str(outcomes), groups=RAWFRAMES_SUITES[suite][0])
    return {"outcomes": str(outcomes), "cases_run": len(res["cases"]), "suite_s": res["duration_s"]}


def finish_rawframes(cells, servers, suite):
    """Judge each server's per-case outcomes against the reference outcomes."""
    out_dir = RESULTS / suite
    apache_ran = cells.get(("apache", suite), {}).get("status") == "ran"
    for server in servers:
        cell = cells.get((server, suite))
        if not cell or cell["status"] != "ran":
            continue
        actual = json.loads((out_dir / ("%s.outcomes.json" % server)).read_text())
        if server == "apache" or not apache_ran:
            ref_name, ref_path = "checked-in expected outcomes", RAWFRAMES_SUITES[suite][1]
        else:
            ref_name, ref_path = "Apache ZooKeeper's outcomes from this run", out_dir / "apache.outcomes.json"
        if not ref_path.exists():
            cell["status"] = "error"
            cell["reason"] = "%s missing (generate it with --update-rawframes-expected)" % ref_path
            continue
        res = rawframes_suite.compare(json.loads(ref_path.read_text()), actual)
        res["reference"] = ref_name
        (out_dir / ("%s.json" % server)).write_text(json.dumps(res, indent=2) + "\n")
        cell.update(res["totals"])
        cell["reference"] = ref_name
        cell["blocks"] = res["blocks"]
        cell["failed_cases"] = [c["name"] for c in res["cases"] if c["status"] == "failed"]
        say("%s on %s vs %s:" % (suite, SERVERS[server]["title"], ref_name))
        say(rawframes_suite.format_blocks(res, verbose=False))
    if apache_ran and cells.get(("ferrokeeper", suite), {}).get("status") == "ran":
        a = rawframes_suite.outcome_text(json.loads((out_dir / "apache.outcomes.json").read_text()))
        f = rawframes_suite.outcome_text(json.loads((out_dir / "ferrokeeper.outcomes.json").read_text()))
        diff = "".join(difflib.unified_diff(a.splitlines(keepends=True), f.splitlines(keepends=True),
                                            "apache", "ferrokeeper"))
        (out_dir / "apache-vs-ferrokeeper.diff").write_text(diff)
        say("  outcome diff: %s (%s)" % (out_dir / "apache-vs-ferrokeeper.diff",
                                       "identical" if not diff else "%d lines" % len(diff.splitlines())))


def run_client_suite(module, suite, server, port, name, extra_keys=()):
    """Runs a client test suite (kazoo, gozk, curator) against one server; returns its cell."""
    res = module.run("127.0.0.1:%d" % port, server, RESULTS / suite, server_log(server, name))
    keys = ("passed", "failed", "skipped", "deselected", "errors") + tuple(extra_keys)
    cell = {k: res[k] for k in keys}
    cell["failed_tests"] = [f["id"] for f in res["failures"]]
    if "error" in res:
        cell["status"] = "error"
        cell["reason"] = res["error"]
    return cell


# ------------------------------------------------------------------ matrix --

def cell_text(cell):
    if cell is None:
        return "-"
    if cell["status"] == "ran":
        text = "%d passed, %d failed, %d skipped" % (cell["passed"], cell["failed"], cell["skipped"])
        if "kills" in cell:
            text += ", %d kills" % cell["kills"]
        return text
    return "%s: %s" % (cell["status"], cell.get("reason", ""))


def judge(cells, servers, suites):
    """Return (exit_code, [verdict lines])."""
    problems, notes = [], []
    for suite in suites:
        a = cells.get(("apache", suite))
        if a is not None:
            if a["status"] == "not run" and suite == "differential":
                notes.append("%s: %s; this does not fail the run" % (suite, cell_text(a)))
            elif a["status"] != "ran":
                problems.append("%s on Apache ZooKeeper: %s (harness broken)" % (suite, cell_text(a)))
            elif a["failed"]:
                problems.append("%s failed on Apache ZooKeeper: %d failed (harness broken)" % (suite, a["failed"]))
        f = cells.get(("ferrokeeper", suite))
        if f is None:
            continue
        if f["status"] == "not run":
            notes.append("%s on ferrokeeper: not run (%s); this does not fail the run" % (suite, f.get("reason")))
        elif f["status"] != "ran":
            problems.append("%s on ferrokeeper: %s" % (suite, cell_text(f)))
        elif a is not None and a["status"] == "ran":
            if f["failed"] > a["failed"] or f["passed"] < a["passed"]:
                problems.append("%s: ferrokeeper did worse than Apache ZooKeeper (%s vs %s)"
                                % (suite, cell_text(f), cell_text(a)))
        elif f["failed"]:
            problems.append("%s: ferrokeeper failed %d (Apache ZooKeeper not in this run; "
                            "reference is the checked-in expectation)" % (suite, f["failed"]))
    return (1 if problems else 0), problems, notes


def print_matrix(cells, servers, suites):
    cols = [SERVERS[s]["title"] for s in servers]
    rows = [[suite] + [cell_text(cells.get((s, suite))) for s in servers] for suite in suites]
    widths = [max(len(r[i]) for r in rows + [["suite"] + cols]) for i in range(len(cols) + 1)]
    line = lambda r: " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()  # noqa: E731
    say(line(["suite"] + cols))
    say("-+-".join("-" * w for w in widths))
    for r in rows:
        say(line(r))


# -------------------------------------------------------------------- main --

def main(argv=None):
    ap = argparse.ArgumentParser(description="Run compat suites against Apache ZooKeeper and ferrokeeper.")
    ap.add_argument("--servers", default="apache,ferrokeeper", help="comma list of: %s" % ",".join(SERVERS))
    ap.add_argument("--suites", default=",".join(SUITES), help="comma list of: %s" % ",".join(SUITES))
    ap.add_argument("--base-port", type=int, default=int(os.environ.get("COMPAT_BASE_PORT", "22181")),
                    help="first client port (default 22181; see README for the layout)")
    ap.add_argument("--update-zkcli-expected", action="store_true",
                    help="after the run, copy Apache ZooKeeper's masked zkcli transcript to zkcli/expected.txt")
    ap.add_argument("--update-rawframes-expected", action="store_true",
                    help="after the run, write Apache ZooKeeper's rawframes (and rawauth) outcomes "
                         "to rawframes/expected*.json")
    args = ap.parse_args(argv)
    servers = [s for s in args.servers.split(",") if s]
    suites = [s for s in args.suites.split(",") if s]
    for s in servers:
        if s not in SERVERS:
            ap.error("unknown server %r" % s)
    for s in suites:
        if s not in SUITES:
            ap.error("unknown suite %r" % s)
    if args.update_zkcli_expected and ("apache" not in servers or "zkcli" not in suites):
        ap.error("--update-zkcli-expected needs --servers apache and --suites zkcli")
    if args.update_rawframes_expected and ("apache" not in servers
                                           or not set(RAWFRAMES_SUITES) & set(suites)):
        ap.error("--update-rawframes-expected needs --servers apache and --suites rawframes or rawauth")

    # Make SIGTERM unwind like Ctrl-C so running servers get stopped.
    signal.signal(signal.SIGTERM, _raise_interrupt)

    t0 = time.monotonic()
    timings = {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    say("== compat: servers=%s suites=%s" % (",".join(servers), ",".join(suites)))

    # Which server kinds can run at all (ferrokeeper needs its binary).
    not_built = set()
    if "ferrokeeper" in servers and server_cmd("ferrokeeper", "check").returncode == EXIT_NOT_BUILT:
        not_built.add("ferrokeeper")
    runnable = [s for s in servers if s not in not_built]

    # Prepare: Apache ZooKeeper jars (server, and zkCli for every server kind)
    zk_lib = None
    if runnable and ("apache" in runnable or "zkcli" in suites):
        t = time.monotonic()
        p = subprocess.run(["bash", str(LIB / "apache-zk.sh"), "classpath"], stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            say("cannot fetch Apache ZooKeeper %s jars" % ZK_VERSION)
            return 1
        zk_lib = p.stdout.strip().rstrip("*").rstrip("/")
        timings["prepare apache-zk jars"] = time.monotonic() - t
    if runnable and ("kazoo" in suites or "rolling" in suites):
        t = time.monotonic()
        kazoo_suite.setup()
        timings["prepare kazoo venv"] = time.monotonic() - t
    if runnable and "gozk" in suites:
        t = time.monotonic()
        try:
            gozk_suite.setup()
        except gozk_suite.SetupError as e:  # each gozk cell reports it again as an error
            say("gozk setup failed: %s" % e)
        timings["prepare gozk tests"] = time.monotonic() - t
    if runnable and ("curator" in suites or "rolling-curator" in suites):
        t = time.monotonic()
        try:
            curator_suite.setup()
        except curator_suite.SetupError as e:  # each curator cell reports it again as an error
            say("curator setup failed: %s" % e)
        timings["prepare curator tests"] = time.monotonic() - t
    if runnable and "kafka" in suites:
        t = time.monotonic()
        try:
            kafka_suite.setup()
        except kafka_suite.SetupError as e:  # each kafka cell reports it again as an error
            say("kafka setup failed: %s" % e)
        timings["prepare kafka driver"] = time.monotonic() - t

    cells = {}
    for server in servers:
        for suite in suites:
            if suite == "differential":
                continue  # both servers at once, after this loop
            name = "%s-%s" % (server, suite)
            port = port_for(server, suite, args.base_port)
            say("== %s on %s (127.0.0.1:%d)" % (suite, SERVERS[server]["title"], port))
            t = time.monotonic()
            clear_results(server, suite)
            if server in not_built:
                cells[(server, suite)] = {"status": "not run", "reason": "ferrokeeper binary not built"}
                say("  not run: ferrokeeper binary not built")
                continue
            if suite in ENSEMBLE_SUITES:  # an ensemble of three, started and stopped by the suite
                try:
                    cell = ENSEMBLE_SUITES[suite].harness_cell(server, SERVERS[server]["script"], port,
                                                               RESULTS / suite, say)
                except KeyboardInterrupt:
                    say("interrupted; the %s suite stopped its members" % suite)
                    raise
                except Exception as e:  # a suite crash is a harness error, reported in the matrix
                    cell = {"status": "error", "reason": "%s: %s" % (type(e).__name__, e)}
                cell["duration_s"] = round(time.monotonic() - t, 1)
                timings["%s on %s" % (suite, server)] = time.monotonic() - t
                cells[(server, suite)] = cell
                continue
            failure = start_server(server, name, port, SUITE_SERVER_CONFIG.get(suite, ""))
            if failure:
                cells[(server, suite)] = {"status": failure[0], "reason": failure[1]}
                say("  %s: %s" % failure)
                continue
            try:
                if suite == "zkcli":
                    cell = {"status": "ran"}
                    cell.update(run_zkcli(server, port, zk_lib))
                elif suite in RAWFRAMES_SUITES:
                    cell = {"status": "ran"}
                    cell.update(run_rawframes(server, port, suite))
                elif suite == "gozk":
                    cell = {"status": "ran"}
                    cell.update(run_client_suite(gozk_suite, "gozk", server, port, name))
                elif suite == "curator":
                    cell = {"status": "ran"}
                    cell.update(run_client_suite(curator_suite, "curator", server, port, name))
                elif suite == "kafka":
                    cell = {"status": "ran"}
                    cell.update(run_client_suite(kafka_suite, "kafka", server, port, name))
                else:
                    cell = {"status": "ran"}
                    cell.update(run_client_suite(kazoo_suite, "kazoo", server, port, name, ("pytest_exit_code",)))
            except KeyboardInterrupt:
                say("interrupted; stopping %s" % name)
                stop_server(server, name)
                raise
            except Exception as e:  # a suite crash is a harness error, reported in the matrix
                cell = {"status": "error", "reason": "%s: %s" % (type(e).__name__, e)}
            stop_server(server, name)
            cell["duration_s"] = round(time.monotonic() - t, 1)
            timings["%s on %s" % (suite, server)] = time.monotonic() - t
            cells[(server, suite)] = cell
    if "differential" in suites:
        cells.update(differential.harness_cells(servers, runnable, args.base_port, port_for,
                                                start_server, stop_server, say))

    if "zkcli" in suites:
        if args.update_zkcli_expected and cells.get(("apache", "zkcli"), {}).get("status") == "ran":
            zkcli_suite.EXPECTED.write_text((RESULTS / "zkcli" / "apache.txt").read_text())
            say("updated %s from this run" % zkcli_suite.EXPECTED)
        finish_zkcli(cells, servers)
    for suite in [s for s in RAWFRAMES_SUITES if s in suites]:
        if args.update_rawframes_expected and cells.get(("apache", suite), {}).get("status") == "ran":
            outcomes = json.loads((RESULTS / suite / "apache.outcomes.json").read_text())
            rawframes_suite.write_expected(outcomes, RAWFRAMES_SUITES[suite][1])
            say("updated %s from this run" % RAWFRAMES_SUITES[suite][1])
        finish_rawframes(cells, servers, suite)

    code, problems, notes = judge(cells, servers, suites)
    total = time.monotonic() - t0
    say("")
    say("== compatibility matrix (cells: passed, failed, skipped)")
    print_matrix(cells, servers, suites)
    say("")
    for n in notes:
        say("note: " + n)
    for p in problems:
        say("FAIL: " + p)
    for k, v in timings.items():
        say("time: %-28s %6.1fs" % (k, v))
    say("time: %-28s %6.1fs" % ("total", total))

    matrix = {
        "zookeeper_version": ZK_VERSION,
        "servers": {s: SERVERS[s]["title"] for s in servers},
        "suites": suites,
        "cells": {suite: {s: cells.get((s, suite)) for s in servers} for suite in suites},
        "exit_code": code,
        "problems": problems,
        "notes": notes,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "total_s": round(total, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (RESULTS / "matrix.json").write_text(json.dumps(matrix, indent=2) + "\n")
    ran = [c for c in cells.values() if c["status"] == "ran"]
    say("wrote %s" % (RESULTS / "matrix.json"))
    if ran:
        say("compat: %d passed, %d failed, %d skipped" % (
            sum(c.get("passed", 0) for c in ran), sum(c.get("failed", 0) for c in ran),
            sum(c.get("skipped", 0) for c in ran)))
    else:
        say("compat: no suite ran")
    say("compat: %s" % ("OK" if code == 0 else "FAILED"))
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
