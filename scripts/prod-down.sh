#!/usr/bin/env bash
# Stops what scripts/prod-up.sh started (make prod-down): nginx, the Rasa replicas and the action
# servers, by the pids in $PROD_DIR (default var/prod). PostgreSQL, Redis, RabbitMQ and the data in
# them are left alone. Safe to run when nothing is running.
set -uo pipefail
cd "$(dirname "$0")/.."
PROD_DIR="${PROD_DIR:-$PWD/var/prod}"
STOP_TIMEOUT="${STOP_TIMEOUT:-20}"

say() { printf '%s\n' "prod-down: $*"; }

if [ ! -d "$PROD_DIR" ]; then
  say "nothing to stop ($PROD_DIR does not exist)"
  exit 0
fi

# a pid is only signalled if its command line still is what we started (pids get reused)
ours() { [ -d "/proc/$1" ] && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"; }

stop() { # name marker
  local f="$PROD_DIR/$1.pid" pid
  [ -s "$f" ] || return 0
  pid="$(cat "$f")"
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! ours "$pid" "$2"; then
    say "$1: not running"
    rm -f "$f"
    return 0
  fi
  # each process was started in its own session (setsid): its pid is its process-group id
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 $((STOP_TIMEOUT * 5))); do
    ours "$pid" "$2" || break
    sleep 0.2
  done
  if ours "$pid" "$2"; then
    say "$1 (pid $pid) did not stop within ${STOP_TIMEOUT}s: killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
  say "stopped $1 (pid $pid)"
}

# nginx first (no new requests), then the replicas, then the action servers
stop nginx nginx
for f in "$PROD_DIR"/rasa-*.pid; do [ -e "$f" ] && stop "$(basename "$f" .pid)" "bot.server.serve run"; done
for f in "$PROD_DIR"/actions-*.pid; do [ -e "$f" ] && stop "$(basename "$f" .pid)" "bot.server.action_server"; done
say "done (logs kept in $PROD_DIR/logs; PostgreSQL, Redis and RabbitMQ keep running)"
