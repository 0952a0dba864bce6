"""The component figure: it is written, and its mode poses are the closed form."""

import numpy as np
from PIL import Image

from lift3d.pose_model.plot import mode_poses, plot_components


def test_plot_components_writes_png(planted_fit, tmp_path):
  model = planted_fit.model
  path = plot_components(model, tmp_path / "components.png", num_modes=2, dpi=40)
  with Image.open(path) as image:
    width, height = image.size
  # Two component rows, mean + 2 modes per row.
  assert width > height > 0


def test_mode_poses_closed_form(planted_fit):
  model = planted_fit.model
  minus, plus = mode_poses(model, 1, 0, sigmas=2.0)
  step = 2.0 * np.sqrt(float(model.variances[1, 0])) * np.asarray(model.basis[1, 0])
  scale = float(model.limb_scale)
  np.testing.assert_allclose(plus, (np.asarray(model.mean[1]) + step) * scale, rtol=1e-6)
  np.testing.assert_allclose(0.5 * (plus + minus), np.asarray(model.mean[1]) * scale, atol=1e-6)
