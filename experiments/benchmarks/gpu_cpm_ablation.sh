#!/usr/bin/env bash
# The device run behind RESULTS.md "Issue 17: the ablation on a GPU": plain vs fused CPM,
# 3 seeds, 128 px, 6 stages, the same number of steps for every run (as many as fit
# BUDGET seconds of training, from a calibration of both variants), then the stage-by-stage
# diagnosis of seed 0. Run from the repository root on a machine with one GPU and JAX:
#   POSE_MODEL=runs/pm/pose_model.npz OUT=gpu_out bash experiments/benchmarks/gpu_cpm_ablation.sh
# Writes ablation.log, diagnosis.log and ablation_results.tgz (every eval.json, results.md,
# metrics.jsonl and diagnosis.json) to $OUT.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} MPLBACKEND=Agg
# Every seed compiles the same two training steps: keep them across runs.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/lift3d_jax_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0.5
OUT=${OUT:-gpu_out}
POSE_MODEL=${POSE_MODEL:-runs/pm/pose_model.npz}
WORK=${WORK:-/tmp/lift3d_ablation}
BUDGET=${BUDGET:-290}
WORKERS=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, jax.devices())"
NET=(--image_size 128 --stages 6 --trunk_features 32 64 128 128 --stage_features 64)
timeout $((BUDGET + 170)) python3 -m experiments.benchmarks.cpm_ablation "${NET[@]}" \
    --batch_size 32 --seeds 0 1 2 --time_budget_s "$BUDGET" --workers "$WORKERS" \
    --eval_examples 512 --workdir "$WORK" --pose_model "$POSE_MODEL" 2>&1 \
    | grep -v "^[WI][0-9]\{4\}" | tee "$OUT/ablation.log"
timeout 100 python3 -m experiments.benchmarks.fusion_diagnosis "${NET[@]}" \
    --run_dir "$WORK/seed0/fused" --plain_dir "$WORK/seed0/plain" --pose_model "$POSE_MODEL" \
    --eval_examples 128 2>&1 | grep -v "^[WI][0-9]\{4\}" | tee "$OUT/diagnosis.log"
(cd "$WORK" && find . \( -name '*.json' -o -name '*.md' -o -name 'metrics.jsonl' \) \
    -not -path '*/checkpoints/*' | tar czf "$OUT/ablation_results.tgz" -T -)
