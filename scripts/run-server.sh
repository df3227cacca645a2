#!/usr/bin/env bash
# Builds and starts ferrokeeper on a fresh Debian machine: installs the build prerequisites
# (libclang for RocksDB's bindings, ccache), builds, and runs the server in the foreground.
#
#   scripts/run-server.sh                     single node, port 2181, data in ./data
#   scripts/run-server.sh --config zoo.cfg    an Apache ZooKeeper zoo.cfg as it is
#
# The build uses the same profile and cache settings as scripts/test.sh, so a machine that ran
# the tests does not compile RocksDB again.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
need_apt=()
[ -e /usr/lib/llvm-14/lib/libclang.so ] || need_apt+=(libclang-dev)
command -v ccache >/dev/null || need_apt+=(ccache)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
cache=/var/cache/ferrokeeper
mkdir -p "$cache" 2>/dev/null || cache="$repo/target/cache"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
export CC="ccache gcc" CXX="ccache g++" CCACHE_DIR="${CCACHE_DIR:-$cache/ccache}"
cargo build --manifest-path "$repo/Cargo.toml" -p ferrokeeper >&2
exec "$CARGO_TARGET_DIR/debug/ferrokeeper" "$@"
