#!/usr/bin/env bash
# The production topology on this machine (make prod-up): PostgreSQL + Redis + RabbitMQ (started if
# they are down, never stopped by prod-down), the databases and their schemas, N action servers,
# N Rasa replicas (endpoints.prod.yml, credentials.yml, HTTP API behind RASA_API_TOKEN) and nginx in
# front of them on one port. Idempotent: what is already running (by its pid file) is left alone,
# the nginx configuration is re-rendered and reloaded. Stop it with scripts/prod-down.sh.
# Every variable is described in docs/production.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

PY="${PY:-$ROOT/.venv/bin/python}"

PROD_DIR="${PROD_DIR:-$ROOT/var/prod}"
mkdir -p "$PROD_DIR/logs"
PROD_DIR="$(cd "$PROD_DIR" && pwd)"

REPLICAS="${REPLICAS:-2}"
NGINX_PORT="${NGINX_PORT:-8080}"
NGINX_LISTEN="${NGINX_LISTEN:-$NGINX_PORT}"          # e.g. 127.0.0.1:8080 to stay local
RASA_PORT_BASE="${RASA_PORT_BASE:-5005}"             # replica i listens on RASA_PORT_BASE + i - 1
ACTIONS_PORT_BASE="${ACTIONS_PORT_BASE:-5055}"       # action server i on ACTIONS_PORT_BASE + i - 1
ACTIONS_LB_PORT="${ACTIONS_LB_PORT:-5050}"           # nginx, 127.0.0.1 only: the action servers
RASA_INTERFACE="${RASA_INTERFACE:-127.0.0.1}"        # replicas are reached through nginx
MODEL="${MODEL:-models/bankfeed.tar.gz}"
CREDENTIALS="${CREDENTIALS:-credentials.yml}"
ENDPOINTS="${ENDPOINTS:-endpoints.prod.yml}"
# web pages that may use the chat endpoints from the browser (the console is same-origin only)
# (besides the server's own origin as the Host header says; nginx's $host drops the port, so the
# demo page's origins through nginx are listed here)
CHAT_HOST="$(hostname -f 2>/dev/null || hostname)"
export CHAT_ALLOWED_ORIGINS="${CHAT_ALLOWED_ORIGINS-http://127.0.0.1:${NGINX_PORT},http://localhost:${NGINX_PORT},http://${CHAT_HOST}:${NGINX_PORT}}"
# nginx runs on this machine: it is the one proxy whose X-Forwarded-For/-Proto are believed
export TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1,::1}"
START_TIMEOUT="${START_TIMEOUT:-420}"                # seconds for the replicas to load the model

export ACTION_SERVER_URL="${ACTION_SERVER_URL:-http://127.0.0.1:${ACTIONS_LB_PORT}/webhook}"
export TRACKER_DB_HOST="${TRACKER_DB_HOST:-127.0.0.1}"
export TRACKER_DB_PORT="${TRACKER_DB_PORT:-5432}"
export TRACKER_DB_NAME="${TRACKER_DB_NAME:-bankfeed_tracker}"
export TRACKER_DB_USER="${TRACKER_DB_USER:-postgres}"
export TRACKER_DB_PASSWORD="${TRACKER_DB_PASSWORD:-}"
export HANDOFF_DB_URL="${HANDOFF_DB_URL:-postgresql://postgres@127.0.0.1:5432/bankfeed_handoff}"
export REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
export REDIS_PORT="${REDIS_PORT:-6379}"
export REDIS_DB="${REDIS_DB:-1}"
export REDIS_PASSWORD="${REDIS_PASSWORD:-}"
if [ -z "${SOCKETIO_REDIS_URL+set}" ]; then
  export SOCKETIO_REDIS_URL="redis://${REDIS_PASSWORD:+:${REDIS_PASSWORD}@}${REDIS_HOST}:${REDIS_PORT}/${REDIS_DB}"
fi
export SOCKETIO_REDIS_CHANNEL="${SOCKETIO_REDIS_CHANNEL:-bankfeed-socketio}"
# per-client rate limits (bot/ratelimit.py): one count for all replicas, in Redis
if [ -z "${RATE_LIMIT_STORAGE_URL+set}" ]; then
  export RATE_LIMIT_STORAGE_URL="redis://${REDIS_PASSWORD:+:${REDIS_PASSWORD}@}${REDIS_HOST}:${REDIS_PORT}/${REDIS_DB}"
fi
# the replicas are reached through nginx on this machine: its X-Forwarded-For names the client
export TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1,::1}"
export RABBITMQ_HOST="${RABBITMQ_HOST:-127.0.0.1}"
export RABBITMQ_PORT="${RABBITMQ_PORT:-5672}"
export RABBITMQ_USERNAME="${RABBITMQ_USERNAME:-guest}"
export RABBITMQ_PASSWORD="${RABBITMQ_PASSWORD:-guest}"
export RABBITMQ_QUEUE="${RABBITMQ_QUEUE:-rasa_events}"
export RABBITMQ_EXCHANGE="${RABBITMQ_EXCHANGE:-rasa-exchange}"
RABBITMQ_QUEUE_MAX_LENGTH="${RABBITMQ_QUEUE_MAX_LENGTH:-100000}"   # 0: no cap policy

# quiet, offline Rasa (as in the Makefile)
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" PYTHONHASHSEED=0
export SQLALCHEMY_SILENCE_UBER_WARNING=1 NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"

say() { printf '%s\n' "prod-up: $*"; }
die() {
  printf '%s\n' "prod-up: $*" >&2
  if compgen -G "$PROD_DIR/*.pid" >/dev/null; then
    printf '%s\n' "prod-up: processes started so far keep running: stop them with scripts/prod-down.sh (same PROD_DIR)." >&2
  fi
  exit 1
}

[ -x "$PY" ] || die "$PY not found: run \`make install\` (or set PY)."
[ -f "$MODEL" ] || die "$MODEL not found: run \`make model\`."
[[ "$REPLICAS" =~ ^[1-9][0-9]*$ ]] || die "REPLICAS must be a positive number."

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
is_local() { case "$1" in 127.*|localhost|::1) return 0;; *) return 1;; esac; }
wait_port() { # host port seconds what
  for _ in $(seq 1 "$3"); do port_open "$1" "$2" && return 0; sleep 1; done
  die "$4 did not come up on $1:$2."
}

# ---------------------------------------------------------------- shared services (never stopped)
ensure_service() { # name host port default-port start-command...
  local name="$1" host="$2" port="$3" default_port="$4"; shift 4
  port_open "$host" "$port" && return 0
  if is_local "$host" && [ "$port" = "$default_port" ]; then
    say "starting $name"
    "$@" || die "could not start $name."
    wait_port "$host" "$port" 60 "$name"
  else
    die "$name is not reachable at $host:$port."
  fi
}
start_postgres() { pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start; }
start_redis() {
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
}
start_rabbitmq() { rabbitmq-server -detached; }
ensure_service PostgreSQL "$TRACKER_DB_HOST" "$TRACKER_DB_PORT" 5432 start_postgres
ensure_service Redis "$REDIS_HOST" "$REDIS_PORT" 6379 start_redis
ensure_service RabbitMQ "$RABBITMQ_HOST" "$RABBITMQ_PORT" 5672 start_rabbitmq

if [ "$RABBITMQ_QUEUE_MAX_LENGTH" != "0" ] && is_local "$RABBITMQ_HOST" && command -v rabbitmqctl >/dev/null 2>&1; then
  # Nothing consumes rasa_events here: cap it so it can't fill the disk (oldest events dropped).
  rabbitmqctl -q set_policy --apply-to queues "bankfeed-cap-${RABBITMQ_QUEUE}" "^${RABBITMQ_QUEUE}\$" \
    "{\"max-length\":${RABBITMQ_QUEUE_MAX_LENGTH},\"overflow\":\"drop-head\"}" >/dev/null 2>&1 \
    || say "note: could not set the RabbitMQ length cap on ${RABBITMQ_QUEUE} (continuing)"
fi

# ---------------------------------------------------------------- nginx binary
NGINX="${NGINX:-$(command -v nginx || true)}"
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; }
if [ -z "$NGINX" ]; then
  [ "$(id -u)" = 0 ] || die "nginx is not installed (apt-get install -y nginx as root)."
  say "installing nginx (Debian package)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; } \
    || die "apt-get install nginx failed."
  NGINX=/usr/sbin/nginx
fi

# ---------------------------------------------------------------- API token
# Given to the replicas through the environment or a file, never their command line (bot.server.serve).
if [ -z "${RASA_API_TOKEN:-}" ] && [ -z "${RASA_API_TOKEN_FILE:-}" ]; then
  if [ ! -s "$PROD_DIR/api-token" ]; then
    (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$PROD_DIR/api-token")
    say "RASA_API_TOKEN is not set: generated a token into $PROD_DIR/api-token"
  fi
  export RASA_API_TOKEN_FILE="$PROD_DIR/api-token"
fi

# ---------------------------------------------------------------- chat session secret (every replica the same)
# signs the server-issued REST / widget conversation ids (bot/sessions.py): a replica with another
# secret would refuse the ids the others issued
if [ -z "${CHAT_SESSION_SECRET:-}" ]; then
  if [ ! -s "$PROD_DIR/chat-session-secret" ]; then
    (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$PROD_DIR/chat-session-secret")
    say "CHAT_SESSION_SECRET is not set: generated one into $PROD_DIR/chat-session-secret"
  fi
  CHAT_SESSION_SECRET="$(cat "$PROD_DIR/chat-session-secret")"
fi
export CHAT_SESSION_SECRET

# ---------------------------------------------------------------- action server secret
# Rasa sends it (endpoints.prod.yml action_endpoint.headers); the action servers refuse requests
# without it (bot/server/action_server.py).
if [ -z "${ACTION_SERVER_TOKEN:-}" ]; then
  if [ ! -s "$PROD_DIR/action-token" ]; then
    (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$PROD_DIR/action-token")
    say "ACTION_SERVER_TOKEN is not set: generated one into $PROD_DIR/action-token"
  fi
  ACTION_SERVER_TOKEN="$(cat "$PROD_DIR/action-token")"
fi
export ACTION_SERVER_TOKEN="$ACTION_SERVER_TOKEN"

# ---------------------------------------------------------------- databases and schemas
"$PY" deploy/db_setup.py --create-databases --wait 60 || die "database set-up failed."

# ---------------------------------------------------------------- processes
running() { # name -> 0 if its pid file names a live process of ours
  local f="$PROD_DIR/$1.pid" pid
  [ -s "$f" ] || return 1
  pid="$(cat "$f")"
  [ -d "/proc/$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}
start() { # name marker cmd... : own session, output to logs/name.log, pid to name.pid
  local name="$1" marker="$2"; shift 2
  if running "$name" "$marker"; then
    say "$name already running (pid $(cat "$PROD_DIR/$name.pid"))"
    return 0
  fi
  setsid "$@" >>"$PROD_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$PROD_DIR/$name.pid"
  say "started $name (pid $!)"
}
check_free() { # port name
  if port_open 127.0.0.1 "$1" && ! running "$2" "$3"; then
    die "port $1 (for $2) is already in use by another program."
  fi
}
wait_http() { # name url seconds marker
  local name="$1" url="$2" seconds="$3" marker="$4" deadline=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$deadline" ]; do
    running "$name" "$marker" || { tail -n 30 "$PROD_DIR/logs/$name.log" >&2; die "$name exited (log: $PROD_DIR/logs/$name.log)."; }
    "$PY" - "$url" <<'PYEOF' && return 0
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status < 500 else 1)
except Exception:
    sys.exit(1)
PYEOF
    sleep 1
  done
  tail -n 30 "$PROD_DIR/logs/$name.log" >&2
  die "$name did not answer $url within ${seconds}s."
}

rasa_ports=() action_ports=()
for i in $(seq 1 "$REPLICAS"); do
  rasa_ports+=($((RASA_PORT_BASE + i - 1)))
  action_ports+=($((ACTIONS_PORT_BASE + i - 1)))
done
for i in $(seq 1 "$REPLICAS"); do
  check_free "${action_ports[$((i-1))]}" "actions-$i" "bot.server.action_server"
  check_free "${rasa_ports[$((i-1))]}" "rasa-$i" "bot.server.serve run"
done
check_free "$NGINX_PORT" nginx nginx
check_free "$ACTIONS_LB_PORT" nginx nginx

# nginx configuration (re-rendered every time; reloaded if nginx is already running)
rasa_upstreams=() action_upstreams=()
for p in "${rasa_ports[@]}"; do rasa_upstreams+=("127.0.0.1:$p"); done
for p in "${action_ports[@]}"; do action_upstreams+=("127.0.0.1:$p"); done
"$PY" deploy/nginx/render.py --out "$PROD_DIR/nginx.conf" --listen "$NGINX_LISTEN" \
  --actions-listen "127.0.0.1:$ACTIONS_LB_PORT" --rasa "${rasa_upstreams[@]}" --actions "${action_upstreams[@]}" \
  --runtime-dir "$PROD_DIR" --log-dir "$PROD_DIR/logs" --admin-allow ${ADMIN_ALLOW:-127.0.0.1 ::1} \
  || die "could not render the nginx configuration."
nginx_check="$("$NGINX" -t -q -c "$PROD_DIR/nginx.conf" -p "$PROD_DIR/" 2>&1)" \
  || { printf '%s\n' "$nginx_check" >&2; die "the generated $PROD_DIR/nginx.conf is invalid (nginx -t)."; }
for i in $(seq 1 "$REPLICAS"); do
  start "actions-$i" "bot.server.action_server" "$PY" -m bot.server.action_server --actions actions --interface 127.0.0.1 \
    --port "${action_ports[$((i-1))]}"
done
for i in $(seq 1 "$REPLICAS"); do
  start "rasa-$i" "bot.server.serve run" "$PY" -m bot.server.serve run --model "$MODEL" --endpoints "$ENDPOINTS" --credentials "$CREDENTIALS" \
    --interface "$RASA_INTERFACE" --port "${rasa_ports[$((i-1))]}" --enable-api
done

if running nginx nginx; then
  kill -HUP "$(cat "$PROD_DIR/nginx.pid")"
  say "nginx already running: configuration reloaded"
else
  start nginx nginx "$NGINX" -c "$PROD_DIR/nginx.conf" -p "$PROD_DIR/"
fi

# ---------------------------------------------------------------- wait until everything answers
for i in $(seq 1 "$REPLICAS"); do
  wait_http "actions-$i" "http://127.0.0.1:${action_ports[$((i-1))]}/health" 120 "bot.server.action_server"
done
for i in $(seq 1 "$REPLICAS"); do
  wait_http "rasa-$i" "http://127.0.0.1:${rasa_ports[$((i-1))]}/" "$START_TIMEOUT" "bot.server.serve run"
done
wait_http nginx "http://127.0.0.1:${NGINX_PORT}/nginx-health" 30 nginx

host="$(hostname -f 2>/dev/null || hostname)"
if [ -n "${RASA_API_TOKEN:-}" ]; then token_source='$RASA_API_TOKEN'; else token_source="$RASA_API_TOKEN_FILE"; fi
cat <<MSG

  Bank-feed assistant, production topology (${REPLICAS} replicas) is up:
    Entry point (nginx)  http://${host}:${NGINX_PORT}/   (also http://127.0.0.1:${NGINX_PORT}/)
    REST webhook         http://127.0.0.1:${NGINX_PORT}/webhooks/rest/webhook
    Socket.IO (widget)   http://127.0.0.1:${NGINX_PORT}/socket.io/   (sticky per client address)
    Chat widget demo     http://127.0.0.1:${NGINX_PORT}/chat/
    Agent console        http://127.0.0.1:${NGINX_PORT}/agent/   (make agent NAME=dana, with HANDOFF_DB_URL set)
    HTTP API             http://127.0.0.1:${NGINX_PORT}/status   (header "Authorization: Bearer <token>", token: ${token_source})
    Rasa replicas        $(for p in "${rasa_ports[@]}"; do printf 'http://127.0.0.1:%s ' "$p"; done)
    Action servers       $(for p in "${action_ports[@]}"; do printf 'http://127.0.0.1:%s ' "$p"; done)(via ${ACTION_SERVER_URL})
    Tracker store        postgresql://${TRACKER_DB_USER}@${TRACKER_DB_HOST}:${TRACKER_DB_PORT}/${TRACKER_DB_NAME}
    Hand-off store       $("$PY" -c 'import os,sqlalchemy.engine as e; print(e.make_url(os.environ["HANDOFF_DB_URL"]).render_as_string(hide_password=True))')
    Lock store           redis://${REDIS_HOST}:${REDIS_PORT}/${REDIS_DB}
    Event broker         amqp://${RABBITMQ_HOST}:${RABBITMQ_PORT} queue ${RABBITMQ_QUEUE}
    Logs and pids        ${PROD_DIR}
  Stop with: make prod-down (scripts/prod-down.sh). PostgreSQL, Redis and RabbitMQ keep running.

MSG
