#!/usr/bin/env bash
# The device check behind RESULTS.md "Speed on a GPU": run from the repository root on a
# machine with one GPU and JAX installed (jax[cuda]); writes logs to $OUT (default: ./gpu_out).
#   1. lifting and pose-model tests on the GPU (full float32 matters there: see RESULTS.md),
#   2. lift_speed on the workload (16,384 frames),
#   3. a chunk sweep at 262,144 frames (the accelerator defaults come from it).
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD MPLBACKEND=Agg
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
(timeout 240 python3 -m pytest -q -p no:cacheprovider tests/lifting_test.py tests/pose_model \
    --ignore=tests/pose_model/job_test.py 2>&1 | tail -25) | tee "$OUT/tests_gpu.txt"
python3 -m experiments.benchmarks.lift_speed --repeats 5 2>&1 | tee "$OUT/lift_gpu.txt"
python3 -m experiments.benchmarks.lift_speed --rows unweighted,weighted --batch 262144 \
    --chunk 8192 32768 65536 262144 --repeats 5 2>&1 | tee "$OUT/lift_gpu_chunks.txt"
