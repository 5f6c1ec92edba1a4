#!/usr/bin/env bash
# A lecture hall on one machine: N LLM Explorer replicas as plain processes on loopback ports,
# behind HAProxy (cookie affinity, health checks, drain). `make cluster N=3` calls `start`.
#
#   deploy/cluster.sh start N        build the shared read-only cache, start N replicas + HAProxy
#   deploy/cluster.sh stop           stop HAProxy and every replica this script started
#   deploy/cluster.sh drain R        replica R takes no new learners; its open sessions go on
#   deploy/cluster.sh ready R        replica R takes new learners again
#   deploy/cluster.sh status         HAProxy's view: state, open and total sessions per replica
#   deploy/cluster.sh config N [compose]   print the HAProxy config for N replicas
#
# Settings (environment): CLUSTER_PORT (the balancer, default 8700; replica i listens on
# CLUSTER_PORT+i, the stats page on CLUSTER_PORT+99), CLUSTER_DIR (pids, logs, config, socket;
# default .cluster), CLUSTER_CACHE (the shared cache; default $CLUSTER_DIR/cache),
# CLUSTER_RAG (default|all|none: which RAG indexes to build), PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
PORT="${CLUSTER_PORT:-8700}"
STATS_PORT="${CLUSTER_STATS_PORT:-$((PORT + 99))}"
DIR="${CLUSTER_DIR:-$REPO/.cluster}"
CACHE="${CLUSTER_CACHE:-$DIR/cache}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
HAPROXY="${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}"
SOCKET="$DIR/haproxy.sock"

die() { echo "cluster: $*" >&2; exit 1; }

# The HAProxy config for N replicas: `local` (127.0.0.1:PORT+i) or `compose` (appI:8501).
render() {
  local n="$1" mode="${2:-local}" servers="" i addr bind stats socket
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number, not '$n'"
  for ((i = 1; i <= n; i++)); do
    if [[ "$mode" == compose ]]; then addr="app$i:8501"; else addr="127.0.0.1:$((PORT + i))"; fi
    servers+="    server r$i $addr cookie r$i check"$'\n'
  done
  if [[ "$mode" == compose ]]; then
    bind="*:8080" stats="*:8404" socket="/tmp/haproxy.sock"
  else
    bind="127.0.0.1:$PORT" stats="127.0.0.1:$STATS_PORT" socket="$SOCKET"
  fi
  while IFS= read -r line; do
    case "$line" in
      @SERVERS@) printf '%s' "$servers" ;;
      "#compose "*) [[ "$mode" == compose ]] && printf '%s\n' "${line#\#compose }" ;;
      *)
        line="${line//@BIND@/$bind}"
        line="${line//@STATS_BIND@/$stats}"
        printf '%s\n' "${line//@SOCKET@/$socket}"
        ;;
    esac
  done <deploy/haproxy.cfg.tmpl
}

api() { "$PY" deploy/haproxy_api.py "$SOCKET" "$@"; }

wait_healthy() {  # port, seconds
  local deadline=$((SECONDS + $2))
  until "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$1/_stcore/health', timeout=2)" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

start() {
  local n="$1" cores threads i port
  [[ -x "$HAPROXY" ]] || die "haproxy is not installed: 'apt-get install haproxy' (Debian/Ubuntu, as root) or 'brew install haproxy' (macOS)"
  [[ -f "$DIR/haproxy.pid" ]] && kill -0 "$(cat "$DIR/haproxy.pid")" 2>/dev/null &&
    die "a cluster is already running (deploy/cluster.sh stop first)"
  mkdir -p "$DIR/logs"
  echo "cluster: shared read-only cache in $CACHE"
  "$PY" deploy/prepare_cache.py "$CACHE" --rag "${CLUSTER_RAG:-default}" \
    --copy-from "${LLM_EXPLORER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-explorer}"
  render "$n" >"$DIR/haproxy.cfg"
  "$HAPROXY" -c -q -f "$DIR/haproxy.cfg" || die "HAProxy refused $DIR/haproxy.cfg"
  cores=$(nproc)
  threads=$((cores / n > 0 ? cores / n : 1))
  # One cookie secret for all replicas, so a signed cookie is valid whichever one reads it.
  [[ -f "$DIR/cookie_secret" ]] || "$PY" -c "import secrets; print(secrets.token_hex(32))" >"$DIR/cookie_secret"
  for ((i = 1; i <= n; i++)); do
    port=$((PORT + i))
    LLM_EXPLORER_CACHE="$CACHE" LLM_EXPLORER_THREADS="$threads" LLM_EXPLORER_REPLICA="r$i" \
      STREAMLIT_SERVER_COOKIE_SECRET="$(cat "$DIR/cookie_secret")" \
      STREAMLIT_BIN="$REPO/.venv/bin/streamlit" \
      nohup deploy/replica.sh "$port" 127.0.0.1 >"$DIR/logs/r$i.log" 2>&1 &
    echo $! >"$DIR/r$i.pid"
    echo "cluster: replica r$i on 127.0.0.1:$port (pid $!, $threads torch thread(s)), log $DIR/logs/r$i.log"
  done
  for ((i = 1; i <= n; i++)); do
    wait_healthy $((PORT + i)) 120 || die "replica r$i did not answer /_stcore/health (see $DIR/logs/r$i.log)"
  done
  "$HAPROXY" -D -f "$DIR/haproxy.cfg" -p "$DIR/haproxy.pid" || die "HAProxy did not start"
  echo "$n" >"$DIR/replicas"
  wait_healthy "$PORT" 30 || die "HAProxy does not answer on $PORT"
  echo "cluster: $n replicas behind HAProxy: open http://localhost:$PORT (stats: http://localhost:$STATS_PORT)"
}

stop_pid() {  # pid file
  local pid
  [[ -f "$1" ]] || return 0
  pid=$(cat "$1")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

stop() {
  local f
  stop_pid "$DIR/haproxy.pid"
  for f in "$DIR"/r*.pid; do [[ -e "$f" ]] && stop_pid "$f"; done
  rm -f "$SOCKET" "$DIR/replicas"
  echo "cluster: stopped"
}

cmd="${1:-}"
case "$cmd" in
  start) start "${2:?usage: deploy/cluster.sh start N}" ;;
  stop) stop ;;
  drain | ready) api "set server replicas/r${2:?usage: deploy/cluster.sh $cmd R} state $cmd" && api status ;;
  status) api status ;;
  config) render "${2:?usage: deploy/cluster.sh config N [local|compose]}" "${3:-local}" ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
