"""Cameras: yaw and elevation rotations, weak perspective and pinhole projection,
and the pixel <-> normalised 2D conversion (METHOD §0, §4).

3D points are right-handed, x right, y up, so z points out of the image,
towards the viewer (a camera looks along -z); image pixels are y down. The y
flip happens here and nowhere else: `normalize_keypoints` turns pixels into
normalised y-up coordinates and `denormalize_keypoints` turns them back.

Shape letters: L joints.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp


def yaw_rotation(yaw) -> jnp.ndarray:
  """Rotation about the vertical (y) axis, METHOD §0.

  `R_θ = [[cos θ, 0, sin θ], [0, 1, 0], [-sin θ, 0, cos θ]]`.

  Args:
    yaw: (...) angles in radians.

  Returns:
    (..., 3, 3) rotation matrices.
  """
  yaw = jnp.asarray(yaw)
  c, s = jnp.cos(yaw), jnp.sin(yaw)
  zero, one = jnp.zeros_like(c), jnp.ones_like(c)
  rows = [
      jnp.stack([c, zero, s], -1),
      jnp.stack([zero, one, zero], -1),
      jnp.stack([-s, zero, c], -1),
  ]
  return jnp.stack(rows, -2)


def elevation_rotation(elevation) -> jnp.ndarray:
  """Camera rotation `E` (METHOD §4) of a camera pitched down by `elevation`.

  A camera whose optical axis points `elevation` radians below the horizon
  sees a world point X (y up, the camera looking along -z when level) at
  camera coordinates `E X`, with
  `E = [[1, 0, 0], [0, cos φ, -sin φ], [0, sin φ, cos φ]]`: a point far
  ahead on the horizon appears above the image centre.

  Args:
    elevation: (...) pitch angles in radians, positive looking down.

  Returns:
    (..., 3, 3) rotation matrices.
  """
  elevation = jnp.asarray(elevation)
  c, s = jnp.cos(elevation), jnp.sin(elevation)
  zero, one = jnp.zeros_like(c), jnp.ones_like(c)
  rows = [
      jnp.stack([one, zero, zero], -1),
      jnp.stack([zero, c, -s], -1),
      jnp.stack([zero, s, c], -1),
  ]
  return jnp.stack(rows, -2)


def flip_y(points) -> jnp.ndarray:
  """Negates the second coordinate: pixels (y down) <-> y up, and back.

  Args:
    points: (..., 2) 2D points.

  Returns:
    (..., 2) the same points with y negated.
  """
  points = jnp.asarray(points)
  return points * jnp.asarray([1.0, -1.0], points.dtype)


def weak_perspective(points, scale, *, rotation=None, translation=None) -> jnp.ndarray:
  """Weak-perspective projection to pixels, `w = s Π E X + t` with the y flip.

  Args:
    points: (..., L, 3) 3D points, y up, any length unit.
    scale: (...) pixels per unit of `points`.
    rotation: optional (..., 3, 3) camera rotation `E` (default identity: a
      level camera).
    translation: optional (..., 2) pixel position of the projected origin.

  Returns:
    (..., L, 2) pixels, x right, y down.
  """
  points = jnp.asarray(points)
  if rotation is not None:
    points = jnp.einsum("...ab,...lb->...la", jnp.asarray(rotation), points)
  pixels = flip_y(points[..., :2]) * jnp.asarray(scale)[..., None, None]
  if translation is not None:
    pixels = pixels + jnp.asarray(translation)[..., None, :]
  return pixels


def pinhole(points, focal, principal) -> jnp.ndarray:
  """Perspective projection of camera-frame points to pixels.

  Args:
    points: (..., L, 3) points in the camera frame, x right, y up, z towards
      the viewer, so points in front of the camera have z < 0 (depth -z).
    focal: (...) focal length in pixels.
    principal: (..., 2) principal point in pixels.

  Returns:
    (..., L, 2) pixels, x right, y down.
  """
  points = jnp.asarray(points)
  focal = jnp.asarray(focal)[..., None, None]
  xy = points[..., :2] / -points[..., 2:3]
  return flip_y(xy) * focal + jnp.asarray(principal)[..., None, :]


class Normalized2D(NamedTuple):
  """2D keypoints in normalised, y-up coordinates (METHOD §4, 2D normalisation).

  Attributes:
    points: (..., L, 2) y up, centred on the weighted mean of the joints and
      divided by `size`; 0 at joints of weight 0.
    centre: (..., 2) pixels, the weighted mean of the joints.
    size: (...) pixels, the weighted RMS distance of the joints from `centre`.
  """

  points: jnp.ndarray
  centre: jnp.ndarray
  size: jnp.ndarray


def normalize_keypoints(keypoints, weights=None) -> Normalized2D:
  """Pixels -> normalised y-up 2D, invariant to translating and scaling the input.

  **(choice, METHOD §4)** The centre is the weighted mean of the joints (this
  removes the translation t) and the size is the weighted RMS distance of the
  joints from it, so a normalised pose has unit RMS radius whatever its
  orientation in the image. Joints of weight 0 may hold any value (NaN too)
  and do not affect the result.

  Args:
    keypoints: (..., L, 2) pixels, x right, y down.
    weights: (..., L) non-negative joint weights, or None for all ones.

  Returns:
    A `Normalized2D`. Where the weights sum to 0 or all weighted joints
    coincide, `size` is 0 and `points` is not finite.
  """
  keypoints = jnp.asarray(keypoints)
  if weights is None:
    weights = jnp.ones(keypoints.shape[:-1], keypoints.dtype)
  weights = jnp.asarray(weights, keypoints.dtype)
  used = weights > 0
  # jnp.where, not a product: NaN * 0 is NaN.
  clean = jnp.where(used[..., None], keypoints, 0.0)
  total = jnp.sum(weights, axis=-1)
  centre = jnp.sum(weights[..., None] * clean, axis=-2) / total[..., None]
  offset = jnp.where(used[..., None], clean - centre[..., None, :], 0.0)
  size = jnp.sqrt(jnp.sum(weights * jnp.sum(offset**2, axis=-1), axis=-1) / total)
  points = flip_y(offset) / size[..., None, None]
  return Normalized2D(points, centre, size)


def denormalize_keypoints(points, centre, size) -> jnp.ndarray:
  """Normalised y-up 2D -> pixels: the inverse of `normalize_keypoints`.

  Args:
    points: (..., L, 2) normalised, y up.
    centre: (..., 2) pixels.
    size: (...) pixels.

  Returns:
    (..., L, 2) pixels, x right, y down.
  """
  points = jnp.asarray(points)
  return flip_y(points) * jnp.asarray(size)[..., None, None] + jnp.asarray(centre)[..., None, :]
