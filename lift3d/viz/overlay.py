"""Prediction overlays: the picture with 2D skeletons beside the lifted 3D poses.

Left limbs blue, right limbs red, the rest black (`lift3d.viz.skeleton`), with
a key. Every call makes a figure of the same pixel size for a given `size`,
so overlays of a video's frames can be encoded as one video.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lift3d.skeleton import H36M17, Skeleton
from lift3d.viz.skeleton import (
    CENTRE_COLOUR,
    LEFT_COLOUR,
    RIGHT_COLOUR,
    draw_skeleton_2d,
    draw_skeleton_3d,
)

_PERSON_SPACING_MM = 1000.0


def overlay_figure(image: np.ndarray, people: Sequence, *, title: str = "",
                   size: tuple[float, float] = (8.0, 4.0), dpi: int = 100,
                   skeleton: Skeleton = H36M17):
  """A matplotlib figure: the picture with each person's 2D pose, and the 3D poses.

  Args:
    image: (H, W, 3) uint8 picture.
    people: `lift3d.inference.Person` records of this picture. Valid people
      get their skeleton (2D, and 3D side by side 1 m apart, in millimetres,
      y up); others get their box dashed with the reason.
    title: text above the picture.
    size: figure size, inches.
    dpi: dots per inch (pixel size = size · dpi).
    skeleton: the joints' skeleton.

  Returns:
    The `matplotlib.figure.Figure` (close it with `plt.close`).
  """
  import matplotlib.patches
  import matplotlib.pyplot as plt
  from matplotlib.lines import Line2D

  fig = plt.figure(figsize=size, dpi=dpi)
  ax = fig.add_subplot(1, 2, 1)
  ax.imshow(image)
  for n, person in enumerate(people):
    x, y, w, h = np.asarray(person.box, np.float64)
    if person.valid:
      draw_skeleton_2d(ax, person.keypoints, skeleton, visibility=person.confidence > 0.1,
                       linewidth=1.5, marker_size=2.0, invert_y=False)
      ax.text(x - 0.5, y - 0.5, f"#{n}", color="white", fontsize=7, va="bottom",
              bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0})
    elif np.all(np.isfinite([x, y, w, h])):
      ax.add_patch(matplotlib.patches.Rectangle((x - 0.5, y - 0.5), w, h, fill=False,
                                                linestyle="--", edgecolor="0.7"))
      ax.text(x - 0.5, y - 0.5, f"#{n}: {person.reason}", color="0.9", fontsize=6,
              va="bottom", wrap=True)
  ax.set_aspect("equal", adjustable="box")
  ax.set_xlim(-0.5, image.shape[1] - 0.5)
  ax.set_ylim(image.shape[0] - 0.5, -0.5)
  ax.set_title(title, fontsize=8)
  ax.axis("off")
  ax.legend(handles=[Line2D([], [], color=LEFT_COLOUR, label="left"),
                     Line2D([], [], color=RIGHT_COLOUR, label="right"),
                     Line2D([], [], color=CENTRE_COLOUR, label="centre")],
            loc="lower right", fontsize=6, framealpha=0.6)

  ax3 = fig.add_subplot(1, 2, 2, projection="3d")
  valid = [p for p in people if p.valid]
  for n, person in enumerate(valid):
    pose = np.asarray(person.lifted.pose3d, np.float64) + np.array([n * _PERSON_SPACING_MM, 0, 0])
    draw_skeleton_3d(ax3, pose, skeleton)
  if len(valid) > 1:
    half = 0.5 * _PERSON_SPACING_MM * len(valid)
    centre = 0.5 * _PERSON_SPACING_MM * (len(valid) - 1)
    ax3.set_xlim(centre - half, centre + half)
    ax3.set_ylim(-half, half)
    ax3.set_zlim(-half, half)
  ax3.set_title("3D (mm, camera frame, y up)" if valid else "no valid person", fontsize=8)
  ax3.tick_params(labelsize=5)
  fig.tight_layout()
  return fig


def overlay_array(image: np.ndarray, people: Sequence, **kwargs) -> np.ndarray:
  """Renders the overlay of `overlay_figure` to pixels (e.g. a video frame).

  Args:
    image: (H, W, 3) uint8 picture.
    people: `lift3d.inference.Person` records of this picture (poses in its
      pixels; 3D in millimetres).
    **kwargs: `title`, `size` (inches), `dpi`, `skeleton`, as for `overlay_figure`.

  Returns:
    (h, w, 3) uint8 RGB with h, w = size · dpi (the figure's pixel size,
    independent of H, W: 400×800 by default).
  """
  import matplotlib.pyplot as plt

  fig = overlay_figure(image, people, **kwargs)
  fig.canvas.draw()
  rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  plt.close(fig)
  return rgb


def save_overlay(path: str, image: np.ndarray, people: Sequence, **kwargs) -> None:
  """Writes the overlay of `overlay_figure` to a file.

  Args:
    path: the output file; its extension picks the format (PNG or any other
      matplotlib format). Its folder must exist.
    image: (H, W, 3) uint8 picture.
    people: `lift3d.inference.Person` records of this picture (poses in its
      pixels; 3D in millimetres).
    **kwargs: `title`, `size` (inches), `dpi`, `skeleton`, as for `overlay_figure`.
  """
  import matplotlib.pyplot as plt

  fig = overlay_figure(image, people, **kwargs)
  fig.savefig(path)
  plt.close(fig)
