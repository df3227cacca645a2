#!/usr/bin/env bash
# Compatibility harness: runs the compat-tests suites (zkcli transcript,
# kazoo's test suite) against Apache ZooKeeper 3.9.5 and ferrokeeper, starting
# and stopping the servers itself, and prints one matrix (also written to
# compat-tests/results/matrix.json). See compat-tests/README.md.
#
#   scripts/compat.sh [--servers apache,ferrokeeper] [--suites zkcli,kazoo]
#                     [--base-port 22181] [--update-zkcli-expected]
#
# Needs java (17), mvn, python3 (3.8+ with venv/pip) and access to Maven
# Central and PyPI on the first run; everything fetched goes to
# compat-tests/.cache/, ~/.m2 and pip's cache.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "${PYTHON:-python3}" "$ROOT/compat-tests/lib/compat.py" "$@"
