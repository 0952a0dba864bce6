r"""First-call latency of `lift` and `lift_sequence` as the batch size or video length changes.

  python -m experiments.benchmarks.compile_reuse

A notebook or a command-line run lifts batches and videos of many sizes. Each
call with concrete arrays pads the frames to a bucket (`lift`: the next power
of two up to a chunk, then whole chunks; `lift_sequence`: the next power of
two of the frames), so a size in a bucket already compiled runs without
compiling. In one process, on the `lift_speed` model (K=3, J=10, L=17, T=100)
and random 2D, the wall time of each call in order: the first size of a
bucket (compiles), other sizes in the same bucket, and a size of a new bucket
(compiles). Without the buckets every row would compile.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from experiments.benchmarks.lift_speed import random_model
from lift3d import lifting, sequence


def _timed(fn) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num_yaws", type=int, default=100)
  args = parser.parse_args(argv)
  model = random_model(3, 10, 17)
  rng = np.random.default_rng(0)
  keypoints = rng.normal(size=(300, 17, 2)).astype(np.float32) * 50 + 200
  rows = []
  for frames in (100, 90, 120, 128, 200):
    seconds = _timed(lambda n=frames: lifting.lift(model, keypoints[:n], num_yaws=args.num_yaws))
    rows.append(("lift, unweighted", f"{frames} frames", seconds))
  for frames in (100, 70, 120, 200):
    seconds = _timed(lambda n=frames: sequence.lift_sequence(model, keypoints[:n],
                                                             num_yaws=args.num_yaws))
    rows.append(("lift_sequence, unweighted", f"{frames} frames", seconds))
  print(f"jax {jax.__version__}, {jax.default_backend()}")
  print("| function | call, in order | wall s |")
  print("|---|---|---:|")
  for function, size, seconds in rows:
    print(f"| {function} | {size} | {seconds:.3f} |")


if __name__ == "__main__":
  main()
