#!/usr/bin/env bash
# The device check behind RESULTS.md "Speed on a GPU": run from the repository root on a
# machine with one GPU and JAX installed (jax[cuda]); writes logs to $OUT (default: ./gpu_out).
#   1. sequence_speed: lift and lift_sequence on 64 x 256 frames with the pose model in
#      $MODEL, their answers diffed against $REFERENCE (the same command's --save on the
#      CPU) and kept in $OUT/gpu_answers.npz (to trace any frame that differs);
#   2. with CPM_POSE_MODEL set (a saved pose model): the paper-configuration CPM's training
#      step at batches $CPM_BATCHES (default 16) in the dtypes $CPM_DTYPES (default
#      bfloat16,float32; float32-highest is float32 at precision "highest"), with XLA's
#      FLOP count and the MFU against $PEAK_TFLOPS (default 989, an H100 SXM's dense
#      bfloat16 peak);
#   3. sequence_speed at 1,024 x 256 frames (unweighted), and lift_speed with LIFT_SPEED=1;
#   4. last, as time allows: the lifting and sequence tests on the GPU (full float32
#      matters there: see RESULTS.md), and the pose-model tests with PM_TESTS=1.
# Durations seen on an H100 (2026-11-27): step 1 under 120 s (first calls compile for
# 20-35 s each there); step 2 about 150 s (63 s and 39 s to compile the two dtypes); the
# tests of step 4 need more than 150 s with 8 workers. The whole script does not fit in a
# session's 15 minutes of device time together with a machine's start: trim it with the
# variables above.
# MODEL and REFERENCE default to .gpu/k9j14.npz and .gpu/cpu_k9.npz (an ignored folder,
# carried to the device): a saved pose model (e.g. the one `sequence_eval --workdir W`
# caches in W) and, made on the CPU beforehand,
#   python -m experiments.benchmarks.sequence_speed --model .gpu/k9j14.npz --save .gpu/cpu_k9.npz
# The device image lacks ml_collections (the experiment configs) and grain (lift3d.train):
# carry their wheels (and grain's array_record, dm_tree, portpicker) in .whl/; they are
# installed first.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD MPLBACKEND=Agg XLA_PYTHON_CLIENT_PREALLOCATE=false
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
      .whl/*.whl && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
OUT=${OUT:-gpu_out}
MODEL=${MODEL:-.gpu/k9j14.npz}
REFERENCE=${REFERENCE:-.gpu/cpu_k9.npz}
mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
timeout 120 python3 -m experiments.benchmarks.sequence_speed --model "$MODEL" \
    --compare "$REFERENCE" --save "$OUT/gpu_answers.npz" --repeats 3 2>&1 \
    | tee "$OUT/sequence_gpu.txt"
if [ -n "$CPM_POSE_MODEL" ]; then
  timeout 170 python3 -m experiments.benchmarks.cpm_throughput --skip_small \
      --pose_model "$CPM_POSE_MODEL" --paper_batches "${CPM_BATCHES:-16}" \
      --dtypes "${CPM_DTYPES:-bfloat16,float32}" --peak_tflops "${PEAK_TFLOPS:-989}" 2>&1 \
      | grep -v cuda_timer | tee "$OUT/cpm_gpu.txt"
fi
timeout 80 python3 -m experiments.benchmarks.sequence_speed --model "$MODEL" \
    --sequences 1024 --repeats 3 --rows unweighted 2>&1 | tee "$OUT/sequence_gpu_large.txt"
if [ -n "$LIFT_SPEED" ]; then
  timeout 100 python3 -m experiments.benchmarks.lift_speed --rows unweighted,weighted \
      --repeats 5 2>&1 | tee "$OUT/lift_gpu.txt"
fi
TESTS="tests/lifting tests/sequence_test.py"
[ -n "$PM_TESTS" ] && TESTS="$TESTS tests/pose_model --ignore=tests/pose_model/job_test.py"
timeout "${TEST_SECONDS:-150}" python3 -m pytest -q -p no:cacheprovider -n 14 --durations=5 \
    $TESTS 2>&1 | grep -v -i benchmark | tee "$OUT/tests_gpu.txt" | tail -25
