"""Belief maps: Gaussian maps at 2D points, and points back from maps (docs/method.md §5).

Maps are channels-last, `(..., H, W, L)`, one channel per landmark, on the
network's output grid. Grid coordinates are `(u, v)` = (column, row) of a map
cell, cell centres at integers. Image pixels use the same convention (pixel
centres at integers, x right, y down); a network of stride `s` maps pixel `x`
to grid `u = (x - (s - 1) / 2) / s`, so cell `j` covers pixels
`j s .. j s + s - 1` and its centre is their mean.

Shape letters: L landmarks, H, W map height and width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SUBPIXEL_METHODS = ("argmax", "quadratic")


def pixels_to_grid(points: jax.Array, stride: int) -> jax.Array:
  """Image pixels to belief-map grid coordinates.

  Args:
    points: (..., 2) pixels (x right, y down, pixel centres at integers).
    stride: the network's output stride (input pixels per map cell).

  Returns:
    (..., 2) grid coordinates (column, row), cell centres at integers.
  """
  return (points - 0.5 * (stride - 1)) / stride


def grid_to_pixels(points: jax.Array, stride: int) -> jax.Array:
  """Belief-map grid coordinates to image pixels (inverse of `pixels_to_grid`).

  Args:
    points: (..., 2) grid coordinates (column, row).
    stride: the network's output stride.

  Returns:
    (..., 2) pixels, x right, y down.
  """
  return points * stride + 0.5 * (stride - 1)


def gaussian_maps(points: jax.Array, height: int, width: int, sigma: float) -> jax.Array:
  """Unnormalised Gaussian maps centred at 2D points: `exp(-|p - c|² / 2σ²)`.

  This is both the training target `b*` (at ground-truth landmarks) and the
  projected belief map `b̂` (at reprojected landmarks), docs/method.md §5–§6. The peak
  value is 1 when the centre lies on a cell centre.

  Args:
    points: (..., L, 2) centres in grid coordinates (column, row).
    height: map height H (cells).
    width: map width W (cells).
    sigma: standard deviation, grid cells.

  Returns:
    (..., H, W, L) maps in [0, 1].
  """
  rows = jnp.arange(height, dtype=points.dtype)
  cols = jnp.arange(width, dtype=points.dtype)
  # Separable: exp(-(du² + dv²)/2σ²) = exp(-du²/2σ²) exp(-dv²/2σ²).
  du = cols[:, None] - points[..., None, :, 0]  # (..., W, L)
  dv = rows[:, None] - points[..., None, :, 1]  # (..., H, L)
  gu = jnp.exp(-0.5 * jnp.square(du / sigma))
  gv = jnp.exp(-0.5 * jnp.square(dv / sigma))
  return gv[..., :, None, :] * gu[..., None, :, :]


def sample_cells(maps: jax.Array, cells: jax.Array) -> jax.Array:
  """Each landmark's map value at a given cell.

  Args:
    maps: (..., H, W, L) belief maps.
    cells: (..., L, 2) integer-valued grid coordinates (column, row), e.g.
      the "argmax" points of `maps_to_points`; clipped to the grid.

  Returns:
    (..., L) `maps[..., row, column, l]` for every landmark l.
  """
  height, width = maps.shape[-3], maps.shape[-2]
  col = jnp.clip(jnp.round(cells[..., 0]).astype(jnp.int32), 0, width - 1)
  row = jnp.clip(jnp.round(cells[..., 1]).astype(jnp.int32), 0, height - 1)
  flat = jnp.moveaxis(maps, -1, -3).reshape(*maps.shape[:-3], maps.shape[-1], height * width)
  return jnp.take_along_axis(flat, (row * width + col)[..., None], axis=-1)[..., 0]


def _quadratic_offset(left: jax.Array, centre: jax.Array, right: jax.Array) -> jax.Array:
  """Offset in [-0.5, 0.5] of the vertex of the parabola through three samples."""
  curvature = left - 2.0 * centre + right
  offset = 0.5 * (left - right) / jnp.where(curvature < 0, curvature, -1.0)
  # A flat or convex neighbourhood (no proper maximum): keep the arg-max cell.
  offset = jnp.where(curvature < 0, offset, 0.0)
  return jnp.clip(offset, -0.5, 0.5)


def maps_to_points(maps: jax.Array, subpixel: str = "argmax") -> tuple[jax.Array, jax.Array]:
  """2D landmarks and confidences from belief maps (docs/method.md §5, last item).

  Args:
    maps: (..., H, W, L) belief maps.
    subpixel: "argmax" (the most confident cell, as in the paper) or
      "quadratic" (then refined per axis by the vertex of the parabola through
      the peak and its two neighbours; at most half a cell).

  Returns:
    points: (..., L, 2) grid coordinates (column, row).
    confidence: (..., L) the map value at the arg-max cell.
  """
  if subpixel not in SUBPIXEL_METHODS:
    raise ValueError(f"subpixel must be one of {SUBPIXEL_METHODS}, got {subpixel!r}")
  height, width = maps.shape[-3], maps.shape[-2]
  flat = jnp.moveaxis(maps, -1, -3).reshape(*maps.shape[:-3], maps.shape[-1], height * width)
  index = jnp.argmax(flat, axis=-1)  # (..., L)
  confidence = jnp.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
  row = index // width
  col = index % width
  points = jnp.stack([col, row], axis=-1).astype(maps.dtype)
  if subpixel == "quadratic":

    def sample(r, c):
      r = jnp.clip(r, 0, height - 1)
      c = jnp.clip(c, 0, width - 1)
      return jnp.take_along_axis(flat, (r * width + c)[..., None], axis=-1)[..., 0]

    # A peak on the border has one neighbour only: keep the cell there.
    du = _quadratic_offset(sample(row, col - 1), confidence, sample(row, col + 1))
    dv = _quadratic_offset(sample(row - 1, col), confidence, sample(row + 1, col))
    du = jnp.where((col > 0) & (col < width - 1), du, 0.0)
    dv = jnp.where((row > 0) & (row < height - 1), dv, 0.0)
    points = points + jnp.stack([du, dv], axis=-1)
  return points, confidence
