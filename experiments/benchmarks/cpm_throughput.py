r"""Training throughput of the CPM on this machine (issue 7 benchmark).

  python -m experiments.benchmarks.cpm_throughput [--quick] [--skip_paper]

Prints a table of
- the small configuration (experiments/configs/parts/cpm.py, 64×64, 3 stages):
  training images/s of the jitted step alone (a fixed batch, compile excluded),
  of the whole loop (`lift3d.train.train`: synthetic rendering through grain,
  sharding, metrics), and of the plain CPM step as the in-process baseline;
- the paper's configuration (368×368 input, stride 8, 46×46 maps, 6 stages,
  100 yaws): seconds per training step at batch 1 and 2 (compile excluded).
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


def _step_time(model, pose_model, images, keypoints, visibility, steps: int):
  """(compile seconds, seconds per step) of the jitted training step on one batch."""
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
  start = time.perf_counter()
  state, metrics = step(state, batch, pose_model)
  jax.block_until_ready(metrics["loss"])
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch, pose_model)
  jax.block_until_ready(metrics["loss"])
  return compile_s, (time.perf_counter() - start) / steps


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="fewer steps")
  parser.add_argument("--skip_paper", action="store_true", help="skip the 368×368 model")
  parser.add_argument("--pose_model", default=None, help="pose model .npz (fitted if absent)")
  args = parser.parse_args()

  import numpy as np

  from experiments import settings
  from experiments.configs.parts import cpm as cpm_part
  from lift3d import train
  from lift3d.data import mocap, synthetic
  from lift3d.models import cpm

  pose_model = _pose_model(args.pose_model)
  cfg = cpm_part.get(False)
  small = settings.cpm_model(cfg)
  poses, _ = mocap.load_embedded().split(("humanoid3d_walk", "humanoid3d_punch"))
  batch_size = int(cfg.train.batch_size)
  size = int(cfg.image_size)
  source = synthetic.SyntheticPoseSource(poses.poses, image_size=size, seed=0, length=100_000)
  items = [source[i] for i in range(batch_size)]
  images = np.stack([it["image"] for it in items])
  keypoints = np.stack([it["keypoints2d"] for it in items])
  visibility = np.stack([it["visibility"] for it in items])
  steps = 5 if args.quick else 30
  rows, rates = [], []
  for name, model in (("small, plain CPM (baseline)", small.clone(fusion=False)),
                      ("small, fused CPM", small)):
    compile_s, step_s = _step_time(model, pose_model, images, keypoints, visibility, steps)
    rates.append(batch_size / step_s)
    rows.append((f"{name}: jitted step, batch {batch_size}, {size}px",
                 f"{rates[-1]:.1f} img/s", f"{step_s * 1e3:.0f} ms/step",
                 f"compile {compile_s:.0f} s"))
  rows.append(("fused / plain step throughput", f"{rates[1] / rates[0]:.2f}x", "", ""))

  loop_steps = 10 if args.quick else 60
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

  if not args.skip_paper:
    paper = cpm.CPM(fusion=True, **cpm_part.paper_model().to_dict())
    big = synthetic.SyntheticPoseSource(poses.poses, image_size=368, seed=0, length=10)
    for batch in (1, 2):
      its = [big[i] for i in range(batch)]
      compile_s, step_s = _step_time(
          paper, pose_model, np.stack([it["image"] for it in its]),
          np.stack([it["keypoints2d"] for it in its]),
          np.stack([it["visibility"] for it in its]), 1 if args.quick else 2)
      rows.append((f"paper config (368px, 6 stages, 46×46 maps), fused, batch {batch}",
                   f"{batch / step_s:.2f} img/s",
                   f"{step_s * 1e3:.1f} ms/step" if step_s < 1 else f"{step_s:.1f} s/step",
                   f"compile {compile_s:.0f} s"))

  width = max(len(r[0]) for r in rows)
  print(f"{'configuration':<{width}}  {'throughput':>14}  {'time':>16}  note")
  for r in rows:
    print(f"{r[0]:<{width}}  {r[1]:>14}  {r[2]:>16}  {r[3]}")


if __name__ == "__main__":
  main()
