#!/usr/bin/env bash
# The GPU checks of issue 35, in one run of under 8 minutes on one GPU (an H100: about 5).
#
#     benchmarks/gpu.sh [--device cpu] [OUT]
#
# 1. the vectorized equivalence tests on the GPU (every member matches torch.optim alone,
#    an exploit's copy bit for bit, a vectorized run decision for decision the inline one);
# 2. CUDA random states restored bit for bit across an exploit (benchmarks/gpu_workers.py);
# 3. the vectorized benchmark's GPU rows: 8 to 2,048 members of the digits MLP against raw
#    torch.func on the same GPU and the local executor with one worker on it (128
#    members), then with two sharing it (--gpus-per-worker 0.5), peak GPU memory;
# 4. a local run with --gpus-per-worker 0.5 whose two workers are seen on the GPU.
#
# Everything lands in OUT (default: $OUT, else gpu-out/): the log, the benchmark's tables
# (gpu-vectorized.md, gpu-local2.md) and rows (vectorized.json). `--device cpu` is a dry
# run of the same steps on a CPU, with small populations. Nothing reaches the network.
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda
if [ "${1:-}" = "--device" ]; then DEVICE=$2; shift 2; fi
OUT=${1:-${OUT:-gpu-out}}
mkdir -p "$OUT"
PY=${PYTHON:-python}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
LOG="$OUT/gpu.log"
FAILED=()

step() {  # step NAME SECONDS COMMAND...: run it, logged, within SECONDS
    local name=$1 limit=$2
    shift 2
    echo "== $name ($(date -u +%H:%M:%S), at most ${limit} s): $*" | tee -a "$LOG"
    local started=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc in $((SECONDS - started)) s" | tee -a "$LOG"
    [ "$rc" = 0 ] || FAILED+=("$name")
}

if [ "$DEVICE" = cpu ]; then
    POPULATIONS=(8 32); LOCAL=(8); STEPS=64
else
    POPULATIONS=(8 32 128 512 2048); LOCAL=(128); STEPS=256
fi

step "the machine" 20 bash -c "nvidia-smi || true; $PY -c 'import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"no GPU\")'"
step "vectorized equivalence tests on $DEVICE" 120 env POPULACE_TEST_DEVICE="$DEVICE" \
    "$PY" -m pytest -q -p no:cacheprovider tests/vectorized/test_vectorized.py \
    -k "matches_the_same_member or bit_for_bit or (inline_worker_trains and (truncation or synch or tournament))"
step "random states across an exploit" 45 "$PY" benchmarks/gpu_workers.py rng --device "$DEVICE"
step "vectorized rows, local with 1 worker" 180 "$PY" benchmarks/vectorized.py \
    --device "$DEVICE" --populations "${POPULATIONS[@]}" --local "${LOCAL[@]}" --workers 1 \
    --gpus-per-worker "$([ "$DEVICE" = cpu ] && echo 0 || echo 1)" --steps "$STEPS" --long 0 \
    --output "$OUT/gpu-vectorized.md"
step "local with 2 workers sharing the GPU" 90 "$PY" benchmarks/vectorized.py \
    --device "$DEVICE" --populations "${LOCAL[@]}" --local "${LOCAL[@]}" --workers 2 \
    --gpus-per-worker "$([ "$DEVICE" = cpu ] && echo 0 || echo 0.5)" --steps "$STEPS" --long 0 \
    --output "$OUT/gpu-local2.md"
step "local workers seen on the GPU" 60 "$PY" benchmarks/gpu_workers.py workers --device "$DEVICE"

if [ ${#FAILED[@]} -gt 0 ]; then
    echo "FAILED: ${FAILED[*]}" | tee -a "$LOG"
    exit 1
fi
echo "all steps passed in $SECONDS s" | tee -a "$LOG"
