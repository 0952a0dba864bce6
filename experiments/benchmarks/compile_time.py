r"""XLA compile time of `lift` and `lift_sequence`: the wait of a first call.

  python -m experiments.benchmarks.compile_time
  python -m experiments.benchmarks.compile_time --models 9x14 --paths weighted

A notebook's first `lift` call compiles one XLA program for its options and
shapes; so does each test that uses new options. For each pose-model size
(K components × J basis vectors, L = 17, random values: compile time does not
depend on them), each path is called once on 64 random frames (T = 100) and
the backend compile time of its jitted program is read from JAX's monitoring
events (tracing and lowering excluded), with the caches cleared in between.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from experiments.benchmarks.lift_speed import random_model
from lift3d import lifting, sequence

_PROGRAMS = ("_lift_jit", "_lift_sequence_jit")


def _paths(model, keypoints, visibility, num_yaws):
  return {
      "unweighted": lambda: lifting.lift(model, keypoints, num_yaws=num_yaws),
      "weighted": lambda: lifting.lift(model, keypoints, visibility, num_yaws=num_yaws),
      "refine": lambda: lifting.lift(model, keypoints, num_yaws=num_yaws, refine=True),
      "sequence": lambda: sequence.lift_sequence(model, keypoints, num_yaws=num_yaws),
      "sequence_weighted": lambda: sequence.lift_sequence(model, keypoints, visibility,
                                                          num_yaws=num_yaws),
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="3x10,9x14",
                      help="comma-separated KxJ sizes (K components, J basis vectors)")
  parser.add_argument("--paths", default="unweighted,weighted,sequence",
                      help="comma-separated, of: " + ", ".join(_paths(None, None, None, 0)))
  parser.add_argument("--num_yaws", type=int, default=100)
  args = parser.parse_args(argv)
  rng = np.random.default_rng(0)
  keypoints = rng.normal(size=(64, 17, 2)).astype(np.float32) * 50 + 200
  visibility = (rng.random((64, 17)) > 0.2).astype(np.float32)
  compiles = []

  def listener(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration" and any(
        name in str(kwargs.get("fun_name", "")) for name in _PROGRAMS):
      compiles.append(duration)

  jax.monitoring.register_event_duration_secs_listener(listener)
  print(f"{'K':>3} {'J':>3} {'path':<18} {'compile s':>10} {'first call s':>13}")
  for size in args.models.split(","):
    num_components, num_basis = (int(v) for v in size.lower().split("x"))
    model = random_model(num_components, num_basis, 17)
    paths = _paths(model, keypoints, visibility, args.num_yaws)
    for name in args.paths.split(","):
      if name not in paths:
        parser.error(f"unknown path {name!r}; choose from {', '.join(paths)}")
      jax.clear_caches()
      compiles.clear()
      start = time.perf_counter()
      jax.block_until_ready(paths[name]())
      wall = time.perf_counter() - start
      print(f"{num_components:>3} {num_basis:>3} {name:<18} {sum(compiles):>10.2f} {wall:>13.2f}",
            flush=True)


if __name__ == "__main__":
  main()
