"""The pose-model job: fit the mixture of PPCA on the training poses (docs/method.md §1–§3).

`run(config, workdir)` splits the corpus (`experiments.settings.split_corpus`)
and calls `fit_and_save`, which fits, chooses the lifting's prior (σ_obs, β)
on views of the validation clips (`calibrate`, docs/method.md §4.4) and
writes `<workdir>/pose_model.npz`, `<workdir>/pose_model_components.png`,
`<workdir>/prior_calibration.md` and `<workdir>/pose_model_summary.json`.
`load_or_fit` is how the other jobs get a pose model: the saved one, or a new
fit of the poses they pass.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np
from absl import logging

from experiments import settings
from lift3d import files, pose_model
from lift3d.pose_model.plot import plot_components

MODEL_FILE = "pose_model.npz"
CALIBRATION_FILE = "prior_calibration.md"
# Validation conditions of the prior's calibration: (name, 2D noise px, hidden fraction).
CALIBRATION_CONDITIONS = (("0px", 0.0, 0.0), ("2px", 2.0, 0.0), ("5px", 5.0, 0.0),
                          ("5px+30%hidden", 5.0, 0.3))


def _stem(filename: str) -> str:
  return os.path.splitext(filename)[0]


def calibrate(model: pose_model.PoseModel, workdir: str, *, validation_poses: np.ndarray,
              views_kwargs: dict, frames: int, num_yaws: int,
              report_name: str = CALIBRATION_FILE) -> pose_model.PoseModel:
  """Chooses σ_obs and β on views of the validation poses; writes the table.

  Args:
    model: the fitted pose model.
    workdir: where `report_name` (Markdown) goes.
    validation_poses: (V, 17, 3) metres, y up, clips kept out of the fit.
    views_kwargs: `experiments.jobs.lifting.make_views` keywords (cameras); its
      frames, noise and occlusion are set per condition.
    frames: frames per condition (`CALIBRATION_CONDITIONS`).
    num_yaws: T of the lifts.
    report_name: the table's file name.

  Returns:
    The model with `obs_noise` and `prior_weight` set.
  """
  from experiments.jobs.lifting import make_views
  from lift3d.lifting import calibrate_prior

  views = []
  for name, noise, hidden in CALIBRATION_CONDITIONS:
    # One camera per condition, so each condition is one lift call.
    v = make_views(validation_poses, **{**views_kwargs, "num_frames": frames, "num_cameras": 1,
                                        "noise_px": noise, "occlusion_prob": hidden, "seed": 1})
    views.append((name, v.keypoints[0], v.visibility[0], v.truth[0], v.rotation[0]))
  result = calibrate_prior(model, views, num_yaws=num_yaws)
  text = ("# The lifting's prior, chosen on validation clips (docs/method.md §4.4)\n\n"
          f"{len(validation_poses)} validation poses; {frames} frames per condition through "
          "one pinhole camera (its rotation known); errors in mm over the lifted frames "
          "(MPJPE root-aligned, PA-MPJPE after Procrustes); valid = fraction judged "
          f"plausible. Chosen: σ_obs = {result.obs_noise:g}, β = {result.prior_weight:g} "
          "(lowest mean MPJPE).\n\n" + result.markdown() + "\n")
  with open(os.path.join(workdir, report_name), "w") as f:
    f.write(text)
  logging.info("pose_model: prior calibrated: obs_noise %g, prior_weight %g", result.obs_noise,
               result.prior_weight)
  return result.model


def fit_and_save(poses: np.ndarray, workdir: str, *, fit_kwargs: dict, seed: int,
                 max_poses: int = 0, plot_modes: int = 3, filename: str = MODEL_FILE,
                 report: bool = True,
                 calibration: dict | None = None) -> tuple[pose_model.PoseModel, dict]:
  """Fits the pose model to `poses` and saves it as `<workdir>/<filename>`.

  Args:
    poses: (N, 17, 3) metres, y up.
    workdir: output directory.
    fit_kwargs: `lift3d.pose_model.fit` keywords (all but `key`).
    seed: the fit's PRNG seed.
    max_poses: fit on at most this many poses, evenly strided (0: all).
    plot_modes: modes per component in the figure.
    filename: the model file; the figure and summary are named after it
      (`<stem>_components.png`, `<stem>_summary.json`).
    report: write the figure and the summary.
    calibration: `calibrate` keywords (all but model and workdir) to choose the
      lifting's prior after the fit, or None.

  Returns:
    (the model, a summary dict).
  """
  os.makedirs(workdir, exist_ok=True)
  num_input = len(poses)
  if max_poses and len(poses) > max_poses:
    poses = poses[np.linspace(0, len(poses) - 1, max_poses).round().astype(int)]
  logging.info("pose_model: fitting %s on %d poses", filename, len(poses))
  result = pose_model.fit_detailed(poses, key=jax.random.key(seed), **fit_kwargs)
  model = result.model
  if calibration is not None:
    model = calibrate(model, workdir, report_name=f"{_stem(filename)}_prior.md"
                      if filename != MODEL_FILE else CALIBRATION_FILE, **calibration)
  model_path = os.path.join(workdir, filename)
  pose_model.save(model_path, model)
  summary = {
      "num_training_poses": num_input,
      "num_poses_fitted": int(result.num_poses),
      "num_components": int(result.model.num_components),
      "num_basis": int(result.model.num_basis),
      "limb_scale_m": float(result.model.limb_scale),
      "obs_noise": None if model.obs_noise is None else float(model.obs_noise),
      "prior_weight": None if model.prior_weight is None else float(model.prior_weight),
      "weights": [round(float(w), 4) for w in result.model.weights],
      "fit_seconds": round(result.seconds, 2),
      "final_log_likelihood": float(result.log_likelihood[-1]),
      "em_iterations": int(len(result.log_likelihood) - 1),
      "final_align_cost": float(result.align_cost[-1]),
      "model_path": model_path,
  }
  if report:
    stem = os.path.join(workdir, _stem(filename))
    summary["figure"] = plot_components(model, f"{stem}_components.png",
                                        num_modes=plot_modes)
    files.write_json(f"{stem}_summary.json", summary)
  logging.info("pose_model: %s", summary)
  return model, summary


def load_or_fit(poses: np.ndarray, workdir: str, *, filename: str = MODEL_FILE,
                **fit_args) -> pose_model.PoseModel:
  """`<workdir>/<filename>` if present, else `fit_and_save(poses, workdir, **fit_args)`'s model.

  Args:
    poses: (N, 17, 3) metres, fitted only if the file is absent.
    workdir: where the model file is (or goes).
    filename: the model file.
    **fit_args: the other `fit_and_save` keywords.

  Returns:
    The pose model.
  """
  path = os.path.join(workdir, filename)
  if os.path.exists(path):
    logging.info("pose_model: loading %s", path)
    return pose_model.load(path)
  fit_and_save(poses, workdir, filename=filename, **fit_args)
  return pose_model.load(path)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Fits the pose model on the corpus's training poses, saves it and its figure; returns
  the summary."""
  train_poses, _ = settings.split_corpus(config.data)
  _, summary = fit_and_save(train_poses, workdir, **settings.pose_model_args(
      config.pose_model, settings.calibration_args(config)))
  return summary
