#!/usr/bin/env bash
# `make lock`: regenerate the hashed locks in application/ from the ranges in pyproject.toml with uv.
#   requirements-dev.lock    dependencies + the dev extra    (make test/lint/bench, CI)
#   requirements.lock        dependencies, pinned as in the dev lock    (make run, the image)
#   requirements-build.lock  the dependency group "build": setuptools and uv    (make's installer, the image's build)
# Pins already in a lock are kept unless UPGRADE=1 (everything) or UPGRADE_PACKAGE=name (that one), so adding a
# dependency moves nothing else.
# The locks are universal (every platform and Python >= 3.11), so one set serves Linux, macOS and the image.
set -euo pipefail
cd "$(dirname "$0")/../application"
uv=${UV:-uv}
args=(pip compile --quiet --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock")
[[ ${UPGRADE:-0} == 1 ]] && args+=(--upgrade)
[[ -n ${UPGRADE_PACKAGE:-} ]] && args+=(--upgrade-package "$UPGRADE_PACKAGE")
"$uv" "${args[@]}" pyproject.toml --extra dev -o requirements-dev.lock
"$uv" "${args[@]}" pyproject.toml --constraints requirements-dev.lock -o requirements.lock
"$uv" "${args[@]}" --group pyproject.toml:build -o requirements-build.lock
echo "locked: $(grep -c '==' requirements.lock) runtime, $(grep -c '==' requirements-dev.lock) dev," \
  "$(grep -c '==' requirements-build.lock) build packages"
