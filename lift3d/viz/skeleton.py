"""Drawing skeletons on matplotlib axes, in 2D (pixels, y down) and 3D (y up).

Left limbs are drawn in blue, right limbs in red, the rest in black, so that a
mirrored pose is visible at a glance.
"""

from __future__ import annotations

import numpy as np

from lift3d.skeleton import H36M17, Skeleton

LEFT_COLOUR = "tab:blue"
RIGHT_COLOUR = "tab:red"
CENTRE_COLOUR = "black"


def limb_colours(skeleton: Skeleton = H36M17) -> list[str]:
  """One colour per limb of `skeleton` (left blue, right red, centre black)."""
  left = {a for a, _ in skeleton.left_right}
  right = {b for _, b in skeleton.left_right}
  colours = []
  for _, child in skeleton.limbs:
    colours.append(LEFT_COLOUR if child in left else RIGHT_COLOUR if child in right else CENTRE_COLOUR)
  return colours


def _check(points: np.ndarray, skeleton: Skeleton, dim: int, what: str) -> np.ndarray:
  points = np.asarray(points, np.float64)
  if points.shape != (skeleton.num_joints, dim):
    raise ValueError(f"expected {what} ({skeleton.num_joints}, {dim}), got {points.shape}")
  return points


def draw_skeleton_2d(ax, keypoints, skeleton: Skeleton = H36M17, *, visibility=None,
                     linewidth: float = 2.0, alpha: float = 1.0, marker_size: float = 3.0,
                     colour: str | None = None, invert_y: bool = True):
  """Draws a 2D skeleton on an image-style axes.

  Args:
    ax: a matplotlib Axes.
    keypoints: (L, 2) pixels, x right, y down. NaN joints are skipped.
    skeleton: the joints' skeleton.
    visibility: optional (L,) weights; limbs touching a joint with weight 0
      are drawn dashed and faint.
    linewidth, alpha, marker_size: line style.
    colour: one colour for all limbs instead of the left/right scheme.
    invert_y: make the axes y point down if it does not already (images do).

  Returns:
    The axes.
  """
  keypoints = _check(keypoints, skeleton, 2, "keypoints")
  vis = np.ones(skeleton.num_joints) if visibility is None else np.asarray(visibility)
  for (a, b), c in zip(skeleton.limbs, limb_colours(skeleton), strict=True):
    seen = vis[a] > 0 and vis[b] > 0
    ax.plot(keypoints[[a, b], 0], keypoints[[a, b], 1], color=colour or c,
            linewidth=linewidth, alpha=alpha if seen else 0.35 * alpha,
            linestyle="-" if seen else "--")
  ax.plot(keypoints[:, 0], keypoints[:, 1], "o", color=colour or "k",
          markersize=marker_size, alpha=alpha)
  if invert_y and not ax.yaxis_inverted():
    ax.invert_yaxis()
  ax.set_aspect("equal", adjustable="datalim")
  return ax


def draw_skeleton_3d(ax, pose, skeleton: Skeleton = H36M17, *, linewidth: float = 2.0,
                     alpha: float = 1.0, colour: str | None = None, radius: float | None = None):
  """Draws a 3D skeleton on a `projection="3d"` axes, with y up on screen.

  Args:
    ax: a matplotlib 3D Axes.
    pose: (L, 3) any length unit, x right, y up, z towards the viewer's depth.
    skeleton: the joints' skeleton.
    linewidth, alpha: line style.
    colour: one colour for all limbs instead of the left/right scheme.
    radius: half-width of the cubic view box around the pose's centre, in the
      pose's units; None fits the pose.

  Returns:
    The axes.
  """
  pose = _check(pose, skeleton, 3, "pose")
  # matplotlib's 3D axes put z up, so plot (x, z, y): model y becomes screen up.
  for (a, b), c in zip(skeleton.limbs, limb_colours(skeleton), strict=True):
    ax.plot(pose[[a, b], 0], pose[[a, b], 2], pose[[a, b], 1], color=colour or c,
            linewidth=linewidth, alpha=alpha)
  finite = pose[np.all(np.isfinite(pose), axis=1)]
  if len(finite):
    centre = 0.5 * (finite.max(0) + finite.min(0))
    half = radius if radius is not None else 0.55 * float(np.max(finite.max(0) - finite.min(0)) or 1.0)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[2] - half, centre[2] + half)
    ax.set_zlim(centre[1] - half, centre[1] + half)
  ax.set_xlabel("x")
  ax.set_ylabel("z")
  ax.set_zlabel("y")
  return ax
