#!/usr/bin/env bash
# The project's test command (README "Tests"; .ci/run calls it).
# Builds its own virtual environment from scratch — torch==2.13.0 (CPU) first, so nothing
# pulls a CUDA build — installs the project with [train,bench,hf,dev] (disk_manager included), runs pytest.
# Outside CI the environment is reused while pyproject files are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PERSONA_TEST_VENV:-.venv-test}
PY=${PYTHON:-python3}
stamp=$(cat pyproject.toml disk_manager/pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)

if [ "${CI:-}" = "true" ] || [ ! -f "$VENV/.stamp" ] || [ "$(cat "$VENV/.stamp")" != "$stamp" ]; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -e '.[train,bench,hf,dev]'   # ships disk_manager too
  echo "$stamp" > "$VENV/.stamp"
fi

"$VENV/bin/python" -m pytest -q "$@"
