#!/usr/bin/env bash
# ferrokeeper as a server under test; same interface as apache-zk.sh.
#
#   ferrokeeper.sh start <name> <port>   fresh .cache/run/<name>/, start, wait for imok
#   ferrokeeper.sh stop <name>           kill the recorded PID and wait for it
#   ferrokeeper.sh status <name>         exit 0 if running
#   ferrokeeper.sh check                 exit 3 if the binary is not built
#
# Runs ${FERROKEEPER_BIN:-<repo>/target/release/ferrokeeper} --config <zoo.cfg>,
# with the same generated Apache-style zoo.cfg (and jaas.conf beside it) that
# Apache ZooKeeper gets. Exit status 3 means "binary not built"; the matrix
# shows that as "not run", never as a pass.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BIN="${FERROKEEPER_BIN:-$REPO_ROOT/target/release/ferrokeeper}"

check_bin() {
    if [[ ! -x "$BIN" ]]; then
        echo "ferrokeeper binary not built (looked for $BIN; set FERROKEEPER_BIN to override)" >&2
        exit 3
    fi
}

start() {
    local name="$1" port="$2"
    check_name_port "$name" "$port"
    check_bin
    start_checks "$name" "$port"
    local dir; dir="$(prepare_run_dir "$name" "$port")"
    # The SASL users reach ferrokeeper the way zkServer.sh users pass them to ZooKeeper.
    ( export SERVER_JVMFLAGS="-Djava.security.auth.login.config=$dir/jaas.conf"
      exec "$BIN" --config "$dir/zoo.cfg" ) > "$dir/log/stdout.log" 2>&1 < /dev/null &
    local pid=$!
    echo "$pid" > "$dir/server.pid"
    echo "ferrokeeper" > "$dir/kind"
    if ! wait_imok "$port" "$pid" "$dir/log/stdout.log"; then
        stop_server "$name"
        exit 1
    fi
    echo "ferrokeeper '$name' is up on 127.0.0.1:$port (pid $pid)" >&2
}

cmd="${1:-}"; shift || true
case "$cmd" in
    check) check_bin ;;
    start) [[ $# -eq 2 ]] || die "usage: start <name> <port>"; start "$@" ;;
    stop) [[ $# -eq 1 ]] || die "usage: stop <name>"; stop_server "$1" ;;
    status)
        [[ $# -eq 1 ]] || die "usage: status <name>"
        f="$RUN_ROOT/$1/server.pid"
        [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null ;;
    *) die "usage: $(basename "$0") check|start <name> <port>|stop <name>|status <name>" ;;
esac
