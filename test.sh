#!/usr/bin/env bash
# Install the dependencies and run the linter and the whole test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt
.venv/bin/ruff check .
# pytest exits 5 when it collects no test: that fails this script, as it should.
exec .venv/bin/python -m pytest "$@"
