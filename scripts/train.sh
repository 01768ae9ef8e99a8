#!/usr/bin/env bash
# Installs es_opt with the RL extra into .venv (the CPU build of torch) and trains the RL sample
# until CartPole-v1 is solved; extra arguments go to sample_scripts/rl.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv "rl,progress,plot"
python sample_scripts/rl.py "$@"
