"""Cameras: the yaw and elevation rotations, weak perspective and pinhole projection
(with lens distortion), and the pixel <-> normalised 2D conversion (docs/method.md §0, §4).

Every rotation and projection in lift3d lives here. Each function accepts NumPy
arrays (or Python numbers) and JAX arrays: given any JAX array (a tracer inside
`jit` included) it computes with `jax.numpy` and returns a JAX array; otherwise
it computes with NumPy, in the inputs' precision (float64 for Python floats),
and returns a NumPy array, so per-example NumPy code (the synthetic renderer,
the Human3.6M readers) stays fast and exact.

3D points are right-handed, x right, y up, so z points out of the image,
towards the viewer (a camera looks along -z); image pixels are y down. The y
flip happens here and nowhere else: `normalize_keypoints` turns pixels into
normalised y-up coordinates and `denormalize_keypoints` turns them back.

Shape letters: L joints.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def _namespace(*arrays):
  """`jax.numpy` if any argument is a JAX array (or tracer), else `numpy`."""
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _float(xp, value):
  """`value` as a floating array of namespace `xp` (float64 for NumPy integers)."""
  value = xp.asarray(value)
  if not xp.issubdtype(value.dtype, xp.floating):
    value = value.astype(jnp.float32 if xp is jnp else np.float64)
  return value


def yaw_rotation(yaw):
  """Rotation `R_θ` about the vertical (y) axis (docs/method.md §0).

  `R_θ = [[cos θ, 0, sin θ], [0, 1, 0], [-sin θ, 0, cos θ]]`.

  Args:
    yaw: (...) angles in radians.

  Returns:
    (..., 3, 3) rotation matrices.
  """
  xp = _namespace(yaw)
  yaw = _float(xp, yaw)
  c, s = xp.cos(yaw), xp.sin(yaw)
  zero, one = xp.zeros_like(c), xp.ones_like(c)
  rows = [
      xp.stack([c, zero, s], -1),
      xp.stack([zero, one, zero], -1),
      xp.stack([-s, zero, c], -1),
  ]
  return xp.stack(rows, -2)


def rotate_yaw(points, yaw, *, axis: int = -1):
  """Applies `R_θ` to points without building the matrix: `x' = cos θ x + sin θ z`,
  `y' = y`, `z' = -sin θ x + cos θ z`.

  Args:
    points: 3D points, y up, with the coordinates (x, y, z) along `axis`;
      e.g. (..., L, 3) poses (axis -1) or (3, L, B) coordinate planes (axis 0).
    yaw: radians, broadcastable against `points` with `axis` removed; for
      (..., L, 3) poses with one yaw per pose, pass `yaw[..., None]`.
    axis: the coordinate axis of `points`.

  Returns:
    The rotated points, shaped like `points`.
  """
  xp = _namespace(points, yaw)
  points = xp.asarray(points)
  yaw = xp.asarray(yaw)
  x, y, z = (xp.take(points, i, axis=axis) for i in range(3))
  c, s = xp.cos(yaw), xp.sin(yaw)
  return xp.stack([c * x + s * z, y, -s * x + c * z], axis=axis)


def elevation_rotation(elevation):
  """Camera rotation `E` (docs/method.md §4) of a camera pitched down by `elevation`.

  A camera whose optical axis points `elevation` radians below the horizon
  sees a world point X (y up, the camera looking along -z when level) at
  camera coordinates `E X`, with
  `E = R_x(φ) = [[1, 0, 0], [0, cos φ, -sin φ], [0, sin φ, cos φ]]`: a point
  far ahead on the horizon appears above the image centre, and the world's up
  axis becomes (0, cos φ, sin φ), tilted towards the camera.

  Args:
    elevation: (...) pitch angles in radians, positive looking down.

  Returns:
    (..., 3, 3) rotation matrices.
  """
  xp = _namespace(elevation)
  elevation = _float(xp, elevation)
  c, s = xp.cos(elevation), xp.sin(elevation)
  zero, one = xp.zeros_like(c), xp.ones_like(c)
  rows = [
      xp.stack([one, zero, zero], -1),
      xp.stack([zero, c, -s], -1),
      xp.stack([zero, s, c], -1),
  ]
  return xp.stack(rows, -2)


def flip_y(points):
  """Negates the second coordinate: pixels (y down) <-> y up, and back.

  Args:
    points: (..., 2) 2D points.

  Returns:
    (..., 2) the same points with y negated.
  """
  xp = _namespace(points)
  points = xp.asarray(points)
  return points * xp.asarray([1.0, -1.0], points.dtype)


def weak_perspective(points, scale, *, rotation=None, translation=None):
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
  xp = _namespace(points, scale, rotation, translation)
  points = _float(xp, points)
  if rotation is not None:
    points = xp.einsum("...ab,...lb->...la", xp.asarray(rotation), points)
  pixels = flip_y(points[..., :2]) * xp.asarray(scale)[..., None, None]
  if translation is not None:
    pixels = pixels + xp.asarray(translation)[..., None, :]
  return pixels


def distort(normalised, radial, tangential):
  """Radial and tangential lens distortion of normalised image coordinates.

  The Brown–Conrady model as Human3.6M writes it (its ProjectPointRadial):
  with r² = x² + y², radial = 1 + k1 r² + k2 r⁴ + k3 r⁶ and
  tan = p1 y + p2 x, `(x', y') = (x, y)(radial + tan) + (p2, p1) r²`.

  Args:
    normalised: (..., 2) image-plane coordinates X/Z, Y/Z of a camera frame
      with y down and z forward (pixels before the focal length and principal
      point are applied).
    radial: (3,) k1, k2, k3.
    tangential: (2,) p1, p2.

  Returns:
    (..., 2) distorted normalised coordinates.
  """
  xp = _namespace(normalised, radial, tangential)
  xy = _float(xp, normalised)
  k1, k2, k3 = (radial[i] for i in range(3))
  p1, p2 = tangential[0], tangential[1]
  r2 = xp.sum(xy**2, axis=-1, keepdims=True)
  scale = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
  tan = p1 * xy[..., 1:2] + p2 * xy[..., 0:1]
  return xy * (scale + tan) + xp.stack([xp.asarray(p2), xp.asarray(p1)]) * r2


def pinhole(points, focal, principal, *, radial=None, tangential=None):
  """Perspective projection of camera-frame points to pixels.

  Args:
    points: (..., L, 3) points in the camera frame, x right, y up, z towards
      the viewer, so points in front of the camera have z < 0 (depth -z).
    focal: (...) focal length in pixels, or (..., 2) per axis (fx, fy); told
      apart by having fewer dimensions than `principal` or as many.
    principal: (..., 2) principal point in pixels.
    radial, tangential: optional lens distortion coefficients (3,) and (2,)
      (`distort`), applied to the image-plane coordinates before `focal`.

  Returns:
    (..., L, 2) pixels, x right, y down.
  """
  xp = _namespace(points, focal, principal, radial, tangential)
  points = _float(xp, points)
  focal, principal = xp.asarray(focal), xp.asarray(principal)
  if focal.ndim == principal.ndim:  # (..., 2) per axis
    focal = focal[..., None, :] if focal.ndim > 1 else focal
  else:  # (...) one per camera
    focal = focal[..., None, None] if focal.ndim > 0 else focal
  if principal.ndim > 1:
    principal = principal[..., None, :]
  # y down, z forward: the image-plane coordinates distortion models use.
  plane = flip_y(points[..., :2] / -points[..., 2:3])
  if radial is not None or tangential is not None:
    plane = distort(plane, xp.zeros(3) if radial is None else xp.asarray(radial),
                    xp.zeros(2) if tangential is None else xp.asarray(tangential))
  return plane * focal + principal


class Normalized2D(NamedTuple):
  """2D keypoints in normalised, y-up coordinates (docs/method.md §4, 2D normalisation).

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

  **(choice, docs/method.md §4)** The centre is the weighted mean of the joints (this
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
  xp = _namespace(keypoints, weights)
  keypoints = _float(xp, keypoints)
  if weights is None:
    weights = xp.ones(keypoints.shape[:-1], keypoints.dtype)
  weights = xp.asarray(weights, keypoints.dtype)
  used = weights > 0
  # where, not a product: NaN * 0 is NaN.
  clean = xp.where(used[..., None], keypoints, 0.0)
  total = xp.sum(weights, axis=-1)
  with np.errstate(divide="ignore", invalid="ignore"):  # documented: size 0 -> not finite
    centre = xp.sum(weights[..., None] * clean, axis=-2) / total[..., None]
    offset = xp.where(used[..., None], clean - centre[..., None, :], 0.0)
    size = xp.sqrt(xp.sum(weights * xp.sum(offset**2, axis=-1), axis=-1) / total)
    points = flip_y(offset) / size[..., None, None]
  return Normalized2D(points, centre, size)


def denormalize_keypoints(points, centre, size):
  """Normalised y-up 2D -> pixels: the inverse of `normalize_keypoints`.

  Args:
    points: (..., L, 2) normalised, y up.
    centre: (..., 2) pixels.
    size: (...) pixels.

  Returns:
    (..., L, 2) pixels, x right, y down.
  """
  xp = _namespace(points, centre, size)
  points = xp.asarray(points)
  return flip_y(points) * xp.asarray(size)[..., None, None] + xp.asarray(centre)[..., None, :]
