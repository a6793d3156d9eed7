# Shared by setup/elasticsearch.sh and setup/kibana.sh (sourced, never run): one-line logging,
# secret checks, and HTTP calls that are retried until one deadline per script.
#
# Elasticsearch and Kibana answer 000 (no connection), 401, 408, 429 and 5xx for a while after
# they start (docker-elk #852, #680, #1109; kibana #138680): those answers are retried. Any other
# non-2xx answer is a real error and stops the script at once. The elastic password reaches curl
# through a config file, never its command line, and nothing here prints a secret.

SETUP_POLL_SECONDS=${SETUP_POLL_SECONDS:-5}
SETUP_REQUEST_SECONDS=${SETUP_REQUEST_SECONDS:-30}
MIN_SECRET_LENGTH=16
PASSWORD_HINT="if it lasts, ELASTIC_PASSWORD in .env is not the password stored in the elasticsearch-data volume (docs/deploy.md, \"Reset passwords\")"

REASON=""
HINT=""
umask 077
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log() { printf '[%s] %s\n' "$SETUP_NAME" "$*"; }

fail() {
	printf '[%s] ERROR: %s\n' "$SETUP_NAME" "$*" >&2
	exit 1
}

# start_deadline SECONDS: every wait and retry of this script ends SECONDS from now.
start_deadline() {
	TIMEOUT=$1
	DEADLINE=$((SECONDS + TIMEOUT))
}

# require_secret NAME: the variable is set, not "changeme" and at least MIN_SECRET_LENGTH long.
require_secret() {
	local name=$1 value=${!1:-}
	local fix="run 'make env' for generated secrets, or see docs/deploy.md"
	[[ -n $value ]] || fail "$name is empty; $fix."
	[[ ${value,,} != changeme ]] || fail "$name is 'changeme', which this stack refuses; $fix."
	((${#value} >= MIN_SECRET_LENGTH)) || fail "$name is shorter than $MIN_SECRET_LENGTH characters; $fix."
}

# json_string VALUE: VALUE as a JSON string literal.
json_string() {
	local value=${1//\\/\\\\}
	value=${value//\"/\\\"}
	printf '"%s"' "$value"
}

# use_credentials USER PASSWORD: later requests authenticate as USER (via a curl config file).
use_credentials() {
	local password=${2//\\/\\\\}
	password=${password//\"/\\\"}
	printf 'user = "%s:%s"\n' "$1" "$password" >"$WORK/credentials"
}

# request METHOD URL [CURL_ARGS...]: sets STATUS (000 when nothing answered) and writes the
# answer to $WORK/body. No single request outlives the deadline by more than a second.
request() {
	local method=$1 url=$2 max=$((DEADLINE - SECONDS))
	((max <= SETUP_REQUEST_SECONDS)) || max=$SETUP_REQUEST_SECONDS
	((max >= 1)) || max=1
	rm -f "$WORK/body"
	STATUS=$(curl --silent --output "$WORK/body" --write-out '%{http_code}' --max-time "$max" \
		--config "$WORK/credentials" -X "$method" -H 'kbn-xsrf: tagwatch-setup' "${@:3}" "$url" 2>/dev/null) || true
	[[ $STATUS =~ ^[0-9]{3}$ ]] || STATUS=000
}

# answer: the last answer in one short line, for logs and errors.
answer() {
	if [[ $STATUS == 000 ]]; then
		printf 'no answer (connection refused or timed out)'
		return
	fi
	printf 'HTTP %s %s' "$STATUS" "$(tr -s '\n\t' '  ' <"$WORK/body" 2>/dev/null | cut -c1-200)"
}

# ok METHOD URL [CURL_ARGS...]: true on 2xx; false with REASON set on an answer worth retrying;
# stops the script on any other answer.
ok() {
	request "$@"
	case $STATUS in
		2??) return 0 ;;
		000 | 401 | 408 | 429 | 5??)
			REASON=$(answer)
			HINT=""
			[[ $STATUS != 401 ]] || HINT=$PASSWORD_HINT
			return 1
			;;
		*) fail "$1 ${2%%\?*} failed: $(answer)" ;;
	esac
}

# until_ok WHAT COMMAND [ARGS...]: run COMMAND until it succeeds, logging each new reason to
# wait; at the deadline stop with one line naming WHAT and the last answer.
until_ok() {
	local what=$1 last=""
	shift
	until "$@"; do
		if [[ $REASON != "$last" ]]; then
			log "waiting for $what: $REASON"
			last=$REASON
		fi
		((SECONDS < DEADLINE)) || fail "gave up on $what after ${TIMEOUT}s; last answer: $REASON${HINT:+; $HINT}"
		sleep "$SETUP_POLL_SECONDS"
	done
}
