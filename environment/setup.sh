#!/usr/bin/env bash
# Create the project's virtual environment (.venv) if needed and install what one use of it needs.
#   bash environment/setup.sh run    # running the notebooks (CPU set; GPU extras when a GPU is present)
#   bash environment/setup.sh test   # the above plus pytest, nbval and the TensorRT API-check packages
# Re-running is cheap: installs are skipped while the requirement files are unchanged.
# Variables: PYTHON (interpreter for the venv, default python3), VENV (default .venv),
#            TORCH_INDEX (e.g. https://download.pytorch.org/whl/cpu to get a CPU-only torch on a GPU-less machine).
set -euo pipefail
cd "$(dirname "$0")/.."
use=${1:-run}
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

case "$use" in
  run)  reqs=(environment/requirements.txt) ;;
  test) reqs=(environment/requirements-test.txt) ;;
  *) echo "setup.sh: unknown use '$use' (expected: run or test)" >&2; exit 2 ;;
esac
[ -f environment/requirements-trt-check.txt ] && [ "$use" = test ] && reqs+=(environment/requirements-trt-check.txt)
gpu=no
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  gpu=yes
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
exit_note=""
stamp="$VENV/.installed-$(cat "${reqs[@]}" environment/requirements*.txt pyproject.toml | sha256sum | cut -c1-16)-$use"
if [ -f "$stamp" ]; then
  echo "setup: $VENV is up to date for '$use'"
  exit 0
fi
if [ -n "${TORCH_INDEX:-}" ]; then
  "$py" -m pip install --disable-pip-version-check -q --index-url "$TORCH_INDEX" "$(grep -E '^torch==' environment/requirements.txt)"
fi
args=()
for r in "${reqs[@]}"; do args+=(-r "$r"); done
echo "setup: installing ${reqs[*]} (a few minutes the first time)"
"$py" -m pip install --disable-pip-version-check -q "${args[@]}"
"$py" -m pip install --disable-pip-version-check -q --no-deps -e .
if [ "$gpu" = yes ]; then
  # Optional: pycuda compiles against the CUDA toolkit (nvcc, headers). Without it the series still runs;
  # notebook 03 then says which buffer implementation is missing and how to install it.
  echo "setup: NVIDIA GPU found; installing environment/requirements-gpu.txt (cuda-python, pycuda)"
  if ! "$py" -m pip install --disable-pip-version-check -q -r environment/requirements-gpu.txt; then
    echo "setup: WARNING: the GPU extras did not install (pycuda needs the CUDA toolkit: set CUDA_ROOT)." >&2
    echo "setup: WARNING: re-run after fixing, or install cuda-python alone: pip install 'cuda-python>=13,<14'" >&2
    exit_note="GPU extras missing"
  fi
fi
[ -z "$exit_note" ] && touch "$stamp"  # retry the extras next time if they failed
echo "setup: done${exit_note:+ ($exit_note)}"
