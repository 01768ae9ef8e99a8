#!/usr/bin/env bash
# Installs es_opt with every extra into .venv (the CPU build of torch) and runs the whole test
# suite: ruff, the docs build, and pytest (slow and Ray tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv "dev,all,docs"
echo "== ruff"
ruff check .
ruff format --check .
echo "== docs"
mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "== pytest"
python -m pytest "$@"
