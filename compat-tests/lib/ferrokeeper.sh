#!/usr/bin/env bash
# ferrokeeper as a server under test; same interface as apache-zk.sh.
#
#   ferrokeeper.sh start <name> <port>   fresh .cache/run/<name>/, start, wait for imok
#   ferrokeeper.sh restart <name> <port> start again on the existing run dir and data
#   ferrokeeper.sh stop <name>           kill the recorded PID and wait for it
#   ferrokeeper.sh kill <name>           SIGKILL the recorded PID (a crash; `restart` brings it back)
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

# launch NAME PORT DIR: start the binary on DIR/zoo.cfg (data in DIR/data)
launch() {
    local name="$1" port="$2" dir="$3"
    # The SASL users reach ferrokeeper the way zkServer.sh users pass them to ZooKeeper.
    ( export SERVER_JVMFLAGS="-Djava.security.auth.login.config=$dir/jaas.conf"
      echo "$EPOCHREALTIME" > "$dir/launch.time"
      exec "${SERVER_PREFIX[@]}" "$BIN" --config "$dir/zoo.cfg" ) >> "$dir/log/stdout.log" 2>&1 < /dev/null &
    local pid=$!
    echo "ferrokeeper" > "$dir/kind"
    after_launch "$name" "$port" "$pid" "$dir/log/stdout.log" ferrokeeper
}

cmd="${1:-}"; shift || true
case "$cmd" in
    check) check_bin ;;
    start|restart) [[ $# -eq 2 ]] || die "usage: $cmd <name> <port>"; start_or_restart "$cmd" "$@" check_bin ;;
    stop) [[ $# -eq 1 ]] || die "usage: stop <name>"; stop_server "$1" ;;
    kill) [[ $# -eq 1 ]] || die "usage: kill <name>"; kill_server "$1" ;;
    status) [[ $# -eq 1 ]] || die "usage: status <name>"; server_status "$1" ;;
    *) die "usage: $(basename "$0") check|start|restart <name> <port>|stop|kill <name>|status <name>" ;;
esac
