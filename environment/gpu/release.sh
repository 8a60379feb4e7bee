#!/usr/bin/env bash
# The release run on a GPU machine without network access, after environment/gpu/carry.sh has staged the packed
# packages (.gpu/site: Python 3.12 packages; .gpu/triton: the Triton server and its stub's numpy) in STAGE:
#
#   bash environment/gpu/release.sh STAGE WORK
#
# unpacks them into WORK/pk and starts two detached runs of run_series_gpu.sh that outlive the calling command:
#   WORK/checks: `pytest --nbval notebooks` (tiny model size) and the GPU checks (unit tests, buffers, engine builds);
#   WORK/series: the whole series with the base model size, then the bulk command on 100,000 lines; its 06 and 07
#                wait until the checks are done, so nothing else runs while they time.
# Follow them with environment/gpu/follow.sh WORK/series/done 540 WORK/series/series.log. Notebook parameters can
# be overridden with SERIES_<NAME> as usual; the settings below fit the series into a short GPU session.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
stage=$1
work=$2
mkdir -p "$work"
bash "$repo/environment/gpu/carry.sh" unpack "$stage" "$work/pk"
export PYTHONPATH="$work/pk/site${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$work/pk/site/bin:$PATH"
export SERIES_SERVE_TRITON_HOME="$work/pk/triton"
setsid nohup bash "$repo/environment/gpu/run_series_gpu.sh" --skip-notebooks --nbval --checks \
  --out "$work/checks" --work "$work/checks-work" >"$work/checks.out" 2>&1 < /dev/null &
# The series: pretraining shortened, 02's speed study on the small architecture (its recipes only choose the CPU files); 06 times the GPU backends on the whole corpus and
# leaves torch.compile out (minutes of compiling per shape); 07's perf_analyzer windows of 1 s.
export SERIES_PRETRAIN_STEPS=${SERIES_PRETRAIN_STEPS:-300}
export SERIES_SPEED_ROUNDS=${SERIES_SPEED_ROUNDS:-2} SERIES_SPEED_WARMUP=${SERIES_SPEED_WARMUP:-1}
export SERIES_SPEED_MODEL_SIZE=${SERIES_SPEED_MODEL_SIZE:-small}
export SERIES_BENCH_BATCHES=${SERIES_BENCH_BATCHES:-1,32} SERIES_BENCH_SEQS=${SERIES_BENCH_SEQS:-32,128,512}
export SERIES_BENCH_COMPILE_SHAPES=${SERIES_BENCH_COMPILE_SHAPES-} SERIES_BENCH_TEXTS=${SERIES_BENCH_TEXTS:-corpus}
export SERIES_BENCH_TEXT_ROUNDS=${SERIES_BENCH_TEXT_ROUNDS:-2}
export SERIES_BENCH_ACCURACY_BACKENDS=${SERIES_BENCH_ACCURACY_BACKENDS:-pytorch-cuda,torch-cuda-fp16,torch-cuda-fp16-graph,ort-cuda-fp16-graph,ort-cuda-fused-fp16-graph,ort-cuda-fused-fp16-rightpad-graph,tensorrt-fp16,tensorrt-fp32}
export SERIES_SERVE_CONCURRENCIES=${SERIES_SERVE_CONCURRENCIES:-1,16,64,128} SERIES_SERVE_PERF_MS=${SERIES_SERVE_PERF_MS:-1000}
setsid nohup bash "$repo/environment/gpu/run_series_gpu.sh" --model-size base --fast --bulk 100000 \
  --quiet-after "$work/checks/done" --out "$work/series" --work "$work/series-work" >"$work/series.out" 2>&1 < /dev/null &
echo "release: started; follow with environment/gpu/follow.sh $work/series/done SECONDS $work/series/series.log"
