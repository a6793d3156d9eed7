#!/usr/bin/env bash
# Kibana part of the stack's setup, run by the one-shot `setup-kibana` service on every
# `docker compose up`: imports the data views and dashboards (kibana/*.ndjson) with overwrite.
# Idempotent, and nothing depends on it: a slow or broken Kibana never stops log and metric
# shipping.
#
# Kibana answers /api/status with 503 until it can serve, then 200 with level "available" or
# "degraded"; degraded can last long after a start (kibana #138680, #166006), so any 200 will
# do, followed by a probe of the saved-objects API itself. Retries end KIBANA_SETUP_TIMEOUT_SECONDS
# after the start with one line saying why.
set -euo pipefail

SETUP_NAME=setup-kibana
# shellcheck source=setup/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KIBANA_URL=${KIBANA_URL:-http://kibana:5601}
SAVED_OBJECTS_DIR=${SAVED_OBJECTS_DIR:-/kibana}

overall_level() {
	tr -d '[:space:]' <"$WORK/body" | grep -o '"overall":{[^}]*}' | grep -o '"level":"[a-z]*"' | cut -d'"' -f4 || true
}

# import_file FILE: one saved-objects import with overwrite; its answer must report success.
import_file() {
	local name
	name=$(basename "$1")
	until_ok "the import of $name" ok POST "$KIBANA_URL/api/saved_objects/_import?overwrite=true" --form "file=@$1"
	grep -q '"success":true' "$WORK/body" || fail "the import of $name reported errors: $(answer)"
	log "imported $name ($(grep -o '"successCount":[0-9]*' "$WORK/body" | cut -d: -f2) objects)"
}

require_secret ELASTIC_PASSWORD
start_deadline "${KIBANA_SETUP_TIMEOUT_SECONDS:-600}"
use_credentials elastic "$ELASTIC_PASSWORD"
files=("$SAVED_OBJECTS_DIR"/*.ndjson)
[[ -e ${files[0]} ]] || fail "no saved objects (*.ndjson) in $SAVED_OBJECTS_DIR"

log "waiting for Kibana at $KIBANA_URL (up to ${TIMEOUT}s)"
until_ok "Kibana" ok GET "$KIBANA_URL/api/status"
log "Kibana answers (level $(overall_level))"
until_ok "the saved-objects API" ok GET "$KIBANA_URL/api/saved_objects/_find?type=index-pattern&per_page=1"
for file in "${files[@]}"; do
	import_file "$file"
done
log "done"
