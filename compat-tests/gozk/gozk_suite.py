#!/usr/bin/env python3
"""gozk suite: go-zookeeper v1.0.4's own tests against one external server.

    gozk_suite.py setup                      fetch, patch and compile the tests
    gozk_suite.py run --host H:P --server KIND --out-dir DIR [--server-log F]

setup is idempotent. It downloads github.com/go-zookeeper/zk v1.0.4 from the
Go module proxy with `go mod download` (checked against the go.sum hashes
pinned below) into a GOPATH/GOMODCACHE under compat-tests/.cache/go/, copies
the module's source to compat-tests/.cache/gozk-src/ (writable), adds our
external_test.go, applies external.patch and compiles the test binary
(`go test -c`, build cache GOCACHE=compat-tests/.cache/go/build). It redoes
this when the version, the patch, external_test.go or the Go version change.

run executes each top-level test in its own process (`go tool test2json`
over the test binary, -test.run '^Name$', -test.timeout per test) with
GOZK_EXTERNAL_SERVER=H:P, leaving out the tests in deselected.txt, and writes
DIR/KIND.events.jsonl (test2json events), DIR/KIND.log (the plain test
output) and DIR/KIND.json (counts, failures with their output, skips with
reasons). Counts are per top-level test; a failing test lists its failing
subtests. A test that reports no result (the process died or hit its
timeout) counts as failed. Standard library only.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import suite_cli  # noqa: E402

MODULE = "github.com/go-zookeeper/zk"
VERSION = "v1.0.4"
# From sum.golang.org (checked on 2026-11-27); `go mod download` verifies the
# module zip and go.mod against them.
GO_SUM = (
    "github.com/go-zookeeper/zk v1.0.4 h1:DPzxraQx7OrPyXq2phlGlNSIyWEsAox0RJmjTseMV6I=\n"
    "github.com/go-zookeeper/zk v1.0.4/go.mod h1:nOB03cncLtlp4t+UAkGSV+9beXP/akpekBwL+UX1Qcw=\n"
)
# requireMinimumZkVersion (the two reconfig tests) reads ZK_VERSION; both
# server kinds are compared against Apache ZooKeeper 3.9.5.
ZK_VERSION = "3.9.5"

HERE = Path(__file__).resolve().parent
COMPAT_DIR = HERE.parent
CACHE_DIR = Path(os.environ.get("COMPAT_CACHE_DIR", COMPAT_DIR / ".cache")).resolve()
GO_DIR = CACHE_DIR / "go"              # GOPATH; GOMODCACHE=go/mod, GOCACHE=go/build
WORK = CACHE_DIR / "gozk"              # fetch module, test binary, stamp
SRC = CACHE_DIR / "gozk-src"           # writable, patched copy of the module
TEST_BIN = WORK / "zk.test"
TEST_LIST = WORK / "tests.txt"
STAMP = WORK / ".ready"
PATCH = HERE / "external.patch"
EXTERNAL_TEST = HERE / "external_test.go"
DESELECTED = HERE / "deselected.txt"
# Each test runs in its own process with this -test.timeout (seconds): a
# go-zookeeper request has no deadline, so a server that never answers one
# hangs the test, and Go's timeout ends the whole process. Apache ZooKeeper's
# slowest test takes about 12 s (TestIntegration_SlowServer; Children: 10 s,
# 16 s on a debug build of ferrokeeper).
TEST_TIMEOUT = int(os.environ.get("COMPAT_GOZK_TEST_TIMEOUT", "60"))
RUN_TIMEOUT = int(os.environ.get("COMPAT_GOZK_RUN_TIMEOUT", "1800"))   # all tests together


def log(msg):
    print("[gozk] %s" % msg, file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


def go_env():
    env = dict(os.environ)
    for k in list(env):
        # ZOOKEEPER_BIN_PATH: go-zookeeper's own server launcher; ZK_VERSION: set below.
        if k.startswith("GO") or k in ("ZOOKEEPER_BIN_PATH", "ZK_VERSION", "GOZK_EXTERNAL_SERVER"):
            del env[k]
    for k in ("GOPROXY", "GONOPROXY", "GOPRIVATE", "GONOSUMDB", "GOSUMDB", "GOINSECURE"):
        if k in os.environ:  # a CI mirror setting is fine; everything else is ours
            env[k] = os.environ[k]
    env.update({
        "GOPATH": str(GO_DIR),
        "GOMODCACHE": str(GO_DIR / "mod"),
        "GOCACHE": str(GO_DIR / "build"),
        "GOFLAGS": "-modcacherw",     # so the cache can be deleted with rm -rf
        "GOTOOLCHAIN": "local",       # never download another Go
        "GO111MODULE": "on",
        "GOWORK": "off",
        "GOENV": "off",
        "CGO_ENABLED": "0",           # no C compiler needed
    })
    return env


def go(args, cwd, check=True, **kw):
    go_bin = shutil.which("go")
    if not go_bin:
        raise SetupError("`go` is not on PATH (the gozk suite needs Go 1.20 or newer)")
    p = subprocess.run([go_bin] + args, cwd=str(cwd), env=go_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, **kw)
    if check and p.returncode != 0:
        raise SetupError("go %s failed (exit %d):\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def _stamp_value():
    h = hashlib.sha256()
    for part in (MODULE, VERSION, GO_SUM):
        h.update(part.encode())
    h.update(PATCH.read_bytes())
    h.update(EXTERNAL_TEST.read_bytes())
    h.update(go(["version"], cwd=HERE).stdout.encode())
    return h.hexdigest()


def _rmtree(p):
    if p.exists():
        for root, dirs, _ in os.walk(p):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(p)


def setup():
    stamp = _stamp_value()
    if STAMP.exists() and STAMP.read_text() == stamp and SRC.is_dir() and TEST_BIN.exists() \
            and TEST_LIST.exists():
        return
    started = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    STAMP.unlink(missing_ok=True)

    # 1. Download into the module cache, verified against the pinned go.sum.
    fetch = WORK / "fetch"
    fetch.mkdir(exist_ok=True)
    (fetch / "go.mod").write_text("module gozkfetch\n\ngo 1.20\n\nrequire %s %s\n" % (MODULE, VERSION))
    (fetch / "go.sum").write_text(GO_SUM)
    log("go mod download %s@%s (module cache %s)" % (MODULE, VERSION, GO_DIR / "mod"))
    info = json.loads(go(["mod", "download", "-json", MODULE], cwd=fetch).stdout)
    if info.get("Error"):
        raise SetupError("go mod download: %s" % info["Error"])
    if info.get("Version") != VERSION or info.get("Sum") not in GO_SUM:
        raise SetupError("unexpected module from go mod download: %r" % info)
    mod_dir = Path(info["Dir"])

    # 2. Writable copy + our file + our patch.
    tmp = CACHE_DIR / "gozk-src.tmp"
    _rmtree(tmp)
    shutil.copytree(mod_dir, tmp)
    for root, dirs, files in os.walk(tmp):
        for n in dirs:
            os.chmod(os.path.join(root, n), 0o755)
        for n in files:
            os.chmod(os.path.join(root, n), 0o644)
    shutil.copyfile(EXTERNAL_TEST, tmp / "compat_external_test.go")
    # git apply outside any repository (the ceiling stops it from finding
    # ferrokeeper's own .git above .cache/).
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(CACHE_DIR))
    p = subprocess.run(["git", "apply", "--verbose", str(PATCH)], cwd=str(tmp), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise SetupError("applying %s failed:\n%s" % (PATCH, p.stdout))
    _rmtree(SRC)
    tmp.rename(SRC)

    # 3. Compile the test binary and list its tests.
    log("compiling go-zookeeper's tests (GOCACHE %s)" % (GO_DIR / "build"))
    TEST_BIN.unlink(missing_ok=True)
    go(["test", "-c", "-vet=off", "-o", str(TEST_BIN), "."], cwd=SRC)
    p = subprocess.run([str(TEST_BIN), "-test.list", "."], cwd=str(SRC), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    names = [n for n in p.stdout.split() if n.startswith("Test")]
    if p.returncode != 0 or not names:
        raise SetupError("listing tests failed:\n%s" % p.stdout)
    TEST_LIST.write_text("\n".join(names) + "\n")
    STAMP.write_text(stamp)
    log("setup done in %.0fs (%d tests)" % (time.monotonic() - started, len(names)))


def read_deselected(path=DESELECTED):
    """[(test name, comment)] from deselected.txt (top-level test names)."""
    out = []
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, comment = line.partition("#")
        out.append((name.strip(), comment.strip()))
    return out


def _message(lines, limit=4000):
    """Test output without the === RUN / --- PASS framing lines."""
    keep = [l.rstrip() for l in lines if l.strip() and not re.match(r"\s*(=== |--- (PASS|SKIP))", l)]
    # t.Log lines are indented by 4 spaces per test level; drop the first level.
    text = "\n".join(l[4:] if l.startswith("    ") else l for l in keep)
    return text if len(text) <= limit else text[:limit] + "\n[... truncated]"


def _timeout_excerpt(lines, name):
    """For "panic: test timed out": the output before the goroutine dump plus
    the goroutine running the test (where it hangs), not the whole dump."""
    text = "".join(lines)
    if "panic: test timed out" not in text:
        return lines
    blocks = text.split("\n\n")
    frame = "zk.%s(" % name
    keep = [blocks[0]] + [b for b in blocks[1:] if frame in b]
    return [l + "\n" for l in "\n\n".join(keep).splitlines()] + \
        ["[other goroutines left out; the whole dump is in the .log file]\n"]


def judge_test(name, events, note=""):
    """One top-level test's test2json events -> (status, detail dict).

    status is pass, skip or fail; a test without a final pass/fail/skip event
    (the binary died or was killed first) is a failure of kind "error".
    """
    tests = {}      # test or subtest name -> {"status", "elapsed", "output"}
    pkg_output = []
    for ev in events:
        t_name = ev.get("Test")
        action = ev.get("Action")
        if not t_name:
            if action == "output":
                pkg_output.append(ev.get("Output", ""))
            continue
        t = tests.setdefault(t_name, {"status": None, "elapsed": None, "output": []})
        if action == "output":
            t["output"].append(ev.get("Output", ""))
        elif action in ("pass", "fail", "skip"):
            t["status"] = action
            t["elapsed"] = ev.get("Elapsed")
    t = tests.get(name)
    if t is None or t["status"] is None:
        why = "started but reported no result" if t else "did not start"
        msg = "%s%s\n%s" % (why, note, _message((t["output"] if t else []) + pkg_output[-60:]))
        return "fail", {"id": name, "kind": "error", "message": msg[-8000:]}
    if t["status"] == "pass":
        return "pass", {"id": name, "elapsed_s": t["elapsed"]}
    if t["status"] == "skip":
        # the t.Skip line ("file_test.go:N: reason"), not the client's log lines
        lines = [l for l in t["output"] if re.match(r"\s*\w+_test\.go:\d+: ", l)]
        return "skip", {"id": name, "reason": _message(lines or t["output"], 1000)}
    failed_subs = sorted(n for n in tests if n.startswith(name + "/") and tests[n]["status"] == "fail")
    msg = _message(_timeout_excerpt(t["output"], name))
    for sub in failed_subs:
        msg += "\n[%s]\n%s" % (sub, _message(tests[sub]["output"], 1500))
    return "fail", {"id": name, "kind": "failure", "summary": _summary(t, tests, name, failed_subs),
                    "failed_subtests": failed_subs, "elapsed_s": t["elapsed"], "message": msg[:8000]}


def _summary(t, tests, name, failed_subs):
    """One line: where a timed-out test hung, or its first t.Error/t.Fatal line."""
    text = "".join(t["output"])
    m = re.search(r"panic: (test timed out after \S+)", text)
    if m:
        # the test's goroutine: the frame called by the test function is where it blocks
        frames = re.findall(r"^(\S+)\(.*\)\n\t(\S+?):(\d+)", text, re.M)
        for i, (fn, path, line) in enumerate(frames):
            if fn.endswith(".%s" % name) and i > 0:
                return "%s in %s, called at %s:%s" % (m.group(1), frames[i - 1][0].split("/")[-1],
                                                      os.path.basename(path), line)
        return m.group(1)
    for n in [name] + failed_subs:
        for line in tests[n]["output"]:
            if re.match(r"\s*\w+_test\.go:\d+: ", line) or line.lstrip().startswith("panic:"):
                return (n + ": " if n != name else "") + line.strip()
    return ""


def run_test(name, env, timeout_s):
    """Run one top-level test in its own process; returns (events, exit code, note)."""
    cmd = [shutil.which("go") or "go", "tool", "test2json", "-t", "-p", MODULE,
           str(TEST_BIN), "-test.v=test2json", "-test.count=1", "-test.run", "^%s$" % re.escape(name),
           "-test.timeout=%ds" % timeout_s]
    note = ""
    try:
        p = subprocess.run(cmd, cwd=str(SRC), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout_s + 30)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = e.stdout or b"", None
        note = " (killed: no exit %ds after the test's own -test.timeout)" % 30
    events = []
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:   # not from test2json: keep it as package output
            events.append({"Action": "output", "Output": line + "\n"})
    return events, rc, note


def run(host, server, out_dir, server_log=None):
    """Run the suite; returns the result dict (also written as JSON)."""
    setup()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    events_f = out_dir / ("%s.events.jsonl" % server)
    logf = out_dir / ("%s.log" % server)
    jsonf = out_dir / ("%s.json" % server)
    for f in (events_f, logf, jsonf):
        f.unlink(missing_ok=True)
    all_tests = TEST_LIST.read_text().split()
    deselected = read_deselected()
    desel = {n for n, _ in deselected}
    result = {
        "suite": "gozk",
        "server": server,
        "module": "%s@%s" % (MODULE, VERSION),
        "host": host,
        "per_test_timeout_s": TEST_TIMEOUT,
        "deselected": len(deselected),
        "deselected_tests": [{"id": n, "reason": c} for n, c in deselected],
        "tests_total": len(all_tests),
        "log": str(logf),
        "events": str(events_f),
    }
    if server_log:
        result["server_log"] = str(server_log)
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures, skips, passes = [], [], []
    result.update(counts)
    result.update({"failures": failures, "skips": skips, "passed_tests": passes})
    bad = sorted(desel - set(all_tests))
    if bad:
        result["error"] = "deselected.txt names unknown tests: %s" % ", ".join(bad)
        jsonf.write_text(json.dumps(result, indent=2) + "\n")
        return result

    env = go_env()
    env["GOZK_EXTERNAL_SERVER"] = host
    env["ZK_VERSION"] = ZK_VERSION
    log("running %s@%s tests one process each against %s (%s); log: %s"
        % (MODULE, VERSION, server, host, logf))
    started = time.monotonic()
    with open(events_f, "w") as ef, open(logf, "w") as lf:
        for name in all_tests:
            if name in desel:
                continue
            left = RUN_TIMEOUT - (time.monotonic() - started)
            if left < 10:
                events, rc, note = [], None, " (the run's time budget of %ss was used up)" % RUN_TIMEOUT
            else:
                events, rc, note = run_test(name, env, int(min(TEST_TIMEOUT, left)))
            for ev in events:
                ef.write(json.dumps(ev) + "\n")
                if ev.get("Action") == "output":
                    lf.write(ev.get("Output", ""))
            status, detail = judge_test(name, events, note)
            if rc not in (0, 1) or (rc == 0) != (status != "fail"):
                detail["exit_code"] = rc
                if status != "fail":   # e.g. passed, then the binary crashed
                    status, detail["kind"] = "fail", "error"
                    detail["message"] = "test binary exit status %s%s" % (rc, note)
            if status == "pass":
                counts["passed"] += 1
                passes.append(name)
            elif status == "skip":
                counts["skipped"] += 1
                skips.append(detail)
            else:
                counts["failed"] += 1
                counts["errors"] += detail["kind"] == "error"
                failures.append(detail)
                log("FAIL %s: %s" % (name, detail.get("summary") or detail["message"][:200]))
    duration = time.monotonic() - started
    result.update(counts)
    result["duration_s"] = round(duration, 1)
    jsonf.write_text(json.dumps(result, indent=2) + "\n")
    log("%s: %d passed, %d failed, %d skipped, %d deselected in %.0fs"
        % (server, result["passed"], result["failed"], result["skipped"], result["deselected"], duration))
    return result


def main(argv=None):
    return suite_cli.main(__doc__, setup, run, (SetupError,), 2, log, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
