#!/usr/bin/env bash
# Starts the action server (5055) and the Rasa server (5005), prints where to reach them once both
# answer, and keeps their output here and in var/log/; Ctrl-C stops both.
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
# WORKERS=2 (one per core): Rasa runs that many Sanic worker processes on one port. Rasa requires a
# shared lock store for that: ours on Redis (REDIS_HOST/REDIS_PORT, default 127.0.0.1:6379), and the
# widget's socket.io events go through Redis too. See README, "Using both cores".
WORKERS="${WORKERS:-1}"
if [ "$WORKERS" != "1" ]; then
  "$PY" -m bot.server.stores.worker_endpoints "$ENDPOINTS" var/endpoints.workers.yml
  ENDPOINTS=var/endpoints.workers.yml
  export SANIC_WORKERS="$WORKERS"
  export SOCKETIO_REDIS_URL="${SOCKETIO_REDIS_URL:-redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT:-6379}/0}"
  # the workers share the per-client rate-limit and sign-in counts (bot/ratelimit.py,
  # bot/server/console/login_guard.py) through Redis too
  export RATE_LIMIT_STORAGE_URL="${RATE_LIMIT_STORAGE_URL:-redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT:-6379}/1}"
fi

# Each server's output: here, and in $LOG_DIR (tee ignores Ctrl-C, so a server's last lines still arrive).
echo "Starting the action server and the Rasa server (loading the model takes a minute)..."
# the action server listens on 127.0.0.1 only (ACTION_SERVER_INTERFACE to change it; then set
# ACTION_SERVER_TOKEN too, and send it from endpoints: see bot/server/action_server.py)
"$PY" -m bot.server.action_server --actions actions --port "$ACTIONS_PORT" \
  > >(trap '' INT; exec tee "$LOG_DIR/actions.log") 2>&1 &
pids+=($!)
"$PY" -m bot.server.serve run --model "$MODEL" --endpoints "$ENDPOINTS" --credentials credentials.yml \
  --port "$RASA_PORT" --enable-api > >(trap '' INT; exec tee "$LOG_DIR/rasa.log") 2>&1 &
pids+=($!)

# The banner, once both answer (nothing if one of them stops first: its output says why).
if "$PY" - "http://127.0.0.1:${ACTIONS_PORT}/health" "http://127.0.0.1:${RASA_PORT}/" "${pids[@]}" <<'PYEOF'; then
import os, signal, sys, time, urllib.request
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))  # Ctrl-C while waiting: run.sh stops both, quietly
urls, pids = sys.argv[1:3], [int(p) for p in sys.argv[3:]]
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

  Bank-feed assistant is up:
    Chat widget demo  http://localhost:${RASA_PORT}/chat/
    Agent console     http://localhost:${RASA_PORT}/agent/   (create an agent: make agent NAME=dana)
    REST channel      POST http://localhost:${RASA_PORT}/webhooks/rest/webhook   (socket.io on the same port)
    HTTP API          http://localhost:${RASA_PORT}/   header "Authorization: Bearer <token>", token in ${token_source}
    Action server     http://127.0.0.1:${ACTIONS_PORT}   (this machine only)
  Logs: ${LOG_DIR}/rasa.log, ${LOG_DIR}/actions.log. Conversations: ${stored}. Ctrl-C stops both.

MSG
fi
wait -n "${pids[@]}"
