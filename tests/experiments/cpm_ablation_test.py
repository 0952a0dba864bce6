"""The ablation's statistics and scores against hand-computed values."""

import math

import numpy as np

from experiments.benchmarks import cpm_ablation


def test_mean_ci_is_the_student_t_interval():
  values = [1.0, 2.0, 4.0]
  mean, half = cpm_ablation.mean_ci(values)
  sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
  assert math.isclose(mean, 7 / 3)
  assert math.isclose(half, 4.303 * sd / math.sqrt(3))
  assert math.isnan(cpm_ablation.mean_ci([5.0])[1])
  assert math.isnan(cpm_ablation.mean_ci([float("nan")])[0])


def _data(rng, n=6, joints=17):
  pose3d = rng.normal(size=(n, joints, 3))
  keypoints = rng.uniform(10, 110, size=(n, joints, 2))
  occluded = np.zeros((n, joints), bool)
  occluded[:, :4] = True
  return {"keypoints2d": keypoints, "in_frame": np.ones((n, joints), bool),
          "occluded": occluded, "self_occluded": np.zeros((n, joints), bool),
          "pose3d": pose3d}


def test_score_of_planted_predictions():
  rng = np.random.default_rng(0)
  data = _data(rng)
  pred = data["keypoints2d"].copy()
  pred[:, 4:, 0] += 3.0  # visible joints 3 px off, hidden ones exact
  truth_mm = data["pose3d"] * 1000.0
  pose3d = truth_mm + np.array([10.0, 0.0, 0.0])  # a shift only: root-aligned error 0
  pose3d[0] += 50.0 * rng.normal(size=(17, 3))  # frame 0 wrong, and not "valid"
  lift_valid = np.array([False, True, True, True, True, True])
  lifted = np.ones(6, bool)
  out = cpm_ablation.score(pred, pose3d, lift_valid, data, lift_valid, lifted)
  assert math.isclose(out["px_visible"], 3.0) and out["px_hidden"] == 0.0
  box = np.max(data["keypoints2d"].max(1) - data["keypoints2d"].min(1), axis=-1)
  expected_pck = np.mean(np.concatenate([np.ones((6, 4)), np.broadcast_to(
      (3.0 <= 0.1 * box)[:, None], (6, 13))], axis=1))
  assert math.isclose(out["pck"], expected_pck)
  assert abs(out["mpjpe_mm"]) < 1e-9 and abs(out["pa_mpjpe_mm"]) < 1e-6
  assert out["mpjpe_lifted_mm"] > 1.0  # frame 0 counts among the lifted frames
  assert math.isclose(out["lift_valid"], 5 / 6)
  out = cpm_ablation.score(pred, np.full_like(pose3d, np.nan), np.zeros(6, bool), data)
  assert math.isnan(out["mpjpe_mm"]) and math.isnan(out["mpjpe_lifted_mm"])
