#!/bin/sh
# First start only (the official image runs /docker-entrypoint-initdb.d on an empty volume): the
# application's role, owner of its database and of the database's public schema, not a superuser,
# so the app can migrate its own tables and nothing else (no other database, no COPY ... PROGRAM).
# psql reads the names and the password from the environment (\getenv), never from its command
# line. Later password changes: docs/deploy.md, "Reset passwords".
set -eu
: "${POSTGRES_APP_USER:?}" "${POSTGRES_APP_PASSWORD:?}" "${POSTGRES_DB:?}"
psql --no-psqlrc --set ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "$POSTGRES_DB" <<'SQL'
\getenv app_user POSTGRES_APP_USER
\getenv app_password POSTGRES_APP_PASSWORD
\getenv app_db POSTGRES_DB
CREATE ROLE :"app_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
ALTER DATABASE :"app_db" OWNER TO :"app_user";
ALTER SCHEMA public OWNER TO :"app_user";
SQL
