"""Choosing the lifting's prior by held-out validation (lift3d.lifting.calibrate_prior)."""

import numpy as np
import pytest

from lift3d.lifting import calibrate_prior, lift
from lift3d.pose_model import io
from tests.lifting.planted import MODEL, T, plant


def _views(noise_px, seed):
  kp, truth, _, _ = plant(seed, noise_px=noise_px, batch=12)
  return kp, truth


def test_noisy_views_choose_a_stronger_prior_than_clean_ones():
  # Planted poses at 150-400 px per model unit: a 2D pose's RMS radius is
  # ~30-80 px, so 8 px of noise is ~0.1-0.25 of it, while clean views are exact.
  clean = [("clean", *_views(0.0, 1)[:1], None, _views(0.0, 1)[1])]
  noisy = [("noisy", *_views(8.0, 2)[:1], None, _views(8.0, 2)[1])]
  grid = (0.003, 0.03, 0.3)
  for views, expected in ((clean, 0.003), (noisy, 0.3)):
    result = calibrate_prior(MODEL, views, obs_noises=grid, prior_weights=(1.0,), num_yaws=T)
    # The table is the lifts' own errors: the chosen row has the lowest mean MPJPE.
    rows = {row["obs_noise"]: row for row in result.rows}
    assert set(rows) == set(grid)
    assert result.obs_noise == min(rows, key=lambda o: rows[o]["mean_mpjpe"])
    if expected == 0.003:
      assert result.obs_noise < 0.3  # exact 2D needs no strong prior
    else:
      assert result.obs_noise > 0.003  # noisy 2D must not be fitted exactly
    # The returned model carries the choice, and lift then uses it.
    assert float(result.model.obs_noise) == pytest.approx(result.obs_noise)
    name, kp, _, truth = views[0]
    chosen = lift(result.model, kp, num_yaws=T, reconstruction="model")
    lifted = np.asarray(chosen.component) >= 0
    error = np.linalg.norm(np.asarray(chosen.pose3d)[lifted] - truth[lifted], axis=-1).mean()
    assert error == pytest.approx(rows[result.obs_noise][f"{name}/mpjpe"], rel=1e-5)
  assert "**" in result.markdown()  # the chosen row is marked


def test_calibrated_model_round_trips_through_a_file(tmp_path):
  views = [("v", *_views(2.0, 3)[:1], None, _views(2.0, 3)[1])]
  result = calibrate_prior(MODEL, views, obs_noises=(0.05,), prior_weights=(0.5,), num_yaws=T)
  io.save(tmp_path / "m.npz", result.model)
  loaded = io.load(tmp_path / "m.npz")
  assert float(loaded.obs_noise) == pytest.approx(0.05)
  assert float(loaded.prior_weight) == pytest.approx(0.5)


def test_bad_views_are_clear_errors():
  with pytest.raises(ValueError, match="no validation views"):
    calibrate_prior(MODEL, [])
  kp, truth = _views(0.0, 4)
  with pytest.raises(ValueError, match="must be"):
    calibrate_prior(MODEL, [("v", kp, None, truth[:, :5])])
