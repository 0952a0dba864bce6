"""Choosing the lifting's prior by held-out validation (docs/method.md §4.4).

The exact objective `||D(w − s A_θ(μ_k + E_k a))||²/σ_obs² + Σ a²/λ` and the
score `½·objective + β(½Σ log λ − log π)` have two numbers the model fit does
not give: σ_obs, how far 2D observations stray from the model's projection
(2D noise, and the model's own error in normalised 2D units), and β, how much
the component's prior term counts. `calibrate_prior` lifts held-out 2D views
with known 3D truth for every pair on a grid and keeps the pair of lowest mean
error over all the views' conditions (noise levels, hidden joints).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from lift3d.lifting.api import DEFAULT_BLEND_WEIGHT, lift
from lift3d.pose_model.model import PoseModel

DEFAULT_OBS_NOISES = (0.02, 0.035, 0.05, 0.07, 0.1, 0.14, 0.2)
DEFAULT_PRIOR_WEIGHTS = (0.0, 0.5, 1.0)


@dataclasses.dataclass(frozen=True)
class Calibration:
  """The chosen prior and the validation table behind it.

  Attributes:
    obs_noise: the chosen σ_obs, normalised 2D units.
    prior_weight: the chosen β.
    model: the input model with `obs_noise` and `prior_weight` set.
    rows: one dict per (σ_obs, β) pair: `obs_noise`, `prior_weight`, and per
      condition name `mpjpe` and `pa_mpjpe` (mm, over the lifted frames,
      plausible or not) and `valid` (fraction), plus their means over the
      conditions (`mean_mpjpe`, `mean_pa_mpjpe`).
  """

  obs_noise: float
  prior_weight: float
  model: PoseModel
  rows: list

  def markdown(self) -> str:
    """The validation table as Markdown (one row per pair, the chosen one in bold)."""
    conditions = [k[: -len("/mpjpe")] for k in self.rows[0] if k.endswith("/mpjpe")]
    head = ["σ_obs", "β"] + [f"{c} MPJPE / PA / valid" for c in conditions] + [
        "mean MPJPE", "mean PA-MPJPE"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in self.rows:
      chosen = (row["obs_noise"] == self.obs_noise and row["prior_weight"] == self.prior_weight)
      cells = [f"{row['obs_noise']:g}", f"{row['prior_weight']:g}"] + [
          f"{row[c + '/mpjpe']:.1f} / {row[c + '/pa_mpjpe']:.1f} / {row[c + '/valid']:.3f}"
          for c in conditions] + [f"{row['mean_mpjpe']:.1f}", f"{row['mean_pa_mpjpe']:.1f}"]
      if chosen:
        cells = [f"**{c}**" for c in cells]
      lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pa_errors(pred, truth):
  """(N, L, 3) mm -> (N,) mean joint error after a similarity Procrustes alignment."""
  from lift3d.eval import pa_mpjpe

  return np.asarray(pa_mpjpe(pred, truth), np.float64)


def calibrate_prior(
    model: PoseModel,
    views: Sequence[tuple],
    *,
    obs_noises: Sequence[float] = DEFAULT_OBS_NOISES,
    prior_weights: Sequence[float] = DEFAULT_PRIOR_WEIGHTS,
    num_yaws: int = 100,
    camera_rotation=None,
    reconstruction: str = "model",
    blend_weight: float = DEFAULT_BLEND_WEIGHT,
) -> Calibration:
  """Chooses σ_obs and β by lifting held-out views with known 3D truth.

  For every pair (σ_obs, β) on the grid, every view set is lifted and the
  error is measured on the frames that could be lifted (plausible or not, so
  that a pair cannot look good by rejecting frames). The chosen pair has the
  lowest MPJPE averaged over the view sets.

  Args:
    model: the pose model.
    views: (name, keypoints (N, L, 2) pixels y down, visibility (N, L) or
      None, truth (N, L, 3) mm in the camera frame, root joint at 0[, camera
      rotation (3, 3)]) per condition, e.g. ("2px", ...), ("5px, 30% hidden",
      ...); without its own rotation a view uses `camera_rotation`. Views must
      not come from the model's training poses.
    obs_noises: σ_obs values to try (normalised 2D units).
    prior_weights: β values to try.
    num_yaws: T of the lifts.
    camera_rotation: optional (3, 3) camera rotation E of the views that give none.
    reconstruction: the pose whose errors are measured, as in `lift`. "model"
      by default: σ_obs and β decide the answer (component, yaw, coefficients),
      which `lift`'s default blend moves afterwards without changing it.
    blend_weight: α of `reconstruction="blend"`.

  Returns:
    A `Calibration` (the chosen pair, the model carrying it, the table).

  Raises:
    ValueError: on an empty grid, no views, or mismatched shapes.
  """
  if not views:
    raise ValueError("no validation views given")
  if not obs_noises or not prior_weights:
    raise ValueError("obs_noises and prior_weights must each hold at least one value")
  views = [tuple(v) + (camera_rotation,) * (5 - len(v)) for v in views]
  for name, keypoints, visibility, truth, _ in views:
    if np.shape(keypoints)[:-1] != np.shape(truth)[:-1] or np.shape(truth)[-1] != 3:
      raise ValueError(f"views {name!r}: keypoints {np.shape(keypoints)} and truth "
                       f"{np.shape(truth)} must be (N, L, 2) and (N, L, 3)")
    if visibility is not None and np.shape(visibility) != np.shape(keypoints)[:-1]:
      raise ValueError(f"views {name!r}: visibility {np.shape(visibility)} does not match "
                       f"keypoints {np.shape(keypoints)}")
  rows = []
  for obs_noise, prior_weight in itertools.product(obs_noises, prior_weights):
    row = {"obs_noise": float(obs_noise), "prior_weight": float(prior_weight)}
    for name, keypoints, visibility, truth, rotation in views:
      result = lift(model, keypoints, visibility, num_yaws=num_yaws, obs_noise=obs_noise,
                    prior_weight=prior_weight, camera_rotation=rotation,
                    reconstruction=reconstruction, blend_weight=blend_weight)
      lifted = np.asarray(result.component) >= 0
      pred = np.asarray(result.pose3d, np.float64)[lifted]
      true = np.asarray(truth, np.float64)[lifted]
      row[f"{name}/mpjpe"] = float(np.linalg.norm(pred - true, axis=-1).mean()) if len(
          pred) else np.inf
      row[f"{name}/pa_mpjpe"] = float(_pa_errors(pred, true).mean()) if len(pred) else np.inf
      row[f"{name}/valid"] = float(np.mean(np.asarray(result.valid)))
    names = [v[0] for v in views]
    row["mean_mpjpe"] = float(np.mean([row[f"{n}/mpjpe"] for n in names]))
    row["mean_pa_mpjpe"] = float(np.mean([row[f"{n}/pa_mpjpe"] for n in names]))
    rows.append(row)
  best = min(rows, key=lambda r: r["mean_mpjpe"])
  chosen = model.replace(obs_noise=np.float32(best["obs_noise"]),
                         prior_weight=np.float32(best["prior_weight"]))
  return Calibration(obs_noise=best["obs_noise"], prior_weight=best["prior_weight"],
                     model=chosen, rows=rows)
