"""The pose-model job: fit the mixture of PPCA on the embedded mocap corpus.

`run(config, workdir)` fits on `lift3d.data.mocap.load_embedded()` minus
`config.data.holdout_clips`, every `config.data.frame_stride`-th frame, with
the arguments of `config.pose_model`; it writes `<workdir>/pose_model.npz`,
`<workdir>/pose_model_components.png` and `<workdir>/pose_model_summary.json`.
`load_or_fit(config, workdir)` is what the other jobs call.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np
from absl import logging

from lift3d import pose_model
from lift3d.pose_model.plot import plot_components

MODEL_FILE = "pose_model.npz"
FIGURE_FILE = "pose_model_components.png"
SUMMARY_FILE = "pose_model_summary.json"

# config.pose_model keys that are not arguments of lift3d.pose_model.fit.
_NOT_FIT_ARGS = ("seed", "plot_modes", "max_poses")


def fit_kwargs(cfg: ml_collections.ConfigDict) -> dict:
  """`lift3d.pose_model.fit` keyword arguments from `config.pose_model` (no key)."""
  return {k: v for k, v in cfg.to_dict().items() if k not in _NOT_FIT_ARGS}


def training_poses(config: ml_collections.ConfigDict) -> np.ndarray:
  """(N, 17, 3) metres: the embedded corpus minus the held-out clips, subsampled."""
  from lift3d.data import mocap

  corpus = mocap.load_embedded()
  train, _ = corpus.split(tuple(config.data.holdout_clips))
  stride = int(config.data.get("frame_stride", 1))
  if stride > 1:
    train = train.subsample(stride)
  logging.info("pose_model: %d training poses from %d clips (held out: %s)", len(train.poses),
               len(set(np.asarray(train.clip_ids).tolist())), list(config.data.holdout_clips))
  return np.asarray(train.poses, np.float32)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Fits the pose model, saves it and its figure; returns a summary dict."""
  cfg = config.pose_model
  os.makedirs(workdir, exist_ok=True)
  poses = training_poses(config)
  result = pose_model.fit_detailed(poses, key=jax.random.key(int(cfg.seed)),
                                   **fit_kwargs(cfg))
  model_path = os.path.join(workdir, MODEL_FILE)
  pose_model.save(model_path, result.model)
  figure = plot_components(result.model, os.path.join(workdir, FIGURE_FILE),
                           num_modes=int(cfg.get("plot_modes", 3)))
  summary = {
      "num_training_poses": len(poses),
      "num_poses_fitted": int(result.num_poses),
      "num_components": int(result.model.num_components),
      "num_basis": int(result.model.num_basis),
      "limb_scale_m": float(result.model.limb_scale),
      "weights": [round(float(w), 4) for w in result.model.weights],
      "fit_seconds": round(result.seconds, 2),
      "final_log_likelihood": float(result.log_likelihood[-1]),
      "em_iterations": int(len(result.log_likelihood) - 1),
      "final_align_cost": float(result.align_cost[-1]),
      "model_path": model_path,
      "figure": figure,
  }
  with open(os.path.join(workdir, SUMMARY_FILE), "w") as f:
    json.dump(summary, f, indent=2)
  logging.info("pose_model: %s", summary)
  return summary


def load_or_fit(config: ml_collections.ConfigDict, workdir: str) -> pose_model.PoseModel:
  """Loads `<workdir>/pose_model.npz` if present, else fits (via `run`) and saves it."""
  path = os.path.join(workdir, MODEL_FILE)
  if os.path.exists(path):
    logging.info("pose_model: loading %s", path)
    return pose_model.load(path)
  run(config, workdir)
  return pose_model.load(path)
