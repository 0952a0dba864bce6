r"""Wall time and peak memory of `lift3d.pose_model.fit` against the number of poses.

  python -m experiments.benchmarks.fit_scale            # 125k, 250k, 500k, 1M poses
  python -m experiments.benchmarks.fit_scale --quick    # 20k, 40k poses

Workload (issue 4): N poses drawn from the embedded mocap corpus with 1 cm
Gaussian joint noise and uniformly random yaws; K=3 components, J=10 basis
vectors, default fit settings (mirrors added, so 2N poses are fitted). Each
size runs in a fresh subprocess, so its peak resident memory (getrusage max
RSS) is its own and its wall time includes JAX start-up compilation. Printed
per size: wall time of the `fit` call and its phases (prepare = normalise,
mirror, chunk; align; EM), EM iterations, the process's peak RSS, and the
time per fitted pose relative to the smallest size (1.0 = linear).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def sample_poses(num: int, seed: int = 0) -> np.ndarray:
  """(num, 17, 3) float32 metres: corpus poses + 1 cm noise, at random yaws."""
  from lift3d.data import mocap

  corpus = mocap.load_embedded()
  rng = np.random.default_rng(seed)
  poses = corpus.poses[rng.integers(0, len(corpus.poses), num)].astype(np.float32)
  poses += rng.normal(scale=0.01, size=poses.shape).astype(np.float32)
  yaw = rng.uniform(-np.pi, np.pi, num).astype(np.float32)
  c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
  x, z = poses[..., 0].copy(), poses[..., 2].copy()
  poses[..., 0], poses[..., 2] = c * x + s * z, -s * x + c * z
  return poses


def worker(num: int, num_components: int, num_basis: int) -> dict:
  """Fits once in this process; returns timings and the peak RSS."""
  import jax

  from lift3d import pose_model

  poses = sample_poses(num)
  start = time.perf_counter()
  result = pose_model.fit_detailed(poses, num_components=num_components, num_basis=num_basis,
                                   key=jax.random.key(0), progress=False)
  seconds = time.perf_counter() - start
  return {
      "num": num,
      "fitted": result.num_poses,
      "seconds": seconds,
      "phases": result.phase_seconds,
      "em_iterations": len(result.log_likelihood) - 1,
      "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
  }


def machine() -> str:
  model = "unknown CPU"
  try:
    with open("/proc/cpuinfo") as f:
      model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return f"{platform.machine()}, {os.cpu_count()} CPUs, {model}"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="20k and 40k poses only")
  parser.add_argument("--sizes", type=int, nargs="*", help="override the pose counts")
  parser.add_argument("--num_components", type=int, default=3)
  parser.add_argument("--num_basis", type=int, default=10)
  parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print("RESULT " + json.dumps(worker(args.worker, args.num_components, args.num_basis)))
    return
  sizes = args.sizes or ([20_000, 40_000] if args.quick else
                         [125_000, 250_000, 500_000, 1_000_000])
  print(f"fit_scale: K={args.num_components} J={args.num_basis}, mirrors on; {machine()}")
  print(f"{'poses':>9} {'fitted':>9} {'fit s':>7} {'prepare':>8} {'align':>7} {'EM':>7} "
        f"{'EM it':>6} {'peak GB':>8} {'s/pose rel':>10}")
  base = None
  for num in sizes:
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmarks.fit_scale", "--worker", str(num),
         "--num_components", str(args.num_components), "--num_basis", str(args.num_basis)],
        capture_output=True, text=True, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
      print(f"{num:>9} failed (exit {proc.returncode}): {proc.stderr[-500:]}")
      continue
    r = json.loads(line[len("RESULT "):])
    per_pose = r["seconds"] / r["fitted"]
    base = base or per_pose
    p = r["phases"]
    print(f"{num:>9,} {r['fitted']:>9,} {r['seconds']:>7.1f} {p['prepare']:>8.1f} "
          f"{p['align']:>7.1f} {p['em']:>7.1f} {r['em_iterations']:>6} {r['max_rss_gb']:>8.2f} "
          f"{per_pose / base:>10.2f}", flush=True)


if __name__ == "__main__":
  main()
