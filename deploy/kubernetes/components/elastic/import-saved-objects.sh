#!/bin/sh
# Import the tagwatch Kibana saved objects (data views, searches, dashboards) through Kibana's
# saved-objects API, the same call as setup/setup.sh in the compose stack. overwrite=true makes a
# re-run idempotent. Fails while Kibana is not up yet; the Job retries with back-off.
# The password goes to curl on stdin (-K -), never on its command line.
set -eu
for file in /saved-objects/*.ndjson; do
	[ -e "$file" ] || { echo "no saved objects (*.ndjson) in /saved-objects" >&2; exit 1; }
	body=$(printf 'user = "elastic:%s"\n' "$(cat /elastic-user/elastic)" |
		curl -K - -sS -m 60 --fail-with-body --cacert /kibana-certs/ca.crt \
			-H 'kbn-xsrf: tagwatch-setup' --form "file=@$file" \
			"$KIBANA_URL/api/saved_objects/_import?overwrite=true") || {
		echo "importing $(basename "$file") failed: $body" >&2
		exit 1
	}
	case $body in
		*'"success":true'*) echo "imported $(basename "$file")" ;;
		*) echo "importing $(basename "$file") reported errors: $body" >&2; exit 1 ;;
	esac
done
