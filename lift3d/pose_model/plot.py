"""A picture of a `PoseModel`: each component's mean pose and its main modes.

One row per mixture component: the mean pose, then for each of the top modes
the poses `μ_k ± 2·sqrt(λ_kj)·e_kj` (minus in grey, plus in colour: left limbs
blue, right red; a key under the panels says so), in metres (model units ×
limb_scale), y up.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # figures are written to files

import matplotlib.pyplot as plt
import numpy as np

from lift3d.pose_model.model import PoseModel
from lift3d.skeleton import H36M17, Skeleton
from lift3d.viz.skeleton import draw_skeleton_3d


def mode_poses(model: PoseModel, component: int, mode: int, sigmas: float = 2.0):
  """(minus, plus) poses `μ_k ∓ sigmas·sqrt(λ_kj)·e_kj`, each (L, 3) metres."""
  mean = np.asarray(model.mean[component], np.float64)
  step = sigmas * np.sqrt(max(float(model.variances[component, mode]), 0.0))
  direction = np.asarray(model.basis[component, mode], np.float64)
  scale = float(model.limb_scale)
  return (mean - step * direction) * scale, (mean + step * direction) * scale


def components_figure(model: PoseModel, *, num_modes: int = 3, sigmas: float = 2.0,
                      skeleton: Skeleton = H36M17) -> plt.Figure:
  """A figure of every component's mean and its top modes of variation.

  Args:
    model: the pose model (K components, J ≥ 0 basis vectors).
    num_modes: modes per component (the first min(num_modes, J), largest λ first).
    sigmas: how far along each mode, in standard deviations.
    skeleton: the joints' skeleton.

  Returns:
    A matplotlib Figure of K rows and 1 + min(num_modes, J) columns of 3D
    axes: the mean of component k, then its modes; the caller closes it.
  """
  from matplotlib.lines import Line2D
  from matplotlib.ticker import MaxNLocator

  from lift3d.viz.skeleton import LEFT_COLOUR, RIGHT_COLOUR

  num_components = model.num_components
  num_modes = min(num_modes, model.num_basis)
  rows, cols = num_components, 1 + num_modes
  width, height = 3.0 * cols, 3.0 * rows + 0.5  # inches; 0.5 for the key
  fig = plt.figure(figsize=(width, height))
  scale = float(model.limb_scale)
  radius = 0.55 * float(np.ptp(np.asarray(model.mean) * scale, axis=(0, 1)).max())
  for k in range(num_components):
    ax = fig.add_subplot(rows, cols, k * cols + 1, projection="3d")
    draw_skeleton_3d(ax, np.asarray(model.mean[k]) * scale, skeleton, radius=radius)
    ax.set_title(f"component {k}: mean (π={float(model.weights[k]):.2f})", fontsize=8)
    order = np.argsort(-np.asarray(model.variances[k]))
    for m in range(num_modes):
      j = int(order[m])
      ax = fig.add_subplot(rows, cols, k * cols + 2 + m, projection="3d")
      minus, plus = mode_poses(model, k, j, sigmas)
      draw_skeleton_3d(ax, minus, skeleton, colour="0.6", alpha=0.8, radius=radius)
      draw_skeleton_3d(ax, plus, skeleton, radius=radius)
      std_m = np.sqrt(max(float(model.variances[k, j]), 0.0)) * scale
      ax.set_title(f"mode {j}: ±{sigmas:g}√λ (√λ = {std_m:.2f} m)",
                   fontsize=8)
  for ax in fig.axes:
    # Seen from the front and a little above and to the side: no axis end-on, so
    # every axis keeps three readable ticks.
    ax.view_init(elev=15, azim=-60)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
      axis.set_major_locator(MaxNLocator(3))
    ax.tick_params(labelsize=6, pad=0)
    ax.set_xlabel("x (m)", fontsize=7, labelpad=-4)
    ax.set_ylabel("z (m)", fontsize=7, labelpad=-4)
    ax.set_zlabel("y (m)", fontsize=7, labelpad=-4)
  key = [Line2D([], [], color=LEFT_COLOUR, lw=2, label="left limbs"),
         Line2D([], [], color=RIGHT_COLOUR, lw=2, label="right limbs"),
         Line2D([], [], color="black", lw=2, label="spine, head"),
         Line2D([], [], color="0.6", lw=2,
                label=f"grey: mean − {sigmas:g}√λ·e; coloured: mean + {sigmas:g}√λ·e")]
  fig.legend(handles=key, loc="lower center", ncol=len(key), fontsize=8, frameon=False)
  fig.tight_layout(rect=(0, 0.4 / height, 1, 1))
  return fig


def plot_components(model: PoseModel, path: str | os.PathLike, *, num_modes: int = 3,
                    sigmas: float = 2.0, skeleton: Skeleton = H36M17, dpi: int = 100) -> str:
  """Writes `components_figure` to a PNG.

  Args:
    model, num_modes, sigmas, skeleton: as for `components_figure`.
    path: output file (PNG).
    dpi: figure resolution.

  Returns:
    The path written.
  """
  fig = components_figure(model, num_modes=num_modes, sigmas=sigmas, skeleton=skeleton)
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return os.fspath(path)
