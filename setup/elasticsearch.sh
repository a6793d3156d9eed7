#!/usr/bin/env bash
# Elasticsearch part of the stack's setup, run by the one-shot `setup-elasticsearch` service on
# every `docker compose up`; the Beats start only after it exits 0. Idempotent.
#
#   1. refuse empty, "changeme" and short passwords before talking to anything
#   2. wait until the cluster is at least yellow and the built-in users are listed
#   3. set the kibana_system password, put the writer roles (roles/*.json) and the Beats users
#
# Every step is retried until ES_SETUP_TIMEOUT_SECONDS after the start; then, or on an answer
# that no retry can fix, it exits 1 with one line saying why. Index templates and ILM policies
# are loaded by the setup-filebeat and setup-metricbeat services (docker-compose.yml).
set -euo pipefail

SETUP_NAME=setup-elasticsearch
HERE=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=setup/lib.sh
source "$HERE/lib.sh"

ES_URL=${ELASTICSEARCH_URL:-http://elasticsearch:9200}
ROLES_DIR=${ROLES_DIR:-$HERE/roles}

# The built-in users appear once the .security index is readable; before that Elasticsearch
# may reject even the right elastic password with 401.
builtin_users_listed() {
	ok GET "$ES_URL/_security/user" || return 1
	grep -q '"kibana_system"' "$WORK/body" && return 0
	REASON="the built-in users are not listed yet"
	HINT=""
	return 1
}

# put METHOD PATH JSON_FILE WHAT: one write, retried like every other call.
put() {
	until_ok "$4" ok "$1" "$ES_URL$2" -H 'Content-Type: application/json' --data-binary "@$3"
}

# put_user NAME PASSWORD ROLE FULL_NAME: create the user or update its password and role.
put_user() {
	printf '{"password":%s,"roles":["%s"],"full_name":"%s"}' "$(json_string "$2")" "$3" "$4" >"$WORK/user.json"
	put PUT "/_security/user/$1" "$WORK/user.json" "user $1"
	log "user $1 in place (role $3)"
}

for name in ELASTIC_PASSWORD KIBANA_SYSTEM_PASSWORD FILEBEAT_INTERNAL_PASSWORD METRICBEAT_INTERNAL_PASSWORD; do
	require_secret "$name"
done
start_deadline "${ES_SETUP_TIMEOUT_SECONDS:-300}"
use_credentials elastic "$ELASTIC_PASSWORD"

log "waiting for Elasticsearch at $ES_URL (up to ${TIMEOUT}s)"
until_ok "a yellow or green cluster" ok GET "$ES_URL/_cluster/health?wait_for_status=yellow&timeout=5s"
until_ok "the built-in users" builtin_users_listed
log "Elasticsearch is ready"

printf '{"password":%s}' "$(json_string "$KIBANA_SYSTEM_PASSWORD")" >"$WORK/kibana_system.json"
put POST /_security/user/kibana_system/_password "$WORK/kibana_system.json" "the kibana_system password"
log "kibana_system password set"

for file in "$ROLES_DIR"/*.json; do
	role=$(basename "$file" .json)
	put PUT "/_security/role/$role" "$file" "role $role"
	log "role $role in place"
done
put_user filebeat_internal "$FILEBEAT_INTERNAL_PASSWORD" filebeat_writer "Filebeat (tagwatch logs)"
put_user metricbeat_internal "$METRICBEAT_INTERNAL_PASSWORD" metricbeat_writer "Metricbeat (tagwatch metrics)"
log "done"
