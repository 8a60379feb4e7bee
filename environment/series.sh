#!/usr/bin/env bash
# Set up (if needed) and run the whole series headless with papermill.
# Executed notebooks and every artifact go to runs/<timestamp>/ (artifacts in runs/<timestamp>/artifacts),
# so a run never touches another run's model. The model size is `auto`: base on a GPU, small on a CPU.
# Override any notebook parameter with SERIES_<NAME>, e.g. SERIES_MODEL_SIZE=tiny bash environment/series.sh
# The kernels run with the headless kernel spec in environment/jupyter/ (ipykernel's own log off: its TCP-transport
# warning and the "KeyboardInterrupt caught in kernel" line that jupyter_client's interrupt-then-shutdown of an
# idle kernel can cause say nothing about the notebooks; a failing cell still stops the run with its traceback).
set -euo pipefail
cd "$(dirname "$0")/.."
bash environment/setup.sh run
py="${VENV:-.venv}/bin/python"
out="${SERIES_RUN_DIR:-runs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
export SERIES_ARTIFACTS_DIR="${SERIES_ARTIFACTS_DIR:-$out/artifacts}"
export JUPYTER_PATH="$PWD/environment/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
echo "series: executed notebooks -> $out, artifacts -> $SERIES_ARTIFACTS_DIR"
for nb in notebooks/0*.ipynb; do
  name=$(basename "$nb")
  echo "series: running $name"
  start=$(date +%s)
  "$py" -m papermill "$nb" "$out/$name" --cwd notebooks -k series-headless --log-level WARNING --progress-bar
  echo "series: $name done in $(( $(date +%s) - start )) s"
done
echo "series: all notebooks ran; open $out in JupyterLab to read them with their outputs"
