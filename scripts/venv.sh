#!/usr/bin/env bash
# Create or update .venv from the hashed locks with uv ($UV; the Makefile installs it): `make run` asks
# for `runtime`, `make test`/`lint`/`bench` for `dev`. The venv then holds exactly the lock and tagwatch
# (editable). A venv that already has the dev tools keeps them: runtime then syncs the dev lock, a superset,
# so `make run` after `make test` changes nothing. `make clean` goes back to a lean venv.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/venv.sh runtime|dev}
python=${PYTHON:-python3}
venv=.venv
uv=${UV:-uv}
export VIRTUAL_ENV=$venv UV_PYTHON_DOWNLOADS=never

[[ -x $venv/bin/python ]] || "$uv" venv --quiet --allow-existing --python "$python" "$venv"
stamps=("$venv/.installed-runtime")
if [[ $kind == dev || -e $venv/.installed-dev ]]; then
  lock=application/requirements-dev.lock stamps+=("$venv/.installed-dev")
else
  lock=application/requirements.lock
fi
"$uv" pip sync --quiet --require-hashes "$lock"
"$uv" pip install --quiet --no-deps --build-constraints application/requirements-build.lock --editable application
touch "${stamps[@]}"
