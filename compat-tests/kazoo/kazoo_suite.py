#!/usr/bin/env python3
"""kazoo suite: kazoo 2.11.0's own tests against one external server.

    kazoo_suite.py setup                      venv + kazoo sdist + test deps
    kazoo_suite.py run --host H:P --server KIND --out-dir DIR [--server-log F]

setup is idempotent: it creates compat-tests/.cache/venv, downloads the kazoo
sdist with pip into compat-tests/.cache/kazoo/, extracts it, and installs kazoo
plus requirements.txt into the venv. run executes pytest from the extracted
sdist with the kazoo_external plugin and writes DIR/KIND.junit.xml,
DIR/KIND.log and DIR/KIND.json (counts, failures, skips). Standard library
only (runs on the system python; pytest runs in the venv).
"""

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import suite_cli  # noqa: E402

KAZOO_VERSION = "2.11.0"
HERE = Path(__file__).resolve().parent
COMPAT_DIR = HERE.parent
CACHE_DIR = Path(os.environ.get("COMPAT_CACHE_DIR", COMPAT_DIR / ".cache"))
VENV = CACHE_DIR / "venv"
VENV_PY = VENV / "bin" / "python"
KAZOO_CACHE = CACHE_DIR / "kazoo"
SDIST = KAZOO_CACHE / ("kazoo-%s.tar.gz" % KAZOO_VERSION)
SRC = KAZOO_CACHE / ("kazoo-%s" % KAZOO_VERSION)
REQUIREMENTS = HERE / "requirements.txt"
DESELECTED = HERE / "deselected.txt"
# Per-test timeout, as in kazoo's own pyproject.toml; the whole run is bounded too.
TEST_TIMEOUT = 180
RUN_TIMEOUT = int(os.environ.get("COMPAT_KAZOO_RUN_TIMEOUT", "1800"))


def log(msg):
    print("[kazoo] %s" % msg, file=sys.stderr, flush=True)


def _stamp_value():
    h = hashlib.sha256()
    h.update(KAZOO_VERSION.encode())
    h.update(REQUIREMENTS.read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def setup():
    stamp = VENV / ".compat-kazoo-ready"
    if stamp.exists() and stamp.read_text() == _stamp_value() and SRC.is_dir():
        return
    started = time.monotonic()
    KAZOO_CACHE.mkdir(parents=True, exist_ok=True)
    if not VENV_PY.exists():
        log("creating venv %s" % VENV)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV_PY), "-m", "pip", "--disable-pip-version-check", "-q"]
    if not SDIST.exists():
        log("downloading kazoo==%s sdist from PyPI" % KAZOO_VERSION)
        subprocess.run(
            pip + ["download", "--no-binary", ":all:", "--no-deps",
                   "kazoo==%s" % KAZOO_VERSION, "-d", str(KAZOO_CACHE)],
            check=True,
        )
    if not SRC.is_dir():
        log("extracting %s" % SDIST.name)
        tmp = KAZOO_CACHE / "extract.tmp"
        if tmp.exists():
            subprocess.run(["rm", "-rf", str(tmp)], check=True)
        with tarfile.open(SDIST) as tf:
            try:
                tf.extractall(tmp, filter="data")
            except TypeError:  # Python without tarfile extraction filters
                tf.extractall(tmp)
        (tmp / SRC.name).rename(SRC)
        tmp.rmdir()
    log("installing kazoo %s and its test requirements into the venv" % KAZOO_VERSION)
    subprocess.run(pip + ["install", str(SDIST), "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(_stamp_value())
    log("setup done in %.0fs" % (time.monotonic() - started))


def read_deselected(path=DESELECTED):
    """[(node id, comment)] from deselected.txt."""
    out = []
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        node, _, comment = line.partition("#")
        out.append((node.strip(), comment.strip()))
    return out


def _node_id(classname, name):
    """junit classname 'kazoo.tests.test_x.Cls' + name -> pytest node id."""
    parts = classname.split(".")
    idx = max((i for i, p in enumerate(parts) if p.startswith("test")), default=len(parts) - 1)
    module = "/".join(parts[: idx + 1]) + ".py"
    return "::".join([module] + parts[idx + 1:] + [name])


def parse_junit(path):
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures, skips = [], []
    root = ET.parse(path).getroot()
    for tc in root.iter("testcase"):
        nid = _node_id(tc.get("classname", ""), tc.get("name", ""))
        fail = tc.find("failure")
        err = tc.find("error")
        skip = tc.find("skipped")
        if fail is not None or err is not None:
            node = fail if fail is not None else err
            counts["failed"] += 1
            if fail is None:
                counts["errors"] += 1
            failures.append({"id": nid, "kind": node.tag, "message": (node.get("message") or "")[:500]})
        elif skip is not None:
            counts["skipped"] += 1
            skips.append({"id": nid, "reason": skip.get("message") or ""})
        else:
            counts["passed"] += 1
    return counts, failures, skips


def run(host, server, out_dir, server_log=None, suite="kazoo", plugins=(), plugin_dirs=(), env_extra=None,
        deselect_files=(DESELECTED,), tests=("kazoo/tests",), run_timeout=RUN_TIMEOUT, extra_results=None):
    """Run the suite; returns the result dict (also written as JSON).

    host is host:port, or a comma list for an ensemble (kazoo_external.py); server_log a
    path or a list of them. The keyword arguments let another suite (rolling) run the same
    tests its own way: more pytest plugins (-p, found in plugin_dirs), environment, more
    deselection files, a subset of tests (pytest paths or node ids, relative to the sdist),
    its own time bound, and extra_results(result) to add to the result before it is written.
    """
    setup()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    junit = out_dir / ("%s.junit.xml" % server)
    logf = out_dir / ("%s.log" % server)
    jsonf = out_dir / ("%s.json" % server)
    for f in (junit, jsonf):
        if f.exists():
            f.unlink()
    deselected = [d for f in deselect_files for d in read_deselected(f)]
    cmd = [str(VENV_PY), "-m", "pytest", "-p", "kazoo_external"]
    for plugin in plugins:
        cmd += ["-p", plugin]
    cmd += [
        "-p", "no:cacheprovider",
        "-o", "log_cli=false",
        "-o", "timeout=%d" % TEST_TIMEOUT,
        "--color=no", "-v", "-ra",
        "--junitxml=%s" % junit,
    ]
    cmd += list(tests)
    for node, _ in deselected:
        cmd += ["--deselect", node]
    env = dict(os.environ)
    # kazoo's tests change behaviour when CI is set (extra sleeps, and
    # test_build compares ZOOKEEPER_VERSION); keep runs the same everywhere.
    for k in list(env):
        if k == "CI" or k.startswith("ZOOKEEPER_") or k.startswith("KRB5"):
            del env[k]
    env["ZK_HOST"] = host
    if server_log:
        logs = server_log if isinstance(server_log, (list, tuple)) else [server_log]
        env["ZK_SERVER_LOG"] = os.pathsep.join(str(f) for f in logs)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [str(d) for d in plugin_dirs]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(env_extra or {})
    log("running kazoo %s tests against %s (%s); log: %s" % (KAZOO_VERSION, server, host, logf))
    started = time.monotonic()
    timed_out = False
    with open(logf, "wb") as lf:
        try:
            proc = subprocess.run(cmd, cwd=SRC, env=env, stdout=lf, stderr=subprocess.STDOUT,
                                  timeout=run_timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
    duration = time.monotonic() - started
    result = {
        "suite": suite,
        "server": server,
        "kazoo_version": KAZOO_VERSION,
        "host": host,
        "pytest_exit_code": rc,
        "duration_s": round(duration, 1),
        "deselected": len(deselected),
        "log": str(logf),
        "junit": str(junit),
    }
    if junit.exists():
        counts, failures, skips = parse_junit(junit)
        result.update(counts)
        result["failures"] = failures
        result["skips"] = skips
        if rc not in (0, 1):
            result["error"] = "pytest exited with status %s (see %s)" % (rc, logf)
    else:
        result.update({"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": [], "skips": []})
        result["error"] = ("pytest timed out after %ss" % run_timeout) if timed_out else \
            "pytest wrote no junit report (exit status %s; see %s)" % (rc, logf)
    if extra_results:
        extra_results(result)
    jsonf.write_text(json.dumps(result, indent=2) + "\n")
    log("%s: %d passed, %d failed, %d skipped, %d deselected in %.0fs"
        % (server, result["passed"], result["failed"], result["skipped"], result["deselected"], duration))
    return result


def main(argv=None):
    return suite_cli.main(__doc__, setup, run, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
