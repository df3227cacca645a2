#!/usr/bin/env python3
"""kafka suite: two Apache Kafka 3.9 brokers in ZooKeeper mode against one server.

    kafka_suite.py setup                      compile the driver, write the class path
    kafka_suite.py run --host H:P --server KIND --out-dir DIR [--server-log F]

The driver is one Java program (KafkaCompat.java in the Maven project next
to this file). It starts brokers 0 and 1 as child processes (`java -cp
<class path> kafka.Kafka server.properties`, zookeeper.connect=H:P/kafka,
listeners on 127.0.0.1:P+1000 and P+1001), reads znodes with its own
ZooKeeper client and produces/consumes/administers with kafka-clients.
Cases, in order (each one test; a case whose prerequisite failed fails as
"blocked"):

  brokers_registered          both brokers up, ephemeral /brokers/ids/0 and /1 with their endpoints, /cluster/id
  controller_elected          /controller names one of them, owned by that broker's session; /controller_epoch >= 1;
                              the brokers' metadata agrees
  broker_epoch_is_czxid       each broker's logged broker epoch = czxid of /brokers/ids/N; the Stat its
                              registration multi (create + setData) returned = getData's Stat (czxid = mzxid, version 1)
  topic_created               admin createTopics(3 partitions, RF 2): assignment and partition states in ZooKeeper,
                              every partition has a leader and ISR [0, 1]
  produce_10000               10 000 records, acks=all, idempotent producer; end offsets add up
  consume_10000               a consumer group reads all 10 000 and commits; committed offsets add up
  dynamic_config_propagates   a cluster-wide dynamic broker config: /config/brokers/<default> and a sequential
                              /config/changes/config_change_N; both brokers apply it (child watch)
  acl_change_propagates       AclAuthorizer: create then delete an ACL; /kafka-acl/Topic/<t>, sequential
                              /kafka-acl-changes/acl_changes_N, both brokers reload it each time
  partitions_added            a second topic, 1 -> 3 partitions (conditional setData of /brokers/topics/<t>,
                              the controller's data watch); new partitions get leaders and take records
  topic_deleted               deleteTopics: /admin/delete_topics/<t>; the controller deletes the topic's znodes
  controller_reelected_after_znode_delete
                              the driver deletes /controller: the brokers re-elect (epoch + 1)
  controller_failover         SIGKILL the controller: after its session expires (6 s) the other broker becomes
                              controller, controller_epoch + 1, /brokers/ids = [survivor]
  topic_served_after_failover every partition led by the survivor; 1 000 more records produced and consumed
                              (same group: exactly the new ones, its offsets survived the failover)
  broker_rejoins              restart the killed broker: /brokers/ids/N back with a higher czxid (new epoch),
                              epoch = czxid again, the controller does not change
  isr_expands_after_rejoin    every partition's ISR back to [0, 1]
  preferred_leaders_restored  admin electLeaders(PREFERRED): every partition led by its first replica again
  consume_all_after_rejoin    a new group reads all 11 000 records
  paused_controller_fenced    SIGSTOP the controller past its session timeout: the other broker takes over;
                              after SIGCONT the old one learns its session expired, resigns, registers again
                              with a new session and epoch (= czxid); the ISR expands; the controller stays
  controlled_shutdown         SIGTERM the non-controller, then the controller: controlled shutdown succeeds, each
                              registration (and /controller) is gone within 3 s of exit (closeSession, not expiry)
  no_connections_leaked       with every broker gone, 4lw `cons` lists the driver's session only: no connection
                              of a closed, killed or expired broker session is left behind (a leftover one
                              still counts against maxClientCnxns)

setup runs `mvn -B -q compile dependency:build-classpath` (Kafka and its
dependencies come from Maven Central into ~/.m2 on the first run) and writes
the runtime class path to <cache>/kafka/classpath.txt. run starts the driver
(work dir <cache>/kafka/run/<server>/, wiped first) and writes DIR/KIND.json
(counts, every case with status, message and time, facts), DIR/KIND.log (the
driver's output) and DIR/KIND-brokers/ (server.properties and the log of every
broker start). Brokers are stopped by PID: by the driver (also from its
shutdown hook) and, should the driver itself die, here from the PID files it
wrote. Standard library only.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import suite_cli  # noqa: E402

KAFKA_VERSION = "3.9.2"
HERE = Path(__file__).resolve().parent
COMPAT_DIR = HERE.parent
CACHE_DIR = Path(os.environ.get("COMPAT_CACHE_DIR", COMPAT_DIR / ".cache"))
KAFKA_CACHE = CACHE_DIR / "kafka"
CLASSPATH_FILE = KAFKA_CACHE / "classpath.txt"
BUILD_LOG = KAFKA_CACHE / "build.log"
POM = HERE / "pom.xml"
CLASSES = HERE / "target" / "classes"
MAIN_CLASS = "dev.ferrokeeper.compat.kafka.KafkaCompat"
MVN = os.environ.get("MVN", "mvn")
JAVA = os.environ.get("JAVA", "java")
# Every wait inside the driver is bounded (120 s at most); this is the backstop.
RUN_TIMEOUT = int(os.environ.get("COMPAT_KAFKA_RUN_TIMEOUT", "900"))
CASES = [
    "brokers_registered", "controller_elected", "broker_epoch_is_czxid", "topic_created",
    "produce_10000", "consume_10000", "dynamic_config_propagates", "acl_change_propagates",
    "partitions_added", "topic_deleted", "controller_reelected_after_znode_delete",
    "controller_failover", "topic_served_after_failover", "broker_rejoins", "isr_expands_after_rejoin",
    "preferred_leaders_restored", "consume_all_after_rejoin", "paused_controller_fenced",
    "controlled_shutdown", "no_connections_leaked",
]


class SetupError(Exception):
    pass


_built = False


def log(msg):
    print("[kafka] %s" % msg, file=sys.stderr, flush=True)


def setup(force=False):
    """Compile the driver and write the brokers' class path (once per process)."""
    global _built
    if _built and not force:
        return
    started = time.monotonic()
    KAFKA_CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [MVN, "-B", "-q", "-Dstyle.color=never", "-f", str(POM), "compile", "dependency:build-classpath",
           "-Dmdep.outputFile=%s" % CLASSPATH_FILE, "-Dmdep.includeScope=runtime"]
    with open(BUILD_LOG, "wb") as lf:
        p = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT)
    if p.returncode != 0 or not CLASSPATH_FILE.exists():
        tail = BUILD_LOG.read_text(errors="replace").splitlines()[-30:]
        raise SetupError("mvn compile dependency:build-classpath failed (exit %d; log %s):\n%s"
                         % (p.returncode, BUILD_LOG, "\n".join(tail)))
    _built = True
    log("driver compiled, class path in %s (%.0fs)" % (CLASSPATH_FILE, time.monotonic() - started))


def _kill_leftover_brokers(work):
    """SIGKILL broker processes the driver recorded, if still running (the driver died)."""
    for pidfile in work.glob("broker-*.pid"):
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
        except (ValueError, OSError):
            continue
        # only our broker: kafka.Kafka with a server.properties under this work dir
        if b"kafka.Kafka" in cmdline and any(a.startswith(str(work).encode()) for a in cmdline):
            log("killing leftover broker pid %d" % pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _empty(result, error):
    result.update({"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "deselected": 0,
                   "failures": [], "tests": [], "error": error})
    return result


def run(host, server, out_dir, server_log=None):
    """Run the suite against the server at host; returns the result dict (also written as JSON)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonf = out_dir / ("%s.json" % server)
    logf = out_dir / ("%s.log" % server)
    # not "<server>.brokers": compat.py's clear_results unlinks files named <server>.*
    brokers_copy = out_dir / ("%s-brokers" % server)
    if jsonf.exists():
        jsonf.unlink()
    if brokers_copy.exists():
        shutil.rmtree(brokers_copy)
    work = KAFKA_CACHE / "run" / server
    results_file = work / "results.json"
    result = {
        "suite": "kafka",
        "server": server,
        "kafka_version": KAFKA_VERSION,
        "host": host,
        "log": str(logf),
        "broker_logs": str(brokers_copy),
        "server_log": str(server_log) if server_log else None,
    }
    try:
        setup()
    except SetupError as e:
        _empty(result, str(e))
        jsonf.write_text(json.dumps(result, indent=2) + "\n")
        return result
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cmd = [JAVA, "-Xms128m", "-Xmx384m", "-cp", "%s:%s" % (CLASSES, CLASSPATH_FILE.read_text().strip()),
           MAIN_CLASS, "--zk", host, "--work-dir", str(work), "--classpath-file", str(CLASSPATH_FILE),
           "--results", str(results_file)]
    log("running the kafka suite against %s (%s); log: %s" % (server, host, logf))
    started = time.monotonic()
    timed_out = False
    with open(logf, "wb") as lf:
        proc = subprocess.Popen(cmd, cwd=str(work), stdout=lf, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            timed_out, rc = True, None
            proc.terminate()  # the driver's shutdown hook kills its brokers
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            _kill_leftover_brokers(work)
            raise
    _kill_leftover_brokers(work)
    duration = time.monotonic() - started
    result["driver_exit_code"] = rc
    result["duration_s"] = round(duration, 1)

    brokers_copy.mkdir()
    for f in sorted(work.glob("broker-*.log")) + sorted(work.glob("broker-*/server.properties")):
        dest = f.name if f.suffix == ".log" else "%s.server.properties" % f.parent.name
        shutil.copyfile(f, brokers_copy / dest)

    report = None
    if results_file.exists():
        try:
            report = json.loads(results_file.read_text())
        except ValueError:
            report = None
    if report is None:
        _empty(result, ("driver timed out after %ss" % RUN_TIMEOUT) if timed_out else
               "driver wrote no results (exit status %s; see %s)" % (rc, logf))
        jsonf.write_text(json.dumps(result, indent=2) + "\n")
        return result

    tests = report.get("cases", [])
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "deselected": 0}
    failures = []
    for t in tests:
        if t["status"] == "passed":
            counts["passed"] += 1
        else:
            counts["failed"] += 1
            if t.get("failure_kind") == "error":
                counts["errors"] += 1
            failures.append({"id": t["id"], "kind": t.get("failure_kind", ""), "message": t.get("message", "")})
    # cases the driver never reached (it died or timed out) count as failed
    seen = {t["id"] for t in tests}
    for cid in CASES:
        if cid not in seen:
            counts["failed"] += 1
            failures.append({"id": cid, "kind": "not reached", "message": "the driver did not get to this case"})
            tests.append({"id": cid, "status": "failed", "failure_kind": "not reached"})
    result.update(counts)
    result.update({"failures": failures, "tests": tests, "facts": report.get("facts", {}),
                   "kafka_version": report.get("kafka_version", KAFKA_VERSION),
                   "zookeeper_client_version": report.get("zookeeper_client_version")})
    if timed_out:
        result["error"] = "driver timed out after %ss (see %s)" % (RUN_TIMEOUT, logf)
    elif report.get("fatal"):
        result["error"] = "driver error: %s (see %s)" % (report["fatal"], logf)
    elif rc not in (0, 1) or not report.get("finished"):
        result["error"] = "driver exited with status %s (see %s)" % (rc, logf)
    jsonf.write_text(json.dumps(result, indent=2) + "\n")
    log("%s: %d passed, %d failed in %.0fs" % (server, result["passed"], result["failed"], duration))
    for f in failures:
        log("  FAILED %s: %s" % (f["id"], (f["message"] or "").splitlines()[0] if f["message"] else ""))
    return result


def main(argv=None):
    return suite_cli.main(__doc__, setup, run, (SetupError,), argv=argv)


if __name__ == "__main__":
    sys.exit(main())
