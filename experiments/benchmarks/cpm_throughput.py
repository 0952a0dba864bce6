r"""Training throughput of the CPM on this machine (issue 7 benchmark).

  python -m experiments.benchmarks.cpm_throughput [--quick] [--skip_paper] [--skip_small]
      [--paper_batches 1,2] [--dtypes float32,bfloat16] [--peak_tflops 989]

Prints a table of
- the small configuration (experiments/configs/parts/cpm.py, 64×64, 3 stages):
  training images/s of the jitted step alone (a fixed batch, compile excluded),
  of the whole loop (`lift3d.train.train`: synthetic rendering through grain,
  sharding, metrics), and of the plain CPM step as the in-process baseline;
- the paper's configuration (368×368 input, stride 8, 46×46 maps, 6 stages,
  100 yaws): seconds per training step at each of --paper_batches and each
  computation dtype of --dtypes (compile excluded). "float32-highest" is float32
  with `jax.default_matmul_precision("highest")`: on GPUs whose float32
  convolutions may use TF32, the pair float32 / float32-highest shows it.
Every jitted step also gets its floating-point work per step, as XLA counts it
on the lowered program (`Lowered.cost_analysis()["flops"]`: 2 per multiply-add,
forward and backward, the lifting included; the compiled program's count misses
a GPU's cuDNN convolutions), the achieved TFLOP/s and, given --peak_tflops (the device's
peak, e.g. 989 for an H100 SXM's dense bfloat16), the model FLOPs utilisation
(MFU = achieved / peak).
The pose model is fitted on the embedded corpus (training clips) or loaded
from --pose_model.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def _pose_model(path: str | None):
  import jax

  from experiments.configs.parts import data
  from lift3d import pose_model as pose_model_lib
  from lift3d.data import mocap

  if path and os.path.exists(path):
    return pose_model_lib.load(path)
  train, _ = mocap.load_embedded().split(tuple(data.get().holdout_clips))
  model = pose_model_lib.fit(train.poses, num_components=3, num_basis=8, key=jax.random.key(0))
  if path:
    pose_model_lib.save(path, model)
  return model


def _step_time(model, pose_model, images, keypoints, visibility, steps: int,
               precision: str | None = None):
  """(compile s, s per step, FLOPs per step) of the jitted training step on one batch.

  `precision`: None, or a `jax.default_matmul_precision` value under which the
  step is traced and compiled. FLOPs per step: XLA's count for the lowered
  step, before backend rewrites (None where the backend gives none).
  """
  import contextlib

  import jax
  from jax.sharding import NamedSharding, PartitionSpec

  from lift3d import train

  tx = train.make_optimizer(learning_rate=1e-3, schedule="constant")
  mesh = train.data_mesh()
  state = train.create_train_state(model, tx, jax.random.key(0), images.shape[1:3], pose_model,
                                   mesh)
  pose_model = jax.device_put(pose_model, NamedSharding(mesh, PartitionSpec()))
  step = train.make_train_step(model, tx, mesh, False)  # as train() builds it
  batch = {"image": images, "keypoints2d": keypoints, "visibility": visibility}
  batch = jax.device_put(batch, NamedSharding(mesh, PartitionSpec("data")))
  # The jitted step itself (not an AOT copy), so that `train.train` below
  # reuses its compilation; under the precision's context throughout, which
  # is part of the jit's cache key.
  with (jax.default_matmul_precision(precision) if precision else contextlib.nullcontext()):
    start = time.perf_counter()
    state, metrics = step(state, batch, pose_model)
    jax.block_until_ready(metrics["loss"])
    compile_s = time.perf_counter() - start
    # Counted on the program as lowered, not as compiled: on a GPU the compiled
    # program's convolutions are cuDNN custom calls, which XLA's count leaves
    # out (an H100 gave 7.8 GFLOP for a 6.8 TFLOP step).
    cost = step.lower(state, batch, pose_model).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    flops = float(cost["flops"]) if cost and cost.get("flops", 0) > 0 else None
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, batch, pose_model)
    jax.block_until_ready(metrics["loss"])
  return compile_s, (time.perf_counter() - start) / steps, flops


def _work(flops: float | None, step_s: float, peak_tflops: float | None) -> str:
  """'<GFLOP>/step, <TFLOP/s>[, MFU x%]' for the table's note column."""
  if flops is None:
    return "FLOPs not counted"
  rate = flops / step_s / 1e12
  text = f"{flops / 1e9:.1f} GFLOP/step, {rate:.2f} TFLOP/s"
  return text + (f", MFU {100 * rate / peak_tflops:.1f}%" if peak_tflops else "")


# --dtypes entries: (computation dtype of the CNN, matmul precision or None).
_DTYPE_SPECS = {"float32": ("float32", None), "float32-highest": ("float32", "highest"),
                "bfloat16": ("bfloat16", None)}


def _small_rows(pose_model, poses, quick: bool, peak_tflops: float | None):
  """Table rows of the small configuration: plain and fused step, whole loop, rendering."""
  import numpy as np

  from experiments import settings
  from experiments.configs.parts import cpm as cpm_part
  from lift3d import train
  from lift3d.data import synthetic

  cfg = cpm_part.get(False)
  small = settings.cpm_model(cfg)
  batch_size = int(cfg.train.batch_size)
  size = int(cfg.image_size)
  source = synthetic.SyntheticPoseSource(poses.poses, image_size=size, seed=0, length=100_000)
  items = [source[i] for i in range(batch_size)]
  images = np.stack([it["image"] for it in items])
  keypoints = np.stack([it["keypoints2d"] for it in items])
  visibility = np.stack([it["visibility"] for it in items])
  steps = 5 if quick else 30
  rows, rates = [], []
  for name, model in (("small, plain CPM (baseline)", small.clone(fusion=False)),
                      ("small, fused CPM", small)):
    compile_s, step_s, flops = _step_time(model, pose_model, images, keypoints, visibility, steps)
    rates.append(batch_size / step_s)
    rows.append((f"{name}: jitted step, batch {batch_size}, {size}px",
                 f"{rates[-1]:.1f} img/s", f"{step_s * 1e3:.0f} ms/step",
                 f"compile {compile_s:.0f} s; {_work(flops, step_s, peak_tflops)}"))
    print(" | ".join(rows[-1]), flush=True)  # as measured: a time limit keeps it
  rows.append(("fused / plain step throughput", f"{rates[1] / rates[0]:.2f}x", "", ""))

  loop_steps = 10 if quick else 60
  with tempfile.TemporaryDirectory() as workdir:
    # The same optimiser settings as above: the compiled step is reused.
    start = time.perf_counter()
    train.train(small, pose_model, source, workdir, num_steps=loop_steps, batch_size=batch_size,
                learning_rate=1e-3, schedule="constant", log_every=loop_steps,
                ckpt_every=10**9, progress=False, num_threads=2)
    total = time.perf_counter() - start
  rows.append((f"small, fused: whole loop (render+grain+step+1 ckpt), {loop_steps} steps",
               f"{loop_steps * batch_size / total:.1f} img/s", f"{total:.0f} s total", ""))
  start = time.perf_counter()
  for i in range(64):
    source[10_000 + i]
  render_s = (time.perf_counter() - start) / 64
  rows.append((f"synthetic rendering alone ({size}px, 1 thread)", f"{1 / render_s:.0f} img/s",
               "", ""))
  return rows


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="fewer steps")
  parser.add_argument("--skip_paper", action="store_true", help="skip the 368×368 model")
  parser.add_argument("--skip_small", action="store_true", help="skip the 64×64 model")
  parser.add_argument("--pose_model", default=None, help="pose model .npz (fitted if absent)")
  parser.add_argument("--paper_batches", default="1,2",
                      help="comma-separated batch sizes of the paper configuration")
  parser.add_argument("--dtypes", default="float32",
                      help=f"comma-separated CNN dtypes of the paper rows: {', '.join(_DTYPE_SPECS)}")
  parser.add_argument("--peak_tflops", type=float, default=None,
                      help="the device's peak TFLOP/s, for the MFU column (none if absent)")
  args = parser.parse_args()
  dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
  unknown = sorted(set(dtypes) - set(_DTYPE_SPECS))
  if unknown:
    parser.error(f"--dtypes: unknown {unknown}; choose from {list(_DTYPE_SPECS)}")
  try:
    paper_batches = [int(b) for b in args.paper_batches.split(",") if b.strip()]
  except ValueError:
    parser.error(f"--paper_batches must be comma-separated integers, got {args.paper_batches!r}")
  if not paper_batches or min(paper_batches) < 1:
    parser.error(f"--paper_batches must be positive, got {args.paper_batches!r}")
  if args.peak_tflops is not None and args.peak_tflops <= 0:
    parser.error(f"--peak_tflops must be positive, got {args.peak_tflops}")

  import numpy as np

  from experiments.configs.parts import cpm as cpm_part
  from lift3d import train
  from lift3d.data import mocap, synthetic
  from lift3d.models import cpm

  pose_model = _pose_model(args.pose_model)
  poses, _ = mocap.load_embedded().split(("humanoid3d_walk", "humanoid3d_punch"))
  rows = []
  if not args.skip_small:
    rows += _small_rows(pose_model, poses, args.quick, args.peak_tflops)

  if not args.skip_paper:
    paper = cpm.CPM(fusion=True, **cpm_part.paper_model().to_dict())
    big = synthetic.SyntheticPoseSource(poses.poses, image_size=368, seed=0,
                                        length=max(paper_batches))
    items = [big[i] for i in range(max(paper_batches))]
    for name in dtypes:
      dtype, precision = _DTYPE_SPECS[name]
      for batch in paper_batches:
        its = items[:batch]
        compile_s, step_s, flops = _step_time(
            paper.clone(dtype=train.DTYPES[dtype]), pose_model,
            np.stack([it["image"] for it in its]), np.stack([it["keypoints2d"] for it in its]),
            np.stack([it["visibility"] for it in its]), 1 if args.quick else 3, precision)
        rows.append((f"paper config (368px, 6 stages, 46×46 maps), fused, {name}, batch {batch}",
                     f"{batch / step_s:.2f} img/s",
                     f"{step_s * 1e3:.1f} ms/step" if step_s < 1 else f"{step_s:.1f} s/step",
                     f"compile {compile_s:.0f} s; {_work(flops, step_s, args.peak_tflops)}"))
        print(" | ".join(rows[-1]), flush=True)  # as measured: a time limit keeps it

  print()
  width = max(len(r[0]) for r in rows)
  print(f"{'configuration':<{width}}  {'throughput':>14}  {'time':>16}  note")
  for r in rows:
    print(f"{r[0]:<{width}}  {r[1]:>14}  {r[2]:>16}  {r[3]}")


if __name__ == "__main__":
  main()
