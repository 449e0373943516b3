#!/usr/bin/env bash
# The runs on a GPU host that docs/results/speed.md reports ("On a GPU"), in parts:
#   issue      the issue-13 shape (float32), against the same model in PyTorch on the same GPU
#   1x, 4x     the paper's 1x at its full batch (512) and 4x at batch 128, bfloat16, with the variants (the shares of
#              the projection and AbsTopK, their implementations side by side) and PyTorch; 1x-steps: 1x without
#              the variants; 4x-256, 4x-full: 4x at batch 256 and 512, the two steps alone (MICROBATCHES=4: the
#              batch of 512 in four slices, train.microbatches)
#   1x-before  1x at batch 128 with attention in its XLA form against cuDNN's fused kernel
#   attention  attention alone, cuDNN against XLA, time and error (benchmarks/attention.py)
#   profile    where the 4x steps spend their time (benchmarks/profile_step.py)
#   projection the projection's implementations alone at 1x and 4x
#   tests      the model, sparsity and Pallas-kernel tests on the GPU backend (the C++ kernels' cases left out)
#
#   benchmarks/accelerator.sh [part ...]      (default: issue 1x)
#
# Logs go to $OUT (else runs/accelerator/). PEAK_TFLOPS is the MFU denominator (default 989: H100 SXM dense bf16).
# Each part has its own time limit, so one that hangs or runs out of memory leaves the others' figures.
set -u
cd "$(dirname "$0")/.."
out=${OUT:-runs/accelerator}
mkdir -p "$out"
peak=${PEAK_TFLOPS:-989}
py=${PYTHON:-python3}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1  # JAX and PyTorch share the GPU's memory
bench() {  # name, time limit (s), train_step.py arguments...
  local name=$1 limit=$2
  shift 2
  echo "=== $name: train_step.py $*" | tee "$out/$name.log"
  timeout "$limit" "$py" benchmarks/train_step.py --peak-tflops="$peak" "$@" 2>&1 | tee -a "$out/$name.log" \
    | grep -E "^(variant|sparse|dense|torch|\||weight|AbsTopK|device|config|model| +[0-9])" || true
}
for part in "${@:-issue 1x}"; do
  case $part in
    issue) bench issue 150 --issue-shape --torch --rounds=9 ;;
    attention) for shape in "paper.py:1x --batch=64" "paper.py:4x --batch=32"; do
                 timeout 60 "$py" benchmarks/attention.py --config=configs/$shape 2>&1 | tee -a "$out/attention.log"
               done ;;
    1x) bench paper1x 240 --config=configs/paper.py:1x --plain --dtype=bfloat16 --torch --rounds=7 ;;
    1x-steps) bench paper1x_steps 120 --config=configs/paper.py:1x --plain --dtype=bfloat16 --torch --rounds=7 \
                --no-variants ;;
    1x-before) bench paper1x_before 200 --config=configs/paper.py:1x --plain --dtype=bfloat16 --batch=128 \
                 --no-variants --before=xla-attention --rounds=7 ;;
    4x) bench paper4x 280 --config=configs/paper.py:4x --plain --dtype=bfloat16 --batch=128 --torch --rounds=5 ;;
    4x-full) XLA_PYTHON_CLIENT_MEM_FRACTION=.92 bench paper4x_full 120 --config=configs/paper.py:4x --plain \
               --dtype=bfloat16 --no-variants --rounds=3 ${MICROBATCHES:+--microbatches=$MICROBATCHES} ;;
    profile) for kind in --dense ""; do
               timeout 90 "$py" benchmarks/profile_step.py --config=configs/paper.py:4x --dtype=bfloat16 --batch=128 \
                 $kind 2>&1 | tee -a "$out/profile.log" | cut -c1-300 | grep -E "^(\||dense|sparse|unmatched)"
             done ;;
    4x-256) bench paper4x_256 120 --config=configs/paper.py:4x --plain --dtype=bfloat16 --batch=256 --no-variants \
              --rounds=5 ;;
    projection) "$py" -c "import sys; sys.path.insert(0, '.'); from benchmarks.train_step import load_config, \
projection_alternatives as p; [p(load_config(f'configs/paper.py:{e}')) for e in ('1x', '4x')]" 2>&1 | grep "^weight" \
                  | tee "$out/projection.log" ;;
    tests) JAX_PLATFORMS=cuda timeout 100 "$py" -m pytest -q -p no:cacheprovider -k "not native" \
             tests/test_sparsity.py tests/test_model.py tests/test_topk_pallas.py 2>&1 | tee "$out/tests.log" \
             | tail -15 ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
