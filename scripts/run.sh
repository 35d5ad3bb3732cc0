#!/usr/bin/env bash
# Starts the action server (5055) and the Rasa server (5005); Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

export RASA_TELEMETRY_ENABLED=false SQLALCHEMY_SILENCE_UBER_WARNING=1 TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
RASA_PORT="${RASA_PORT:-5005}"
ACTIONS_PORT="${ACTIONS_PORT:-5055}"
MODEL="${MODEL:-models/bankfeed.tar.gz}"
mkdir -p var

# The HTTP API token reaches Rasa through the environment (RASA_API_TOKEN) or a file
# (RASA_API_TOKEN_FILE), never the command line: bot.server.serve reads it (see bot/server/api_token.py).
if [ -z "${RASA_API_TOKEN:-}" ] && [ -z "${RASA_API_TOKEN_FILE:-}" ]; then
  if [ ! -s var/api-token ]; then
    (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))' > var/api-token)
    echo "RASA_API_TOKEN is not set: generated a new API token into var/api-token"
  else
    echo "RASA_API_TOKEN is not set: using the API token in var/api-token"
  fi
  export RASA_API_TOKEN_FILE="$PWD/var/api-token"
fi
# Web pages that may use the chat endpoints (REST, widget socket, history, upload) from the browser;
# the console and the HTTP API are same-origin only. Default: the demo page's own origin.
export CHAT_ALLOWED_ORIGINS="${CHAT_ALLOWED_ORIGINS:-http://localhost:${RASA_PORT}}"

# the hand-off database (tickets, agents): create or upgrade its schema before anything uses it
.venv/bin/python -m bot.handoff.cli migrate

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped."
}
trap cleanup INT TERM EXIT

# WORKERS=2 (one per core): Rasa runs that many Sanic worker processes on one port. Rasa requires a
# shared lock store for that: ours on Redis (REDIS_HOST/REDIS_PORT, default 127.0.0.1:6379), and the
# widget's socket.io events go through Redis too. See README, "Using both cores".
ENDPOINTS=endpoints.yml
WORKERS="${WORKERS:-1}"
if [ "$WORKERS" != "1" ]; then
  ENDPOINTS=var/endpoints.workers.yml
  .venv/bin/python -m bot.server.stores.worker_endpoints endpoints.yml "$ENDPOINTS"
  export SANIC_WORKERS="$WORKERS"
  export SOCKETIO_REDIS_URL="${SOCKETIO_REDIS_URL:-redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT:-6379}/0}"
  # the workers share the per-client rate-limit and sign-in counts (bot/ratelimit.py,
  # bot/server/console/login_guard.py) through Redis too
  export RATE_LIMIT_STORAGE_URL="${RATE_LIMIT_STORAGE_URL:-redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT:-6379}/1}"
fi

# the action server listens on 127.0.0.1 only (ACTION_SERVER_INTERFACE to change it; then set
# ACTION_SERVER_TOKEN too, and send it from endpoints: see bot/server/action_server.py)
.venv/bin/python -m bot.server.action_server --actions actions --port "$ACTIONS_PORT" &
pids+=($!)
.venv/bin/python -m bot.server.serve run --model "$MODEL" --endpoints "$ENDPOINTS" --credentials credentials.yml \
  --port "$RASA_PORT" --enable-api &
pids+=($!)

cat <<MSG

  Bank-feed assistant starting:
    Rasa server      http://localhost:${RASA_PORT}   (REST: POST /webhooks/rest/webhook, socketio)
    Action server    http://127.0.0.1:${ACTIONS_PORT}   (this machine only)
    Agent console    http://localhost:${RASA_PORT}/agent/   (create an agent: make agent NAME=dana)
    Chat widget demo http://localhost:${RASA_PORT}/chat/
    HTTP API         needs the token: header "Authorization: Bearer <token>" (a ?token= URL ends up in logs)
  Conversations are stored in var/tracker.db. Press Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
