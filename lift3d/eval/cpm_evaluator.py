"""Held-out evaluation of the fused CPM: 2D pixel error and 3D MPJPE / PA-MPJPE.

An evaluator owns its jitted predict step (as big_vision's evaluators do): it
is built once from the network, the pose model and the held-out examples, and
`run(params)` scores any parameters of that network, e.g. after training or
at checkpoints. The metrics are computed in NumPy (float64) from the
predictions (`lift3d.eval.metrics`).

Shape letters: B batch, L landmarks (joints), H, W image height and width.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from lift3d.eval import metrics
from lift3d.models import cpm
from lift3d.pose_model.model import PoseModel


class CPMEvaluation(NamedTuple):
  """What `CPMEvaluator.run` returns.

  Attributes:
    metrics: "px_error" mean 2D error over labelled in-frame joints (pixels),
      "mpjpe_mm" / "pa_mpjpe_mm" mean over the valid frames (root-aligned,
      millimetres; NaN if none is valid), "valid_fraction", "num_examples".
    px_error: (E,) per-example mean 2D error, pixels (NaN without labels).
    mpjpe_mm: (E,) per-example root-aligned MPJPE, millimetres (NaN where not valid).
    valid: (E,) bool, the network's per-frame validity.
    first_batch: the first batch of examples (dict of (B, ...) arrays).
    first_prediction: the `lift3d.models.cpm.Prediction` of the first batch (NumPy).
  """

  metrics: dict[str, float]
  px_error: np.ndarray
  mpjpe_mm: np.ndarray
  valid: np.ndarray
  first_batch: dict[str, np.ndarray]
  first_prediction: Any


def _predict_step(params, images, pose_model, *, model: cpm.CPM, min_confidence: float):
  return cpm.predict(params, model, images, pose_model, min_confidence=min_confidence)


class CPMEvaluator:
  """Scores a CPM on the first `num_examples` items of a held-out source.

  Example:
    evaluator = CPMEvaluator(model, pose_model, source, num_examples=256, batch_size=32)
    result = evaluator.run(params)
  """

  def __init__(self, model: cpm.CPM, pose_model: PoseModel, source: Sequence[dict], *,
               num_examples: int, batch_size: int, min_confidence: float = 0.2):
    """Builds the evaluator and its jitted predict step.

    Args:
      model: the `CPM` module.
      pose_model: the pose model for lifting (fixed).
      source: random-access examples, each a dict with "image" (H, W, 3)
        uint8, "keypoints2d" (L, 2) pixels y down, "visibility" (L,),
        optionally "in_frame" (L,) bool, and "pose3d" (L, 3) metres in the
        frame of `lift`'s output (the renderer's camera orientation).
      num_examples: examples scored (at most len(source)).
      batch_size: images per forward pass.
      min_confidence: see `lift3d.models.cpm.predict`.
    """
    if num_examples < 1 or batch_size < 1:
      raise ValueError(f"num_examples and batch_size must be >= 1, got {num_examples}, "
                       f"{batch_size}")
    self.model = model
    self.pose_model = pose_model
    self.source = source
    self.num_examples = min(int(num_examples), len(source))
    self.batch_size = int(batch_size)
    self._predict = jax.jit(functools.partial(_predict_step, model=model,
                                              min_confidence=float(min_confidence)))

  def run(self, params) -> CPMEvaluation:
    """Predicts every example with `params` and scores the predictions.

    Args:
      params: the network's parameters.

    Returns:
      A `CPMEvaluation`.
    """
    px, mpjpe, pa, valid = [], [], [], []
    first = None
    for start in range(0, self.num_examples, self.batch_size):
      items = [self.source[i]
               for i in range(start, min(start + self.batch_size, self.num_examples))]
      batch = {k: np.stack([it[k] for it in items]) for k in items[0]}
      cpm.check_images(batch["image"], self.model)
      pred = jax.device_get(self._predict(params, batch["image"], self.pose_model))
      if first is None:
        first = (batch, pred)
      mask = batch.get("in_frame", batch["visibility"] > 0) & np.all(
          np.isfinite(batch["keypoints2d"]), axis=-1)
      px.append(np.asarray(metrics.pixel_error(pred.keypoints2d, batch["keypoints2d"], mask)))
      truth = batch["pose3d"] * 1000.0  # metres -> mm, the frame of lift's pose3d
      pose = np.where(pred.valid[:, None, None], pred.pose3d, 0.0)
      # Invalid frames have no 3D error (NaN), not the error of a zero pose.
      mpjpe.append(np.where(pred.valid, metrics.mpjpe(pose, truth, root_index=0), np.nan))
      pa.append(np.where(pred.valid, metrics.pa_mpjpe(pose, truth), np.nan))
      valid.append(np.asarray(pred.valid))
    px, mpjpe, pa, valid = (np.concatenate(a) for a in (px, mpjpe, pa, valid))
    summary = {
        "px_error": float(np.nanmean(px)),
        "mpjpe_mm": float(np.mean(mpjpe[valid])) if valid.any() else float("nan"),
        "pa_mpjpe_mm": float(np.mean(pa[valid])) if valid.any() else float("nan"),
        "valid_fraction": float(np.mean(valid)),
        "num_examples": self.num_examples,
    }
    return CPMEvaluation(summary, px, mpjpe, valid, first[0], first[1])
