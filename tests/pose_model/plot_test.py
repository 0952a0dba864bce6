"""The component figure: its panel grid, its size on disk, and its mode poses in closed form."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from lift3d.pose_model.plot import components_figure, mode_poses, plot_components


@pytest.mark.parametrize("num_modes", [2, 10])
def test_figure_has_a_row_per_component_and_the_top_modes(planted_fit, num_modes):
  model = planted_fit.model
  fig = components_figure(model, num_modes=num_modes)
  try:
    shown = min(num_modes, model.num_basis)  # at most J modes
    assert len(fig.axes) == model.num_components * (1 + shown)
    for index, ax in enumerate(fig.axes):
      rows, cols, start, _ = ax.get_subplotspec().get_geometry()
      assert (rows, cols, start) == (model.num_components, 1 + shown, index)
    for k in range(model.num_components):
      titles = [ax.get_title() for ax in fig.axes[k * (1 + shown):(k + 1) * (1 + shown)]]
      assert titles[0].startswith(f"component {k}: mean")
      # The modes in order of decreasing variance.
      order = np.argsort(-np.asarray(model.variances[k]))[:shown]
      assert [int(t.split()[1].rstrip(":")) for t in titles[1:]] == order.tolist(), titles
  finally:
    plt.close(fig)


def test_plot_components_writes_the_figure_at_its_size(planted_fit, tmp_path):
  model = planted_fit.model
  path = plot_components(model, tmp_path / "components.png", num_modes=2, dpi=40)
  with Image.open(path) as image:
    # Two component rows of mean + 2 modes: 3 x 3 inches a panel, 0.5 inch for the key.
    assert image.size == (round(3.0 * 3 * 40), round((3.0 * 2 + 0.5) * 40))
    assert np.asarray(image.convert("L")).min() < 128  # something is drawn


def test_components_figure_has_a_key_and_units(planted_fit):
  fig = components_figure(planted_fit.model, num_modes=2)
  try:
    labels = [text.get_text() for legend in fig.legends for text in legend.get_texts()]
    assert labels[:3] == ["left limbs", "right limbs", "spine, head"], labels
    assert "mean − 2√λ·e" in labels[3] and "mean + 2√λ·e" in labels[3], labels
    for ax in fig.axes:
      assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("x (m)", "z (m)", "y (m)")
      low, high = ax.get_zlim()
      shown = [t for t in ax.get_zticks() if low <= t <= high]
      assert 2 <= len(shown) <= 4, shown  # few enough to stay readable
  finally:
    plt.close(fig)


def test_mode_poses_closed_form(planted_fit):
  model = planted_fit.model
  minus, plus = mode_poses(model, 1, 0, sigmas=2.0)
  step = 2.0 * np.sqrt(float(model.variances[1, 0])) * np.asarray(model.basis[1, 0])
  scale = float(model.limb_scale)
  np.testing.assert_allclose(plus, (np.asarray(model.mean[1]) + step) * scale, rtol=1e-6)
  np.testing.assert_allclose(0.5 * (plus + minus), np.asarray(model.mean[1]) * scale, atol=1e-6)
