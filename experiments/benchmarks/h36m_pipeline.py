r"""Speed of the Human3.6M pipeline on a fake copy, and of the metrics.

  python -m experiments.benchmarks.h36m_pipeline [--quick]

Prints a table: records/s of preparing array_record files (npz layout),
of reading them back (tfds.data_source random access, and the grain batch
reader `read_arrays`), and frames/s of the metrics (NumPy and jitted JAX),
with a plain NumPy MPJPE measured in the same process as the baseline.
The fake copy is the test helper's (tests/data/h36m_fake.py) with longer
sequences; the real dataset is not needed (nor measured).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def _rate(fn, count, repeat=3):
  best = np.inf
  for _ in range(repeat):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return count / best, best


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="small sizes")
  args = parser.parse_args()
  frames = 300 if args.quick else 1500
  metric_frames = 20_000 if args.quick else 200_000

  import grain  # noqa: F401  (imported before timing the reader)
  import jax
  import jax.numpy as jnp

  from lift3d import eval as lift_eval
  from lift3d.data import h36m
  from lift3d.skeleton import EVAL14_INDICES
  from tests.data import h36m_fake as fake

  fake.num_frames = lambda subject, raw: frames
  rows = []
  with tempfile.TemporaryDirectory() as root:
    manual = fake.write_npz(os.path.join(root, "manual"))
    start = time.perf_counter()
    builder = h36m.prepare(os.path.join(root, "tfds"), manual, "protocol1")
    seconds = time.perf_counter() - start
    src = builder.as_data_source()
    written = len(src["train"]) + len(src["test"])
    rows.append(("prepare protocol1 (npz layout)", written, written / seconds, seconds))
    test = src["test"]
    n = len(test)
    r, s = _rate(lambda: [test[i] for i in range(n)], n, repeat=2)
    rows.append(("read: data_source[i] one by one", n, r, s))
    r, s = _rate(lambda: h36m.read_arrays(test), n, repeat=2)
    rows.append(("read: read_arrays (grain batches)", n, r, s))

  rng = np.random.default_rng(0)
  true = rng.normal(scale=300, size=(metric_frames, 17, 3)).astype(np.float32)
  pred = true + rng.normal(scale=50, size=true.shape).astype(np.float32)

  def plain():
    return np.mean(np.sqrt(np.sum((pred - true) ** 2, -1)), -1)

  base, s = _rate(plain, metric_frames)
  rows.append(("baseline: plain NumPy MPJPE", metric_frames, base, s))
  for name, fn in (
      ("mpjpe (NumPy, root-aligned)", lambda: lift_eval.mpjpe(pred, true, root_index=0)),
      ("n_mpjpe (NumPy)", lambda: lift_eval.n_mpjpe(pred, true)),
      ("pa_mpjpe (NumPy, 14 joints)", lambda: lift_eval.pa_mpjpe(pred, true, joints=EVAL14_INDICES)),
      ("pck3d_auc (NumPy)", lambda: lift_eval.pck3d_auc(pred, true)),
  ):
    r, s = _rate(fn, metric_frames)
    rows.append((name, metric_frames, r, s))
  pa_jit = jax.jit(lambda p, t: lift_eval.pa_mpjpe(p, t, joints=EVAL14_INDICES))
  pj, tj = jnp.asarray(pred), jnp.asarray(true)
  pa_jit(pj, tj).block_until_ready()
  r, s = _rate(lambda: pa_jit(pj, tj).block_until_ready(), metric_frames)
  rows.append(("pa_mpjpe (JAX jit, 14 joints)", metric_frames, r, s))

  print(f"{'what':40s} {'items':>9s} {'items/s':>12s} {'seconds':>9s} {'vs baseline':>11s}")
  for name, count, rate, seconds in rows:
    ratio = f"{rate / base:.3f}" if "metric" not in name and count == metric_frames else ""
    print(f"{name:40s} {count:9d} {rate:12,.0f} {seconds:9.3f} {ratio:>11s}")


if __name__ == "__main__":
  main()
