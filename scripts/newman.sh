#!/usr/bin/env bash
# Run postman_collection.json with newman against a real tagwatch (sample source) started here.
#
# Installs newman (pinned) into .ci/node_modules (git-ignored), starts `tagwatch run` on a temp database and a
# free port with an admin token, waits for /readyz and a finished collection run, runs the collection, stops
# tagwatch and exits with newman's code (1 when an assertion fails). Writes build/newman-junit.xml.
# With --seeded the database is filled by `tagwatch seed` and only the API runs (`tagwatch serve`, no
# collector): a database that was never collected, with no runs; the collection must pass there too.
# Usage: scripts/newman.sh [--seeded] [COLLECTION]   (needs node, npm, curl and the .venv of `make venv`)
set -euo pipefail
cd "$(dirname "$0")/.."

NEWMAN_VERSION=6.2.2
SEEDED=""
if [[ "${1:-}" == --seeded ]]; then
  SEEDED=1
  shift
fi
COLLECTION=${1:-postman_collection.json}
SEED_POSTS=500
NEWMAN=.ci/node_modules/.bin/newman
PYTHON=.venv/bin/python
START_TIMEOUT=60 # seconds for /readyz and for the first finished run
STOP_TIMEOUT=20  # seconds between SIGINT and SIGKILL

log() { printf 'newman.sh: %s\n' "$*" >&2; }

for tool in node npm curl setsid; do
  command -v "$tool" >/dev/null || { log "needs $tool (Debian: nodejs npm curl util-linux)"; exit 1; }
done
[[ -x .venv/bin/tagwatch ]] || { log "needs .venv with tagwatch: run make venv"; exit 1; }

installed_newman() {
  node -p "require('./.ci/node_modules/newman/package.json').version" 2>/dev/null || true
}

if [[ "$(installed_newman)" != "$NEWMAN_VERSION" ]]; then
  log "installing newman@$NEWMAN_VERSION into .ci/node_modules"
  npm install --prefix .ci --no-save --no-audit --no-fund --loglevel=error "newman@$NEWMAN_VERSION"
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/tagwatch-newman.XXXXXX")
tagwatch_pid=""
newman_started=""
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
admin_token="newman-$("$PYTHON" -c 'import secrets; print(secrets.token_hex(12))')"
base="http://127.0.0.1:$port"

# The status of the newest run: running, success, failed; "none" before the first, "down" if no answer.
newest_run_status() {
  local script='import json, sys
runs = json.load(sys.stdin)["data"]
print(runs[0]["status"] if runs else "none")'
  curl -fsS --max-time 5 "$base/api/v1/runs?limit=1" 2>/dev/null |
    "$PYTHON" -c "$script" 2>/dev/null || echo down
}

# shellcheck disable=SC2317 # runs from the EXIT trap
stop_tagwatch() {
  [[ -n "$tagwatch_pid" ]] && kill -0 "$tagwatch_pid" 2>/dev/null || return 0
  # The collection's POST /api/v1/collect runs `tagwatch collect --once` in its own session, outside our
  # process group: let that run finish before its database goes away.
  local deadline=$((SECONDS + START_TIMEOUT))
  while [[ -n "$newman_started" && "$(newest_run_status)" == running ]] && ((SECONDS < deadline)); do
    sleep 0.5
  done
  kill -INT -- "-$tagwatch_pid" 2>/dev/null || true
  (sleep "$STOP_TIMEOUT" && kill -KILL -- "-$tagwatch_pid" 2>/dev/null) &
  local watchdog=$!
  wait "$tagwatch_pid" 2>/dev/null || true
  kill "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  tagwatch_pid=""
}

# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_tagwatch
  if ((rc != 0)) && [[ -s "$workdir/tagwatch.log" ]]; then
    log "exit $rc; tagwatch's errors, else the end of its log:"
    grep -E '"log.level": "(error|critical)"' "$workdir/tagwatch.log" >&2 ||
      tail -n 20 "$workdir/tagwatch.log" >&2
  fi
  rm -rf "$workdir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A simple command (not a function) when backgrounded, so that $! is tagwatch's own pid and process group.
tagwatch_env=(env -u X_BEARER_TOKEN -u PROMETHEUS_MULTIPROC_DIR
  TAGWATCH_DB="$workdir/tagwatch.db" TAGWATCH_SOURCE=sample TAGWATCH_ADMIN_TOKEN="$admin_token"
  PORT="$port" TAGWATCH_METRICS_PORT=0 LOG_LEVEL=INFO)

if [[ -n "$SEEDED" ]]; then
  log "seeding $SEED_POSTS sample posts; serving them on $base with no collector (database in $workdir)"
  "${tagwatch_env[@]}" .venv/bin/tagwatch seed --posts "$SEED_POSTS" >"$workdir/seed.log" 2>&1 ||
    { cat "$workdir/seed.log" >&2; exit 1; }
  # setsid: tagwatch leads its own process group, so one signal reaches it and gunicorn.
  "${tagwatch_env[@]}" setsid .venv/bin/tagwatch serve --host 127.0.0.1 --port "$port" >"$workdir/tagwatch.log" 2>&1 &
else
  log "starting tagwatch on $base (sample source, database in $workdir)"
  # setsid: tagwatch leads its own process group, so one signal reaches it, gunicorn and the collector.
  "${tagwatch_env[@]}" setsid .venv/bin/tagwatch run >"$workdir/tagwatch.log" 2>&1 &
fi
tagwatch_pid=$!

started=$SECONDS
deadline=$((SECONDS + START_TIMEOUT))
until curl -fsS --max-time 2 -o /dev/null "$base/readyz" 2>/dev/null; do
  kill -0 "$tagwatch_pid" 2>/dev/null || { log "tagwatch exited during start-up"; exit 1; }
  ((SECONDS < deadline)) || { log "no /readyz within ${START_TIMEOUT}s"; exit 1; }
  sleep 0.2
done
until [[ -n "$SEEDED" || ! "$(newest_run_status)" =~ ^(running|none|down)$ ]]; do
  ((SECONDS < deadline)) || { log "no finished collection run within ${START_TIMEOUT}s"; exit 1; }
  sleep 0.5
done
log "tagwatch ready after $((SECONDS - started))s; running $COLLECTION with newman $NEWMAN_VERSION"

mkdir -p build
newman_started=1
set +e
# --env-var, not --global-var: environment values outrank the collection's own variables, globals do not.
"$NEWMAN" run "$COLLECTION" \
  --env-var "baseUrl=$base" --env-var "adminToken=$admin_token" \
  --reporters cli,junit --reporter-junit-export build/newman-junit.xml
rc=$?
set -e
log "newman exited $rc"
exit "$rc"
