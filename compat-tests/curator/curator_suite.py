#!/usr/bin/env python3
"""curator suite: Apache Curator 5.9.0 recipes against one external server.

    curator_suite.py setup                      resolve + compile (mvn test-compile)
    curator_suite.py run --host H:P --server KIND --out-dir DIR [--server-log F]

The tests are a Maven project (pom.xml next to this file): our own JUnit 5
tests in src/test/java/dev/ferrokeeper/compat/curator/ and the subset of
Curator's own recipe tests listed in upstream-tests.txt (from the
curator-recipes 5.9.0 test jar, run against the external server through the
TestingServer stand-in in src/test/java/org/apache/curator/test/).

setup runs `mvn -B -q test-compile`; Maven resolves everything from Maven
Central into ~/.m2 on the first run. run executes `mvn -B surefire:test`
with -Dzk.connect=H:P, leaving out the tests in deselected.txt, parses the
Surefire XML reports and writes DIR/KIND.json (counts, failures with
exception and stack head, skips with reasons, every test's status and
time), DIR/KIND.log (Maven's output), DIR/KIND.client.log (Curator and
ZooKeeper client log, WARN and up) and DIR/KIND-reports/ (the Surefire
reports, including each test class's output). Standard library only.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import suite_cli  # noqa: E402

CURATOR_VERSION = "5.9.0"
ZK_CLIENT_VERSION = "3.9.5"
HERE = Path(__file__).resolve().parent
COMPAT_DIR = HERE.parent
CACHE_DIR = Path(os.environ.get("COMPAT_CACHE_DIR", COMPAT_DIR / ".cache"))
POM = HERE / "pom.xml"
TARGET = HERE / "target"
# Each run's Surefire reports and client log go to a directory of its own (pom.xml's
# compat.reports.dir and compat.client.log), so two runs in one checkout (another suite
# or another engineer's) do not overwrite each other's; copied to the results, then removed.
RUNS = TARGET / "compat-runs"
DESELECTED = HERE / "deselected.txt"
BUILD_LOG = CACHE_DIR / "curator-build.log"
MVN = os.environ.get("MVN", "mvn")
# Surefire's own fork timeout (pom.xml) is 600 s; every test has a 60 s @Timeout.
RUN_TIMEOUT = int(os.environ.get("COMPAT_CURATOR_RUN_TIMEOUT", "900"))
STACK_HEAD = 12


class SetupError(Exception):
    pass


_built = False


def log(msg):
    print("[curator] %s" % msg, file=sys.stderr, flush=True)


def _mvn(*args):
    return [MVN, "-B", "-Dstyle.color=never", "-f", str(POM)] + list(args)


def setup(force=False):
    """Compile the tests (and on the first run fetch Curator & co. from Maven Central).

    Done once per process (compat.py calls it before the first server).
    """
    global _built
    if _built and not force:
        return
    started = time.monotonic()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(BUILD_LOG, "wb") as lf:
        p = subprocess.run(_mvn("-q", "test-compile"), stdout=lf, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        tail = BUILD_LOG.read_text(errors="replace").splitlines()[-30:]
        raise SetupError("mvn test-compile failed (exit %d; log %s):\n%s"
                         % (p.returncode, BUILD_LOG, "\n".join(tail)))
    _built = True
    log("test-compile done in %.0fs" % (time.monotonic() - started))


def read_deselected(path=DESELECTED):
    """[(test id 'pkg.Class#method', comment)] from deselected.txt (or another such list)."""
    out = []
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = re.split(r"\s+#\s*", line, maxsplit=1)
        node, comment = parts[0].strip(), (parts[1] if len(parts) > 1 else "")
        if "#" not in node:
            raise SetupError("%s: expected pkg.Class#method, got %r" % (path, raw))
        out.append((node, comment.strip()))
    return out


OUR_TESTS = "dev/ferrokeeper/compat/curator/*Test.java"


def upstream_selection():
    """upstream-tests.txt: ([class pattern], ["!Class#method" exclusions])."""
    classes, excludes = [], []
    for raw in (HERE / "upstream-tests.txt").read_text().splitlines():
        line = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
        if line and not line.startswith("#"):
            (excludes if line.startswith("!") else classes).append(line)
    return classes, excludes


def _test_filter(deselected, classes=None):
    """Surefire -Dtest value: everything the pom includes, minus the deselected methods.

    -Dtest replaces the pom's includes, so they are repeated here: our own
    classes, plus upstream-tests.txt (class patterns, one per line, and
    "!Class#method" lines that leave out single upstream methods). classes, if
    given, replaces the class patterns (a subset); the exclusions still apply.
    """
    upstream, upstream_excludes = upstream_selection()
    includes = list(classes) if classes is not None else [OUR_TESTS] + upstream
    excludes = ["!%s#%s" % (node.split("#")[0].replace(".", "/"), node.split("#")[1]) for node, _ in deselected]
    return ",".join(includes + upstream_excludes + excludes)


def _test_id(classname, name):
    # JUnit 5 methods are reported as name="method" (parameterized: "method(args)[n]")
    return "%s#%s" % (classname, name)


def parse_reports(reports_dir):
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures, skips, tests = [], [], []
    files = sorted(Path(reports_dir).glob("TEST-*.xml"))
    for f in files:
        root = ET.parse(f).getroot()
        for tc in root.iter("testcase"):
            tid = _test_id(tc.get("classname", ""), tc.get("name", ""))
            t = float(tc.get("time") or 0)
            fail, err, skip = tc.find("failure"), tc.find("error"), tc.find("skipped")
            if fail is not None or err is not None:
                node = fail if fail is not None else err
                counts["failed"] += 1
                if fail is None:
                    counts["errors"] += 1
                stack = (node.text or "").strip().splitlines()
                failures.append({
                    "id": tid,
                    "kind": node.tag,
                    "type": node.get("type") or "",
                    "message": (node.get("message") or "")[:1000],
                    "stack_head": stack[:STACK_HEAD],
                })
                status = "failed"
            elif skip is not None:
                counts["skipped"] += 1
                reason = skip.get("message") or (skip.text or "").strip()
                skips.append({"id": tid, "reason": reason.splitlines()[0] if reason else ""})
                status = "skipped"
            else:
                counts["passed"] += 1
                status = "passed"
            tests.append({"id": tid, "status": status, "time_s": t})
    return len(files), counts, failures, skips, tests


def run(host, server, out_dir, server_log=None, suite="curator", deselect_files=(DESELECTED,), classes=None,
        system_props=None, run_timeout=RUN_TIMEOUT, extra_results=None):
    """Run the suite; returns the result dict (also written as JSON).

    host is host:port, or a comma list for an ensemble; server_log a path or a list of
    them. The keyword arguments let another suite (rolling-curator) run the same tests its
    own way: more deselection files, a subset of test classes (Surefire class patterns
    instead of ours + upstream-tests.txt), more -D properties for Maven and the test JVM,
    its own time bound, and extra_results(result), called after Maven exits and before the
    result is written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonf = out_dir / ("%s.json" % server)
    logf = out_dir / ("%s.log" % server)
    # not "<server>.reports": compat.py's clear_results unlinks files named <server>.*
    reports_copy = out_dir / ("%s-reports" % server)
    client_log_copy = out_dir / ("%s.client.log" % server)
    for f in (jsonf, client_log_copy):
        if f.exists():
            f.unlink()
    if reports_copy.exists():
        shutil.rmtree(reports_copy)
    logs = server_log if isinstance(server_log, (list, tuple)) else ([server_log] if server_log else [])
    result = {
        "suite": suite,
        "server": server,
        "curator_version": CURATOR_VERSION,
        "zookeeper_client_version": ZK_CLIENT_VERSION,
        "host": host,
        "log": str(logf),
        "reports": str(reports_copy),
        "client_log": str(client_log_copy),
        "server_log": (str(logs[0]) if len(logs) == 1 else [str(f) for f in logs]) if logs else None,
    }
    try:
        deselected = [d for f in deselect_files for d in read_deselected(f)]
        setup()
    except SetupError as e:
        result.update({"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "deselected": 0,
                       "failures": [], "skips": [], "tests": [], "error": str(e)})
        jsonf.write_text(json.dumps(result, indent=2) + "\n")
        return result
    result["deselected"] = len(deselected)
    result["deselected_tests"] = [{"id": n, "reason": c} for n, c in deselected]
    if classes is not None:
        result["test_classes"] = list(classes)
    run_dir = RUNS / ("%s-%s-%d" % (suite, server, os.getpid()))
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    reports, client_log = run_dir / "surefire-reports", run_dir / "curator-client.log"
    cmd = _mvn("surefire:test",
               "-Dzk.connect=%s" % host,
               "-Dtest=%s" % _test_filter(deselected, classes),
               "-Dsurefire.failIfNoSpecifiedTests=false",
               "-Dmaven.test.failure.ignore=true",
               "-Dcompat.reports.dir=%s" % reports,
               "-Dcompat.client.log=%s" % client_log,
               *["-D%s=%s" % kv for kv in (system_props or {}).items()])
    env = dict(os.environ)
    env["ZK_CONNECT"] = host
    log("running the curator suite against %s (%s); log: %s" % (server, host, logf))
    started = time.monotonic()
    timed_out = False
    with open(logf, "wb") as lf:
        try:
            rc = subprocess.run(cmd, cwd=HERE, env=env, stdout=lf, stderr=subprocess.STDOUT,
                                timeout=run_timeout).returncode
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
    duration = time.monotonic() - started
    result["mvn_exit_code"] = rc
    result["duration_s"] = round(duration, 1)
    if reports.is_dir():
        shutil.copytree(reports, reports_copy)
    if client_log.exists():
        shutil.copyfile(client_log, client_log_copy)
    shutil.rmtree(run_dir, ignore_errors=True)
    nfiles, counts, failures, skips, tests = (parse_reports(reports_copy) if reports_copy.is_dir()
                                              else (0, None, [], [], []))
    if nfiles:
        result.update(counts)
        result.update({"failures": failures, "skips": skips, "tests": tests})
        groups = {}
        for t in tests:
            g = groups.setdefault("ours" if t["id"].startswith("dev.ferrokeeper.") else "curator_upstream",
                                  {"passed": 0, "failed": 0, "skipped": 0})
            g[t["status"]] += 1
        result["by_group"] = groups
        # With maven.test.failure.ignore, a failing test still exits 0; anything
        # else (fork crashed or timed out, build error) is a harness error.
        if rc != 0:
            result["error"] = "mvn exited with status %s (see %s)" % (rc, logf)
    else:
        result.update({"passed": 0, "failed": 0, "errors": 0, "skipped": 0,
                       "failures": [], "skips": [], "tests": []})
        result["error"] = ("mvn timed out after %ss" % run_timeout) if timed_out else \
            "Surefire wrote no reports (mvn exit status %s; see %s)" % (rc, logf)
    if extra_results:
        extra_results(result)
    jsonf.write_text(json.dumps(result, indent=2) + "\n")
    log("%s: %d passed, %d failed, %d skipped, %d deselected in %.0fs"
        % (server, result["passed"], result["failed"], result["skipped"], result["deselected"], duration))
    for f in failures:
        log("  FAILED %s: %s: %s" % (f["id"], f["type"], f["message"].splitlines()[0] if f["message"] else ""))
    return result


def main(argv=None):
    return suite_cli.main(__doc__, setup, run, (SetupError,), argv=argv)


if __name__ == "__main__":
    sys.exit(main())
