#!/usr/bin/env bash
# ferrokeeper vs Apache ZooKeeper 3.9.5 benchmark; see compat-tests/bench/README.md.
#
#   compat-tests/bench/bench.sh --quick      # harness check: ~10 min, numbers not meaningful
#   compat-tests/bench/bench.sh              # full run: 3 repetitions, 1M-znode tree
#   compat-tests/bench/bench.sh ensemble [--quick]   # ensemble failures (ensemble_figures.py)
#
# Without FERROKEEPER_BIN it runs `cargo build --release -p ferrokeeper` first
# (honouring CARGO_TARGET_DIR); with it, that binary is used as is.
set -euo pipefail
command -v python3 >/dev/null || { echo "bench.sh: python3 is required" >&2; exit 2; }
if [ "${1:-}" = ensemble ]; then
  shift
  exec python3 "$(dirname "${BASH_SOURCE[0]}")/ensemble_figures.py" "$@"
fi
exec python3 "$(dirname "${BASH_SOURCE[0]}")/bench.py" "$@"
