#!/usr/bin/env bash
# Starts the action server (5055) and the Rasa server (5005), prints where to reach them once they
# answer, and keeps their output here and in var/log/; Ctrl-C stops them all.
#
# WORKERS Rasa processes (default: one per CPU, at most 4). WORKERS=1: one process on RASA_PORT, as
# it always was. More: process i (0..WORKERS-1) on 127.0.0.1:WORKER_PORT_BASE+i (default
# RASA_PORT+1, ...), with WORKER_INDEX=i WORKER_COUNT=WORKERS, and Debian's nginx on RASA_PORT in
# front (configuration, pid, temp files under var/nginx/, logs in LOG_DIR; no root needed): the
# widget's socket.io requests reach the process that holds their session (its index starts the
# session id), everything else any process. See README, "Using both cores".
set -euo pipefail
cd "$(dirname "$0")/.."

# Both launchers (bot.server.action_server, bot.server.serve) keep third-party start-up noise out
# themselves (bot/server/quiet_start.py). TF_DETERMINISTIC_OPS (the Makefile's, for reproducible
# training) is not for the server: it only predicts, on the CPU, and Rasa would warn about GPUs.
unset TF_DETERMINISTIC_OPS
export RASA_TELEMETRY_ENABLED=false PYTHONUNBUFFERED=1
PY="${PY:-.venv/bin/python}"
RASA_PORT="${RASA_PORT:-5005}"
ACTIONS_PORT="${ACTIONS_PORT:-5055}"
MODEL="${MODEL:-models/bankfeed.tar.gz}"
LOG_DIR="${LOG_DIR:-var/log}"
mkdir -p var "$LOG_DIR"

# The HTTP API token reaches Rasa through the environment (RASA_API_TOKEN) or a file
# (RASA_API_TOKEN_FILE), never the command line: bot.server.serve reads it (see bot/server/api_token.py).
if [ -z "${RASA_API_TOKEN:-}" ] && [ -z "${RASA_API_TOKEN_FILE:-}" ]; then
  if [ ! -s var/api-token ]; then
    (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' > var/api-token)
    echo "RASA_API_TOKEN is not set: generated a new API token into var/api-token"
  else
    echo "RASA_API_TOKEN is not set: using the API token in var/api-token"
  fi
  export RASA_API_TOKEN_FILE="$PWD/var/api-token"
fi
if [ -n "${RASA_API_TOKEN:-}" ]; then token_source='$RASA_API_TOKEN'; else token_source="$RASA_API_TOKEN_FILE"; fi
# Web pages that may use the chat endpoints (REST, widget socket, history, upload) from the browser;
# the console and the HTTP API are same-origin only. Default: the demo page's own origin.
export CHAT_ALLOWED_ORIGINS="${CHAT_ALLOWED_ORIGINS:-http://localhost:${RASA_PORT}}"

# the hand-off database (tickets, agents): create or upgrade its schema before anything uses it
"$PY" -m bot.handoff.cli migrate

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped."
}
trap cleanup INT TERM EXIT

# ENDPOINTS: endpoints.yml (conversations in var/tracker.db), with the action server's URL on
# ACTIONS_PORT when that is not 5055.
ENDPOINTS="${ENDPOINTS:-endpoints.yml}"
stored="var/tracker.db"; [ "$ENDPOINTS" = endpoints.yml ] || stored="the tracker store of $ENDPOINTS"
if [ "$ENDPOINTS" = endpoints.yml ] && [ "$ACTIONS_PORT" != 5055 ]; then
  sed "s#http://localhost:5055/webhook#http://localhost:${ACTIONS_PORT}/webhook#" endpoints.yml > var/endpoints.run.yml
  ENDPOINTS=var/endpoints.run.yml
fi
# WORKERS: how many Rasa processes (see the top of this file).
cpus="$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"
WORKERS="${WORKERS:-$(( cpus > 4 ? 4 : cpus ))}"
if ! [[ "$WORKERS" =~ ^[1-9][0-9]?$ ]]; then
  echo "WORKERS must be a number from 1 to 99 (got '$WORKERS')." >&2
  exit 2
fi
NGINX="${NGINX:-$(command -v nginx || true)}"  # NGINX: another nginx binary
if [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; fi
if [ "$WORKERS" -gt 1 ] && { [ -z "$NGINX" ] || [ ! -x "$NGINX" ]; }; then
  echo "nginx is not installed (apt-get install -y nginx): starting one Rasa process instead of $WORKERS."
  WORKERS=1
fi
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
worker_ports=()
if [ "$WORKERS" -gt 1 ]; then
  # the processes share: the conversation locks (var/endpoints.workers.yml, bot/server/stores/
  # worker_endpoints.py), the per-client rate-limit and sign-in counts (bot/ratelimit.py,
  # bot/server/console/login_guard.py) in SQLite, and the widget's socket.io emits (unix sockets
  # under var/run/, bot/server/channels/socketio_workers.py; SOCKETIO_REDIS_URL for Redis instead)
  "$PY" -m bot.server.stores.worker_endpoints "$ENDPOINTS" var/endpoints.workers.yml
  ENDPOINTS=var/endpoints.workers.yml
  export RATE_LIMIT_STORAGE_URL="${RATE_LIMIT_STORAGE_URL:-sqlite:///$PWD/var/ratelimits.db}"
  export WORKER_COUNT="$WORKERS"
  peers_dir="${SOCKETIO_PEERS_DIR:-$PWD/var/run}"
  if [ $(( ${#peers_dir} + 20 )) -gt 107 ]; then  # a unix socket's path is at most 107 bytes
    peers_dir="$(mktemp -d "${TMPDIR:-/tmp}/bankfeed-run.XXXXXX")"
  fi
  export SOCKETIO_PEERS_DIR="$peers_dir"
  # the processes believe X-Forwarded-For from nginx only (it sets the header to its client's address)
  if [ -n "${TRUSTED_PROXIES:-}" ] && [ "$TRUSTED_PROXIES" != 127.0.0.1 ]; then
    echo "TRUSTED_PROXIES=$TRUSTED_PROXIES is replaced by 127.0.0.1: nginx in front names the client."
  fi
  export TRUSTED_PROXIES=127.0.0.1
  WORKER_PORT_BASE="${WORKER_PORT_BASE:-$((RASA_PORT + 1))}"
  for i in $(seq 0 $((WORKERS - 1))); do
    port=$((WORKER_PORT_BASE + i))
    if [ "$port" -gt 65535 ] || [ "$port" = "$RASA_PORT" ] || [ "$port" = "$ACTIONS_PORT" ] || port_open "$port"; then
      echo "Port $port (Rasa process $i) is not free: set WORKER_PORT_BASE (process i listens on WORKER_PORT_BASE+i)." >&2
      exit 2
    fi
    worker_ports+=("$port")
  done
fi

# Each server's output: here, and in $LOG_DIR (tee ignores Ctrl-C, so a server's last lines still arrive).
echo "Starting the action server and the Rasa server (loading the model takes a minute)..."
# the action server listens on 127.0.0.1 only (ACTION_SERVER_INTERFACE to change it; then set
# ACTION_SERVER_TOKEN too, and send it from endpoints: see bot/server/action_server.py)
"$PY" -m bot.server.action_server --actions actions --port "$ACTIONS_PORT" \
  > >(trap '' INT; exec tee "$LOG_DIR/actions.log") 2>&1 &
pids+=($!)
health=("http://127.0.0.1:${ACTIONS_PORT}/health")
if [ "$WORKERS" -eq 1 ]; then
  "$PY" -m bot.server.serve run --model "$MODEL" --endpoints "$ENDPOINTS" --credentials credentials.yml \
    --port "$RASA_PORT" --enable-api > >(trap '' INT; exec tee "$LOG_DIR/rasa.log") 2>&1 &
  pids+=($!)
  health+=("http://127.0.0.1:${RASA_PORT}/")
  processes="one Rasa process"
  rasa_logs="${LOG_DIR}/rasa.log"
else
  # nginx first (a taken RASA_PORT shows at once); it answers 502 until a process has loaded the model
  mkdir -p var/nginx
  log_abs="$(cd "$LOG_DIR" && pwd)"
  worker_args=()
  for port in "${worker_ports[@]}"; do worker_args+=(--worker "127.0.0.1:$port"); done
  "$PY" scripts/nginx_workers.py --out var/nginx/nginx.conf --listen "$RASA_PORT" \
    --runtime-dir "$PWD/var/nginx" --log-dir "$log_abs" "${worker_args[@]}"
  nginx_args=(-c "$PWD/var/nginx/nginx.conf" -p "$PWD/var/nginx/" -e "$log_abs/nginx-error.log")
  if ! nginx_check="$("$NGINX" -t -q "${nginx_args[@]}" 2>&1)"; then
    printf '%s\n' "$nginx_check" >&2
    echo "nginx refused var/nginx/nginx.conf (above)." >&2
    exit 1
  fi
  "$NGINX" "${nginx_args[@]}" &
  pids+=($!)
  for i in "${!worker_ports[@]}"; do
    WORKER_INDEX="$i" "$PY" -m bot.server.serve run --model "$MODEL" --endpoints "$ENDPOINTS" \
      --credentials credentials.yml --interface 127.0.0.1 --port "${worker_ports[$i]}" --enable-api \
      > >(trap '' INT; tee "$LOG_DIR/rasa-$i.log" | sed -u "s/^/[rasa-$i] /") 2>&1 &
    pids+=($!)
    health+=("http://127.0.0.1:${worker_ports[$i]}/")
  done
  health+=("http://127.0.0.1:${RASA_PORT}/nginx-health")
  processes="$WORKERS Rasa processes behind nginx"
  rasa_logs="${LOG_DIR}/rasa-{0..$((WORKERS - 1))}.log, ${LOG_DIR}/nginx-access.log"
fi

# The banner, once all answer (nothing if one of them stops first: its output says why).
if "$PY" - "${#health[@]}" "${health[@]}" "${pids[@]}" <<'PYEOF'; then
import os, signal, sys, time, urllib.request
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))  # Ctrl-C while waiting: run.sh stops them, quietly
n = int(sys.argv[1])
urls, pids = sys.argv[2 : 2 + n], [int(p) for p in sys.argv[2 + n :]]
def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status < 500
    except Exception:
        return False
while not all(answers(u) for u in urls):
    for pid in pids:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit(1)
    time.sleep(1)
PYEOF
  cat <<MSG

  Bank-feed assistant is up (${processes}):
    Chat widget demo  http://localhost:${RASA_PORT}/chat/
    Agent console     http://localhost:${RASA_PORT}/agent/   (create an agent: make agent NAME=dana)
    REST channel      POST http://localhost:${RASA_PORT}/webhooks/rest/webhook   (socket.io on the same port)
    HTTP API          http://localhost:${RASA_PORT}/   header "Authorization: Bearer <token>", token in ${token_source}
    Action server     http://127.0.0.1:${ACTIONS_PORT}   (this machine only)
MSG
  if [ "$WORKERS" -gt 1 ]; then
    printf '    Rasa processes    %s  (this machine only; nginx on %s in front)\n' \
      "$(for p in "${worker_ports[@]}"; do printf 'http://127.0.0.1:%s ' "$p"; done)" "$RASA_PORT"
  fi
  cat <<MSG
  Logs: ${rasa_logs}, ${LOG_DIR}/actions.log. Conversations: ${stored}. Ctrl-C stops them all.

MSG
fi
wait -n "${pids[@]}"
