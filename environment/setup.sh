#!/usr/bin/env bash
# Create the project's virtual environment (.venv) if needed and install what one use of it needs.
#   bash environment/setup.sh run    # running the notebooks (CPU set; GPU extras when a GPU is present)
#   bash environment/setup.sh test   # the above plus pytest, nbval and the TensorRT API-check packages
# Re-running is cheap: installs are skipped while the requirement files are unchanged.
# Both uses also install the Triton server for 07_serve into $VENV/triton/ (environment/requirements-triton.txt)
# and check that its Python-backend stub can run here (python -m helpers.serving check).
# Variables: PYTHON (interpreter for the venv, default python3; the Triton stub needs a Python with a shared
#            libpython: when PYTHON has none, a /usr/bin/python3.X of the same version that has one hosts the stub),
#            VENV (default .venv),
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
# 07_serve: the Triton server (nvidia-pytriton's files) and numpy 1.x for its Python-backend stub, each in its own
# folder and without dependencies (see environment/requirements-triton.txt for why).
triton_pin() { grep -E "^$1==" environment/requirements-triton.txt; }
echo "setup: installing the Triton server and its stub's numpy into $VENV/triton/"
"$py" -m pip install --disable-pip-version-check -q --no-deps --upgrade --target "$VENV/triton/server" "$(triton_pin nvidia-pytriton)"
"$py" -m pip install --disable-pip-version-check -q --no-deps --upgrade --target "$VENV/triton/stub-site" "$(triton_pin numpy)"
if ! "$py" -m helpers.serving check >/dev/null 2>"$VENV/triton/check.log"; then
  echo "setup: WARNING: Triton's Python backend cannot run here (07_serve will stop with the reason):" >&2
  tail -n 5 "$VENV/triton/check.log" >&2
  exit_note="Triton serving unavailable"
fi
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
