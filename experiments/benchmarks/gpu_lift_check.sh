#!/usr/bin/env bash
# The device check behind RESULTS.md "Speed on a GPU": run from the repository root on a
# machine with one GPU and JAX installed (jax[cuda]); writes logs to $OUT (default: ./gpu_out).
#   1. sequence_speed: lift and lift_sequence on 64 x 256 frames with the pose model in
#      $MODEL, their answers diffed against $REFERENCE (the same command's --save on the
#      CPU);
#   2. the lifting and sequence tests on the GPU (full float32 matters there: see
#      RESULTS.md), and the pose-model tests with PM_TESTS=1;
#   3. with CPM_POSE_MODEL set (a saved pose model): the paper-configuration CPM's training
#      step at batches $CPM_BATCHES in float32, float32 at precision "highest" and bfloat16,
#      with XLA's FLOP count and the MFU against $PEAK_TFLOPS (default 989, an H100 SXM's
#      dense bfloat16 peak);
#   4. sequence_speed at 1,024 x 256 frames (unweighted), and lift_speed with LIFT_SPEED=1.
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
    --compare "$REFERENCE" --repeats 3 2>&1 | tee "$OUT/sequence_gpu.txt"
TESTS="tests/lifting tests/sequence_test.py"
[ -n "$PM_TESTS" ] && TESTS="$TESTS tests/pose_model --ignore=tests/pose_model/job_test.py"
timeout 150 python3 -m pytest -q -p no:cacheprovider -n 8 --durations=5 $TESTS 2>&1 \
    | tee "$OUT/tests_gpu.txt" | tail -25
if [ -n "$CPM_POSE_MODEL" ]; then
  timeout 170 python3 -m experiments.benchmarks.cpm_throughput --skip_small \
      --pose_model "$CPM_POSE_MODEL" --paper_batches "${CPM_BATCHES:-1,16}" \
      --dtypes float32,bfloat16,float32-highest --peak_tflops "${PEAK_TFLOPS:-989}" 2>&1 \
      | tee "$OUT/cpm_gpu.txt"
fi
timeout 50 python3 -m experiments.benchmarks.sequence_speed --model "$MODEL" \
    --sequences 1024 --repeats 3 --rows unweighted 2>&1 | tee "$OUT/sequence_gpu_large.txt"
if [ -n "$LIFT_SPEED" ]; then
  timeout 100 python3 -m experiments.benchmarks.lift_speed --rows unweighted,weighted \
      --repeats 5 2>&1 | tee "$OUT/lift_gpu.txt"
fi
