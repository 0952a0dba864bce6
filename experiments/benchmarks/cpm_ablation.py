r"""Ablation: the plain multi-stage CPM versus the CPM with projected-map fusion.

  python -m experiments.benchmarks.cpm_ablation [--quick] [--steps N] \
      [--workdir DIR] [--pose_model PATH]

Both networks have the small configuration of experiments/configs/parts/cpm.py
and the same budget: the same number of steps on the same synthetic renders
of the training clips (same seed, so the same batches and the same initial
weights for the shared layers). Both are then evaluated on the same renders of
the held-out clips (config.data.holdout_clips): 2D pixel error over the
labelled in-frame joints, 3D MPJPE and PA-MPJPE (mm) of the final lift over
the valid frames. As a reference, the lift of the *true* 2D landmarks (the
same pose model and lifting) gives the 3D error floor of the pipeline.
The paper reports 10.04 px (plain CPM) -> 9.47 px (fused) on Human3.6M.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="a few steps, few examples")
  parser.add_argument("--steps", type=int, default=None, help="training steps per variant")
  parser.add_argument("--eval_examples", type=int, default=None)
  parser.add_argument("--workdir", default=None, help="keep checkpoints here (resumable)")
  parser.add_argument("--pose_model", default=None, help="pose model .npz (fitted if absent)")
  args = parser.parse_args()

  import jax
  import numpy as np

  import lift3d
  from experiments import settings
  from experiments.benchmarks.cpm_throughput import _pose_model
  from experiments.configs import default
  from lift3d import eval as lift_eval
  from lift3d import train
  from lift3d.data import synthetic
  from lift3d.eval.cpm_evaluator import CPMEvaluator

  full = default.get_config()
  config = full.cpm
  steps = args.steps or (20 if args.quick else 1500)
  config.eval.num_examples = args.eval_examples or (32 if args.quick else 256)
  pose_model = _pose_model(args.pose_model)
  train_poses, heldout_poses = settings.split_corpus(full.data)
  train_source = synthetic.SyntheticPoseSource(train_poses, **settings.render_kwargs(config))
  eval_source = synthetic.SyntheticPoseSource(heldout_poses,
                                              **settings.heldout_render_kwargs(config))
  workdir = args.workdir or tempfile.mkdtemp(prefix="cpm_ablation_")
  train_cfg = settings.train_kwargs(config.train)
  for key in ("num_steps", "time_limit_s", "log_every"):
    train_cfg.pop(key)

  rows = []
  for fusion in (False, True):
    config.fusion = fusion
    model = settings.cpm_model(config)
    name = "fused" if fusion else "plain"
    start = time.perf_counter()
    state = train.train(model, pose_model, train_source, os.path.join(workdir, name),
                        num_steps=steps, log_every=max(steps // 20, 1), **train_cfg)
    train_s = time.perf_counter() - start
    params = jax.device_get(state.params)
    metrics = CPMEvaluator(model, pose_model, eval_source,
                           **settings.cpm_eval_kwargs(config.eval)).run(params).metrics
    omega = float(np.mean(jax.nn.sigmoid(params["fusion_logits"]))) if fusion else 1.0
    rows.append(dict(variant=f"{name} CPM", steps=steps, train_s=train_s, mean_omega=omega,
                     **metrics))

  # Reference: lifting the true 2D landmarks of the same renders.
  items = [eval_source[i] for i in range(config.eval.num_examples)]
  keypoints = np.stack([it["keypoints2d"] for it in items])
  in_frame = np.stack([it["in_frame"] for it in items]).astype(np.float32)
  truth = np.stack([it["pose3d"] for it in items]) * 1000.0
  lifted = jax.device_get(lift3d.lift(pose_model, keypoints, in_frame,
                                      num_yaws=config.model.num_yaws))
  ok = lifted.valid
  rows.append(dict(
      variant="true 2D -> lift (floor)", steps=0, train_s=0.0, mean_omega=float("nan"),
      px_error=0.0, valid_fraction=float(ok.mean()),
      mpjpe_mm=float(np.mean(lift_eval.mpjpe(lifted.pose3d[ok], truth[ok], root_index=0))),
      pa_mpjpe_mm=float(np.mean(lift_eval.pa_mpjpe(lifted.pose3d[ok], truth[ok]))),
      num_examples=len(items)))

  with open(os.path.join(workdir, "ablation.json"), "w") as f:
    json.dump(rows, f, indent=2)
  print(f"held-out renders: {config.eval.num_examples} images of {tuple(full.data.holdout_clips)}"
        f" at {config.image_size}px; {steps} steps × batch {config.train.batch_size} each")
  print(f"{'variant':<24} {'2D px':>7} {'MPJPE mm':>9} {'PA-MPJPE':>9} {'valid':>6} "
        f"{'mean ω':>7} {'train s':>8}")
  for r in rows:
    print(f"{r['variant']:<24} {r['px_error']:>7.2f} {r['mpjpe_mm']:>9.1f} "
          f"{r['pa_mpjpe_mm']:>9.1f} {r['valid_fraction']:>6.2f} {r['mean_omega']:>7.3f} "
          f"{r['train_s']:>8.0f}")
  plain, fused = rows[0], rows[1]
  print(f"fused vs plain: 2D {fused['px_error'] - plain['px_error']:+.2f} px "
        f"({100 * (fused['px_error'] / plain['px_error'] - 1):+.1f}%), "
        f"MPJPE {fused['mpjpe_mm'] - plain['mpjpe_mm']:+.1f} mm")


if __name__ == "__main__":
  main()
