"""Tests of lift3d.viz.skeleton: colours follow the skeleton's sides; bad shapes are refused."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from lift3d.skeleton import H36M17
from lift3d.viz import skeleton as viz


def test_limb_colours_follow_sides():
  colours = viz.limb_colours(H36M17)
  by_child = {child: c for (_, child), c in zip(H36M17.limbs, colours, strict=True)}
  assert by_child[H36M17.index("LKnee")] == viz.LEFT_COLOUR
  assert by_child[H36M17.index("RWrist")] == viz.RIGHT_COLOUR
  assert by_child[H36M17.index("Spine")] == viz.CENTRE_COLOUR


def test_draw_2d_plots_every_limb_and_flips_y():
  fig, ax = plt.subplots()
  points = np.arange(34, dtype=float).reshape(17, 2)
  viz.draw_skeleton_2d(ax, points)
  # One line per limb plus the joint markers.
  assert len(ax.lines) == len(H36M17.limbs) + 1
  np.testing.assert_allclose(ax.lines[0].get_xydata(), points[list(H36M17.limbs[0])])
  assert ax.yaxis_inverted()
  plt.close(fig)


def test_draw_3d_puts_model_y_on_screen_up():
  fig = plt.figure()
  ax = fig.add_subplot(projection="3d")
  pose = np.zeros((17, 3))
  pose[:, 1] = np.arange(17)  # spread along model y
  viz.draw_skeleton_3d(ax, pose)
  lo, hi = ax.get_zlim()
  assert hi - lo >= 16
  plt.close(fig)


def test_wrong_shape_is_refused():
  fig, ax = plt.subplots()
  with pytest.raises(ValueError, match=r"\(17, 2\)"):
    viz.draw_skeleton_2d(ax, np.zeros((16, 2)))
  plt.close(fig)
