#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine: installs what is missing, then
# checks formatting and lints, runs the Rust tests, regenerates the golden jute vectors with the
# real Java implementation and checks they did not change, and runs the compatibility suites.
#
#   scripts/test.sh            everything
#   SKIP_COMPAT=1 scripts/test.sh   without the compatibility suites (quicker, no JVM servers)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v java >/dev/null || need_apt+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
# RocksDB's bindings are generated with libclang; ccache keeps its C++ objects across builds.
[ -e /usr/lib/llvm-14/lib/libclang.so ] || need_apt+=(libclang-dev)
command -v ccache >/dev/null || need_apt+=(ccache)
# The partition test (crates/ferrokeeper/tests/partition.rs) runs an ensemble in a network
# namespace of its own and cuts it with nftables.
command -v nft >/dev/null || need_apt+=(nftables)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v unshare >/dev/null || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo >/dev/null || { echo "cargo (rustup) is required" >&2; exit 1; }

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
cargo test --workspace --locked

# Each criterion micro-benchmark runs once (not measured) so that none rots. Only the crates
# without RocksDB have them: the bench profile builds dependencies again, and RocksDB must be
# built in one profile only.
log "cargo bench -- --test (jute, zk-protocol, zk-datatree)"
cargo bench -p jute -p zk-protocol -p zk-datatree --benches --locked -- --test

log "golden vectors: regenerate with Apache ZooKeeper 3.9.5 and compare"
scripts/gen-golden.sh
if [ -n "$(git status --porcelain -- jute-schemas/golden)" ]; then
  git status --short -- jute-schemas/golden
  echo "golden vectors differ from what the Java implementation writes" >&2
  exit 1
fi

if [ "${SKIP_COMPAT:-0}" != 1 ]; then
  log "compatibility suites (Apache ZooKeeper 3.9.5 beside ferrokeeper)"
  cargo build -p ferrokeeper --locked
  FERROKEEPER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/ferrokeeper" scripts/compat.sh
fi
