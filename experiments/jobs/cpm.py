"""The CPM job: train the fused CPM on synthetic renders, evaluate, draw (issue 7).

Reads the CPM settings from `config.cpm` (the default config) or from the top
level of the config (experiments/configs/cpm_synthetic.py). Steps:
1. the pose model: `experiments.jobs.pose_model.load_or_fit(config, workdir)`;
2. renders of the training clips (`lift3d.data.synthetic.SyntheticPoseSource`);
3. `lift3d.train.train` (orbax checkpoints under `<workdir>/checkpoints`,
   `<workdir>/metrics.jsonl`; resumes from the workdir);
4. 2D pixel error, 3D MPJPE and PA-MPJPE on renders of the held-out clips
   (`evaluate`), written to `<workdir>/cpm_eval.json`;
5. the figure `<workdir>/cpm_example.png`: image, belief maps, projected
   maps, fused maps and the 3D pose.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np
from absl import logging

from experiments.jobs.pose_model import training_poses
from lift3d import eval as lift_eval
from lift3d import train as lift_train
from lift3d.data import mocap, synthetic
from lift3d.models import cpm


def section(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The CPM settings: `config.cpm` if present, else the config itself."""
  return config.cpm if "cpm" in config else config


def build_model(cfg: ml_collections.ConfigDict) -> cpm.CPM:
  """The `CPM` of a CPM config section (`model` fields and `fusion`)."""
  fields = dict(cfg.model.to_dict())
  fields["trunk_features"] = tuple(int(f) for f in fields["trunk_features"])
  return cpm.CPM(fusion=bool(cfg.fusion), **fields)


def split_poses(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  """(training, held-out) poses (N, 17, 3) metres of the embedded corpus.

  The training poses are exactly those the pose model is fitted on.
  """
  _, heldout = mocap.load_embedded().split(tuple(config.data.holdout_clips))
  return training_poses(config), heldout.poses


def make_sources(config: ml_collections.ConfigDict):
  """(training source, held-out evaluation source) of synthetic renders."""
  cfg = section(config)
  train_poses, heldout_poses = split_poses(config)
  train_source = synthetic.SyntheticPoseSource(
      train_poses, image_size=int(cfg.image_size), seed=int(cfg.synthetic.seed),
      length=int(cfg.synthetic.length), **cfg.synthetic.render.to_dict(),
  )
  render = {k: v for k, v in cfg.synthetic.render.to_dict().items() if k != "no_person_prob"}
  eval_source = synthetic.SyntheticPoseSource(
      heldout_poses, image_size=int(cfg.image_size), seed=int(cfg.eval.seed),
      length=int(cfg.eval.num_examples), no_person_prob=0.0, **render,
  )
  return train_source, eval_source


def evaluate(params, model: cpm.CPM, pose_model, source, *, num_examples: int, batch_size: int,
             min_confidence: float = 0.2) -> tuple[dict, dict]:
  """2D and 3D errors of the CPM on the first `num_examples` items of `source`.

  Args:
    params: the CPM's parameters.
    model: the `CPM`.
    pose_model: the pose model for lifting.
    source: synthetic examples (image, keypoints2d, visibility, in_frame,
      pose3d metres in the renderer's camera orientation).
    num_examples: examples evaluated (at most len(source)).
    batch_size: images per forward pass.
    min_confidence: see `lift3d.models.cpm.predict`.

  Returns:
    metrics: "px_error" mean 2D error over labelled in-frame joints (pixels),
      "mpjpe_mm" / "pa_mpjpe_mm" over the valid frames (root-aligned,
      millimetres), "valid_fraction", "num_examples".
    arrays: per-example "px_error", "mpjpe_mm", "valid", and the first batch's
      images and `Prediction` (for figures).
  """
  num_examples = min(int(num_examples), len(source))
  px, mpjpe, pa, valid = [], [], [], []
  first = None
  for start in range(0, num_examples, batch_size):
    items = [source[i] for i in range(start, min(start + batch_size, num_examples))]
    batch = {k: np.stack([it[k] for it in items]) for k in items[0]}
    pred = jax.device_get(cpm.predict(params, model, batch["image"], pose_model,
                                      min_confidence=min_confidence))
    if first is None:
      first = (batch, pred)
    mask = batch.get("in_frame", batch["visibility"] > 0) & np.all(
        np.isfinite(batch["keypoints2d"]), axis=-1)
    px.append(np.asarray(lift_eval.pixel_error(pred.keypoints2d, batch["keypoints2d"], mask)))
    truth = batch["pose3d"] * 1000.0  # same frame as lift's pose3d (checked)
    pose = np.where(pred.valid[:, None, None], pred.pose3d, 0.0)
    mpjpe.append(np.asarray(lift_eval.mpjpe(pose, truth, root_index=0)))
    pa.append(np.asarray(lift_eval.pa_mpjpe(pose, truth)))
    valid.append(np.asarray(pred.valid))
  px, mpjpe, pa, valid = (np.concatenate(a) for a in (px, mpjpe, pa, valid))
  metrics = {
      "px_error": float(np.nanmean(px)),
      "mpjpe_mm": float(np.mean(mpjpe[valid])) if valid.any() else float("nan"),
      "pa_mpjpe_mm": float(np.mean(pa[valid])) if valid.any() else float("nan"),
      "valid_fraction": float(np.mean(valid)),
      "num_examples": num_examples,
  }
  arrays = {"px_error": px, "mpjpe_mm": mpjpe, "valid": valid, "first": first}
  return metrics, arrays


def draw_example(path: str, image: np.ndarray, prediction, index: int = 0,
                 truth3d: np.ndarray | None = None) -> None:
  """Saves a figure of one example: image and 2D pose, maps of the last stage, 3D pose.

  Args:
    path: PNG file to write.
    image: (H, W, 3) uint8.
    prediction: a batched `lift3d.models.cpm.Prediction` (numpy).
    index: which example of the batch.
    truth3d: optional (L, 3) true pose, millimetres, y up, root at 0.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from lift3d.viz.skeleton import draw_skeleton_2d, draw_skeleton_3d

  out = prediction.output
  num_landmarks = out.projected.shape[-1]
  maps = {
      r"belief maps $b$ (last stage)": out.belief[-1, index, ..., :num_landmarks].max(-1),
      r"projected maps $\hat{b}$": out.projected[-1, index].max(-1),
      r"fused maps $f$": out.fused[-1, index, ..., :num_landmarks].max(-1),
  }
  fig = plt.figure(figsize=(15, 3.4))
  ax = fig.add_subplot(1, 5, 1)
  ax.imshow(image)
  draw_skeleton_2d(ax, prediction.keypoints2d[index])
  ax.set_title(f"image, 2D (valid={bool(prediction.valid[index])})")
  ax.axis("off")
  for i, (title, m) in enumerate(maps.items()):
    ax = fig.add_subplot(1, 5, 2 + i)
    ax.imshow(m, cmap="magma", vmin=0.0, vmax=max(1.0, float(np.nanmax(m))))
    ax.set_title(title)
    ax.axis("off")
  ax = fig.add_subplot(1, 5, 5, projection="3d")
  if bool(prediction.valid[index]):
    draw_skeleton_3d(ax, prediction.pose3d[index])
  if truth3d is not None:
    draw_skeleton_3d(ax, truth3d, colour="0.6", alpha=0.6)
  ax.set_title("3D (grey: truth)")
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def _pose_model(config, workdir):
  from experiments.jobs import pose_model as pose_model_job

  return pose_model_job.load_or_fit(config, workdir)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming), evaluates and draws; returns the evaluation metrics."""
  cfg = section(config)
  train_cfg = dict(cfg.train.to_dict())
  lift_train.initialize_distributed(bool(train_cfg.pop("distributed", False)))
  os.makedirs(workdir, exist_ok=True)
  pose_model = _pose_model(config, workdir)
  model = build_model(cfg)
  train_source, eval_source = make_sources(config)
  logging.info("cpm: %s (stride %d), training on %r", model, model.stride, train_source)
  time_limit = float(train_cfg.pop("time_limit_s", 0.0) or 0.0)
  state = lift_train.train(
      model, pose_model, train_source, workdir, seed=int(config.get("seed", 0)),
      time_limit_s=time_limit or None, **train_cfg,
  )
  params = jax.device_get(state.params)
  metrics, arrays = evaluate(
      params, model, pose_model, eval_source, num_examples=int(cfg.eval.num_examples),
      batch_size=int(cfg.eval.batch_size), min_confidence=float(cfg.eval.min_confidence),
  )
  metrics.update(step=int(state.step), fusion=bool(cfg.fusion))
  logging.info("cpm: held-out evaluation %s", metrics)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "cpm_eval.json"), "w") as f:
      json.dump(metrics, f, indent=2)
    batch, pred = arrays["first"]
    draw_example(
        os.path.join(workdir, "cpm_example.png"), batch["image"][0], pred, 0,
        truth3d=batch["pose3d"][0] * 1000.0,
    )
  return metrics
