#!/usr/bin/env bash
# The device check behind RESULTS.md "Speed on a GPU": run from the repository root on a
# machine with one GPU and JAX installed (jax[cuda]); writes logs to $OUT (default: ./gpu_out).
#   1. lift_speed on the lifting issue's workload (16,384 frames, K=3 J=10),
#   2. sequence_speed: lift and lift_sequence on 64 x 256 frames with the pose model in
#      $MODEL, their answers diffed against $REFERENCE (the same command's --save on the
#      CPU), then at 1,024 x 256 frames,
#   3. the lifting, sequence and pose-model tests on the GPU (full float32 matters there:
#      see RESULTS.md).
# MODEL and REFERENCE default to .gpu/k9j14.npz and .gpu/cpu_k9.npz (an ignored folder,
# carried to the device): a saved pose model (e.g. the one `sequence_eval --workdir W`
# caches in W) and, made on the CPU beforehand,
#   python -m experiments.benchmarks.sequence_speed --model .gpu/k9j14.npz --save .gpu/cpu_k9.npz
# The device image lacks ml_collections (tests/lifting/corpus_test.py imports the
# experiment configs): carry its wheel in .whl/ and it is installed first.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD MPLBACKEND=Agg XLA_PYTHON_CLIENT_PREALLOCATE=false
if ls .whl/ml_collections-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
      .whl/ml_collections-*.whl && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
OUT=${OUT:-gpu_out}
MODEL=${MODEL:-.gpu/k9j14.npz}
REFERENCE=${REFERENCE:-.gpu/cpu_k9.npz}
mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
timeout 150 python3 -m experiments.benchmarks.lift_speed --rows unweighted,weighted \
    --repeats 5 2>&1 | tee "$OUT/lift_gpu.txt"
timeout 150 python3 -m experiments.benchmarks.sequence_speed --model "$MODEL" \
    --compare "$REFERENCE" --repeats 5 2>&1 | tee "$OUT/sequence_gpu.txt"
timeout 150 python3 -m experiments.benchmarks.sequence_speed --model "$MODEL" \
    --sequences 1024 --repeats 5 2>&1 | tee "$OUT/sequence_gpu_large.txt"
(timeout 240 python3 -m pytest -q -p no:cacheprovider -n 6 --durations=5 tests/lifting \
    tests/sequence_test.py tests/pose_model --ignore=tests/pose_model/job_test.py 2>&1 \
    | tail -40) | tee "$OUT/tests_gpu.txt"
