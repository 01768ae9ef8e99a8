# Sourced by the scripts in this folder: creates .venv on first use and installs es_opt in it.
# torch is pinned through constraints.txt so that only the CPU build is ever installed.
ensure_venv() {
    local extras="$1"
    local python="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv
    fi
    # shellcheck disable=SC1091
    source .venv/bin/activate
    local stamp=".venv/.installed-${extras//,/-}"
    if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
        python -m pip install --quiet --upgrade pip
        python -m pip install --quiet -c scripts/constraints.txt "torch==2.13.0"
        python -m pip install --quiet -c scripts/constraints.txt -e ".[${extras}]"
        touch "$stamp"
    fi
}
