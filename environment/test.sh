#!/usr/bin/env bash
# Set up (if needed) and run every test: the unit tests, then each notebook in order under nbval.
# The notebooks run with the tiny model size in .test-artifacts/ (see conftest.py). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash environment/setup.sh test
exec "${VENV:-.venv}/bin/python" -m pytest tests notebooks --nbval "$@"
