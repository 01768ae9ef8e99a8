#!/usr/bin/env bash
# Creates benchmarks/peers/.venv with the peers es_opt is compared against, plus es_opt itself
# (editable, --no-deps) so that one interpreter runs every side of the benchmark: EvoTorch,
# pytorch-optimize, evosax (JAX, CPU build) and EvoX.
#
# Idempotent: re-running it reuses the venv and only installs what is missing.
#
#   bash benchmarks/peers/setup_env.sh            # create or update
#   PYTHON=python3.12 bash benchmarks/peers/setup_env.sh
#
# Every pip call gets a constraints file pinning torch==2.13.0: any other torch request would
# pull the CUDA build and gigabytes of NVIDIA packages.
#
# Workarounds (see README.md beside this file):
# - pytorch-optimize 0.0.1 declares `sklearn` (the deprecated name, which refuses to install),
#   `torchvision` (which would pull another torch build), pytest and pycodestyle; it is
#   installed with --no-deps. The package imports only torch and numpy, which are here. Only its
#   sample scripts import `gym` (0.26 crashes on NumPy 2 in its env checker); our side uses
#   gymnasium instead, so gym is not installed and no compatibility shim is needed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

constraints="$here/constraints.txt"
if [[ ! -f "$constraints" ]]; then
    echo "missing $constraints" >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv with $($python -V 2>&1)"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

# torch first, alone, so that nothing after it can pick another build.
"${pip[@]}" install -q -c "$constraints" "torch==2.13.0"

# The peers and the task dependencies.
"${pip[@]}" install -q -c "$constraints" \
    "evotorch==0.6.1" \
    "gymnasium>=1.0" \
    "scikit-learn>=1.3" \
    "matplotlib>=3.6" \
    "tqdm>=4.60" \
    "multiprocess>=0.70.15"

# The ancestor, without its pinned (and NumPy-2-incompatible) dependency set.
"${pip[@]}" install -q -c "$constraints" --no-deps "pytorch-optimize==0.0.1"

# The JAX-based peer evosax (with JAX's CPU build) and EvoX (PyTorch, so it shares the torch above).
"${pip[@]}" install -q -c "$constraints" \
    "evosax==0.3.2" \
    "jax[cpu]>=0.7" \
    "evox==1.4.0"

# es_opt itself, editable, from this checkout.
"${pip[@]}" install -q -c "$constraints" --no-deps -e "$root"

"$venv/bin/python" - <<'EOF'
import importlib.metadata as md

for name in ["torch", "evotorch", "pytorch-optimize", "evosax", "jax", "jaxlib", "evox",
             "gymnasium", "scikit-learn", "numpy", "es_opt"]:
    try:
        print(f"{name:18s} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name:18s} MISSING")
EOF
