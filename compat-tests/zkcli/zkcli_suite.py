#!/usr/bin/env python3
"""zkCli transcript suite: run, mask, split into cases, compare.

    zkcli_suite.py run --port P --raw OUT.raw          run commands.txt via zkCli
    zkcli_suite.py mask RAW [-o MASKED]                mask a raw transcript
    zkcli_suite.py compare EXPECTED ACTUAL [--json F]  per-case / per-block result

Each command line of commands.txt is one case; "## block: NAME" lines group
cases for reporting. A case passes if its masked output equals the expected
masked output. Standard library only (runs on the system python).
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPAT_DIR = HERE.parent
COMMANDS = HERE / "commands.txt"
EXPECTED = HERE / "expected.txt"
DRIVER = HERE / "ZkCliTranscript.java"
HEADER = "zk> "

# ---------------------------------------------------------------- script ----


def load_cases(commands_path=COMMANDS):
    """[(block, command)] in script order."""
    cases = []
    block = "(none)"
    for raw in Path(commands_path).read_text().splitlines():
        line = raw.strip()
        m = re.match(r"^##\s*block:\s*(\S.*)$", line)
        if m:
            block = m.group(1).strip()
            continue
        if not line or line.startswith("#"):
            continue
        cases.append((block, line))
    return cases


# ------------------------------------------------------------------- run ----


def run(port, raw_out, zk_lib, java="java", host="127.0.0.1", timeout=120):
    """Feed commands.txt to zkCli against host:port; write the raw transcript."""
    log_file = Path(raw_out).with_suffix(".zkcli.log")
    cmd = [
        java,
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-Dfile.encoding=UTF-8",
        "-Dlogback.configurationFile=%s" % (COMPAT_DIR / "lib" / "logback-cli.xml"),
        "-Dzkcli.log.file=%s" % log_file,
        "-cp",
        os.path.join(zk_lib, "*"),
        str(DRIVER),
        "-server",
        "%s:%s" % (host, port),
        "-timeout",
        "30000",
    ]
    with open(COMMANDS, "rb") as stdin, open(raw_out, "wb") as out:
        proc = subprocess.run(
            cmd, stdin=stdin, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    return proc.returncode


# ------------------------------------------------------------------ mask ----

# Lines that are never part of a command's output: logging, connection
# chatter, watcher notifications, stack frames.
NOISE = [
    re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}"),  # log timestamps
    re.compile(r"^\d{2}:\d{2}:\d{2}[.,]\d{3} "),  # logback default pattern
    re.compile(r"^(SLF4J|log4j|logback)[:(]"),
    re.compile(r"^(Connecting to |Welcome to ZooKeeper!|JLine support is)"),
    re.compile(r"^WATCHER::\s*$"),
    re.compile(r"^WatchedEvent state:"),
    re.compile(r"^\s+at [\w$.<>/]+\(.*\)$"),  # Java stack frames
    re.compile(r"^\s*\.\.\. \d+ more$"),
    re.compile(r"^Picked up (_JAVA_OPTIONS|JAVA_TOOL_OPTIONS):"),
]
DATE = re.compile(
    r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"[ \d]\d \d{2}:\d{2}:\d{2} [A-Z]{2,5} \d{4}\b"
)
STAT_TIME = re.compile(r"^(ctime|mtime) = .*$")
STAT_ZXID = re.compile(r"^(cZxid|mZxid|pZxid) = .*$")
EPH_OWNER = re.compile(r"^ephemeralOwner = (0x[0-9a-fA-F]+)$")
HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
# Output whose order is not part of the contract (zkCli prints it in the
# server's order, and Apache's comes from hash sets), normalised by sorting:
# getEphemerals prints "[a, b]"; whoami prints one line per auth id after its
# "Auth scheme:" header. (ls and ls -R sort children in zkCli itself.)
SORTED_LIST_COMMANDS = ("getEphemerals",)
SORTED_LINES_COMMANDS = ("whoami",)


def _mask_line(line):
    if STAT_TIME.match(line):
        return STAT_TIME.sub(r"\1 = <TIME>", line)
    if STAT_ZXID.match(line):
        return STAT_ZXID.sub(r"\1 = <ZXID>", line)
    m = EPH_OWNER.match(line)
    if m:
        # 0x0 means "not ephemeral" and is compared; a session id is masked.
        return line if int(m.group(1), 16) == 0 else "ephemeralOwner = <SESSION>"
    line = DATE.sub("<TIME>", line)
    line = HEX.sub("0x<HEX>", line)
    return line


def mask(text):
    """Masked transcript text. Deterministic: same input, same output."""
    out = []
    started = False
    current_cmd = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.rstrip()
        if line.startswith(HEADER):
            started = True
            current_cmd = line[len(HEADER):].strip()
            out.append(line)
            continue
        if not started:
            continue  # connection banner before the first command
        if any(p.search(line) for p in NOISE):
            continue
        line = _mask_line(line)
        if current_cmd.split(" ")[0] in SORTED_LIST_COMMANDS:
            m = re.match(r"^\[(.*)\]$", line)
            if m and m.group(1):
                line = "[" + ", ".join(sorted(m.group(1).split(", "))) + "]"
        out.append(line)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(_sort_unordered_blocks(out)) + "\n"


def _sort_unordered_blocks(lines):
    """Sort the lines of SORTED_LINES_COMMANDS' output (after any header)."""
    result, i = [], 0
    while i < len(lines):
        line = lines[i]
        result.append(line)
        i += 1
        if not line.startswith(HEADER):
            continue
        cmd = line[len(HEADER):].strip().split(" ")[0]
        j = i
        while j < len(lines) and not lines[j].startswith(HEADER):
            j += 1
        body = lines[i:j]
        if cmd in SORTED_LINES_COMMANDS:
            head = [b for b in body if b.startswith("Auth scheme:")]
            rest = sorted(b for b in body if not b.startswith("Auth scheme:"))
            body = head + rest
        result.extend(body)
        i = j
    return result


# --------------------------------------------------------------- compare ----


def split_cases(masked_text):
    """[(command, [output lines])] in transcript order."""
    cases = []
    for line in masked_text.split("\n"):
        if line.startswith(HEADER):
            cases.append((line[len(HEADER):], []))
        elif cases:
            cases[-1][1].append(line)
    # drop trailing empty lines of each case (the file's final newline)
    return [(c, _rstrip_lines(o)) for c, o in cases]


def _rstrip_lines(lines):
    lines = list(lines)
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def compare(expected_text, actual_text, commands_path=COMMANDS):
    """Per-case comparison following commands.txt. Returns a result dict."""
    script = load_cases(commands_path)
    exp = split_cases(expected_text)
    act = split_cases(actual_text)
    blocks = {}
    cases = []
    for i, (block, command) in enumerate(script):
        e = exp[i] if i < len(exp) else None
        a = act[i] if i < len(act) else None
        if e is None or e[0] != command:
            status, why = "failed", "expected transcript has no output for this command (regenerate expected.txt?)"
        elif a is None:
            status, why = "failed", "command missing from transcript (zkCli stopped early?)"
        elif a[0] != command:
            status, why = "failed", "transcript out of step: got command %r" % a[0]
        elif a[1] != e[1]:
            status, why = "failed", "output differs"
        else:
            status, why = "passed", ""
        b = blocks.setdefault(block, {"passed": 0, "failed": 0, "skipped": 0})
        b[status] += 1
        case = {"n": i + 1, "block": block, "command": command, "status": status}
        if status == "failed":
            case["reason"] = why
            case["expected"] = e[1] if e else None
            case["actual"] = a[1] if a else None
        cases.append(case)
    extra = len(act) - len(script)
    totals = {
        "passed": sum(b["passed"] for b in blocks.values()),
        "failed": sum(b["failed"] for b in blocks.values()),
        "skipped": 0,
    }
    if extra > 0:
        totals["failed"] += 1
    return {
        "totals": totals,
        "blocks": blocks,
        "cases": cases,
        "unexpected_extra_commands": max(extra, 0),
    }


def format_blocks(result):
    lines = []
    width = max([len(b) for b in result["blocks"]] + [5])
    for name, b in result["blocks"].items():
        lines.append(
            "  %-*s %3d passed, %d failed" % (width, name, b["passed"], b["failed"])
        )
    for c in result["cases"]:
        if c["status"] == "failed":
            lines.append("  FAILED #%d [%s] %s: %s" % (c["n"], c["block"], c["command"], c["reason"]))
            lines.append("    expected: %r" % (c.get("expected"),))
            lines.append("    actual:   %r" % (c.get("actual"),))
    t = result["totals"]
    lines.append("  total: %d passed, %d failed" % (t["passed"], t["failed"]))
    return "\n".join(lines)


# ------------------------------------------------------------------- cli ----


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--raw", required=True)
    r.add_argument("--zk-lib", required=True, help="directory with the Apache ZooKeeper jars")
    m = sub.add_parser("mask")
    m.add_argument("raw")
    m.add_argument("-o", "--output")
    c = sub.add_parser("compare")
    c.add_argument("expected")
    c.add_argument("actual")
    c.add_argument("--json")
    args = ap.parse_args(argv)

    if args.cmd == "run":
        return run(args.port, args.raw, args.zk_lib)
    if args.cmd == "mask":
        text = mask(Path(args.raw).read_text(errors="replace"))
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    if args.cmd == "compare":
        res = compare(Path(args.expected).read_text(), Path(args.actual).read_text())
        print(format_blocks(res))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        return 0 if res["totals"]["failed"] == 0 else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
