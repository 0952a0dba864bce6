r"""Speed of `lift3d.lift` (docs/method.md §4) against the machine's float32 GEMM rate.

  python -m experiments.benchmarks.lift_speed            # the issue's workload
  python -m experiments.benchmarks.lift_speed --quick    # a small, fast run

Workload: K=3 components, J=10 basis vectors, L=17 joints, T=100 yaws, batches
of 16,384 frames, float32. Prints frames/s without and with per-frame
visibility weights, with `refine=True`, and with T=1000, and, measured in the
same process, the full-float32 GEMM rate (a 2048² jnp.dot on CPU, 8192² on an
accelerator; for each row the best of the GEMMs timed between its calls, so
that both see the same load) and the fraction of the naive-form bound that each row reaches: a
machine running the GEMM rate on the per-(component, yaw) matrix form needs
K·T·4·2L·(J+1) FLOPs a frame. `--chunk 64 128 256` adds one row per chunk size.
`lift` is called eagerly, as users call it: on the CPU its default runs the
batch in one group per core, each in its own thread (`--threads 1`: one
program; until session 17 this benchmark timed `jax.jit(lift)`, one program).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from lift3d import lifting
from lift3d.pose_model.model import PoseModel


def random_model(num_components: int, num_basis: int, num_joints: int, seed: int = 0) -> PoseModel:
  """A hand-built model: random centred means, orthonormal bases."""
  rng = np.random.default_rng(seed)
  mean = rng.normal(size=(num_components, num_joints, 3)) * 0.25
  mean -= mean.mean(axis=1, keepdims=True)
  basis = np.stack([
      np.linalg.qr(rng.normal(size=(3 * num_joints, num_basis)))[0].T.reshape(
          num_basis, num_joints, 3) for _ in range(num_components)])
  return PoseModel(
      mean=jnp.asarray(mean, jnp.float32), basis=jnp.asarray(basis, jnp.float32),
      variances=jnp.asarray(rng.uniform(0.002, 0.01, (num_components, num_basis)), jnp.float32),
      noise=jnp.full((num_components,), 1e-4, jnp.float32),
      weights=jnp.full((num_components,), 1.0 / num_components, jnp.float32),
      limb_scale=jnp.asarray(0.5, jnp.float32))


def gemm_timer(size: int = 2048):
  """A function () -> seconds of one float32 size² matrix product (compiled here).

  Full float32 (`precision=HIGHEST`), the precision `lift` runs its products
  in; on GPUs the default would be TF32 and several times faster.
  """
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  dot = jax.jit(functools.partial(jnp.dot, precision=jax.lax.Precision.HIGHEST))
  dot(a, a).block_until_ready()

  def once() -> float:
    t = time.perf_counter()
    dot(a, a).block_until_ready()
    return time.perf_counter() - t

  return once


def gemm_gflops(size: int = 2048, repeats: int = 5) -> float:
  """float32 GFLOP/s of a size² matrix product, best of `repeats` (`gemm_timer`)."""
  once = gemm_timer(size)
  return 2 * size**3 / min(once() for _ in range(repeats)) / 1e9


def time_lift(model, keypoints, visibility, repeats: int, gemm=None,
              **options) -> tuple[float, float, float]:
  """(compile+first-call seconds, best seconds per call, best GEMM seconds) of lift on one batch.

  Called as users call it, with concrete arrays (on the CPU the batch then runs
  in one group of chunks per core, each in its own thread; `threads=1`: one
  program, as under `jax.jit`). With `gemm` (a `gemm_timer`), one GEMM is
  timed before each call, so that the bound and the lift are measured under
  the same load (a shared machine's speed drifts within a run); else inf.
  """
  fn = lambda m, k, v: lifting.lift(m, k, v, **options)  # noqa: E731
  t = time.perf_counter()
  jax.block_until_ready(fn(model, keypoints, visibility))
  first = time.perf_counter() - t
  best = best_gemm = np.inf
  for _ in range(repeats):
    if gemm is not None:
      best_gemm = min(best_gemm, gemm())
    t = time.perf_counter()
    jax.block_until_ready(fn(model, keypoints, visibility))
    best = min(best, time.perf_counter() - t)
  return first, best, best_gemm


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="small batches, fewer rows")
  parser.add_argument("--batch", type=int, default=None, help="frames per batch")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--chunk", type=int, nargs="*", default=None,
                      help="override lift's chunk_size (several: one row per size)")
  parser.add_argument("--threads", type=int, default=None,
                      help="lift's threads (default: its own, one per CPU core for big batches)")
  parser.add_argument("--rows", default="unweighted,weighted,refine,refine_weighted,t1000,"
                      "t1000_weighted", help="comma-separated rows to run")
  args = parser.parse_args()
  num_components, num_basis, num_joints = 3, 10, 17
  batch = args.batch or (2048 if args.quick else 16384)
  model = random_model(num_components, num_basis, num_joints)
  rng = np.random.default_rng(1)
  keypoints = jnp.asarray(rng.normal(size=(batch, num_joints, 2)) * 50 + 200, jnp.float32)
  visibility = (rng.uniform(size=(batch, num_joints)) > 0.2).astype(np.float32)
  visibility = jnp.asarray(visibility * rng.uniform(0.5, 1.0, size=visibility.shape), jnp.float32)

  gemm_size = 2048 if jax.default_backend() == "cpu" else 8192
  gemm = gemm_timer(gemm_size)
  gflops = 2 * gemm_size**3 / min(gemm() for _ in range(5)) / 1e9
  device = jax.devices()[0]
  print(f"machine: {platform.processor() or platform.machine()}, nproc={os.cpu_count()}, "
        f"jax {jax.__version__} on {device.platform} ({device.device_kind})")
  print(f"float32 GEMM ({gemm_size}², precision HIGHEST): {gflops:.1f} GFLOP/s")
  rows = {
      "unweighted": dict(num_yaws=100, weighted=False),
      "weighted": dict(num_yaws=100, weighted=True),
      "refine": dict(num_yaws=100, weighted=False, refine=True),
      "refine_weighted": dict(num_yaws=100, weighted=True, refine=True),
      "t1000": dict(num_yaws=1000, weighted=False),
      "t1000_weighted": dict(num_yaws=1000, weighted=True),
  }
  wanted = [r for r in args.rows.split(",") if r]
  if args.quick:
    wanted = [r for r in wanted if r in ("unweighted", "weighted", "refine")]
  print(f"\nK={num_components} J={num_basis} L={num_joints}, batch {batch} frames, float32")
  print(f"{'row':<22} {'T':>5} {'compile+1st s':>13} {'s/batch':>9} {'frames/s':>11} "
        f"{'GEMM GFLOP/s':>12} {'naive-bound fps':>15} {'x bound':>8}")
  for name, chunk in [(n, c) for n in wanted for c in (args.chunk or [None])]:
    spec = dict(rows[name])
    weighted = spec.pop("weighted")
    if chunk:
      spec["chunk_size"] = chunk
      name = f"{name}/{chunk}"
    first, best, best_gemm = time_lift(model, keypoints, visibility if weighted else None,
                                       args.repeats, gemm=gemm, threads=args.threads, **spec)
    fps = batch / best
    row_gflops = 2 * gemm_size**3 / best_gemm / 1e9  # measured between this row's calls
    naive_flops = num_components * spec["num_yaws"] * 4 * 2 * num_joints * (num_basis + 1)
    bound = row_gflops * 1e9 / naive_flops
    print(f"{name:<22} {spec['num_yaws']:>5} {first:>13.1f} {best:>9.4f} {fps:>11,.0f} "
          f"{row_gflops:>12.1f} {bound:>15,.0f} {fps / bound:>8.3f}")


if __name__ == "__main__":
  main()
