#!/usr/bin/env bash
# Apache ZooKeeper 3.9.5 (from Maven Central) as the reference server.
#
#   apache-zk.sh fetch                 resolve the jars into .cache/zk-3.9.5/lib
#   apache-zk.sh classpath             print the classpath (fetches if needed)
#   apache-zk.sh start <name> <port>   fresh .cache/run/<name>/, start, wait for imok
#   apache-zk.sh restart <name> <port> start again on the existing run dir and data
#   apache-zk.sh stop <name>           kill the recorded PID and wait for it
#   apache-zk.sh kill <name>           SIGKILL the recorded PID (a crash; `restart` brings it back)
#   apache-zk.sh status <name>         exit 0 if running
#
# The server listens on 127.0.0.1:<port> only. See compat-tests/README.md.
# COMPAT_ZK_MEMBERS=<port1>,<port2>,<port3> at `start`: the server is the member
# of that ensemble whose client port is <port> (lib/common.sh, ensemble_lines).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ZK_VERSION=3.9.5
ZK_LIB="$CACHE_DIR/zk-$ZK_VERSION/lib"
JAVA="${JAVA:-java}"

fetch() {
    if [[ -f "$ZK_LIB/.complete" ]]; then return 0; fi
    command -v mvn >/dev/null || die "mvn (Maven) is required to fetch Apache ZooKeeper"
    echo "fetching Apache ZooKeeper $ZK_VERSION and its runtime dependencies from Maven Central..." >&2
    local tmp="$ZK_LIB.tmp"
    rm -rf "$tmp"
    mkdir -p "$CACHE_DIR"
    mkdir -p "$tmp"
    if ! mvn -B -Dstyle.color=never -f "$COMPAT_DIR/java/zk-dist/pom.xml" \
        dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp" > "$CACHE_DIR/zk-fetch.log" 2>&1; then
        tail -n 40 "$CACHE_DIR/zk-fetch.log" >&2
        die "maven could not resolve org.apache.zookeeper:zookeeper:$ZK_VERSION (log: $CACHE_DIR/zk-fetch.log)"
    fi
    [[ -f "$tmp/zookeeper-$ZK_VERSION.jar" ]] || die "zookeeper-$ZK_VERSION.jar missing after fetch"
    rm -rf "$ZK_LIB"
    mv "$tmp" "$ZK_LIB"
    touch "$ZK_LIB/.complete"
}

# launch NAME PORT DIR: start the JVM on DIR/zoo.cfg (data in DIR/data)
launch() {
    local name="$1" port="$2" dir="$3"
    # Heap and GC; COMPAT_ZK_HEAP_OPTS replaces the default (benchmarks).
    local heap extra=() line
    read -r -a heap <<< "${COMPAT_ZK_HEAP_OPTS:--Xms64m -Xmx512m -XX:+UseSerialGC}"
    while IFS= read -r line; do
        [[ -n "$line" ]] && extra+=("-Dzookeeper.$line")
    done <<< "${COMPAT_ZK_EXTRA:-}"
    # exec so that $! is the JVM itself (taskset, if any, execs it too)
    ( echo "$EPOCHREALTIME" > "$dir/launch.time"
      exec "${SERVER_PREFIX[@]}" "$JAVA" "${heap[@]}" "${extra[@]}" \
        -Dfile.encoding=UTF-8 -Djava.awt.headless=true \
        -Dzookeeper.log.dir="$dir/log" \
        -Dlogback.configurationFile="$COMPAT_DIR/lib/logback-server.xml" \
        -Djava.security.auth.login.config="$dir/jaas.conf" \
        -Dzookeeper.DigestAuthenticationProvider.superDigest="$SUPER_DIGEST" \
        -Dzookeeper.extendedTypesEnabled=true \
        -Dznode.container.checkIntervalMs=1000 \
        -Dzookeeper.authProvider.sasl="$SASL_PROVIDER" \
        -Dzookeeper.fips-mode=false \
        -Dzookeeper.enforceQuota=true \
        -cp "$ZK_LIB/*" org.apache.zookeeper.server.quorum.QuorumPeerMain \
        "$dir/zoo.cfg" ) >> "$dir/log/stdout.log" 2>&1 < /dev/null &
    local pid=$!
    echo "apache" > "$dir/kind"
    after_launch "$name" "$port" "$pid" "$dir/log/zookeeper.log" "Apache ZooKeeper $ZK_VERSION"
}

cmd="${1:-}"; shift || true
case "$cmd" in
    fetch) fetch ;;
    classpath) fetch; echo "$ZK_LIB/*" ;;
    start|restart) [[ $# -eq 2 ]] || die "usage: $cmd <name> <port>"; start_or_restart "$cmd" "$@" fetch ;;
    stop) [[ $# -eq 1 ]] || die "usage: stop <name>"; stop_server "$1" ;;
    kill) [[ $# -eq 1 ]] || die "usage: kill <name>"; kill_server "$1" ;;
    status) [[ $# -eq 1 ]] || die "usage: status <name>"; server_status "$1" ;;
    *) die "usage: $(basename "$0") fetch|classpath|start|restart <name> <port>|stop|kill <name>|status <name>" ;;
esac
