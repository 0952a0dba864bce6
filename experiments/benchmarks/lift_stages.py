r"""Where the time of one `lift3d.lift` chunk goes: cumulative sub-step timings.

  python -m experiments.benchmarks.lift_stages              # unweighted, chunk 2048
  python -m experiments.benchmarks.lift_stages --weighted   # weighted, chunk 512

The `lift_speed` workload (K=3, J=10, L=17, T=100, random model and 2D) on one
chunk. Each row jits `_lift_chunk`'s pipeline up to a step and returns that
step's outputs, so the difference between consecutive rows is the cost of a
step (XLA may fuse across a cut differently, so the differences are
approximate). Rows: 2D cleaning and the per-frame terms; + the linearised
grid search and the candidate yaws; + the exact profile at the candidates
(Newton on log s); the whole `lift` of the chunk (adds the answer's
coefficients, pose, plausibility and the frame-independent `prepare`, which
this timing pays once per chunk instead of once per batch; `prepare` is also
timed alone). Best of `--repeats` interleaved calls, in µs per frame and as a
fraction of the naive-form GEMM bound of `lift_speed`, measured in the same
process.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks.lift_speed import gemm_gflops, random_model
from lift3d import lifting
from lift3d.lifting import api, search

_NUM_YAWS = 100


def _stage(depth: int, prep, keypoints, visibility):
  """`_lift_chunk`'s steps up to `depth` (0: terms, 1: + search, 2: + exact profile)."""
  joint_weights, _, _, _, points = api._clean_points(keypoints, visibility, 6)
  gram, rhs, norm2 = search.frame_terms(prep, points, joint_weights)
  if depth == 0:
    return gram, rhs, norm2
  options = api._Options(
      num_yaws=_NUM_YAWS, candidates=api.DEFAULT_CANDIDATES,
      opposite_yaws=api.DEFAULT_OPPOSITE_YAWS, components=api.DEFAULT_COMPONENTS, refine=False,
      refine_steps=0, differentiable=False, min_visible=6, chunk_size=keypoints.shape[0], root=0,
      limbs=(), blend=False)
  _, candidates = api._search_candidates(prep, points, gram, rhs, norm2, joint_weights is None,
                                         options)
  if depth == 1:
    return candidates, rhs, norm2
  yaw = prep.yaws[candidates]
  if joint_weights is None:
    index = jnp.arange(candidates.shape[0], dtype=jnp.int32)[:, None, None] * _NUM_YAWS
    return search.profile_unweighted(prep, rhs, norm2, index + candidates,
                                     api._PROFILE_ITERATIONS)
  inv_variances = [prep.inv_variances[:, j, None, None]
                   for j in range(prep.inv_variances.shape[1])]
  return api._exact_at(prep, gram[:, :, :, None], rhs[:, :, :, None], norm2, yaw,
                       inv_variances, None, api._PROFILE_ITERATIONS)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--weighted", action="store_true", help="per-joint visibility weights")
  parser.add_argument("--chunk", type=int, default=None, help="frames (default: lift's CPU chunk)")
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args()
  batch = args.chunk or api._CPU_CHUNKS[args.weighted]
  model = random_model(3, 10, 17)
  rng = np.random.default_rng(1)
  keypoints = jnp.asarray(rng.normal(size=(batch, 17, 2)) * 50 + 200, jnp.float32)
  visibility = None
  if args.weighted:
    visible = (rng.uniform(size=(batch, 17)) > 0.2) * rng.uniform(0.5, 1.0, (batch, 17))
    visibility = jnp.asarray(visible, jnp.float32)
  obs_noise = search.default_obs_noise(model)
  prepare = jax.jit(lambda m: search.prepare(m, None, obs_noise, 1.0, _NUM_YAWS,
                                             not args.weighted))
  prep = prepare(model)
  calls = {
      "2D cleaning + per-frame terms": lambda: jitted[0](prep, keypoints, visibility),
      "+ grid search + candidate yaws": lambda: jitted[1](prep, keypoints, visibility),
      "+ exact profile at candidates": lambda: jitted[2](prep, keypoints, visibility),
      "whole lift of the chunk": lambda: full(model, keypoints, visibility),
      "prepare alone (once per batch)": lambda: prepare(model),
  }
  jitted = [jax.jit(functools.partial(_stage, depth)) for depth in range(3)]
  full = jax.jit(lambda m, k, v: lifting.lift(m, k, v, chunk_size=batch))
  for call in calls.values():
    jax.block_until_ready(call())
  best = dict.fromkeys(calls, np.inf)
  for _ in range(args.repeats):
    for name, call in calls.items():
      start = time.perf_counter()
      jax.block_until_ready(call())
      best[name] = min(best[name], time.perf_counter() - start)
  gflops = gemm_gflops()
  bound = gflops * 1e9 / (3 * _NUM_YAWS * 4 * 2 * 17 * 11)
  print(f"{'weighted' if args.weighted else 'unweighted'}, chunk {batch} frames, "
        f"GEMM {gflops:.1f} GFLOP/s, naive-form bound {bound:,.0f} frames/s "
        f"({1e6 / bound:.2f} µs a frame)")
  for name, seconds in best.items():
    per_frame = seconds * 1e6 / batch
    print(f"{name:<32} {per_frame:8.2f} µs/frame  {batch / seconds / bound:6.3f}x bound")


if __name__ == "__main__":
  main()
