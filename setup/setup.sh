#!/bin/sh
# One-shot setup of the tagwatch Elastic stack. Idempotent: compose runs it on every `up`.
#
#   1. wait for Elasticsearch and check the elastic password
#   2. set the kibana_system password
#   3. create or update the writer roles (roles/*.json) and the Beats users
#   4. wait for Kibana, then import the saved objects (data views, dashboards) with overwrite
#
# Exits non-zero with one clear line when a password is empty, too short or wrong.
set -eu

ES_URL=${ELASTICSEARCH_URL:-http://elasticsearch:9200}
KIBANA_URL=${KIBANA_URL:-http://kibana:5601}
ROLES_DIR=${ROLES_DIR:-$(dirname "$0")/roles}
SAVED_OBJECTS_DIR=${SAVED_OBJECTS_DIR:-/kibana}
ES_WAIT_SECONDS=${ES_WAIT_SECONDS:-300}
KIBANA_WAIT_SECONDS=${KIBANA_WAIT_SECONDS:-600}
POLL_SECONDS=${POLL_SECONDS:-5}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
umask 077

log() { printf '[setup] %s\n' "$*"; }
fail() {
	printf '[setup] ERROR: %s\n' "$*" >&2
	exit 1
}

# Refuse empty or short passwords before talking to anything.
require_password() {
	eval "value=\${$1:-}"
	[ -n "$value" ] || fail "$1 is empty. Set it in .env (see .env.example), then run 'docker compose up -d' again."
	[ "${#value}" -ge 6 ] || fail "$1 is shorter than 6 characters; Elasticsearch rejects such passwords."
}

# Escape a value for use inside a JSON string.
json_escape() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }

# call URL METHOD PATH [BODY_FILE]: the HTTP status goes to stdout, the body to $WORK/body.
# Prints 000 when the server cannot be reached.
call() {
	base=$1 method=$2 path=$3 body_file=${4:-}
	set -- -sS -o "$WORK/body" -w '%{http_code}' -m 30 -u "elastic:$ELASTIC_PASSWORD" -X "$method" \
		-H 'Content-Type: application/json' -H 'kbn-xsrf: tagwatch-setup'
	if [ -n "$body_file" ]; then set -- "$@" --data-binary "@$body_file"; fi
	curl "$@" "$base$path" 2>"$WORK/curl.err" || true
}

es() { call "$ES_URL" "$@"; }

# expect STATUS WHAT: stop with the response when the last call did not answer STATUS.
expect() {
	[ "$status" = "$1" ] || fail "$2 failed (HTTP $status): $(cat "$WORK/body" 2>/dev/null)"
}

wait_for_elasticsearch() {
	log "waiting for Elasticsearch at $ES_URL"
	deadline=$(($(date +%s) + ES_WAIT_SECONDS))
	while :; do
		status=$(es GET /)
		case $status in
			200) return 0 ;;
			401) fail "Elasticsearch rejected the elastic user's password: ELASTIC_PASSWORD in .env does not match the password stored in Elasticsearch's data volume. Put the current one in .env or reset it (docs/deploy.md, 'Reset passwords')." ;;
		esac
		[ "$(date +%s)" -lt "$deadline" ] || fail "Elasticsearch did not answer within ${ES_WAIT_SECONDS}s (last HTTP status $status)."
		sleep "$POLL_SECONDS"
	done
}

set_kibana_system_password() {
	printf '{"password":"%s"}' "$(json_escape "$KIBANA_SYSTEM_PASSWORD")" >"$WORK/request"
	status=$(es POST /_security/user/kibana_system/_password "$WORK/request")
	expect 200 "setting the kibana_system password"
	log "kibana_system password set"
}

ensure_roles() {
	for file in "$ROLES_DIR"/*.json; do
		role=$(basename "$file" .json)
		status=$(es PUT "/_security/role/$role" "$file")
		expect 200 "creating role $role"
		log "role $role in place"
	done
}

# ensure_user NAME PASSWORD ROLE FULL_NAME: create the user or update its password and role.
ensure_user() {
	printf '{"password":"%s","roles":["%s"],"full_name":"%s"}' \
		"$(json_escape "$2")" "$3" "$4" >"$WORK/request"
	status=$(es PUT "/_security/user/$1" "$WORK/request")
	expect 200 "creating user $1"
	log "user $1 in place (role $3)"
}

wait_for_kibana() {
	log "waiting for Kibana at $KIBANA_URL"
	deadline=$(($(date +%s) + KIBANA_WAIT_SECONDS))
	while :; do
		status=$(call "$KIBANA_URL" GET /api/status)
		# status.overall.level of GET /api/status; "available" once Kibana can serve requests.
		if [ "$status" = 200 ] && tr -d '[:space:]' <"$WORK/body" | grep -o '"overall":{[^}]*}' | grep -q '"level":"available"'; then
			return 0
		fi
		[ "$(date +%s)" -lt "$deadline" ] || fail "Kibana was not available within ${KIBANA_WAIT_SECONDS}s (last HTTP status $status)."
		sleep "$POLL_SECONDS"
	done
}

import_saved_objects() {
	for file in "$SAVED_OBJECTS_DIR"/*.ndjson; do
		[ -e "$file" ] || fail "no saved objects (*.ndjson) found in $SAVED_OBJECTS_DIR"
		status=$(curl -sS -o "$WORK/body" -w '%{http_code}' -m 60 -u "elastic:$ELASTIC_PASSWORD" \
			-X POST -H 'kbn-xsrf: tagwatch-setup' --form "file=@$file" \
			"$KIBANA_URL/api/saved_objects/_import?overwrite=true" 2>"$WORK/curl.err" || true)
		expect 200 "importing $(basename "$file")"
		grep -q '"success":true' "$WORK/body" || fail "importing $(basename "$file") reported errors: $(cat "$WORK/body")"
		count=$(grep -o '"successCount":[0-9]*' "$WORK/body" | cut -d: -f2)
		log "imported $(basename "$file") (${count:-0} objects)"
	done
}

for name in ELASTIC_PASSWORD KIBANA_SYSTEM_PASSWORD FILEBEAT_INTERNAL_PASSWORD METRICBEAT_INTERNAL_PASSWORD; do
	require_password "$name"
done

wait_for_elasticsearch
set_kibana_system_password
ensure_roles
ensure_user filebeat_internal "$FILEBEAT_INTERNAL_PASSWORD" filebeat_writer "Filebeat (tagwatch logs)"
ensure_user metricbeat_internal "$METRICBEAT_INTERNAL_PASSWORD" metricbeat_writer "Metricbeat (tagwatch metrics)"
wait_for_kibana
import_saved_objects
log "done"
